"""The Milvus backend: the same searches, filters, answers and index updates as the local one.

Runs against milvus-lite (a file); the same tests run against a real Milvus server or cluster
when MILVUS_URI is set (e.g. http://127.0.0.1:19530), and are skipped for it otherwise.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("pymilvus")

from rag import backends  # noqa: E402
from rag.backends import BackendError, FieldValues, literal, milvus_client, milvus_filter  # noqa: E402
from rag.evaluation import load_questions  # noqa: E402
from rag.retrieve import QueryError, Retriever, matches  # noqa: E402
from rag.store import build_index, current_dir, remove_document  # noqa: E402

TARGETS = ["lite", pytest.param("server", marks=pytest.mark.skipif(
    not os.environ.get("MILVUS_URI"), reason="no Milvus server: set MILVUS_URI=http://host:19530 to run"))]


@pytest.fixture(scope="module", params=TARGETS)
def milvus(request, built, tmp_path_factory):
    """A private corpus copy indexed into Milvus (vectors from the shared embedding cache)."""
    tmp = tmp_path_factory.mktemp(f"milvus-{request.param}")
    shutil.copytree(built.corpus_dir, tmp / "corpus")
    (tmp / "index").mkdir()
    if (built.index_dir / "cache").exists():
        shutil.copytree(built.index_dir / "cache", tmp / "index" / "cache")
    uri = str(tmp / "milvus.db") if request.param == "lite" else os.environ["MILVUS_URI"]
    s = built.replace(corpus_dir=tmp / "corpus", index_dir=tmp / "index", backend="milvus", milvus_uri=uri,
                      milvus_collection=f"renda_qa_test_{os.getpid()}")
    build_index(s)
    yield s
    backends.drop_other_collections(s, keep=set())


@pytest.fixture(scope="module")
def local(built):
    return Retriever(built)


def _questions(settings, n=40):
    return [q["question"] for q in load_questions(settings.eval_dir / "questions.jsonl")][:n]


def test_the_manifest_and_the_collection_name_the_backend(milvus):
    manifest = json.loads((current_dir(milvus) / "manifest.json").read_text(encoding="utf-8"))
    info = manifest["backend"]
    assert info["name"] == "milvus" and info["rows"] == manifest["counts"]["dense_rows"]
    r = Retriever(milvus)
    assert r.backend.describe()["collection"] == info["collection"]
    assert r.backend.count() == info["rows"]


def test_dense_search_finds_the_same_chunks_in_the_same_order(milvus, local):
    """Both are exact inner-product searches over the same window vectors."""
    r = Retriever(milvus)
    for q in _questions(milvus, 20):
        got = [h.chunk.id for h in r.search(q, k=5, mode="dense")]
        want = [h.chunk.id for h in local.search(q, k=5, mode="dense")]
        assert got == want, q


def test_hybrid_search_finds_mostly_what_the_local_backend_finds(milvus, local):
    """BM25 is Milvus's own over its jieba tokens, so lists may differ a little, not much."""
    r = Retriever(milvus)
    overlap = []
    for q in _questions(milvus):
        got = {h.chunk.id for h in r.search(q, k=5)}
        want = {h.chunk.id for h in local.search(q, k=5)}
        overlap.append(len(got & want) / 5)
    assert sum(overlap) / len(overlap) >= 0.8


@pytest.mark.parametrize("filters", [{"place": "营口"}, {"place": "洛龙区"}, {"year": 2024},
                                     {"doc_type": "work_report", "place": "盖州"}, {"doc_id": "xinan-2023-xunli"}])
def test_a_filter_expression_allows_exactly_the_chunks_the_local_mask_allows(milvus, local, filters):
    r = Retriever(milvus)
    expr = milvus_filter(filters, r.backend.fields)
    rows = r.backend.client.query(r.backend.collection, filter=expr, output_fields=["chunk_id"], limit=16384)
    allowed = {c.id for c in local.index.chunks if matches(c, filters)}
    assert {row["chunk_id"] for row in rows} == allowed
    assert all(matches(h.chunk, filters) for h in r.search("人大常委会 会议", k=10, filters=filters))


