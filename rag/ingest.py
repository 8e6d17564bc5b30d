"""Corpus → chunks, with the summary that `rag ingest` prints."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .chunking import chunk_document
from .config import Settings
from .corpus import CorpusError, load_corpus
from .schema import Chunk, Document
from .structure import sections_of


@dataclass
class Ingested:
    documents: list[Document]
    chunks: list[Chunk]
    errors: list[CorpusError] = field(default_factory=list)

    def summary_rows(self) -> list[dict]:
        per_doc = Counter(c.doc_id for c in self.chunks)
        rows = []
        for d in self.documents:
            articles = [s for s in sections_of(d) if s.kind == "article"]
            rows.append(
                {
                    "doc_id": d.doc_id,
                    "type": d.doc_type,
                    "articles": len(articles),
                    "chunks": per_doc[d.doc_id],
                    "chars": len(d.text),
                }
            )
        return rows

    def summary(self) -> str:
        rows = self.summary_rows()
        head = f"{'document':<28}{'type':<15}{'articles':>9}{'chunks':>8}{'chars':>9}"
        lines = [head, "-" * len(head)]
        for r in rows:
            lines.append(
                f"{r['doc_id']:<28}{r['type']:<15}{r['articles']:>9}{r['chunks']:>8}{r['chars']:>9}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{f'{len(rows)} documents':<43}{sum(r['articles'] for r in rows):>9}"
            f"{sum(r['chunks'] for r in rows):>8}{sum(r['chars'] for r in rows):>9}"
        )
        for e in self.errors:
            lines.append(f"skipped {e.path}: {e.problem}")
        return "\n".join(lines)


def ingest(settings: Settings, skip_bad: bool = False) -> Ingested:
    loaded = load_corpus(settings.corpus_dir, skip_bad=skip_bad)
    chunks: list[Chunk] = []
    for doc in loaded.documents:
        chunks.extend(chunk_document(doc, settings.chunk_size, settings.chunk_overlap))
    return Ingested(loaded.documents, chunks, loaded.errors)


def write_chunks(chunks: list[Chunk], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for c in chunks:
            f.write(json.dumps(c.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_chunks(path: Path) -> list[Chunk]:
    with path.open(encoding="utf-8") as f:
        return [Chunk.from_json(json.loads(line)) for line in f if line.strip()]
