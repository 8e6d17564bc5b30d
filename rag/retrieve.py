"""Hybrid retrieval: dense (FAISS) and lexical (BM25) lists fused by their normalised scores
(or by reciprocal rank), with metadata filters and an optional cross-encoder reranking stage."""

from __future__ import annotations

import re
import threading

import numpy as np

from . import dense, lexical
from .config import Settings
from .embedders import make_embedder, within_tokens
from .glossary import expand_query, is_english
from .lru import LRU
from .schema import Chunk, Hit
from .store import Index, index_text, load_index
from .tokenize import tokens

FILTER_KEYS = ("doc_id", "doc_type", "place", "year")


class QueryError(ValueError):
    """A query or filter that cannot be searched; the message says why."""


def validate_filters(filters: dict | None) -> dict:
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise QueryError(f"unknown filter {', '.join(unknown)}; allowed: {', '.join(FILTER_KEYS)}")
    if "year" in filters:
        try:
            filters["year"] = int(filters["year"])
        except (TypeError, ValueError):
            raise QueryError(f"filter year must be a number, got {filters['year']!r}") from None
    return filters


def matches(chunk: Chunk, filters: dict) -> bool:
    for key, want in filters.items():
        if key == "place":
            if not any(want in p or p in want for p in chunk.places) and want not in chunk.place:
                return False
        elif getattr(chunk, key) != want:
            return False
    return True


FUSIONS = ("score", "rrf")


def rrf(lists: list[tuple[list[int], float]], k: int) -> dict[int, float]:
    """Reciprocal-rank fusion: sum of weight / (k + rank) over the lists a row appears in."""
    fused: dict[int, float] = {}
    for ids, weight in lists:
        for rank, i in enumerate(ids, start=1):
            fused[i] = fused.get(i, 0.0) + weight / (k + rank)
    return fused


def fuse_scores(lists: list[tuple[list[int], list[float], float]]) -> dict[int, float]:
    """Score fusion: sum of weight * score / (the best score of its list).

    Unlike RRF it keeps how far ahead a list's first is: a passage one retriever is sure of
    and the other ranks 30th still reaches the top 5 (eval: recall@5 0.99 against 0.98 for
    RRF, and the same for any dense share from 0.2 to 0.7; README).
    """
    fused: dict[int, float] = {}
    for ids, scores, weight in lists:
        top = max(scores, default=0.0)
        if top <= 0:
            continue
        for i, s in zip(ids, scores):
            fused[i] = fused.get(i, 0.0) + weight * max(s, 0.0) / top
    return fused


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
        self._masks: LRU[np.ndarray] = LRU(32)
        self._inverted: dict[str, dict[object, np.ndarray]] | None = None

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

    def _allowed(self, filters: dict) -> np.ndarray | None:
        """The chunks a filter allows, as a mask built from an inverted map of each field's
        values (made once per index), not by testing every chunk per request; the last few
        masks are kept, since the answer stage filters by the same places again and again."""
        if not filters:
            return None
        key = tuple(sorted((k, str(v)) for k, v in filters.items()))
        return self._masks.get(key, lambda: np.logical_and.reduce(
            [self._field_mask(name, want) for name, want in filters.items()]))

    def _field_mask(self, field_name: str, want) -> np.ndarray:
        values = self._values()
        rows: list[np.ndarray] = []
        if field_name == "place":  # as ``matches``: either name inside the other, or in the chunk's place
            rows += [ids for v, ids in values["places"].items() if want in v or v in want]
            rows += [ids for v, ids in values["place"].items() if want in v]
        else:
            rows += [values[field_name].get(want, np.zeros(0, dtype=np.int64))]
        mask = np.zeros(len(self.index.chunks), dtype=bool)
        for ids in rows:
            mask[ids] = True
        return mask

    def _values(self) -> dict[str, dict[object, np.ndarray]]:
        """Field → value → positions of the chunks with it; one pass over the chunks, once."""
        with self._lock:
            if self._inverted is None:
                acc: dict[str, dict[object, list[int]]] = {f: {} for f in (*FILTER_KEYS, "places")}
                for i, c in enumerate(self.index.chunks):
                    for f in FILTER_KEYS:
                        acc[f].setdefault(getattr(c, f), []).append(i)
                    for p in set(c.places):
                        acc["places"].setdefault(p, []).append(i)
                self._inverted = {f: {v: np.array(ids, dtype=np.int64) for v, ids in m.items()}
                                  for f, m in acc.items()}
            return self._inverted

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
        allowed = self._allowed(filters)
        if allowed is not None and not allowed.any():
            return []
        expanded = expand_query(query)
        depth = max(self.settings.fusion_depth, k)
        lists, sources = [], {}
        if mode in ("hybrid", "dense"):
            qvec = self.query_vector(query)
            ids, scores = dense.search(self.index.faiss_index, qvec, depth, allowed, self.index.owner)
            weight = self.settings.en_dense_weight if is_english(query) else self.settings.dense_weight
            lists.append((ids, scores, weight))
            sources["dense"] = dict(zip(ids, scores))
        if mode in ("hybrid", "lexical"):
            ids, scores = lexical.search(self.index.bm25, self.query_tokens(" ".join([expanded, *extra_terms])),
                                         depth, allowed)
            lists.append((ids, scores, self.settings.lexical_weight))
            sources["lexical"] = dict(zip(ids, scores))
        if self.settings.fusion == "rrf":
            fused = rrf([(ids, weight) for ids, _, weight in lists], self.settings.rrf_k)
        else:
            fused = fuse_scores(lists)
        order = sorted(fused, key=lambda i: -fused[i])
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
