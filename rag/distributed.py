"""`rag index --ray [ADDRESS]`: a build's reading, normalising, chunking and embedding as Ray Data
pipelines, on a local Ray or a cluster, writing the same index as the one-process build.

Two stages: the manifest's documents are read, normalised and chunked where Ray places them
(one task per document), then the sentence windows the embedding cache lacks are embedded by
a pool of actors that each load the embedder once (`map_batches` with a callable class and
``concurrency``). The driver orders the chunks as the corpus manifest does and streams the
vectors into the same embedding cache, so the index equals `rag index`'s (tests/test_ray.py)
and a killed build resumes from what was embedded. Every node reads the corpus at the same path
(one host, or a shared filesystem) and has this package installed (docs/scale-out.md).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from .config import Settings
from .corpus import CorpusError, listed_files, load_manifest
from .schema import Chunk


def _chunk_document(row: dict, settings: Settings) -> list[dict]:
    """One manifest entry → its chunks (or the problem that stopped it), on a Ray worker."""
    import ray

    from .chunking import chunk_document
    from .corpus import document_from_entry, read_text

    entry, path = json.loads(row["entry"]), row["path"]
    node = ray.get_runtime_context().get_node_id()
    def row_of(n: int = -1, chunk: str = "", error: str = "", fatal: bool = False) -> dict:
        return {"doc": row["doc"], "n": n, "chunk": chunk, "error": error, "fatal": fatal, "node": node}

    if not os.path.exists(path):  # the driver saw the file: this node lacks the corpus, not the corpus the file
        return [row_of(error=f"not readable on node {node}: the corpus must be at the same path on every "
                             "node (a shared filesystem)", fatal=True)]
    try:
        doc = document_from_entry(entry, read_text(path), path)
    except CorpusError as e:
        return [row_of(error=e.problem)]
    chunks = chunk_document(doc, settings.chunk_size, settings.chunk_overlap)
    if not chunks:  # still a document of the corpus
        return [row_of()]
    return [row_of(n, json.dumps(c.to_json(), ensure_ascii=False)) for n, c in enumerate(chunks)]


class _Embed:
    """A Ray Data actor: the embedder loaded once, then batch after batch of windows."""

    def __init__(self, settings: Settings):
        import ray

        from .embedders import make_embedder

        self.embedder = make_embedder(settings)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict) -> dict:
        vectors = self.embedder.embed_passages([str(t) for t in batch["text"]])
        return {"key": batch["key"], "vector": np.asarray(vectors, dtype=np.float32),
                "node": np.array([self.node] * len(vectors))}


class RayPipeline:
    """A connection to Ray (a local one, or the cluster at ``address``) and the two stages."""

    def __init__(self, settings: Settings, address: str | None = None, progress: bool = False):
        self.settings, self.address, self.progress = settings, address, progress
        self.started = False
        # a local Ray writes ~/.ray/auth_token, and a token there makes every later `ray start
        # --address` on this machine fail to join its head ("InvalidAuthToken"): ours goes at close
        self.token = Path.home() / ".ray" / "auth_token"
        self.token_was_there = self.token.exists()
        self.cpus = 1
        self.nodes: dict[str, set[str]] = {"chunk": set(), "embed": set()}

    def open(self) -> None:
        import ray
        from ray.data import DataContext

        if not ray.is_initialized():
            kwargs = ({"address": self.address} if self.address
                      else {"address": "local", "num_cpus": os.cpu_count() or 1})
            self.started = True  # before init: a failing init still gets its shutdown
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        DataContext.get_current().enable_progress_bars = self.progress
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        import ray

        if self.started:
            ray.shutdown()
            if not self.token_was_there:
                self.token.unlink(missing_ok=True)

    def ingest(self, skip_bad: bool = False) -> tuple[list[Chunk], int, list[CorpusError]]:
        """The chunks, the number of documents and the problems `ingest()` gives, with the
        documents read and chunked on the cluster (their texts stay there)."""
        import ray

        present, errors = listed_files(self.settings.corpus_dir, load_manifest(self.settings.manifest_path))
        if errors and not skip_bad:
            raise errors[0]
        rows = [{"doc": i, "entry": json.dumps(e, ensure_ascii=False), "path": str(Path(p).resolve())}
                for i, (e, p) in enumerate(present)]
        out = (ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
               .flat_map(_chunk_document, fn_kwargs={"settings": self.settings}).take_all()) if rows else []
        out.sort(key=lambda r: (r["doc"], r["n"]))
        self.nodes["chunk"] |= {r["node"] for r in out}
        chunks, docs = [], set()
        for r in out:
            if r["error"]:
                err = CorpusError(present[r["doc"]][1], r["error"])
                if not skip_bad or r["fatal"]:  # a node without the corpus fails the build, skipped or not
                    raise err
                errors.append(err)
                continue
            docs.add(r["doc"])
            if r["chunk"]:
                chunks.append(Chunk.from_json(json.loads(r["chunk"])))
        return chunks, len(docs), errors

    def stream(self, todo: list[tuple[str, str]]):
        """(keys, vectors) blocks of the texts to embed, as the actors finish them."""
        import ray

        if not todo:
            return
        ds = ray.data.from_items([{"key": k, "text": t} for k, t in todo],
                                 override_num_blocks=max(1, min(len(todo) // 8, 8 * self.cpus)))
        # a fixed pool of one actor per CPU (as concurrency=cpus), each holding one block at a
        # time, so an actor that loaded its model first does not queue every block for itself
        pool = ray.data.ActorPoolStrategy(size=self.cpus, max_tasks_in_flight_per_actor=1)
        ds = ds.map_batches(_Embed, fn_constructor_kwargs={"settings": self.settings}, compute=pool,
                            batch_size=self.settings.embed_batch * 4, num_cpus=1, batch_format="numpy")
        for batch in ds.iter_batches(batch_size=self.settings.embed_flush, batch_format="numpy"):
            self.nodes["embed"] |= set(batch["node"].tolist())
            yield [str(k) for k in batch["key"]], np.stack(batch["vector"]).astype(np.float32)


@contextlib.contextmanager
def ray_pipeline(settings: Settings, address: str | None = None, progress: bool = False):
    pipeline = RayPipeline(settings, address, progress)
    try:
        pipeline.open()
        yield pipeline
    finally:
        pipeline.close()
