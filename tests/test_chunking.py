"""Chunks keep exact offsets, lose nothing, and respect figures and titles."""

import re
import unicodedata

import pytest

from rag.chunking import chunk_document
from rag.normalize import PAGE_MARK, normalize_span
from rag.structure import sections_of


def squash(s: str) -> str:
    return re.sub(r"\s", "", unicodedata.normalize("NFKC", s))


@pytest.fixture(scope="module")
def chunks(documents):
    return {d: chunk_document(doc) for d, doc in documents.items()}


def test_every_chunk_is_its_raw_span(documents, chunks):
    for doc_id, doc_chunks in chunks.items():
        raw = documents[doc_id].text
        assert doc_chunks, doc_id
        for c in doc_chunks:
            assert squash(raw[c.start:c.end]) == squash(c.text), c.id


def test_nothing_is_lost_outside_toc_and_page_marks(documents, chunks):
    for doc_id, doc in documents.items():
        covered = bytearray(len(doc.text))
        for c in chunks[doc_id]:
            covered[c.start:c.end] = b"\x01" * (c.end - c.start)
        for s in sections_of(doc):
            if s.kind == "toc":
                for a, b in s.spans:
                    covered[a:b] = b"\x01" * (b - a)
        for m in PAGE_MARK.finditer(doc.text):
            covered[m.start():m.end()] = b"\x01" * (m.end() - m.start())
        lost = [i for i, ch in enumerate(doc.text) if not covered[i] and not ch.isspace()]
        assert not lost, f"{doc_id}: {doc.text[lost[0]:lost[0] + 30]!r} is in no chunk"


def test_toc_is_small_furniture(documents):
    doc = documents["luoyang-renda-2024-03"]
    toc = [s for s in sections_of(doc) if s.kind == "toc"]
    assert len(toc) == 1
    (a, b), = toc[0].spans
    assert doc.text[a:b].lstrip().startswith("目录") and "印刷数量" in doc.text[a:b]
    assert b - a < 0.03 * len(doc.text)


def test_no_chunk_cuts_a_figure_from_its_unit_or_a_title(chunks):
    for doc_chunks in chunks.values():
        for c in doc_chunks:
            assert c.text.count("《") == c.text.count("》") or len(c.text) > 280, c.id
    # the column-broken "138 部" is one figure in the normalised text
    texts = " ".join(c.text for c in chunks["luoyang-renda-2024-03"])
    assert "加装电梯138部" in texts and "138 部" not in texts


def test_normalisation_joins_column_breaks_and_closes_figure_spaces():
    raw = "加装电梯 138 部，审\n\n议通过。\n\n因需而设 因事而动\n\n老旧（下转第30页）"
    norm = normalize_span(raw)
    assert norm.text == "加装电梯138部,审议通过。\n因需而设因事而动\n老旧"
    s, e = norm.raw_span(0, norm.text.index(",") + 1)
    assert raw[s:e] == "加装电梯 138 部，"


def test_chunks_carry_place_and_year(chunks):
    by_place = {c.places[0]: c.year for c in chunks["yingkou-2025-reports"]}
    assert {"鲅鱼圈区", "盖州市", "大石桥市", "老边区", "站前区", "西市区"} <= set(by_place)
    assert set(by_place.values()) == {2025}
    zhongyuan = {c.year for c in chunks["zhongyuan-2020-report"]}
    assert zhongyuan == {2020, 2021}  # the review and the plan
    assert all(c.places[0] == "洛龙区" for c in chunks["luolong-2025-xunli"])


def test_chunk_ids_are_stable(documents):
    doc = documents["xinan-2023-xunli"]
    assert [c.id for c in chunk_document(doc)] == [c.id for c in chunk_document(doc)]
