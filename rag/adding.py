"""`rag add FILE…`: a publication as it arrives → corpus/<doc_id>.txt (the extracted text every
citation's offsets refer to), the original kept in corpus/originals/ with its hash in the
manifest, and the index updated for it alone.

The same file again (same hash) is a no-op; a changed file under the same id replaces its old
version. One file that cannot be read is reported by name and the others still go in.
"""

from __future__ import annotations

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


def files_in(paths: list[str | Path]) -> list[Path]:
    """The files named, and every file of a known type in a folder named (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            out.append(p)
    return out


def doc_id_for(path: Path, digest: str) -> str:
    """A file-name-safe id from the file's name (an all-Chinese name gets its hash instead)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._")
    return slug[:80] if len(slug) >= 3 else f"doc-{digest[:12]}"


def entry_for(ex: Extracted, doc_id: str, digest: str, suffix: str, flags: dict) -> tuple[dict, dict, list[str]]:
    """The manifest entry: what the file states, overridden by the flags given."""
    date = flags.get("date") or ex.date
    year = flags.get("year") or (int(date[:4]) if date else None)
    given = {k: flags.get(k) for k in ("province", "city", "county")}
    place = given if any(given.values()) else {k: ex.place.get(k) for k in ("province", "city", "county")}
    entry = {"doc_id": doc_id, "title": flags.get("title") or ex.title or doc_id, "publisher": flags.get("publisher") or "",
             "place": place, "year": year, "date": date, "doc_type": flags.get("doc_type") or ex.doc_type,
             "issue": None, "original": f"{ORIGINALS}/{doc_id}{suffix}", "sha256": digest,
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
    doc_id = flags.get("doc_id") or doc_id_for(name, digest)
    ex = extract(path, settings.max_upload_bytes, settings.max_upload_pages, settings.max_extract_seconds)
    entry, detected, undetected = entry_for(ex, doc_id, digest, KIND_SUFFIX[ex.kind], flags)
    old = next((e for e in entries if e["doc_id"] == doc_id), None)
    replaced = old is not None
    originals = settings.corpus_dir / ORIGINALS
    originals.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.corpus_dir.parent) as tmp:
        text_file = Path(tmp) / f"{doc_id}.txt"
        text_file.write_text(ex.text.replace("\x00", ""), encoding="utf-8")
        if old is not None:  # the changed file replaces its old version, which is kept until the new one is in
            keep = _keep(settings, old, Path(tmp))
            store.remove_document(settings, doc_id)
        try:
            shutil.copyfile(path, settings.corpus_dir / entry["original"])
            stats = store.add_document(settings, text_file, entry, progress=progress)
        except BaseException:
            if old is not None:  # nothing lost: the old version goes back in
                _restore(settings, old, keep)
            raise
    return Added(str(path), doc_id, "replaced" if replaced else "added", detected, undetected, chunks=stats["chunks"])


def _keep(settings: Settings, entry: dict, folder: Path) -> dict[str, Path]:
    """Copies of a document's text and original, to put back if its replacement fails."""
    kept = {}
    for key in ("file", "original"):
        if entry.get(key) and (settings.corpus_dir / entry[key]).exists():
            kept[key] = folder / f"old-{key}"
            shutil.copyfile(settings.corpus_dir / entry[key], kept[key])
    return kept


def _restore(settings: Settings, entry: dict, kept: dict[str, Path]) -> None:
    from . import store

    if "original" in kept:
        shutil.copyfile(kept["original"], settings.corpus_dir / entry["original"])
    if "file" in kept:
        store.add_document(settings, kept["file"], entry)


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
