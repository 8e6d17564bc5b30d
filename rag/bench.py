"""`rag bench`: numbers, not pass/fail — build speed, query latency, index size, memory;
with --http, a bounded load against a server on loopback."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .config import Settings
from .evaluation import load_questions
from .schema import Answer


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def eval_questions(settings: Settings) -> list[str]:
    """The eval's questions, the workload of every benchmark here."""
    return [q["question"] for q in load_questions(settings.eval_dir / "questions.jsonl")]


def run_bench(settings: Settings, url: str | None = None, duration: float = 30.0, clients: int = 8) -> int:
    questions = eval_questions(settings)
    if url:
        scaling(questions, duration, clients, url)
        return 0
    from . import store
    from .retrieve import Retriever

    with tempfile.TemporaryDirectory() as tmp:
        cold = settings.replace(index_dir=Path(tmp) / "index")
        t0 = time.perf_counter()
        stats = store.build_index(cold)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.build_index(cold)
        warm_s = time.perf_counter() - t0
        size = _size(store.current_dir(cold))
        shutil.rmtree(cold.index_dir / "cache", ignore_errors=True)
    embedded = stats["dense_rows"] + stats["sentence_rows"]
    print(f"cold build      {cold_s:7.1f} s   {stats['chunks'] / cold_s:6.1f} chunks/s ({stats['chunks']} chunks, "
          f"{stats['dense_rows']} sentence windows and {stats['sentence_rows']} sentences embedded)")
    alone = embedder_throughput(settings)
    build_rate = embedded / cold_s
    print(f"embedder alone  {alone:7.1f} texts/s on a sample of the same windows and sentences; the cold build "
          f"embeds {build_rate:.1f} texts/s end to end = {100 * build_rate / alone:.0f}% of it")
    print(f"warm rebuild    {warm_s:7.1f} s   (all {embedded} vectors from cache)")
    print(f"index on disk   {size / 1e6:7.2f} MB")
    r = Retriever(settings)
    for mode in ("dense", "lexical", "hybrid"):
        times = []
        for q in questions:
            r.clear_cache()  # each search embeds its question, as a new question does
            t0 = time.perf_counter()
            r.search(q, k=5, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"query {mode:<8}  p50 {statistics.median(times):6.1f} ms   p95 {_pct(times, .95):6.1f} ms"
              f"   over {len(times)} eval questions")
    answer_latency(settings, questions)
    answer_latency(settings, questions, threads=1)  # one worker of the default `rag serve` split
    long_question_cost(settings, questions)
    milvus_latency(settings, questions)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory     {peak:7.0f} MB (RSS)")
    return 0


