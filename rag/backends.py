"""Where the search runs: the one-machine default (FAISS + bm25s, in process) or Milvus.

Both take the same `SearchQuery` and return the same `Ranked` list of chunk positions, so the
retriever and the answer stage above them do not know which is in use. The chunk table, the
window vectors and the term statistics the answer stage reads stay in ``index/current`` either
way (docs/scale-out.md says what that means at scale); Milvus holds what is searched: one row
per dense window with its chunk's metadata and text, BM25 computed by Milvus over jieba tokens.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import dense, lexical
from .config import Settings
from .lru import LRU
from .schema import Chunk

FILTER_KEYS = ("doc_id", "doc_type", "place", "year")
LOCAL = "faiss+bm25s"
MILVUS = "milvus"
BACKENDS = ("local", MILVUS)


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

    name = LOCAL

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
        lists, sources = [], {}
        if q.vector is not None:
            ids, scores = dense.search(self.index.faiss_index, q.vector, q.depth, allowed, self.index.owner)
            lists.append((ids, scores, q.dense_weight))
            sources["dense"] = dict(zip(ids, scores))
        if q.tokens:
            ids, scores = lexical.search(self.index.bm25, q.tokens, q.depth, allowed)
            lists.append((ids, scores, q.lexical_weight))
            sources["lexical"] = dict(zip(ids, scores))
        if self.settings.fusion == "rrf":
            fused = rrf([(ids, weight) for ids, _, weight in lists], self.settings.rrf_k)
        else:
            fused = fuse_scores(lists)
        return Ranked(sorted(fused, key=lambda i: -fused[i]), fused, sources)

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


def literal(value) -> str:
    """A filter value as a Milvus expression literal: numbers as numbers, text double-quoted with
    backslash and quote escaped. Control characters are refused, not passed into an
    expression (a filter value is never spliced in unescaped)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"filter value must be text or a whole number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("filter value holds a control character")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def milvus_filter(filters: dict, fields: FieldValues) -> str:
    """The retriever's filters as a Milvus boolean expression, with the same meaning as the
    local masks: a place matches the names a chunk's place goes by, or its full label."""
    parts = []
    for name, want in sorted(filters.items()):
        if name == "place":
            names = fields.place_names(want)
            like = "%" + want.replace("%", r"\%").replace("_", r"\_") + "%"
            alts = [f"place like {literal(like)}"]
            if names:
                alts.insert(0, f"array_contains_any(places, [{', '.join(literal(n) for n in names)}])")
            parts.append("(" + " or ".join(alts) + ")")
        elif name == "year":
            parts.append(f"year == {literal(int(want))}")
        else:
            parts.append(f"{name} == {literal(str(want))}")
    return " and ".join(parts)


def collection_index(settings: Settings, rows: int) -> dict:
    """The Milvus dense index for ``rows`` vectors: by the same rule as the local one (exact up
    to ``dense_auto_rows``, inverted lists above; milvus-lite 2.5 has FLAT and IVF_FLAT)."""
    d = {"type": settings.dense_index}
    if d["type"] == "auto":
        d["type"] = "flat" if rows <= settings.dense_auto_rows else "ivf"
    if d["type"] == "ivf":
        nlist, nprobe = dense.ivf_shape(rows)
        return {"index_type": "IVF_FLAT", "params": {"nlist": nlist}, "nprobe": nprobe}
    return {"index_type": "FLAT", "params": {}, "nprobe": 0}


