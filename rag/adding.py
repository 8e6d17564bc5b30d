"""`rag add FILE…`: a publication as it arrives → corpus/<doc_id>.txt (the extracted text every
citation's offsets refer to), the original kept in corpus/originals/ with its hash in the
manifest, and the index updated for it alone.

The same file again (same hash) is a no-op; a changed file of the same name replaces its old
version. One file that cannot be read is reported by name and the others still go in.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .extract import Extracted, ExtractError, extract

SUFFIXES = {".pdf", ".docx", ".html", ".htm", ".txt", ".md"}
ORIGINALS = "originals"
KIND_SUFFIX = {"pdf": ".pdf", "docx": ".docx", "html": ".html", "text": ".txt"}  # by content, not by name


@dataclass
class Added:
    path: str
    doc_id: str | None = None
    status: str = "added"  # added | replaced | unchanged | failed
    detected: dict = field(default_factory=dict)
    undetected: list[str] = field(default_factory=list)
    problem: str | None = None
    chunks: int = 0


def iso_date(text: str) -> datetime.date:
    """A date given as YYYY-MM-DD, and only so (fromisoformat also takes 20230105, 2023-W01-1)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{text!r} is not a date of the form YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date of the form YYYY-MM-DD") from None


def files_in(paths: list[str | Path]) -> list[Path]:
    """The files named, and every file of a known type in a folder named (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            out.append(p)
    return out


def doc_id_for(path: Path, digest: str, entries: list[dict]) -> str:
    """A file-name-safe id from the file's name: its ASCII words, or the file's hash when the name
    has none (洛阳市人大常委会2023年工作报告.pdf and 汝阳县…2023年工作报告.pdf must not both be
    "2023"). An id already taken by a file of another name gets the hash appended: only a file of
    the same name (a new version of it) replaces a document."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._")
    if not re.search(r"[a-z]{3}", slug):
        slug = f"doc-{digest[:12]}"
    taken = next((e for e in entries if e["doc_id"] == slug[:80]), None)
    if taken is not None and taken.get("source_name") != path.name:
        return f"{slug[:70]}-{digest[:8]}"
    return slug[:80]


def entry_for(ex: Extracted, doc_id: str, digest: str, suffix: str, flags: dict,
              source_name: str = "") -> tuple[dict, dict, list[str]]:
    """The manifest entry: what the file states, overridden by the flags given."""
    date = flags.get("date") or ex.date
    year = flags.get("year") or (int(date[:4]) if date else None)
    given = {k: flags.get(k) for k in ("province", "city", "county")}
    place = given if any(given.values()) else {k: ex.place.get(k) for k in ("province", "city", "county")}
    entry = {"doc_id": doc_id, "title": flags.get("title") or ex.title or doc_id, "publisher": flags.get("publisher") or "",
             "place": place, "year": year, "date": date, "doc_type": flags.get("doc_type") or ex.doc_type,
             "issue": None, "original": f"{ORIGINALS}/{doc_id}{suffix}", "sha256": digest, "source_name": source_name,
             "pages": [list(p) for p in ex.pages] or None, "url": flags.get("url") or ex.url}
    detected = {k: v for k, v in (("title", ex.title), ("date", ex.date), ("doc_type", ex.doc_type),
                                  ("place", "".join(ex.place.get(k, "") for k in ("province", "city", "county"))),
                                  ("pages", len(ex.pages) or None)) if v}
    undetected = [k for k in ("title", "date") if not getattr(ex, k) and not flags.get(k)]
    if not any(place.values()):
        undetected.append("place (give --city/--county)")
    return entry, detected, undetected


def add_file(settings: Settings, path: Path, flags: dict, progress: bool = False, doc_name: str | None = None) -> Added:
    """``doc_name``: the name the file arrived under, when ``path`` is a temporary copy."""
    from . import store
    from .corpus import load_manifest

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    entries = load_manifest(settings.manifest_path)
    same = next((e for e in entries if e.get("sha256") == digest), None)
    if same is not None:
        return Added(str(path), same["doc_id"], "unchanged")
    name = Path(doc_name or path.name)
    doc_id = flags.get("doc_id") or doc_id_for(name, digest, entries)
    ex = extract(path, settings.max_upload_bytes, settings.max_upload_pages, settings.max_extract_seconds)
    entry, detected, undetected = entry_for(ex, doc_id, digest, KIND_SUFFIX[ex.kind], flags, name.name)
    replaced = any(e["doc_id"] == doc_id for e in entries)
    (settings.corpus_dir / ORIGINALS).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.corpus_dir.parent) as tmp:
        text_file = Path(tmp) / f"{doc_id}.txt"
        text_file.write_text(ex.text, encoding="utf-8")
        # a new version is embedded before the old one is let go, both under the writer's lock
        stats = store.add_document(settings, text_file, entry, progress=progress, replace=replaced)
    shutil.copyfile(path, settings.corpus_dir / entry["original"])
    return Added(str(path), doc_id, "replaced" if replaced else "added", detected, undetected, chunks=stats["chunks"])


def add_files(settings: Settings, paths: list[str | Path], flags: dict, progress: bool = False) -> list[Added]:
    from .corpus import CorpusError
    from .store import IndexError_

    files = files_in(paths)
    if len(files) > 1 and flags.get("doc_id"):
        raise ValueError("--doc-id names one document; give one file with it")
    out = []
    for f in files:
        try:
            out.append(add_file(settings, f, flags, progress))
        except (ExtractError, CorpusError, IndexError_, OSError) as e:
            out.append(Added(str(f), status="failed", problem=getattr(e, "problem", None) or str(e)))
    return out
