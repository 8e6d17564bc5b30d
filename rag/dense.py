"""FAISS dense index: inner product over L2-normalised vectors (= cosine).

``flat`` is exact and right for up to ~100k chunks; ``hnsw`` is approximate and pays off above
that (build once, sub-millisecond queries), at a small recall cost set by ``ef_search``.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


def build(vectors: np.ndarray, kind: str = "flat", m: int = 32, ef_search: int = 64) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(40, 2 * m)
        index.hnsw.efSearch = ef_search
    else:
        raise ValueError(f"unknown dense index {kind!r}: use flat or hnsw")
    if len(vectors):
        index.add(vectors)
    return index


def search(index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None = None):
    """(positions, scores) of the k best rows, best first, among ``allowed`` rows if given."""
    n = index.ntotal
    if n == 0 or k <= 0:
        return [], []
    depth = n if allowed is not None else min(k, n)
    scores, ids = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), depth)
    out_ids, out_scores = [], []
    for i, s in zip(ids[0], scores[0]):
        if i < 0 or (allowed is not None and not allowed[i]):
            continue
        out_ids.append(int(i))
        out_scores.append(float(s))
        if len(out_ids) == k:
            break
    return out_ids, out_scores


def save(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))
