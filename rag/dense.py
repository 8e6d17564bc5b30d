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


def search(index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
           owner: np.ndarray | None = None):
    """(chunk positions, scores) of the k best chunks, best first, among ``allowed`` chunks if
    given. With ``owner`` (row → chunk position) the rows are windows of chunks and a chunk
    scores as its best window. A filter is FAISS's own ID selector (a bitmap of the allowed
    rows), so a filtered search reads as few rows as an unfiltered one."""
    n = index.ntotal
    if n == 0 or k <= 0:
        return [], []
    if owner is None:
        owner = np.arange(n)
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    params, bits, limit = None, None, n
    if allowed is not None:
        rows = allowed[owner]
        limit = int(rows.sum())
        if limit == 0:
            return [], []
        bits = np.packbits(rows, bitorder="little")  # kept alive while FAISS reads it
        params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)))
    depth = min(limit, max(4 * k, 64))
    while True:
        scores, ids = index.search(q, depth, params=params)
        best: dict[int, float] = {}
        for i, s in zip(ids[0], scores[0]):
            if i < 0:
                continue
            chunk = int(owner[i])
            if chunk not in best:
                best[chunk] = float(s)  # rows come best first, so the first is the chunk's best
                if len(best) == k:
                    break
        if len(best) == k or depth >= limit:
            return list(best), list(best.values())
        depth = min(limit, depth * 4)


def save(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load(path: Path, mmap: bool = True) -> faiss.Index:
    """Memory-mapped by default: the vectors stay in the page cache, shared by every worker
    process of the server, instead of one private copy each."""
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    return faiss.read_index(str(path), flags)
