"""Where the search runs: the one-machine default (FAISS + bm25s, in process) or Milvus.

Both take the same `SearchQuery` and return the same `Ranked` list of chunk positions, so the
retriever and the answer stage above them do not know which is in use. The chunk table, the
window vectors and the term statistics the answer stage reads stay in ``index/current`` either
way (docs/scale-out.md says what that means at scale); Milvus holds what is searched: one row
per dense window with its chunk's metadata and text, BM25 computed by Milvus over jieba tokens.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import dense, lexical
from .config import Settings
from .lru import LRU
from .schema import Chunk

FILTER_KEYS = ("doc_id", "doc_type", "place", "year")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LOCAL = "faiss+bm25s"
MILVUS = "milvus"
BACKENDS = ("local", MILVUS)
MILVUS_FUSIONS = ("client", "rrf", "weighted")


class BackendError(Exception):
    """The search backend is unreachable, or holds no collection matching the index."""


@dataclass(frozen=True)
class SearchQuery:
    vector: np.ndarray | None  # None: no dense list (lexical mode)
    tokens: list[str]  # the BM25 query; empty: no lexical list
    depth: int
    filters: dict
    dense_weight: float
    lexical_weight: float


@dataclass
class Ranked:
    """Chunk positions best first, their fused scores, and each list's own scores."""

    order: list[int]
    fused: dict[int, float]
    sources: dict[str, dict[int, float]] = field(default_factory=dict)


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


def fuse(settings: Settings, lists: list[tuple[str, list[int], list[float], float]]) -> Ranked:
    """(name, chunk positions, scores, weight) lists fused as RAG_FUSION says, best first."""
    if settings.fusion == "rrf":
        fused = rrf([(ids, weight) for _, ids, _, weight in lists], settings.rrf_k)
    else:
        fused = fuse_scores([(ids, scores, weight) for _, ids, scores, weight in lists])
    sources = {name: dict(zip(ids, scores)) for name, ids, scores, _ in lists}
    return Ranked(sorted(fused, key=lambda i: -fused[i]), fused, sources)


def place_matches(want: str, value: str) -> bool:
    """A place filter matches a chunk's name for a place when either holds the other
    (洛阳 matches 河南省洛阳市, 洛阳市洛龙区 matches 洛龙区)."""
    return want in value or value in want


class FieldValues:
    """Field → value → positions of the chunks with it; one pass over the chunk table, once.
    Both backends resolve a place filter through it: the names a chunk's place goes by that
    match the asked place."""

    def __init__(self, chunks: list[Chunk]):
        acc: dict[str, dict[object, list[int]]] = {f: {} for f in (*FILTER_KEYS, "places")}
        for i, c in enumerate(chunks):
            for f in FILTER_KEYS:
                acc[f].setdefault(getattr(c, f), []).append(i)
            for p in set(c.places):
                acc["places"].setdefault(p, []).append(i)
        self.values = {f: {v: np.array(ids, dtype=np.int64) for v, ids in m.items()} for f, m in acc.items()}
        self.n = len(chunks)

    def place_names(self, want: str) -> list[str]:
        return sorted(v for v in self.values["places"] if place_matches(want, v))

    def mask(self, filters: dict) -> np.ndarray:
        masks = []
        for name, want in filters.items():
            rows: list[np.ndarray] = []
            if name == "place":  # the chunk's names for its place, or its full place label
                rows += [self.values["places"][v] for v in self.place_names(want)]
                rows += [ids for v, ids in self.values["place"].items() if want in v]
            else:
                rows.append(self.values[name].get(want, np.zeros(0, dtype=np.int64)))
            m = np.zeros(self.n, dtype=bool)
            for ids in rows:
                m[ids] = True
            masks.append(m)
        return np.logical_and.reduce(masks)


