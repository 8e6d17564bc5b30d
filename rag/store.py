"""The index on disk: build, load, check, update.

``index/current/`` holds one complete index (manifest, chunk table, FAISS, BM25). A build is
written to a temporary folder and renamed into place, so a crash mid-build never leaves a half
index that loads. An embedding cache keyed by (embedder, text hash) makes rebuilds after a small
change re-embed only the chunks that changed.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backends, dense, lexical
from .chunking import sentence_spans, sentence_windows
from .config import Settings
from .embedders import Embedder, make_embedder, second_encoder
from .ingest import ingest, read_chunks, write_chunks
from .normalize import normalize_span
from .pinyin import PinyinTable
from .ranker import file_digest
from .schema import Chunk
from .tokenize import tokens

log = logging.getLogger(__name__)

FORMAT = 4  # bump when the on-disk layout or the chunk/index text changes
CHUNKER_VERSION = 1


class IndexError_(Exception):
    """The index is missing, stale, corrupt or from another configuration; says what to do."""


def _context(chunk: Chunk) -> str:
    return " ".join(str(x) for x in (chunk.article, chunk.place, f"{chunk.year}年" if chunk.year else None) if x)


def index_text(chunk: Chunk, text: str | None = None) -> str:
    """What is BM25-indexed (and embedded, window by window): the passage with its article,
    place and year, so a question naming them finds it even when the passage does not repeat
    them."""
    return f"{_context(chunk)}\n{chunk.text if text is None else text}"


def dense_rows(chunks: list[Chunk], window_chars: int) -> tuple[list[str], np.ndarray]:
    """The texts the dense index embeds, and for each the position of its chunk."""
    texts, owner = [], []
    for pos, chunk in enumerate(chunks):
        for window in sentence_windows(chunk.text, window_chars):
            texts.append(index_text(chunk, window))
            owner.append(pos)
    return texts, np.array(owner, dtype=np.int64)


def _select(vectors: np.ndarray, owner: np.ndarray, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The dense rows of the chunks at ``positions`` (old positions, in their new order),
    renumbered to their new positions."""
    new_pos = np.full(int(owner.max()) + 1 if len(owner) else 0, -1, dtype=np.int64)
    new_pos[np.array(positions, dtype=np.int64)] = np.arange(len(positions))
    mapped = new_pos[owner]
    rows = np.flatnonzero(mapped >= 0)
    rows = rows[np.argsort(mapped[rows], kind="stable")]
    return vectors[rows], mapped[rows]