def test_a_filter_value_cannot_change_the_expression(milvus):
    """Quotes and backslashes are escaped, never spliced: the value is one string literal."""
    r = Retriever(milvus)
    sneaky = '营口" or year > 0 or place == "'
    assert r.search("人大常委会", k=5, filters={"doc_id": sneaky}) == []
    assert r.search("人大常委会", k=5, filters={"place": "\\\" or 1 == 1"}) == []
    assert literal('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises((QueryError, ValueError)):
        r.search("人大常委会", k=5, filters={"doc_id": "x\n or 1 == 1"})


def test_an_answer_through_milvus_cites_the_exact_characters(milvus):
    from rag.answer import Answerer

    a = Answerer(milvus).ask("洛阳市老旧小区加装了多少部电梯？")
    assert a.found and all(c.quote == _file_text(milvus, c.doc_id)[c.start:c.end] for c in a.citations)


def _file_text(settings, doc_id):
    return (settings.corpus_dir / f"{doc_id}.txt").read_text(encoding="utf-8")


def test_the_eval_through_milvus_matches_the_local_backend(milvus, built):
    """The issue's bar, on every eval question: recall@5 within 0.02 of the local backend's and
    the same answer accuracy (within a question or two), on each split."""
    from rag.evaluation import aggregate, evaluate

    questions = load_questions(built.eval_dir / "questions.jsonl")
    on_milvus, on_local = evaluate(milvus, questions), evaluate(built, questions)
    for split in ("dev", "test"):
        m = aggregate([r for r in on_milvus if r["split"] == split])
        loc = aggregate([r for r in on_local if r["split"] == split])
        assert m["recall@5"] >= loc["recall@5"] - 0.02, (split, m["recall@5"], loc["recall@5"])
        assert abs(m["answer_accuracy"] - loc["answer_accuracy"]) <= 0.015, (split, m, loc)


def test_removing_a_document_updates_the_collection_and_drops_old_generations(milvus):
    before = Retriever(milvus).backend.collection
    client = milvus_client(milvus)
    stray = f"{milvus.milvus_collection}_123"  # as a build that crashed long ago leaves one
    client.create_collection(stray, dimension=4)
    remove_document(milvus, "xinan-2023-xunli")
    r = Retriever(milvus)
    manifest = json.loads((current_dir(milvus) / "manifest.json").read_text(encoding="utf-8"))
    assert r.backend.collection != before and r.backend.count() == manifest["counts"]["dense_rows"]
    assert not any(h.chunk.doc_id == "xinan-2023-xunli" for h in r.search("新安县人大常委会", k=10))
    ours = [c for c in client.list_collections() if c.startswith(milvus.milvus_collection + "_")]
    assert sorted(ours) == sorted({before, r.backend.collection})  # this generation and the one before
    assert backends.drop_other_collections(milvus, keep={r.backend.collection}, grace_seconds=0) == [before]


def test_a_collection_out_of_step_with_the_index_is_refused_with_the_fix(milvus):
    r = Retriever(milvus)
    r.backend.client.delete(r.backend.collection, filter="row in [0, 1]")
    with pytest.raises(BackendError, match="rag index"):
        Retriever(milvus)
    build_index(milvus)
    assert Retriever(milvus).backend.count() > 0


def test_an_index_built_for_the_local_backend_is_not_searched_as_milvus(built):
    with pytest.raises(BackendError, match="RAG_BACKEND=milvus"):
        Retriever(built.replace(backend="milvus"))


def test_field_values_resolve_a_place_to_the_names_chunks_go_by(local):
    names = FieldValues(local.index.chunks).place_names("营口")
    assert names and all("营口" in n or n in "营口" for n in names)


def test_the_service_answers_over_milvus_lite_with_one_worker(corpus_copy):
    """A real `rag serve` on loopback over a milvus-lite file: /healthz names the backend, /ask
    answers with verifiable quotes; two workers on a lite file are refused with the reason."""
    import subprocess
    import sys

    from tests.test_live import _get, _port, _post, _wait

    env = {**os.environ, "RAG_BACKEND": "milvus", "RAG_MILVUS_URI": str(corpus_copy.index_dir / "live.db"),
           "RAG_MILVUS_COLLECTION": "renda_qa_live_test"}
    built = subprocess.run([sys.executable, "-m", "rag.cli", "--corpus-dir", str(corpus_copy.corpus_dir),
                            "--index-dir", str(corpus_copy.index_dir), "index"], env=env, capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    refused = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(corpus_copy.index_dir),
                              "serve", "--workers", "2"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--workers 1" in refused.stderr
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--corpus-dir", str(corpus_copy.corpus_dir),
                             "--index-dir", str(corpus_copy.index_dir), "serve", "--port", str(port)],
                            env=env, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        health = _wait(lambda: (lambda r: r[1] if r[0] == 200 else None)(_get(url + "/healthz")), 120)
        assert health and health["backend"]["name"] == "milvus"
        a = _post(url + "/ask", {"question": "洛阳市老旧小区加装了多少部电梯？"})
        assert a["found"] and a["citations"]
        text = (corpus_copy.corpus_dir / f"{a['citations'][0]['doc_id']}.txt").read_text(encoding="utf-8")
        assert all(c["quote"] == text[c["start"]:c["end"]] for c in a["citations"] if c["doc_id"] == a["citations"][0]["doc_id"])
        # a second writer cannot open the lite file the server holds: refused by name, not hung
        busy = subprocess.run([sys.executable, "-m", "rag.cli", "--corpus-dir", str(corpus_copy.corpus_dir),
                               "--index-dir", str(corpus_copy.index_dir), "index", "--remove", "xinan-2023-xunli"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert busy.returncode == 2 and "cannot open Milvus" in busy.stderr, busy.stderr[-2000:]
        assert (corpus_copy.corpus_dir / "xinan-2023-xunli.txt").exists()  # refused before anything changed
    finally:
        proc.terminate()
        proc.wait(15)
