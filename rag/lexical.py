"""BM25 over jieba tokens (bm25s), built once per index and loaded from disk, never per query."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import bm25s
import numpy as np

logging.getLogger("bm25s").setLevel(logging.ERROR)


def build(token_lists: Iterable[list[str]]) -> bm25s.BM25:
    """BM25 over the passages' tokens, each passage's turned into integer ids as it comes: handed
    bm25s as strings, 1M passages' ~150M tokens held the build at 18 GB and growing; as int32
    arrays they are 4 bytes each."""
    vocab: dict[str, int] = {}
    ids = []
    for tokens in token_lists:
        tokens = tokens or [""]
        ids.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32, count=len(tokens)))
    index = bm25s.BM25(k1=1.2, b=0.75)
    index.index((ids, vocab), show_progress=False)
    return index


def scores(index: bm25s.BM25, query_tokens: list[str]) -> np.ndarray:
    known = [t for t in query_tokens if t in index.vocab_dict]
    if not known:
        return np.zeros(index.scores["num_docs"], dtype=np.float32)
    return np.asarray(index.get_scores(known), dtype=np.float32)


def search(index: bm25s.BM25, query_tokens: list[str], k: int, allowed: np.ndarray | None = None):
    """(positions, scores) of the k best rows with a positive score, best first."""
    s = scores(index, query_tokens)
    if allowed is not None:
        s = np.where(allowed, s, 0.0)
    if k < len(s):  # the k best without sorting every row: linear in the corpus, not n log n
        top = np.argpartition(-s, k)[:k]
        order = top[np.argsort(-s[top], kind="stable")]
    else:
        order = np.argsort(-s, kind="stable")
    keep = [int(i) for i in order if s[i] > 0]
    return keep, [float(s[i]) for i in keep]


def save(index: bm25s.BM25, path: Path) -> None:
    index.save(str(path), show_progress=False)


def load(path: Path, mmap: bool = True) -> bm25s.BM25:
    """Memory-mapped by default, shared by the server's worker processes (bm25s's own option)."""
    return bm25s.BM25.load(str(path), mmap=mmap, show_progress=False)


def document_frequencies(index: bm25s.BM25) -> dict[str, int]:
    """Token → number of passages holding it, read off the index (no scan of the texts)."""
    indptr = np.asarray(index.scores["indptr"])
    counts = np.diff(np.append(indptr, len(index.scores["data"])))
    return {tok: int(counts[i]) for tok, i in index.vocab_dict.items() if i < len(counts)}


def postings(index: bm25s.BM25):
    """token → the positions of the passages holding it, read off the index's sparse matrix."""
    indptr = np.asarray(index.scores["indptr"])
    indices = np.asarray(index.scores["indices"])
    empty = np.zeros(0, dtype=indices.dtype)

    def lookup(token: str) -> np.ndarray:
        i = index.vocab_dict.get(token)
        return empty if i is None or i + 1 >= len(indptr) else indices[indptr[i]:indptr[i + 1]]

    return lookup