def corpus_hash(settings: Settings) -> str:
    h = hashlib.sha256()
    manifest = settings.manifest_path
    if manifest.exists():  # the entries, not the file's formatting
        entries = json.loads(manifest.read_text(encoding="utf-8")).get("documents")
        h.update(json.dumps(entries, ensure_ascii=False, sort_keys=True).encode())
        # the files the manifest lists, not whatever else lies in corpus/: a stray file dropped
        # there must not make a good index "stale"
        for name in sorted(e.get("file", "") for e in entries or []):
            f = settings.corpus_dir / name
            h.update(name.encode())
            h.update(hashlib.sha256(f.read_bytes()).digest() if f.is_file() else b"missing")
    return h.hexdigest()[:16]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class EmbeddingCache:
    """Vectors keyed by text hash, per embedder: one compact file plus the segments written
    since, each flush appending only its new vectors (a build of n texts writes O(n), not
    O(n²)); segments are merged into the compact file once there are many. Every file is
    written atomically, so a killed build keeps all but its last block."""

    MAX_SEGMENTS = 64

    @classmethod
    def of(cls, settings: Settings, embedder_name: str) -> EmbeddingCache:
        """The cache of one embedder's vectors in the configured index folder."""
        return cls(settings.index_dir / "cache", embedder_name, settings.embed_flush)

    def __init__(self, root: Path, embedder_name: str, flush_every: int = 256):
        self.flush_every = max(1, flush_every)  # texts embedded between two flushes
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder_name)
        self.root, self.safe = root, safe
        self.path = root / f"{safe}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        for f in self._files():
            try:
                with np.load(f) as data:
                    self.vectors.update(zip(data["keys"].tolist(), data["vectors"]))
            except Exception:  # a corrupt file only costs time: its texts are embedded again
                continue
        self.hits = self.misses = 0

    def _segments(self) -> list[Path]:
        return sorted(self.root.glob(f"{self.safe}.part-*.npz"))

    def _files(self) -> list[Path]:
        return ([self.path] if self.path.exists() else []) + self._segments()

    def embed(self, embedder: Embedder, texts: list[str], progress: bool = False, on_progress=None,
              stream=None) -> np.ndarray:
        """The texts' vectors: the cached ones read, the others embedded and saved as they come.
        ``stream`` (todo → iterator of (keys, vectors)) embeds elsewhere, e.g. a Ray pipeline
        (rag/distributed.py); by default the embedder here, ``flush_every`` texts at a time."""
        if getattr(embedder, "cacheless", False):
            return embedder.embed_passages(texts, progress=progress)
        keys = [_text_key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        self.misses, self.hits = len(todo), len(keys) - sum(k not in self.vectors for k in keys)
        done = 0
        for block_keys, vecs in (stream or self._blocks(embedder, progress))(todo):
            for k, v in zip(block_keys, vecs):
                self.vectors[k] = v
            self._append(list(block_keys), vecs)  # saved as it grows: a killed build resumes
            done += len(block_keys)
            if on_progress:
                on_progress(done, len(todo))
        if len(self._files()) > self.MAX_SEGMENTS:
            self.save()
        if not keys:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.vstack([self.vectors[k] for k in keys]).astype(np.float32)

    def _blocks(self, embedder: Embedder, progress: bool):
        def run(todo):
            for at in range(0, len(todo), self.flush_every):
                block = todo[at:at + self.flush_every]
                yield [k for k, _ in block], embedder.embed_passages([t for _, t in block], progress=progress)

        return run

    def _write(self, path: Path, keys: list[str], vecs: np.ndarray) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".npz")
        os.close(fd)
        np.savez(tmp, keys=np.array(keys, dtype="U24"), vectors=np.asarray(vecs, dtype=np.float32))
        os.replace(tmp, path)

    def _append(self, keys: list[str], vecs: np.ndarray) -> None:
        self._write(self.root / f"{self.safe}.part-{time.time_ns()}.npz", keys, vecs)

    def save(self) -> None:
        """Everything in one compact file; the segments it absorbed are removed."""
        parts = self._segments()
        vecs = np.vstack(list(self.vectors.values())) if self.vectors else np.zeros((0, 1))
        self._write(self.path, list(self.vectors), vecs)
        for p in parts:
            p.unlink(missing_ok=True)