class LocalSearch:
    """FAISS (dense windows, a chunk scores as its best window) and bm25s, fused in process."""

    def __init__(self, settings: Settings, index):
        self.settings = settings
        self.index = index
        self.fields = FieldValues(index.chunks)
        self._masks: LRU[np.ndarray] = LRU(32)

    def allowed(self, filters: dict) -> np.ndarray | None:
        """The chunks a filter allows; the last few masks are kept, since the answer stage
        filters by the same places again and again."""
        if not filters:
            return None
        key = tuple(sorted((k, str(v)) for k, v in filters.items()))
        return self._masks.get(key, lambda: self.fields.mask(filters))

    def search(self, q: SearchQuery) -> Ranked:
        allowed = self.allowed(q.filters)
        if allowed is not None and not allowed.any():
            return Ranked([], {})
        lists = []
        if q.vector is not None:
            lists.append(("dense", *dense.search(self.index.faiss_index, q.vector, q.depth, allowed, self.index.owner,
                                                   self.index.vectors),
                          q.dense_weight))
        if q.tokens:
            lists.append(("lexical", *lexical.search(self.index.bm25, q.tokens, q.depth, allowed), q.lexical_weight))
        return fuse(self.settings, lists)

    def describe(self) -> dict:
        return {"name": LOCAL}


# --- Milvus ------------------------------------------------------------------------------------

_CLIENTS: dict[str, object] = {}
_CLIENTS_LOCK = threading.Lock()


def milvus_client(settings: Settings):
    """One client per address and process: milvus-lite lets one process open its file, so the
    server's writer (an upload) must share the reader's client, not open a second one."""
    uri = settings.milvus_location
    with _CLIENTS_LOCK:
        if uri not in _CLIENTS:
            import warnings

            with warnings.catch_warnings():  # milvus-lite imports pkg_resources
                warnings.simplefilter("ignore")
                from pymilvus import MilvusClient
            try:
                _CLIENTS[uri] = MilvusClient(uri=uri, token=settings.milvus_token) if not settings.milvus_is_lite \
                    else MilvusClient(uri)
            except Exception as e:
                hint = (" (a milvus-lite file is open in one process at a time: stop the server, "
                        "or use a Milvus server)" if settings.milvus_is_lite else "")
                raise BackendError(f"cannot open Milvus at {uri}: {type(e).__name__}: {e}{hint}") from None
        return _CLIENTS[uri]


def close_client(settings: Settings) -> None:
    """Close this process's client for the configured address (a milvus-lite file is then free
    for another process)."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.pop(settings.milvus_location, None)
    if client is not None:
        client.close()


def literal(value) -> str:
    """A filter value as a Milvus expression literal: numbers as numbers, text double-quoted with
    backslash and quote escaped. Control characters are refused, not passed into an
    expression (a filter value is never spliced in unescaped)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"filter value must be text or a whole number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if CONTROL.search(value):
        raise ValueError("filter value holds a control character")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def milvus_filter(filters: dict, fields: FieldValues) -> str:
    """The retriever's filters as a Milvus boolean expression, with the same meaning as the
    local masks: a place matches the names a chunk's place goes by, or its full label."""
    parts = []
    for name, want in sorted(filters.items()):
        if name == "place":
            names = fields.place_names(want)
            like = "%" + want.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
            alts = [f"place like {literal(like)}"]
            if names:
                alts.insert(0, f"array_contains_any(places, [{', '.join(literal(n) for n in names)}])")
            parts.append("(" + " or ".join(alts) + ")")
        elif name == "year":
            parts.append(f"year == {literal(int(want))}")
        else:
            parts.append(f"{name} == {literal(str(want))}")
    return " and ".join(parts)


def collection_index(settings: Settings, dense_cfg: dict) -> dict:
    """The Milvus dense index for the index's dense configuration (`store.dense_config`: exact up
    to ``dense_auto_rows``, inverted lists above). milvus-lite 2.5 has FLAT and IVF_FLAT only."""
    kind = dense_cfg["type"]
    if kind == "ivf":
        return {"index_type": "IVF_FLAT", "params": {"nlist": dense_cfg["nlist"]}, "nprobe": dense_cfg["nprobe"]}
    if kind == "hnsw":
        if settings.milvus_is_lite:
            raise BackendError("milvus-lite has no HNSW index: set RAG_DENSE_INDEX to auto, flat or ivf")
        return {"index_type": "HNSW", "params": {"M": dense_cfg["m"], "efConstruction": max(40, 2 * dense_cfg["m"])},
                "ef": dense_cfg["ef_search"]}
    return {"index_type": "FLAT", "params": {}, "nprobe": 0}


