"""The HTTP contract of DESIGN.md through FastAPI's TestClient, on the real index."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client(built):
    from api.app import app

    with TestClient(app) as c:
        yield c


def test_ask_returns_the_figure_with_a_citation_that_verifies(client, documents):
    r = client.post("/ask", json={"question": "洛阳市登记建档的古树名木共计多少株？"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"question", "answer", "found", "citations", "took_ms"}
    assert body["found"] and "88965株" in body["answer"]
    assert 1 <= len(body["citations"]) <= 3
    for c in body["citations"]:
        assert documents[c["doc_id"]].text[c["start"]:c["end"]] == c["quote"]
    assert "88965" in body["citations"][0]["quote"]


def test_ask_honours_filters(client):
    r = client.post("/ask", json={"question": "依法任免国家机关工作人员多少人次？", "filters": {"place": "盖州市"}})
    assert r.status_code == 200 and "93人次" in r.json()["answer"]


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"question": ""}, "question is empty"),
        ({"question": "   "}, "question is empty"),
        ({"question": "问" * 1001}, "limit is 1000"),
        ({"question": "电梯", "top_k": 0}, "top_k"),
        ({"question": "电梯", "top_k": 21}, "top_k"),
        ({"question": "电梯", "filters": {"colour": "red"}}, "unknown filter"),
        ({}, "question"),
    ],
)
def test_invalid_ask_is_422_with_a_message(client, payload, message):
    r = client.post("/ask", json=payload)
    assert r.status_code == 422
    assert message in r.json()["detail"]


def test_oversized_body_is_refused(client):
    r = client.post("/ask", content=b"{" + b" " * 20000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_search_is_retrieval_only_best_first(client):
    r = client.get("/search", params={"q": "代表联络站", "k": 3})
    body = r.json()
    assert r.status_code == 200 and len(body["results"]) == 3
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert set(body["results"][0]) == {"chunk_id", "doc_id", "title", "article", "start", "end", "text", "score"}
    assert client.get("/search", params={"q": "电梯", "k": 50}).status_code == 422


def test_documents_and_passage_in_context(client, documents):
    listing = client.get("/documents").json()["documents"]
    assert {d["doc_id"] for d in listing} == set(documents)
    text = documents["yingkou-2025-reports"].text
    start = text.index("盖州市人大常委会")
    r = client.get("/documents/yingkou-2025-reports", params={"start": start, "end": start + 8, "context": 20})
    p = r.json()["passage"]
    assert p["quote"] == "盖州市人大常委会" and p["after"] == text[start + 8:start + 28]
    assert client.get("/documents/nope").status_code == 404
    assert client.get("/documents/yingkou-2025-reports", params={"start": 10, "end": 5}).status_code == 422


def test_healthz_and_page(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["chunks"] > 300
    page = client.get("/")
    assert page.status_code == 200 and "人大出版物问答" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert "洛阳市老旧小区加装了多少部电梯" in client.get("/openapi.json").text


def test_503_while_the_index_is_not_loaded(client):
    from api.app import state

    saved, state.answerer, state.error = state.answerer, None, "no index"
    try:
        r = client.post("/ask", json={"question": "电梯"})
        assert r.status_code == 503 and "no index" in r.json()["detail"]
        assert client.get("/healthz").status_code == 503
    finally:
        state.answerer = saved


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"question": "\ud800"}, "not valid Unicode"),
        ({"question": "\u200b\u200f\u0007 "}, "question is empty"),
        ({"question": "电梯", "top_k": "5"}, "top_k"),
        ({"question": "电梯", "top_k": True}, "top_k"),
        ({"question": "电梯", "top_k": 5.0}, "top_k"),
        ({"question": "电梯", "colour": "red"}, "unknown field"),
        ({"question": "电梯", "filters": {"doc_type": "poem"}}, "allowed: journal_issue"),
        ({"question": "电梯", "filters": {"doc_id": "nope"}}, "allowed:"),
        ({"question": "电梯", "filters": {"year": "2025"}}, "year"),
    ],
)
def test_the_edge_is_strict(client, payload, message):
    r = client.post("/ask", content=json.dumps(payload), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]


def test_a_body_that_is_not_json_says_so(client):
    r = client.post("/ask", content="question=电梯".encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]


def test_the_body_cap_holds_for_chunked_bodies(client):
    def chunks():
        yield b'{"question": "'
        for _ in range(700):  # 700 × 1 KB, with no Content-Length
            yield b"x" * 1024
        yield b'"}'

    r = client.post("/ask", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over" in r.json()["detail"]


def test_the_openapi_document_declares_the_error_body(client):
    spec = client.get("/openapi.json").json()
    for code in ("413", "422", "503"):
        schema = spec["paths"]["/ask"]["post"]["responses"][code]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorBody")
    assert spec["components"]["schemas"]["ErrorBody"]["properties"]["detail"]["type"] == "string"


def test_the_docs_page_loads_its_assets_from_the_server(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    import re

    assets = re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', page.text)
    assert assets and all(client.get(a).status_code == 200 for a in assets)


def test_metrics_count_requests_and_answers(client):
    client.post("/ask", json={"question": "洛阳市登记建档的古树名木共计多少株？"})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert 'renda_requests_total{method="POST",route="/ask",status="200"}' in r.text
    assert 'renda_answers_total{found="true"}' in r.text and "renda_index_chunks" in r.text


def test_every_response_carries_a_request_id(client):
    assert len(client.get("/healthz").headers["x-request-id"]) == 12


def test_the_contract_in_docs_is_the_one_the_server_serves(client):
    """docs/openapi.json is the HTTP contract kept in the repository; regenerate it with
    `python -m api.contract` after changing the API on purpose."""
    committed = json.loads((Path(__file__).parent.parent / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert client.get("/openapi.json").json() == committed