def _schema(client, dim: int):
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("row", DataType.INT64, is_primary=True)  # the dense window's row in vectors.npy
    s.add_field("chunk_id", DataType.VARCHAR, max_length=256)
    s.add_field("doc_id", DataType.VARCHAR, max_length=256)
    s.add_field("doc_type", DataType.VARCHAR, max_length=64)
    s.add_field("place", DataType.VARCHAR, max_length=1024)
    s.add_field("places", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=64, max_length=256)
    s.add_field("year", DataType.INT64)  # 0: none printed
    s.add_field("start", DataType.INT64)
    s.add_field("end", DataType.INT64)
    # the chunk's indexed text (with article, place, year), on each of its windows' rows, so
    # Milvus scores BM25 per chunk as the local index does; the analyzer written in the one
    # form both milvus-lite lines accept
    s.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                analyzer_params={"tokenizer": "jieba"})
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                            output_field_names=["sparse"]))
    return s


INSERT_BATCH = 1000  # milvus-lite 2.5 refuses larger inserts
WINDOWS_PER_CHUNK = 4  # rows asked per chunk wanted, when Milvus's ranker fuses rows (2.7 on average)


def write_collection(settings: Settings, chunks: list[Chunk], vectors: np.ndarray, owner: np.ndarray,
                     texts: list[str], on_progress=None) -> dict:
    """A new collection holding this index generation; the manifest names it, so the swap to it
    is the index folder's rename (a crash before leaves the old collection in use), and the
    collections of older generations are dropped after (`drop_other_collections`)."""
    client = milvus_client(settings)
    name = f"{settings.milvus_collection}_{time.time_ns()}"
    idx = collection_index(settings, len(vectors))
    params = client.prepare_index_params()
    params.add_index("vector", index_type=idx["index_type"], metric_type="IP", params=idx["params"])
    params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    kwargs = {} if settings.milvus_is_lite else {"num_shards": settings.milvus_shards}
    client.create_collection(name, schema=_schema(client, vectors.shape[1]), index_params=params, **kwargs)
    try:
        for lo in range(0, len(vectors), INSERT_BATCH):
            rows = []
            for r in range(lo, min(lo + INSERT_BATCH, len(vectors))):
                c = chunks[int(owner[r])]
                rows.append({"row": r, "chunk_id": c.id, "doc_id": c.doc_id, "doc_type": c.doc_type,
                             "place": c.place, "places": list(c.places)[:64], "year": c.year or 0,
                             "start": c.start, "end": c.end, "text": texts[int(owner[r])],
                             "vector": vectors[r].astype(np.float32).tolist()})
            client.insert(name, rows)
            if on_progress:
                on_progress(min(lo + INSERT_BATCH, len(vectors)), len(vectors))
        _load(client, name, settings)
    except Exception:
        client.drop_collection(name)
        raise
    return {"name": MILVUS, "uri": settings.milvus_location, "collection": name, "rows": len(vectors),
            "index": idx["index_type"], "nprobe": idx["nprobe"], "shards": settings.milvus_shards,
            "replicas": settings.milvus_replicas}


def _load(client, name: str, settings: Settings) -> None:
    """Load a collection for search (milvus-lite 2.5 loads on create; 3.x and servers do not),
    with the configured in-memory replicas on a server."""
    from pymilvus.client.types import LoadState

    if client.get_load_state(name).get("state") != LoadState.Loaded:
        replicas = {} if settings.milvus_is_lite else {"replica_number": settings.milvus_replicas}
        client.load_collection(name, **replicas)


def drop_other_collections(settings: Settings, keep: set[str]) -> list[str]:
    """Drop this service's collections but ``keep``: the current generation's and the one
    before, which a server in another process may still search until it reloads
    (``reload_seconds``); a build that crashed before its swap left one that goes too."""
    client = milvus_client(settings)
    prefix = settings.milvus_collection + "_"
    gone = [c for c in client.list_collections()
            if c.startswith(prefix) and c[len(prefix):].isdigit() and c not in keep]
    for c in gone:
        client.drop_collection(c)
    return gone