def _schema(client, dim: int):
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("row", DataType.INT64, is_primary=True)  # the dense window's row in vectors.npy
    s.add_field("chunk_id", DataType.VARCHAR, max_length=LIMITS["chunk_id"])
    s.add_field("doc_id", DataType.VARCHAR, max_length=LIMITS["doc_id"])
    s.add_field("doc_type", DataType.VARCHAR, max_length=LIMITS["doc_type"])
    s.add_field("place", DataType.VARCHAR, max_length=LIMITS["place"])
    s.add_field("places", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=LIMITS["places"],
                max_length=LIMITS["place"])
    s.add_field("year", DataType.INT64)  # 0: none printed
    s.add_field("start", DataType.INT64)
    s.add_field("end", DataType.INT64)
    # the chunk's indexed text (with article, place, year), on each of its windows' rows, so a
    # BM25 hit is a chunk's; its statistics count a chunk once per window and Milvus's jieba lacks
    # the domain dictionary, so scores differ a little from the local index's. The analyzer is
    # written in the one form both milvus-lite lines accept
    s.add_field("text", DataType.VARCHAR, max_length=LIMITS["text"], enable_analyzer=True,
                analyzer_params={"tokenizer": "jieba"})
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                            output_field_names=["sparse"]))
    return s


INSERT_BATCH = 1000  # milvus-lite 2.5 refuses larger inserts
# field sizes in bytes (Milvus counts UTF-8 bytes: a Chinese character is 3), places per chunk
LIMITS = {"chunk_id": 1024, "doc_id": 512, "doc_type": 64, "place": 1024, "places": 64, "text": 65535}


def _too_big(c: Chunk, text: str) -> str | None:
    """Why a chunk does not fit the collection's fields, if it does not (checked before any
    write, so a build fails whole instead of halfway)."""
    values = [("chunk_id", c.id), ("doc_id", c.doc_id), ("doc_type", c.doc_type), ("place", c.place),
              ("text", text), *(("place", p) for p in c.places)]
    for field_name, value in values:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > LIMITS[field_name]:
            return f"its {field_name} is {size} bytes (Milvus field limit {LIMITS[field_name]})"
    if len(c.places) > LIMITS["places"]:
        return f"it has {len(c.places)} place names (Milvus field limit {LIMITS['places']})"
    return None


WINDOWS_PER_CHUNK = 4  # rows asked per chunk wanted, when Milvus's ranker fuses rows (2.7 on average)


def write_collection(settings: Settings, chunks: list[Chunk], vectors: np.ndarray, owner: np.ndarray,
                     texts: list[str], dense_cfg: dict) -> dict:
    """A new collection holding this index generation; the manifest names it, so the swap to it
    is the index folder's rename (a crash before leaves the old collection in use), and the
    collections of older generations are dropped after (`drop_other_collections`). Rows first,
    then the indexes, then the load with the configured replicas (as Milvus advises for bulk
    loads); flushed, so the row count checked at loading is the final one."""
    for c, text in zip(chunks, texts):
        if problem := _too_big(c, text):
            raise BackendError(f"chunk {c.id} cannot go into Milvus: {problem}")
    client = milvus_client(settings)
    name = f"{settings.milvus_collection}_{time.time_ns()}"
    idx = collection_index(settings, dense_cfg)
    kwargs = {} if settings.milvus_is_lite else {"num_shards": settings.milvus_shards}
    client.create_collection(name, schema=_schema(client, vectors.shape[1]), consistency_level="Strong", **kwargs)
    try:
        for lo in range(0, len(vectors), INSERT_BATCH):
            rows = []
            for r in range(lo, min(lo + INSERT_BATCH, len(vectors))):
                c = chunks[int(owner[r])]
                rows.append({"row": r, "chunk_id": c.id, "doc_id": c.doc_id, "doc_type": c.doc_type,
                             "place": c.place, "places": list(c.places), "year": c.year or 0,
                             "start": c.start, "end": c.end, "text": texts[int(owner[r])],
                             "vector": vectors[r].astype(np.float32).tolist()})
            client.insert(name, rows)
        client.flush(name)
        params = client.prepare_index_params()
        params.add_index("vector", index_type=idx["index_type"], metric_type="IP", params=idx["params"])
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_index(name, params)
        _load(client, name, settings)
    except Exception as e:
        with contextlib.suppress(Exception):
            client.drop_collection(name)
        raise BackendError(f"writing Milvus collection {name} failed ({type(e).__name__}: {e}); "
                           "the index in use is unchanged") from None
    return {"name": MILVUS, "uri": settings.milvus_location, "collection": name, "rows": len(vectors),
            "index": idx["index_type"], "nprobe": idx.get("nprobe", 0), "ef": idx.get("ef", 0),
            "shards": settings.milvus_shards, "replicas": settings.milvus_replicas}


