"""Bad corpus input gets an error naming the file and the problem; --skip-bad goes on."""

import json

import pytest

from rag.cli import main
from rag.corpus import CorpusError, load_corpus, read_text


def test_shipped_files_are_byte_identical_to_what_was_received(settings):
    import hashlib
    from pathlib import Path

    shared = Path(settings.corpus_dir).parent.parent / "shared" / "corpus"
    if not shared.exists():
        pytest.skip("../shared/corpus is not beside this clone")
    manifest = json.loads(settings.manifest_path.read_text(encoding="utf-8"))
    for entry in manifest["documents"]:
        ours = (settings.corpus_dir / entry["file"]).read_bytes()
        theirs = (shared / entry["source_file"]).read_bytes()
        assert hashlib.sha256(ours).digest() == hashlib.sha256(theirs).digest(), entry["file"]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "empty"),
        ("洛阳人大".encode("gbk"), "not valid UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
    ],
)
def test_bad_files_are_named(tmp_path, content, problem):
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    with pytest.raises(CorpusError) as e:
        read_text(f)
    assert problem in str(e.value) and "bad.txt" in str(e.value)


def _add_bad(corpus):
    (corpus.corpus_dir / "gbk.txt").write_bytes("营口市人大".encode("gbk"))
    data = json.loads(corpus.manifest_path.read_text(encoding="utf-8"))
    data["documents"].append({"doc_id": "gbk", "file": "gbk.txt", "title": "x", "doc_type": "news_article"})
    data["documents"].append({"doc_id": "ghost", "file": "ghost.txt", "title": "y", "doc_type": "news_article"})
    corpus.manifest_path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (corpus.corpus_dir / "stray.txt").write_text("不在清单中", encoding="utf-8")


def test_skip_bad_ingests_the_rest_and_lists_the_bad(corpus_copy, capsys):
    _add_bad(corpus_copy)
    with pytest.raises(CorpusError):
        load_corpus(corpus_copy.corpus_dir)
    result = load_corpus(corpus_copy.corpus_dir, skip_bad=True)
    assert len(result.documents) == 5
    problems = " ".join(str(e) for e in result.errors)
    assert "gbk.txt" in problems and "not valid UTF-8" in problems
    assert "ghost" in problems and "has no file" in problems
    assert "stray.txt" in problems and "not in manifest" in problems
    code = main(["--corpus-dir", str(corpus_copy.corpus_dir), "--index-dir", str(corpus_copy.index_dir),
                 "ingest", "--skip-bad"])
    out = capsys.readouterr().out
    assert code == 0 and "skipped" in out and "5 documents" in out


def test_ingest_without_skip_bad_fails_with_the_name(corpus_copy, capsys):
    _add_bad(corpus_copy)
    code = main(["--corpus-dir", str(corpus_copy.corpus_dir), "ingest"])
    assert code == 2
    assert "stray.txt" in capsys.readouterr().err
