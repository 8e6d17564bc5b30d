"""Hybrid retrieval: the question's embedding and BM25 terms, searched by the configured backend
(rag/backends.py: FAISS + bm25s fused by normalised scores or reciprocal rank, or Milvus with
its own rankers), with metadata filters and an optional cross-encoder reranking stage."""

from __future__ import annotations

import re
import threading

import numpy as np

from .backends import CONTROL, FILTER_KEYS, SearchQuery, make_backend, place_matches
from .config import Settings
from .embedders import make_embedder, within_tokens
from .glossary import expand_query, is_english
from .lru import LRU
from .schema import Chunk, Hit
from .store import Index, index_text, load_index
from .tokenize import tokens


class QueryError(ValueError):
    """A query or filter that cannot be searched; the message says why."""


def validate_filters(filters: dict | None) -> dict:
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise QueryError(f"unknown filter {', '.join(unknown)}; allowed: {', '.join(FILTER_KEYS)}")
    for key, value in filters.items():
        if isinstance(value, str) and CONTROL.search(value):
            raise QueryError(f"filter {key} holds a control character")
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise QueryError(f"filter {key} is not valid Unicode") from None
    if "year" in filters:
        try:
            filters["year"] = int(filters["year"])
        except (TypeError, ValueError):
            raise QueryError(f"filter year must be a number, got {filters['year']!r}") from None
        if filters["year"] < 1:
            raise QueryError(f"filter year must be a year, got {filters['year']}")
    return filters


def matches(chunk: Chunk, filters: dict) -> bool:
    for key, want in filters.items():
        if key == "place":
            if not any(place_matches(want, p) for p in chunk.places) and want not in chunk.place:
                return False
        elif getattr(chunk, key) != want:
            return False
    return True


FUSIONS = ("score", "rrf")


class Retriever:
    """Holds one loaded index and the embedder; safe to share between threads."""

    def __init__(self, settings: Settings, index: Index | None = None):
        if settings.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {settings.fusion!r}: use {' or '.join(FUSIONS)}")
        self.settings = settings
        self.index = index or load_index(settings)
        self.embedder = make_embedder(settings)
        self._reranker = None
        self._lock = threading.Lock()
        self._vectors: LRU[np.ndarray] = LRU(settings.query_cache)
        self._tokens: LRU[list[str]] = LRU(settings.query_cache)
        self.backend = make_backend(settings, self.index)

    def clear_cache(self) -> None:
        self._vectors.clear()
        self._tokens.clear()

    def query_vector(self, query: str) -> np.ndarray:
        """The question's embedding, cached (LRU): a question is embedded once, not once per
        place-filtered search or per answer stage. An English question is embedded with the
        glossary's Chinese terms appended (the raw question: recall@1 0.67 against 0.64 on the
        dev English questions but recall@5 no better, and lower on test)."""
        return self._vectors.get(query[: self.settings.max_embed_chars], lambda: self._embed(query))

    def _embed(self, query: str) -> np.ndarray:
        cap = self.settings.max_embed_tokens
        question = within_tokens(self.embedder, query[: self.settings.max_embed_chars], cap)
        text = within_tokens(self.embedder, expand_query(question), cap + cap // 2)  # with its glossary terms
        return self.embedder.embed_queries([text])[0]

    def query_tokens(self, text: str) -> list[str]:
        """A query's BM25 tokens, at most ``max_query_tokens`` of them, cached like its embedding:
        a question naming places is searched several times (once per place), and a
        1,000-character one would otherwise be tokenised and scored in full each time. (Each
        token once changed BM25 for the 270 eval questions that repeat a word: the ranker's
        cross-validated accuracy fell from 0.710 to 0.686, so repeats still count.)"""
        return self._tokens.get(text, lambda: tokens(text)[: self.settings.max_query_tokens])

    def search(self, query: str, k: int = 5, filters: dict | None = None,
               mode: str | None = None, extra_terms: tuple[str, ...] = ()) -> list[Hit]:
        """The k best passages. ``extra_terms`` join the BM25 query only (e.g. the Chinese form of
        an English question's names), not the embedded text."""
        mode = mode or self.settings.retriever
        if mode not in ("hybrid", "dense", "lexical"):
            raise QueryError(f"unknown retriever {mode!r}: use hybrid, dense or lexical")
        filters = validate_filters(filters)
        if not re.search(r"\w", query):
            return []  # only punctuation or emoji: nothing to search for
        expanded = expand_query(query)
        dense_weight = self.settings.en_dense_weight if is_english(query) else self.settings.dense_weight
        ranked = self.backend.search(SearchQuery(
            vector=self.query_vector(query) if mode in ("hybrid", "dense") else None,
            tokens=self.query_tokens(" ".join([expanded, *extra_terms])) if mode in ("hybrid", "lexical") else [],
            depth=max(self.settings.fusion_depth, k), filters=filters,
            dense_weight=dense_weight, lexical_weight=self.settings.lexical_weight))
        order, fused, sources = ranked.order, ranked.fused, ranked.sources
        if self.settings.reranker:
            order, scores = self._rerank(expanded, order[: max(self.settings.rerank_depth, k)])
            sources["rerank"] = dict(zip(order, scores))
        hits = []
        for rank, i in enumerate(order[:k], start=1):
            src = {name: round(float(s[i]), 4) for name, s in sources.items() if i in s}
            hits.append(Hit(self.index.chunks[i], float(fused.get(i, 0.0)), rank, src))
        return hits

    def _rerank(self, query: str, order: list[int]) -> tuple[list[int], list[float]]:
        """The fused candidates reordered by a cross-encoder's score of (query, passage)."""
        with self._lock:
            if self._reranker is None:
                from sentence_transformers import CrossEncoder

                self._reranker = CrossEncoder(self.settings.reranker, device="cpu")
        pairs = [(query, index_text(self.index.chunks[i])) for i in order]
        scores = self._reranker.predict(pairs, show_progress_bar=False)
        ranked = sorted(zip(order, (float(s) for s in scores)), key=lambda t: -t[1])
        return [i for i, _ in ranked], [s for _, s in ranked]