def _load(client, name: str, settings: Settings) -> None:
    """Load a collection for search, with the configured in-memory replicas on a server."""
    from pymilvus.client.types import LoadState

    if client.get_load_state(name).get("state") != LoadState.Loaded:
        replicas = {} if settings.milvus_is_lite else {"replica_number": settings.milvus_replicas}
        client.load_collection(name, **replicas)


def drop_other_collections(settings: Settings, keep: set[str], grace_seconds: float | None = None) -> list[str]:
    """Drop this service's collections but ``keep`` (the current generation's and the one
    before) and those younger than a grace period (by default 60 s or ten reload intervals):
    a server process that has not reloaded yet may still search one, also when two writes
    come within a reload interval. A build that crashed before its swap left one that goes
    too. The collection prefix must be this deployment's own (docs/scale-out.md)."""
    grace = max(60.0, 10 * settings.reload_seconds) if grace_seconds is None else grace_seconds
    client = milvus_client(settings)
    prefix = settings.milvus_collection + "_"
    now = time.time_ns()
    gone = [c for c in client.list_collections()
            if c.startswith(prefix) and c[len(prefix):].isdigit() and c not in keep
            and now - int(c[len(prefix):]) > grace * 1e9]
    for c in gone:
        client.drop_collection(c)
    return gone


