"""Typed records that travel between the stages: Document → Section → Chunk → Hit → Answer."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Place:
    province: str | None = None
    city: str | None = None
    county: str | None = None

    def names(self) -> list[str]:
        return [n for n in (self.county, self.city, self.province) if n]

    def label(self) -> str:
        return "".join(n for n in (self.province, self.city, self.county) if n)


@dataclass(frozen=True)
class Document:
    """One corpus file: its exact text and the manifest's metadata."""

    doc_id: str
    path: str
    text: str
    title: str
    publisher: str
    place: Place
    year: int | None
    date: str | None
    doc_type: str  # journal_issue | work_report | news_article
    issue: str | None = None


@dataclass(frozen=True)
class Section:
    """A part of a document with one meaning: an article, a committee's report, the cover.

    ``spans`` are raw [start, end) ranges; an article continued on a later page has two.
    ``kind`` is ``article`` for content and ``toc`` for furniture that is not chunked.
    """

    kind: str
    title: str | None
    spans: tuple[tuple[int, int], ...]
    column: str | None = None
    author: str | None = None
    place: Place | None = None
    year: int | None = None
    # printed pages, where the table of contents gives them: (raw start, raw end, first page,
    # last page) for each part of the article — its own pages, and a continuation's
    pages: tuple[tuple[int, int, int, int], ...] = ()

    def pages_at(self, offset: int) -> tuple[int, int] | None:
        return next(((a, b) for s, e, a, b in self.pages if s <= offset < e), None)

    def page_label(self) -> str | None:
        """The article's pages as a reference prints them, its own first: "21-28, 30", "37, 32"."""
        parts = [f"{a}-{b}" if b > a else str(a) for _, _, a, b in self.pages]
        return ", ".join(dict.fromkeys(parts)) or None


_PLACES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared(places: tuple[str, ...]) -> tuple[str, ...]:
    key = tuple(sys.intern(p) for p in places)
    return _PLACES.setdefault(key, key)


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    doc_id: str
    start: int  # raw offsets into the corpus file's text: quote == text[start:end]
    end: int
    text: str  # normalised text used for matching and embedding
    title: str  # document title
    article: str | None
    column: str | None
    author: str | None
    place: str  # label, e.g. 河南省洛阳市洛龙区
    places: tuple[str, ...]  # every name the place goes by, most specific first
    year: int | None
    date: str | None
    doc_type: str
    pages: tuple[int, int] | None = None  # the printed pages this passage is on (journal TOC)
    article_pages: str | None = None  # its article's, for the reference: "21-23"

    def to_json(self) -> dict:
        d = asdict(self)
        d["places"] = list(self.places)
        d["pages"] = list(self.pages) if self.pages else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> Chunk:
        """The fields a document's chunks share (its title, place, date…) are one string each,
        not one per chunk: at 100k chunks that is 90 MB less in every worker."""
        d = {k: sys.intern(v) if isinstance(v, str) and k not in ("id", "text") else v for k, v in d.items()}
        d["places"] = _shared(tuple(d.get("places") or ()))
        d["pages"] = tuple(d["pages"]) if d.get("pages") else None
        return cls(**d)


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int
    sources: dict = field(default_factory=dict)  # per-retriever rank, for inspection


@dataclass(frozen=True)
class Citation:
    doc_id: str
    title: str
    article: str | None
    date: str | None
    start: int
    end: int
    quote: str  # the sentence(s) stating the answer: text[start:end] of the corpus file
    score: float
    passage_start: int = 0  # the retrieved passage around the quote: text[passage_start:passage_end]
    passage_end: int = 0
    page: int | None = None  # the printed page of the quote's start, where the source has pages
    page_end: int | None = None
    reference: str | None = None  # the source as a GB/T 7714-2015 reference


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    found: bool
    citations: list[Citation]
    took_ms: float = 0.0
    hits: list[Hit] = field(default_factory=list, compare=False, repr=False)

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "found": self.found,
            "citations": [asdict(c) for c in self.citations],
            "took_ms": round(self.took_ms, 2),
        }
