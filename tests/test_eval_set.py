"""The reference questions: well-formed, evidence verbatim in the document, spread as designed."""

import json
from collections import Counter

import pytest

from rag.evaluation import load_questions


@pytest.fixture(scope="module")
def questions(settings):
    return load_questions(settings.eval_dir / "questions.jsonl")


def test_every_evidence_is_verbatim_in_its_document(questions, documents):
    for q in questions:
        if q["kind"] == "unanswerable":
            assert q["evidence"] is None and q["answers"] == []
            continue
        assert q["evidence"] in documents[q["doc_id"]].text, q["id"]
        assert q["answers"], q["id"]


def test_the_set_is_large_and_mixed(questions):
    assert len(questions) >= 80
    assert len({q["id"] for q in questions}) == len(questions)
    kinds = Counter(q["kind"] for q in questions)
    langs = Counter(q["lang"] for q in questions)
    assert kinds["unanswerable"] >= 0.08 * len(questions) and kinds["cross-doc"] >= 5
    assert langs["en"] >= len(questions) / 8
    assert {q["doc_id"] for q in questions if q["doc_id"]} == {
        "luoyang-renda-2024-03", "luolong-2025-xunli", "xinan-2023-xunli", "zhongyuan-2020-report",
        "yingkou-2025-reports"}
    json.dumps(questions, ensure_ascii=False)