class MilvusSearch:
    """Search in Milvus: a dense request and a BM25 request over the same rows (filters as
    Milvus expressions), each chunk counted once, as its best window."""

    def __init__(self, settings: Settings, index):
        info = index.manifest.get("backend", {})
        if info.get("name") != MILVUS:
            raise BackendError(f"the index was built for the {info.get('name', LOCAL)} backend, not Milvus; "
                               "run `rag index` with RAG_BACKEND=milvus to build the collection")
        if not _same_place(info.get("uri") or "", settings):
            raise BackendError(f"the index's collection is in {info.get('uri')}, but RAG_MILVUS_URI is "
                               f"{settings.milvus_location}; run `rag index` to build it there")
        if settings.milvus_fusion not in MILVUS_FUSIONS:
            raise BackendError(f"unknown milvus_fusion {settings.milvus_fusion!r}: use {', '.join(MILVUS_FUSIONS)}")
        self.settings = settings
        self.client = milvus_client(settings)
        self.collection = info["collection"]
        self.nprobe, self.ef = info.get("nprobe", 0), info.get("ef", 0)
        if not self.client.has_collection(self.collection):
            raise BackendError(f"Milvus at {settings.milvus_location} has no collection {self.collection}; "
                               "run `rag index` to build it")
        _load(self.client, self.collection, settings)
        rows = self.count()
        if rows != info.get("rows"):
            raise BackendError(f"Milvus collection {self.collection} holds {rows} rows, the index "
                               f"{info.get('rows')}; run `rag index` to rebuild it")
        self.positions = index.positions
        self.fields = FieldValues(index.chunks)

    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])

    def _dense_param(self) -> dict:
        params = {"nprobe": self.nprobe} if self.nprobe else {"ef": self.ef} if self.ef else {}
        return {"metric_type": "IP", "params": params}

    def _requests(self, q: SearchQuery, expr: str, limit: int):
        """(name, weight, request) for the dense and the BM25 list the query asks for."""
        from pymilvus import AnnSearchRequest

        out = []
        if q.vector is not None:
            out.append(("dense", q.dense_weight, AnnSearchRequest(
                data=[q.vector.astype(np.float32).tolist()], anns_field="vector", param=self._dense_param(),
                limit=limit, expr=expr)))
        text = " ".join(q.tokens)
        if text.strip():
            out.append(("lexical", q.lexical_weight, AnnSearchRequest(
                data=[text], anns_field="sparse", param={"metric_type": "BM25"}, limit=limit, expr=expr)))
        return out

    def _best_per_chunk(self, hits) -> tuple[list[int], list[float]]:
        """Chunk positions and scores, best first, each chunk once (as its best window)."""
        ids, scores, seen = [], [], set()
        for h in hits:
            pos = self.positions.get(h["entity"]["chunk_id"])
            if pos is not None and pos not in seen:
                seen.add(pos)
                ids.append(pos)
                scores.append(float(h["distance"]))
        return ids, scores

    def search(self, q: SearchQuery) -> Ranked:
        """``milvus_fusion`` "client": each list searched in Milvus (grouped by chunk), fused here
        as the local backend fuses (`fuse`, by RAG_FUSION); "rrf" or "weighted": one
        hybrid_search fused by Milvus's RRFRanker or WeightedRanker. milvus-lite 2.5.1's
        WeightedRanker normalises BM25 as a distance (smaller is better), so a higher BM25 score
        counts less, and its grouped hybrid search ranks by the wrong list; "client" is the
        default (README: recall@5 and accuracy for each). A Milvus failure is a BackendError
        (503 from the API), not a crash."""
        try:
            return self._search(q)
        except BackendError:
            raise
        except Exception as e:
            raise BackendError(f"Milvus search failed ({type(e).__name__}: {e})") from None

    def _search(self, q: SearchQuery) -> Ranked:
        from pymilvus import RRFRanker, WeightedRanker

        expr = milvus_filter(q.filters, self.fields) if q.filters else ""
        fusion = self.settings.milvus_fusion
        hybrid = fusion != "client" and q.vector is not None and bool(q.tokens)
        limit = q.depth * WINDOWS_PER_CHUNK if hybrid else q.depth
        reqs = self._requests(q, expr, limit)
        if not reqs:
            return Ranked([], {})
        if not hybrid:
            lists = []
            for name, weight, r in reqs:
                res = self.client.search(self.collection, data=r.data, anns_field=r.anns_field, filter=expr,
                                         search_params=r.param, limit=q.depth, output_fields=["chunk_id"],
                                         group_by_field="chunk_id")
                lists.append((name, *self._best_per_chunk(res[0]), weight))
            return fuse(self.settings, lists)
        total = sum(w for _, w, _ in reqs)
        ranker = (RRFRanker(self.settings.rrf_k) if fusion == "rrf"
                  else WeightedRanker(*[w / total for _, w, _ in reqs]))
        # a chunk has several window rows: ask for more rows and keep each chunk's first
        res = self.client.hybrid_search(self.collection, [r for _, _, r in reqs], ranker, limit=limit,
                                        output_fields=["chunk_id"])
        ids, scores = self._best_per_chunk(res[0])
        fused = dict(zip(ids[: q.depth], scores))
        return Ranked(list(fused), fused, {"milvus-" + fusion: dict(fused)})

    def describe(self) -> dict:
        return {"name": MILVUS, "uri": self.settings.milvus_location, "collection": self.collection}


def _same_place(uri: str, settings: Settings) -> bool:
    """Whether the manifest's Milvus address is the configured one (a lite file by its real
    path: `--index-dir index` and the absolute default name the same file)."""
    if settings.milvus_is_lite:
        return Path(uri).resolve() == Path(settings.milvus_location).resolve()
    return uri == settings.milvus_location


def make_backend(settings: Settings, index):
    if settings.backend == "local":
        return LocalSearch(settings, index)
    if settings.backend == MILVUS:
        return MilvusSearch(settings, index)
    raise ValueError(f"unknown backend {settings.backend!r}: use {' or '.join(BACKENDS)}")
