"""Reading the corpus: the manifest and strictly-UTF-8 files, with errors that name the file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .schema import Document, Place

DOC_TYPES = ("journal_issue", "work_report", "news_article")
REQUIRED = ("doc_id", "file", "title", "doc_type")


class CorpusError(Exception):
    """A corpus file or manifest entry that cannot be used; the message names it."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def read_text(path: str | Path) -> str:
    """The file's text decoded strictly as UTF-8; a clear error for anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(path, "file not found") from None
    if not data.strip():
        raise CorpusError(path, "file is empty")
    if b"\x00" in data:
        raise CorpusError(path, "binary file (contains NUL bytes), expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            path,
            f"not valid UTF-8 (byte {e.start}: {data[e.start:e.start + 4]!r}); "
            "convert it, e.g. `iconv -f GBK -t UTF-8`",
        ) from None
    if text.startswith("\ufeff"):
        raise CorpusError(path, "starts with a byte-order mark; save it as UTF-8 without BOM")
    return text


def load_manifest(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise CorpusError(path, f"manifest is not valid JSON: {e}") from None
    entries = data.get("documents") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise CorpusError(path, 'manifest must be an object with a "documents" list')
    seen = set()
    for i, entry in enumerate(entries):
        missing = [k for k in REQUIRED if not entry.get(k)]
        if missing:
            raise CorpusError(path, f"entry {i} lacks {', '.join(missing)}")
        if entry["doc_type"] not in DOC_TYPES:
            raise CorpusError(path, f"entry {entry['doc_id']}: doc_type must be one of {DOC_TYPES}")
        if entry["doc_id"] in seen:
            raise CorpusError(path, f"doc_id {entry['doc_id']} appears twice")
        seen.add(entry["doc_id"])
    return entries


def document_from_entry(entry: dict, text: str, path: str | Path) -> Document:
    place = entry.get("place") or {}
    return Document(
        doc_id=entry["doc_id"],
        path=str(path),
        text=text,
        title=entry["title"],
        publisher=entry.get("publisher") or "",
        place=Place(place.get("province"), place.get("city"), place.get("county")),
        year=entry.get("year"),
        date=entry.get("date"),
        doc_type=entry["doc_type"],
        issue=entry.get("issue"),
    )


@dataclass
class LoadResult:
    documents: list[Document]
    errors: list[CorpusError]


def listed_files(corpus_dir: str | Path, entries: list[dict]) -> tuple[list[tuple[dict, Path]], list[CorpusError]]:
    """The manifest's entries with their files, and the problems of the listing itself: a corpus
    file the manifest does not name, an entry without its file."""
    corpus_dir = Path(corpus_dir)
    listed = {e["file"] for e in entries}
    problems = [CorpusError(f, "corpus file is not in manifest.json; add an entry for it")
                for f in sorted(corpus_dir.glob("*.txt")) if f.name not in listed]
    present = []
    for entry in entries:
        path = corpus_dir / entry["file"]
        if path.exists():
            present.append((entry, path))
        else:
            problems.append(CorpusError(path, f"manifest entry {entry['doc_id']} has no file"))
    return present, problems


def load_corpus(corpus_dir: str | Path, skip_bad: bool = False) -> LoadResult:
    """All documents of the manifest. Without ``skip_bad`` the first problem raises."""
    present, errors = listed_files(corpus_dir, load_manifest(Path(corpus_dir) / "manifest.json"))
    if errors and not skip_bad:
        raise errors[0]
    docs: list[Document] = []
    for entry, path in present:
        try:
            docs.append(document_from_entry(entry, read_text(path), path))
        except CorpusError as e:
            if not skip_bad:
                raise
            errors.append(e)
    return LoadResult(docs, errors)
