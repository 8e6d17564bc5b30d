"""Authenticated writes over HTTP: POST /documents adds a publication that is answered from at
once, with its page; DELETE removes it; every refusal is a 4xx that says why."""

import pytest
from fastapi.testclient import TestClient

from tests.publications import two_column_pdf
from tests.test_extract import FACT, TITLE, _scanned_pdf, _zip_of_something_else

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory, settings):
    import shutil

    from api.app import app
    from rag import store

    root = tmp_path_factory.mktemp("upload")
    shutil.copytree(settings.corpus_dir, root / "corpus")
    (root / "index").mkdir()
    if (settings.index_dir / "cache").exists():
        shutil.copytree(settings.index_dir / "cache", root / "index" / "cache")
    private = settings.replace(corpus_dir=root / "corpus", index_dir=root / "index")
    store.build_index(private)
    mp = pytest.MonkeyPatch()
    mp.setenv("RAG_CORPUS_DIR", str(private.corpus_dir))
    mp.setenv("RAG_INDEX_DIR", str(private.index_dir))
    mp.setenv("RAG_API_KEY", KEY)
    with TestClient(app) as c:
        yield c
    mp.undo()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "qingshi-report.pdf"
    paragraphs = ["青石县人大常委会坚持围绕中心、服务大局，依法履行各项职权。" * 3] * 30
    paragraphs.insert(20, FACT)
    starts = two_column_pdf(path, TITLE, paragraphs)
    return path, starts[20]


def _post(client, path, headers=AUTH, **fields):
    with open(path, "rb") as f:
        return client.post("/documents", files={"file": (path.name, f)}, data=fields, headers=headers)


def test_writes_need_the_key_and_are_off_without_one(client, report):
    from api.app import state

    assert _post(client, report[0], headers={}).status_code == 401
    # refused before the body is read: a large upload without the key costs nothing
    r = client.post("/documents", content=b"x" * 200_000, headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 401
    r = _post(client, report[0], headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    assert client.delete("/documents/luolong-2025-xunli").status_code == 401
    saved = state.settings
    state.settings = saved.replace(api_key="")
    try:
        r = _post(client, report[0])
        assert r.status_code == 403 and "RAG_API_KEY" in r.json()["detail"]
    finally:
        state.settings = saved
    assert client.get("/documents").status_code == 200  # reads stay open


def test_uploads_are_refused_by_size_and_by_content_not_by_name(client, tmp_path):
    from api.app import state

    fake = tmp_path / "report.docx"  # a .docx by name, a zip of something else by content
    _zip_of_something_else(fake)
    r = _post(client, fake)
    assert r.status_code == 415 and "not a Word document" in r.json()["detail"]
    gbk = tmp_path / "notes.txt"
    gbk.write_bytes("人大代表联络站".encode("gbk"))
    assert _post(client, gbk).status_code == 415
    scan = tmp_path / "scan.pdf"
    _scanned_pdf(scan)
    r = _post(client, scan)
    assert r.status_code == 422 and "no text layer" in r.json()["detail"]
    saved = state.settings
    state.settings = saved.replace(max_upload_bytes=2000)
    try:
        big = tmp_path / "big.txt"
        big.write_text("人大" * 5000, encoding="utf-8")  # 30 KB: over the limit, under the form's slack
        assert _post(client, big).status_code == 413
        big.write_text("人大" * 50000, encoding="utf-8")  # 300 KB: refused as it streams in
        assert _post(client, big).status_code == 413
    finally:
        state.settings = saved
    names = {e["doc_id"] for e in client.get("/documents").json()["documents"]}
    assert not names & {"report", "notes", "scan", "big"}  # nothing half-added


def test_an_uploaded_pdf_is_answered_at_once_with_its_page_and_deleted(client, report):
    path, page = report
    r = _post(client, path, place="青石县", date="2025-12-20")  # the flags of `rag add`, as form fields
    assert r.status_code == 201, r.text
    doc_id = r.json()["doc_id"]
    assert r.json()["detected"]["pages"] >= 2

    body = client.post("/ask", json={"question": "青石县加装电梯多少部？"}).json()
    assert body["found"] and "86部" in body["answer"], body["answer"]
    cite = body["citations"][0]
    assert cite["doc_id"] == doc_id and cite["page"] == page
    text = client.get(f"/documents/{doc_id}", params={"start": cite["start"], "end": cite["end"]}).json()
    assert text["passage"]["quote"] == cite["quote"] and text["original"].endswith(".pdf")

    assert _post(client, path).json()["status"] == "unchanged"
    assert client.delete(f"/documents/{doc_id}", headers=AUTH).json() == {"removed": doc_id}
    assert client.delete(f"/documents/{doc_id}", headers=AUTH).status_code == 404
    body = client.post("/ask", json={"question": "青石县加装电梯多少部？"}).json()
    assert "86部" not in body["answer"]