def embedder_throughput(settings: Settings, sample: int = 256) -> float:
    """Texts per second of the embedder by itself (no chunking, cache or index writing), on an
    evenly spaced sample of the sentence windows and sentences a build embeds."""
    from .embedders import make_embedder
    from .ingest import ingest
    from .store import dense_rows, sentence_rows

    ingested = ingest(settings, skip_bad=True)
    texts, _ = dense_rows(ingested.chunks, settings.dense_window_chars)
    texts += sentence_rows(ingested.chunks, {d.doc_id: d.text for d in ingested.documents})[0]
    texts = texts[:: max(1, len(texts) // sample)][:sample]
    embedder = make_embedder(settings)
    t0 = time.perf_counter()
    embedder.embed_passages(texts)
    return len(texts) / (time.perf_counter() - t0)


def answer_latency(settings: Settings, questions: list[str], threads: int | None = None) -> None:
    """/ask's work in-process, stage by stage: a first pass where every question is new (its
    embedding computed) and a second where the question-embedding cache holds it. With
    ``threads``, in a child process whose compute pools have that many threads from the start
    (the embedder's OpenMP pool is sized when it loads), as one worker of `rag serve`."""
    if threads:
        code = ("import sys; from rag.bench import _stages, eval_questions; from rag.config import Settings; "
                "s = Settings.from_env(); _stages(s, eval_questions(s), label=sys.argv[1])")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "RAG_THREADS": str(threads),
               "RAG_CORPUS_DIR": str(settings.corpus_dir), "RAG_INDEX_DIR": str(settings.index_dir)}
        subprocess.run([sys.executable, "-c", code, f", {threads} thread(s)"], env=env, check=True)
        return
    _stages(settings, questions)


def _stages(settings: Settings, questions: list[str], label: str = "") -> None:
    from .answer import Answerer
    from .embedders import limit_threads

    if settings.threads:
        limit_threads(settings.threads)
    a = Answerer(settings)
    a.ask("预热")  # load LAC and jieba's tagger once, as a server does at its first request
    a.retriever.clear_cache()
    for name in ("new questions", "repeated"):
        stages: dict[str, list[float]] = {"embed": [], "analyse": [], "retrieve": [], "candidates": [],
                                          "decide": [], "json": [], "total": []}
        for q in questions:
            t = [time.perf_counter()]
            a.retriever.query_vector(q)  # the question's embedding, which retrieval then reuses
            t.append(time.perf_counter())
            qa = a.analyse(q)
            t.append(time.perf_counter())
            hits = a.retrieve(qa, 5, None)
            t.append(time.perf_counter())
            cands = a.candidates(qa, hits)
            t.append(time.perf_counter())
            found, text, chosen = a._decide(qa, cands)
            answer = Answer(q, text, found, a._citations(chosen, cands, hits, 3), 0.0, hits)
            t.append(time.perf_counter())
            json.dumps(answer.to_json(), ensure_ascii=False)
            t.append(time.perf_counter())
            for k, v in zip(stages, [*(b - e for b, e in zip(t[1:], t)), t[-1] - t[0]]):
                stages[k].append(v * 1000)
        parts = "  ".join(f"{k} {statistics.median(v):.1f}" for k, v in stages.items() if k != "total")
        print(f"ask ({name:<13}{label}) p50 {statistics.median(stages['total']):6.1f} ms   "
              f"p95 {_pct(stages['total'], .95):6.1f} ms   median per stage (ms): {parts}")


def milvus_latency(settings: Settings, questions: list[str]) -> None:
    """The same /ask stages with the search in a milvus-lite collection (rag/backends.py), built
    from this index's cached vectors, beside the local backend's lines above."""
    from . import store
    from .backends import close_client

    try:
        import pymilvus  # noqa: F401
    except ImportError:
        print("milvus          not measured: pymilvus is not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        m = settings.replace(backend="milvus", index_dir=Path(tmp) / "index", milvus_uri=str(Path(tmp) / "milvus.db"))
        if (settings.index_dir / "cache").exists():
            shutil.copytree(settings.index_dir / "cache", m.index_dir / "cache")
        t0 = time.perf_counter()
        stats = store.build_index(m)
        print(f"milvus-lite     build {time.perf_counter() - t0:.1f} s for {stats['dense_rows']} rows "
              f"({stats['cached']} vectors from cache)")
        try:
            _stages(m, questions, label=", milvus-lite")
        finally:
            close_client(m)


def long_question_cost(settings: Settings, questions: list[str]) -> None:
    """The worst a single request can cost: a question at the length limit that names places,
    against the median of ordinary questions asked for the first time."""
    from .answer import Answerer

    a = Answerer(settings)
    a.ask("预热")
    a.retriever.clear_cache()
    normal = []
    for q in questions[::10]:
        t0 = time.perf_counter()
        a.ask(q)
        normal.append((time.perf_counter() - t0) * 1000)
    base = statistics.median(normal)
    names = "洛阳市、洛龙区、新安县、中原区、鲅鱼圈区、盖州市、大石桥市、老边区、站前区、西市区、汝阳县、嵩县、"
    q = (names * 40)[: settings.max_question_chars - 20] + "分别召开了多少次常委会会议？"
    english = ("How many meetings did the standing committees of Luoyang, Luolong, Xin'an, Zhongyuan, "
               "Bayuquan, Gaizhou and Dashiqiao each hold? " * 10)[: settings.max_question_chars]
    for label, text in (("1,000-character question naming places", q[: settings.max_question_chars]),
                        ("'洛阳' × 499", "洛阳" * 499 + "？"), ("1,000-character English question", english)):
        t0 = time.perf_counter()
        a.ask(text)
        ms = 1000 * (time.perf_counter() - t0)
        print(f"ask ({label}) {ms:.0f} ms = {ms / base:.1f} × an ordinary question ({base:.0f} ms, median)")


# ways of opening a question that change nothing of what is asked: each request of a load run is
# a question the server has not seen, so its embedding is computed (no cache hit), as in real use
OPENINGS = ("", "请问", "请问一下，", "我想了解：", "想问一下，", "麻烦问下，", "请告诉我：", "查询：")


class QuestionStream:
    """The eval's questions under each opening in turn, handed out once each across all the
    clients and phases of a run; ``repeated`` counts the ones handed out a second time."""

    def __init__(self, questions: list[str], openings: tuple[str, ...] = OPENINGS):
        self.pool = [f"{o}{q}" for o in openings for q in questions]
        self.at, self.repeated = 0, 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            q = self.pool[self.at % len(self.pool)]
            self.repeated += self.at >= len(self.pool)
            self.at += 1
            return q


def http_load(questions: QuestionStream, duration: float, clients: int, url: str = "http://127.0.0.1:8000",
              route: str = "ask") -> dict:
    """``clients`` threads, each on one keep-alive connection, sending new questions to /ask
    (POST) or /search (GET) for ``duration`` seconds (loopback only). Returns req/s, errors and
    latency percentiles."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load check only targets a server on loopback")
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        while time.monotonic() < stop:
            q = questions.next()
            t0 = time.perf_counter()
            try:
                if route == "ask":
                    conn.request("POST", "/ask", json.dumps({"question": q}), {"Content-Type": "application/json"})
                else:
                    conn.request("GET", "/search?" + urllib.parse.urlencode({"q": q[:1000], "k": 5}))
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
            with lock:
                lat.append((time.perf_counter() - t0) * 1000)
                errors[0] += not ok
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    out = {"clients": clients, "requests": len(lat), "rps": len(lat) / elapsed, "errors": errors[0],
           "p50": _pct(lat, .5), "p95": _pct(lat, .95), "p99": _pct(lat, .99)}
    print(f"/{route} {clients} client(s) × {elapsed:.0f} s   {out['rps']:6.1f} req/s   errors {out['errors']}   "
          f"p50 {out['p50']:.0f} ms   p95 {out['p95']:.0f} ms   p99 {out['p99']:.0f} ms", flush=True)
    return out


def scaling(questions: list[str], duration: float, clients: int, url: str) -> dict:
    """One client, then ``clients`` at once, against the same server: first with questions it
    has not seen (each embedded), then with the eval's questions cycled as `wrk` did in the
    issue (after the first pass their embeddings are cached). The throughput ratio is what
    serving on every core buys."""
    out = {}
    for name, stream in (("new", QuestionStream(questions)), ("cycled", QuestionStream(questions, ("",)))):
        print(f"[{name} questions]", flush=True)
        http_load(stream, 3.0, clients, url)  # warm-up: each worker's first requests load LAC and jieba's tagger
        one = http_load(stream, duration, 1, url)
        many = http_load(stream, duration, clients, url)
        ratio = many["rps"] / one["rps"] if one["rps"] else float("nan")
        note = f" ({stream.repeated} questions asked again)" if stream.repeated and name == "new" else ""
        print(f"{clients}-client throughput = {ratio:.2f} × one client{note}", flush=True)
        out[name] = {"one": one, "many": many, "ratio": ratio}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving_splits(settings: Settings, splits: list[tuple[int, int]], duration: float, clients: int) -> int:
    """Start `rag serve` on loopback once per (workers, threads) split, load it with one and
    with ``clients`` clients, stop it by its process id; print a table to choose the default."""
    questions = eval_questions(settings)
    rows = []
    for workers, threads in splits:
        print(f"--- {workers} worker(s) × {threads} thread(s)", flush=True)
        with served(["--workers", str(workers), "--threads", str(threads)], workers=workers) as (url, _):
            rows.append((workers, threads, scaling(questions, duration, clients, url)))
    print(f"\n{'split (workers × threads)':<26} {'questions':<9} {'1 client req/s':>14} {f'{clients} clients req/s':>17} "
          f"{'ratio':>6} {f'{clients}-client p50 / p95 ms':>24} {'errors':>7}")
    for workers, threads, r in rows:
        for name, m in r.items():
            print(f"{f'{workers} × {threads}':<26} {name:<9} {m['one']['rps']:14.1f} {m['many']['rps']:17.1f} "
                  f"{m['ratio']:6.2f} {m['many']['p50']:15.0f} / {m['many']['p95']:<6.0f} "
                  f"{m['one']['errors'] + m['many']['errors']:7d}")
    return 0


@contextlib.contextmanager
def served(args: list[str], env: dict | None = None, workers: int = 1, timeout: float = 180):
    """`rag serve ARGS` on a free loopback port, until every worker answers /healthz; yields
    (url, process) and stops the server by its process group, whatever happens."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, workers, timeout)
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_ready(url: str, workers: int, timeout: float) -> None:
    """Until /healthz answers ok from every worker (each loads the index itself), bounded."""
    deadline, ready = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
                ready = ready + 1 if resp.status == 200 else 0
        except OSError:
            ready = 0
        if ready >= 4 * workers:  # consecutive oks: requests spread over the workers
            return
        time.sleep(0.25)
    raise TimeoutError(f"server at {url} not ready after {timeout:.0f} s")