class MilvusSearch:
    """Search in Milvus: a dense request and a BM25 request over the same rows (filters as
    Milvus expressions), each chunk counted once, as its best window."""

    name = MILVUS

    def __init__(self, settings: Settings, index):
        info = index.manifest.get("backend", {})
        if info.get("name") != MILVUS:
            raise BackendError(f"the index was built for the {info.get('name', LOCAL)} backend, not Milvus; "
                               "run `rag index` with RAG_BACKEND=milvus to build the collection")
        if info.get("uri") != settings.milvus_location:
            raise BackendError(f"the index's collection is in {info.get('uri')}, but RAG_MILVUS_URI is "
                               f"{settings.milvus_location}; run `rag index` to build it there")
        self.settings = settings
        self.client = milvus_client(settings)
        self.collection = info["collection"]
        self.nprobe = info.get("nprobe", 0)
        if not self.client.has_collection(self.collection):
            raise BackendError(f"Milvus at {settings.milvus_location} has no collection {self.collection}; "
                               "run `rag index` to build it")
        _load(self.client, self.collection, settings)
        rows = self.count()
        if rows != info.get("rows"):
            raise BackendError(f"Milvus collection {self.collection} holds {rows} rows, the index "
                               f"{info.get('rows')}; run `rag index` to rebuild it")
        self.positions = {c.id: i for i, c in enumerate(index.chunks)}
        self.fields = FieldValues(index.chunks)

    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def _dense_param(self) -> dict:
        return {"metric_type": "IP", "params": {"nprobe": self.nprobe} if self.nprobe else {}}

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
        by the same score fusion as the local backend; "rrf" or "weighted": one hybrid_search
        fused by Milvus's RRFRanker or WeightedRanker. milvus-lite 2.5.1's WeightedRanker
        normalises BM25 as a distance (smaller is better), so a higher BM25 score counts less,
        and its grouped hybrid search ranks by the wrong list; "client" is the default (README:
        recall@5 and accuracy for each)."""
        from pymilvus import RRFRanker, WeightedRanker

        expr = milvus_filter(q.filters, self.fields) if q.filters else ""
        reqs = self._requests(q, expr, q.depth)
        if not reqs:
            return Ranked([], {})
        fusion = self.settings.milvus_fusion
        if fusion == "client" or len(reqs) == 1:
            lists, sources = [], {}
            for name, weight, r in reqs:
                res = self.client.search(self.collection, data=r.data, anns_field=r.anns_field, filter=expr,
                                         search_params=r.param, limit=q.depth, output_fields=["chunk_id"],
                                         group_by_field="chunk_id")
                ids, scores = self._best_per_chunk(res[0])
                lists.append((ids, scores, weight))
                sources[name] = dict(zip(ids, scores))
            fused = fuse_scores(lists)
            return Ranked(sorted(fused, key=lambda i: -fused[i]), fused, sources)
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"unknown milvus_fusion {fusion!r}: use client, rrf or weighted")
        total = sum(w for _, w, _ in reqs)
        ranker = (RRFRanker(self.settings.rrf_k) if fusion == "rrf"
                  else WeightedRanker(*[w / total for _, w, _ in reqs]))
        # a chunk has several window rows: ask for more rows and keep each chunk's first
        rows = self._requests(q, expr, q.depth * WINDOWS_PER_CHUNK)
        res = self.client.hybrid_search(self.collection, [r for _, _, r in rows], ranker,
                                        limit=q.depth * WINDOWS_PER_CHUNK, output_fields=["chunk_id"])
        ids, scores = self._best_per_chunk(res[0])
        fused = dict(zip(ids[: q.depth], scores))
        return Ranked(list(fused), fused, {"milvus-" + fusion: dict(fused)})

    def describe(self) -> dict:
        return {"name": MILVUS, "uri": self.settings.milvus_location, "collection": self.collection}


def make_backend(settings: Settings, index):
    if settings.backend == "local":
        return LocalSearch(settings, index)
    if settings.backend == MILVUS:
        return MilvusSearch(settings, index)
    raise ValueError(f"unknown backend {settings.backend!r}: use {' or '.join(BACKENDS)}")