@dataclass
class SentenceTable:
    """A vector for every sentence the answerer may quote (rag/chunking.sentence_spans), chunk
    by chunk: the ranker compares the question with the sentence itself, where the dense index
    only knows the 40-character windows that may hold two or three of them."""

    vectors: np.ndarray  # float16, one row per sentence
    owner: np.ndarray  # the position of each row's chunk, ascending
    spans: np.ndarray  # (start, end) of each sentence in its chunk's normalised passage
    second: np.ndarray | None = None  # float16, the same sentences by the second encoder (Settings.second_encoder)

    FILES = {"vectors": "sentences.npy", "owner": "sentence_owner.npy", "spans": "sentence_spans.npy",
             "second": "sentences_second.npy"}
    MAPPED = ("vectors", "second")  # memory-mapped: shared by worker processes

    def save(self, folder: Path) -> None:
        for name, file in self.FILES.items():
            if getattr(self, name) is not None:
                np.save(folder / file, getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> SentenceTable | None:
        if not (folder / cls.FILES["vectors"]).exists():
            return None
        # the mapped ones as plain arrays: numpy's memmap class costs a Python call on every row read
        arrays = {name: np.asarray(np.load(folder / file, mmap_mode="r")) if name in cls.MAPPED
                  else np.load(folder / file) for name, file in cls.FILES.items() if (folder / file).exists()}
        return cls(**arrays)

    def consistent(self, n_chunks: int) -> bool:
        rows = len(self.owner)
        return (len(self.vectors) == rows == len(self.spans) and (self.second is None or len(self.second) == rows)
                and (not rows or int(self.owner[-1]) < n_chunks))


def sentence_rows(chunks: list[Chunk], texts: dict[str, str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The sentences of every chunk as the answerer reads them (the passage normalised from the
    document's text), with their chunk positions and spans."""
    rows, owner, spans = [], [], []
    for pos, c in enumerate(chunks):
        if c.doc_id not in texts:
            continue
        norm = normalize_span(texts[c.doc_id], c.start, c.end).text
        for s, e in sentence_spans(norm):
            rows.append(norm[s:e])
            owner.append(pos)
            spans.append((s, e))
    return rows, np.array(owner, dtype=np.int64), np.array(spans, dtype=np.int32).reshape(-1, 2)


def _sentence_table(settings: Settings, chunks: list[Chunk], progress: bool = False, on_progress=None,
                    doc_texts: dict[str, str] | None = None) -> tuple[dict, SentenceTable | None]:
    """Embed every chunk's sentences (most from the embedding cache after the first build), from
    ``doc_texts`` (doc id → text; read from the corpus when not given). Above
    ``sentence_vectors_max_chunks`` none are: they would roughly double the build's embedding and
    the index's vectors, and the ranker falls back to each sentence's window."""
    from .corpus import load_corpus

    limit = settings.sentence_vectors_max_chunks
    if len(chunks) > limit:
        return {"rows": 0, "max_chunks": limit}, None
    if doc_texts is None:
        doc_texts = {d.doc_id: d.text for d in load_corpus(settings.corpus_dir, skip_bad=True).documents}
    rows, owner, spans = sentence_rows(chunks, doc_texts)
    embedder = make_embedder(settings)
    if (progress or on_progress) and rows:
        log.info("embedding the %d sentences the answerer may quote", len(rows))
    vectors = EmbeddingCache.of(settings, embedder.name).embed(
        embedder, rows, progress=progress, on_progress=on_progress)
    info = {"rows": len(rows), "max_chunks": limit, "vectors": "float16"}
    encoder, second = second_encoder(settings), None
    if encoder is not None:  # fast (~500 sentences/s): no progress of its own
        info["second"] = encoder.name
        second = np.asarray(EmbeddingCache.of(settings, encoder.name).embed(encoder, rows), dtype=np.float16)
    return info, SentenceTable(np.asarray(vectors, dtype=np.float16), owner, spans, second)


@dataclass
class Index:
    """A loaded index: the chunk table and both retrieval structures, aligned by position."""

    chunks: list[Chunk]
    vectors: np.ndarray  # one row per sentence window
    owner: np.ndarray  # for each row of ``vectors``, the position of its chunk
    faiss_index: object
    bm25: object
    manifest: dict
    pinyin: PinyinTable  # the passages' Chinese in pinyin, for romanised names in English questions
    sentences: SentenceTable | None = None  # None: built without sentence vectors (too many chunks)

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        """Chunk id → its position, made once per loaded index for whoever maps ids back (the
        answer stage, Milvus hits)."""
        return {c.id: i for i, c in enumerate(self.chunks)}


def current_dir(settings: Settings) -> Path:
    return settings.index_dir / "current"


def dense_config(settings: Settings, rows: int) -> dict:
    """The dense index a build of ``rows`` vectors gets: the configured kind, or with "auto"
    exact (flat) up to ``dense_auto_rows`` and IVF above, where a flat scan's cost per query
    grows with the corpus (`rag bench --scale`; rag/dense.py says why IVF and not HNSW)."""
    kind = settings.dense_index
    if kind == "auto":
        kind = "flat" if rows <= settings.dense_auto_rows else "ivf"
    cfg = {"type": kind, "window_chars": settings.dense_window_chars, "chosen_by": settings.dense_index}
    if kind == "hnsw":
        cfg.update(m=settings.hnsw_m, ef_search=settings.hnsw_ef_search)
    elif kind == "ivf":
        nlist, nprobe = dense.ivf_shape(rows)
        # the cells hold 8-bit codes; the rows they find are scored again from vectors.npy, kept
        # in half precision: every worker reads it (rag/dense.py)
        cfg.update(nlist=nlist, nprobe=nprobe, codes="sq8", rescored_from="vectors.npy", vectors="float16")
    return cfg


def _manifest(settings: Settings, embedder: Embedder, chunks: list[Chunk], docs: int, rows: int) -> dict:
    return {
        "format": FORMAT,
        "embedder": {"name": embedder.name, "dim": embedder.dim, "backend": settings.embedder},
        "lexical": {"type": "bm25s", "tokenizer": "jieba+domain-dictionary", "k1": 1.2, "b": 0.75},
        "chunker": {"size": settings.chunk_size, "overlap": settings.chunk_overlap,
                    "version": CHUNKER_VERSION},
        "corpus_hash": corpus_hash(settings),
        # the answer ranker loaded with this index (`rag train` writes it; DESIGN: rag/ranker.py)
        "ranker": {"path": str(settings.ranker_path), "sha256": file_digest(settings.ranker_path)},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": {"documents": docs, "chunks": len(chunks), "dense_rows": rows},
    }


def _write(settings: Settings, chunks: list[Chunk], vectors: np.ndarray, owner: np.ndarray,
           manifest: dict, crash_after: str | None = None, progress: bool = False, on_progress=None,
           doc_texts: dict[str, str] | None = None) -> dict:
    """Write a complete index to a temp folder, then swap it in for ``current``; returns its
    manifest."""
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_builds(settings.index_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"building-{os.getpid()}-", dir=settings.index_dir))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; the index is read by the service's user too
    try:
        write_chunks(chunks, tmp / "chunks.jsonl")
        # chosen here, not when the manifest is made: an add or remove changes the row count
        manifest = {**manifest, "dense": dense_config(settings, len(vectors))}
        d = manifest["dense"]
        np.save(tmp / "vectors.npy", np.asarray(vectors, dtype=d.get("vectors", "float32")))
        np.save(tmp / "owner.npy", owner)
        dense.save(dense.build(vectors, d["type"], settings.hnsw_m, settings.hnsw_ef_search, d.get("nlist", 0),
                               d.get("nprobe", 0)), tmp / "dense.faiss")
        if crash_after == "dense":  # for tests: simulate a crash mid-build
            raise RuntimeError("simulated crash during build")
        texts = [index_text(c) for c in chunks]
        lexical.save(lexical.build(tokens(t) for t in texts), tmp / "bm25")
        PinyinTable.build(c.text for c in chunks).save(tmp / "pinyin")
        manifest["sentences"], table = _sentence_table(settings, chunks, progress, on_progress, doc_texts)
        if table is not None:
            table.save(tmp)
        manifest["backend"] = {"name": backends.LOCAL}
        if settings.backend == backends.MILVUS:  # the searched rows go to a new collection too
            manifest["backend"] = backends.write_collection(settings, chunks, vectors, owner, texts, d)
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        cur = current_dir(settings)
        before = _collection_of(cur)
        old = settings.index_dir / f"old-{os.getpid()}-{time.time_ns()}"
        if cur.exists():
            cur.rename(old)
        tmp.rename(cur)
        shutil.rmtree(old, ignore_errors=True)
        if settings.backend == backends.MILVUS:
            try:  # the new generation is live: failing to tidy up is a warning, not a failed build
                backends.drop_other_collections(settings, keep={manifest["backend"]["collection"], before})
            except Exception as e:
                log.warning("old Milvus collections not dropped (the next build retries): %s", e)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _collection_of(index_dir: Path) -> str | None:
    """The Milvus collection an index folder's manifest names, if any."""
    try:
        return json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))["backend"].get("collection")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def clean_stale_builds(index_dir: Path) -> list[Path]:
    """Remove the temp folders of builds whose process is gone (killed mid-build)."""
    removed = []
    for d in index_dir.glob("building-*"):
        pid = d.name.split("-")[1]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue  # this build, or another one still running
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WriterBusy(IndexError_):
    """Another process is writing the index; this one did not start a second write."""


def one_writer(fn):
    """Builds, adds and removes take an exclusive lock on ``index/.write.lock`` first, so two
    processes (the server's workers, a `rag index` beside a running server) never write the
    index at once; the second is refused at once with WriterBusy instead of waiting."""

    @functools.wraps(fn)
    def locked(settings: Settings, *args, **kwargs):
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        with open(settings.index_dir / ".write.lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WriterBusy(f"another process is writing the index in {settings.index_dir}; "
                                 "try again when it has finished") from None
            try:
                return fn(settings, *args, **kwargs)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    return locked


@one_writer
def build_index(settings: Settings, progress: bool = False, skip_bad: bool = False,
                crash_after: str | None = None, on_progress=None, pipeline=None) -> dict:
    """Corpus → chunks → vectors (cached) → FAISS + BM25 in ``index/current``. Returns stats.
    ``pipeline`` (rag/distributed.py) reads, chunks and embeds on a Ray cluster instead of here."""
    t0 = time.perf_counter()
    if pipeline is None:
        ingested = ingest(settings, skip_bad=skip_bad)
        chunks, documents, errors = ingested.chunks, len(ingested.documents), ingested.errors
    else:
        chunks, documents, errors = pipeline.ingest(skip_bad)
    embedder = make_embedder(settings)
    cache = EmbeddingCache.of(settings, embedder.name)
    texts, owner = dense_rows(chunks, settings.dense_window_chars)
    vectors = cache.embed(embedder, texts, progress=progress and pipeline is None, on_progress=on_progress,
                          stream=pipeline.stream if pipeline is not None else None)
    manifest = _manifest(settings, embedder, chunks, documents, len(texts))
    written = _write(settings, chunks, vectors, owner, manifest, crash_after, progress=progress and pipeline is None,
                     on_progress=on_progress,
                     doc_texts={d.doc_id: d.text for d in ingested.documents} if pipeline is None else None)
    write_chunks(chunks, settings.index_dir / "chunks.jsonl")
    return {
        "chunks": len(chunks),
        "documents": documents,
        "dense_rows": len(texts),
        "sentence_rows": written["sentences"]["rows"],
        "embedded": cache.misses,
        "cached": cache.hits,
        "seconds": time.perf_counter() - t0,
        "errors": [str(e) for e in errors],
    }


def load_index(settings: Settings, check_corpus: bool = True) -> Index:
    """The built index, refused with a clear message when it does not fit the configuration."""
    cur = current_dir(settings)
    hint = "run `rag index` to build it"
    if not (cur / "manifest.json").exists():
        raise IndexError_(f"no index in {cur}; {hint}")
    try:
        manifest = json.loads((cur / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IndexError_(f"index manifest {cur / 'manifest.json'} is unreadable ({e}); {hint}") from None
    if manifest.get("format") != FORMAT:
        raise IndexError_(
            f"index in {cur} has format {manifest.get('format')}, this version reads {FORMAT}; {hint}"
        )
    want = make_embedder(settings)
    got = manifest.get("embedder", {})
    if got.get("name") != want.name or got.get("dim") != want.dim:
        raise IndexError_(
            f"index was built with embedder {got.get('name')} ({got.get('dim')}-d) but "
            f"{want.name} ({want.dim}-d) is configured; {hint} to rebuild it"
        )
    built_windows = manifest.get("dense", {}).get("window_chars")
    if built_windows != settings.dense_window_chars:
        raise IndexError_(
            f"index was built with dense windows of {built_windows} characters but "
            f"{settings.dense_window_chars} are configured; {hint} to rebuild it"
        )
    if check_corpus and manifest.get("corpus_hash") != corpus_hash(settings):
        raise IndexError_(f"index is stale: the corpus changed since it was built; {hint}")
    try:
        chunks = read_chunks(cur / "chunks.jsonl")
        # memory-mapped (shared by worker processes), as a plain array: numpy's memmap class costs
        # a Python call on every row read
        vectors = np.asarray(np.load(cur / "vectors.npy", mmap_mode="r"))
        owner = np.load(cur / "owner.npy")
        # with Milvus searching, the FAISS file is not read: each worker would hold the vectors twice
        faiss_index = dense.load(cur / "dense.faiss") if settings.backend != backends.MILVUS else None
        bm25 = lexical.load(cur / "bm25")
        pinyin = PinyinTable.load(cur / "pinyin")
        sentences = SentenceTable.load(cur)
    except Exception as e:
        raise IndexError_(f"index in {cur} is corrupt ({type(e).__name__}: {e}); {hint}") from None
    rows = len(vectors) if faiss_index is None else faiss_index.ntotal
    consistent = (len(chunks) == bm25.scores["num_docs"] and len(owner) == rows == len(vectors)
                  and np.array_equal(np.unique(owner), np.arange(len(chunks)))
                  and (sentences is None or sentences.consistent(len(chunks))))
    if not consistent:
        raise IndexError_(f"index in {cur} is inconsistent (counts differ); {hint}")
    return Index(chunks, vectors, owner, faiss_index, bm25, manifest, pinyin, sentences)


def index_status(settings: Settings) -> str | None:
    """None when the index loads, else the reason it does not."""
    try:
        load_index(settings)
    except IndexError_ as e:
        return str(e)
    return None


@one_writer
def remove_document(settings: Settings, doc_id: str) -> dict:
    """Drop one document from corpus manifest and index, keeping every other vector as is."""
    from .corpus import load_manifest

    entries = load_manifest(settings.manifest_path)
    if not any(e["doc_id"] == doc_id for e in entries):
        raise IndexError_(f"no document {doc_id!r} in {settings.manifest_path}")
    _reach_backend(settings)
    index = load_index(settings, check_corpus=False)  # also after a crash mid-add
    entry = next(e for e in entries if e["doc_id"] == doc_id)
    _write_manifest(settings, [e for e in entries if e["doc_id"] != doc_id])
    (settings.corpus_dir / entry["file"]).unlink(missing_ok=True)
    if entry.get("original"):  # the PDF, Word file or web page `rag add` kept
        (settings.corpus_dir / entry["original"]).unlink(missing_ok=True)
    keep = [i for i, c in enumerate(index.chunks) if c.doc_id != doc_id]
    vectors, owner = _select(index.vectors, index.owner, keep)
    return _rewrite(settings, [index.chunks[i] for i in keep], vectors, owner, index.manifest)


@one_writer
def add_document(settings: Settings, path: Path, entry: dict, progress: bool = False, replace: bool = False) -> dict:
    """Copy a file into the corpus (bytes unchanged), add its manifest entry, chunk and embed
    only it, and append it to the index. ``replace``: a document of that id is swapped for this
    one under the same lock, its old chunks dropped only once the new ones are embedded.

    The slow part (embedding) runs before anything is written; then file, manifest and index
    follow each other within a second. If a crash still falls in that second, adding the same
    file again finishes the job instead of refusing ("already in the corpus")."""
    from .chunking import chunk_document
    from .corpus import CorpusError, document_from_entry, load_manifest, read_text

    entries = load_manifest(settings.manifest_path)
    text = read_text(path)
    _reach_backend(settings)
    target = settings.corpus_dir / f"{entry['doc_id']}.txt"
    index = load_index(settings, check_corpus=False)
    kept_chunks, kept_vectors, kept_owner = index.chunks, index.vectors, index.owner
    old = next((e for e in entries if e["doc_id"] == entry["doc_id"]), None) if replace else None
    if old is not None:  # forget the old version here; nothing on disk changes before the embedding
        entries = [e for e in entries if e is not old]
        keep = [i for i, c in enumerate(index.chunks) if c.doc_id != entry["doc_id"]]
        kept_vectors, kept_owner = _select(index.vectors, index.owner, keep)
        kept_chunks = [index.chunks[i] for i in keep]
    half_added = (old is None and any(e["doc_id"] == entry["doc_id"] for e in entries) and target.exists()
                  and target.read_bytes() == Path(path).read_bytes()
                  and not any(c.doc_id == entry["doc_id"] for c in index.chunks))
    if not half_added:
        if any(e["doc_id"] == entry["doc_id"] for e in entries):
            raise IndexError_(f"document {entry['doc_id']!r} is already in the corpus; remove it first")
        if target.exists() and old is None:
            raise CorpusError(target, "a file of that name is already in the corpus")
    entry = {**entry, "file": target.name}
    doc = document_from_entry(entry, text, target)
    new = chunk_document(doc, settings.chunk_size, settings.chunk_overlap)
    embedder = make_embedder(settings)
    cache = EmbeddingCache.of(settings, embedder.name)
    texts, owner = dense_rows(new, settings.dense_window_chars)
    vecs = cache.embed(embedder, texts, progress=progress)
    if not half_added:
        shutil.copyfile(path, target)
        _write_manifest(settings, entries + [entry])
        if old is not None and old.get("original") and old.get("original") != entry.get("original"):
            (settings.corpus_dir / old["original"]).unlink(missing_ok=True)
    chunks = kept_chunks + new
    vectors = np.vstack([kept_vectors, vecs]) if len(texts) else kept_vectors
    owner = np.concatenate([kept_owner, owner + len(kept_chunks)])
    stats = _rewrite(settings, chunks, vectors, owner, index.manifest, progress)
    stats["embedded"] = cache.misses
    stats["resumed"] = half_added
    return stats


def _reach_backend(settings: Settings) -> None:
    """Open the search backend before the corpus changes: a Milvus that cannot be reached (or a
    milvus-lite file another process holds) refuses an add or remove before anything is written."""
    if settings.backend == backends.MILVUS:
        backends.milvus_client(settings)


def _rewrite(settings: Settings, chunks, vectors, owner, old_manifest: dict, progress: bool = False) -> dict:
    """Write an updated index with its chunks in corpus-manifest order, as a full build has."""
    from .corpus import load_manifest

    doc_order = [e["doc_id"] for e in load_manifest(settings.manifest_path)]
    rank = {d: i for i, d in enumerate(doc_order)}
    order = sorted(range(len(chunks)), key=lambda i: (rank.get(chunks[i].doc_id, 1 << 30), chunks[i].start, chunks[i].end))
    chunks = [chunks[i] for i in order]
    vectors, owner = _select(vectors, owner, order)
    manifest = dict(old_manifest)
    manifest.update(corpus_hash=corpus_hash(settings), built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    counts={"documents": len(doc_order), "chunks": len(chunks), "dense_rows": len(owner)})
    _write(settings, chunks, vectors, owner, manifest, progress=progress)
    write_chunks(chunks, settings.index_dir / "chunks.jsonl")
    return {"chunks": len(chunks), "documents": len(doc_order)}


def _write_manifest(settings: Settings, entries: list[dict]) -> None:
    path = settings.manifest_path
    data = json.loads(path.read_text(encoding="utf-8"))
    data["documents"] = entries
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
