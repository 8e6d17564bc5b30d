"""`rag bench`: numbers, not pass/fail — build speed, query latency, index size, memory;
with --http, a bounded load against a server on loopback."""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from .config import Settings
from .evaluation import load_questions


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_bench(settings: Settings, http: bool = False, duration: float = 30.0, clients: int = 8) -> int:
    questions = [q["question"] for q in load_questions(settings.eval_dir / "questions.jsonl")]
    if http:
        return http_load(questions, duration, clients)
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
    print(f"cold build      {cold_s:7.1f} s   {stats['chunks'] / cold_s:6.1f} chunks/s ({stats['chunks']} chunks, "
          f"{stats['dense_rows']} sentence windows embedded)")
    print(f"warm rebuild    {warm_s:7.1f} s   (all {stats['dense_rows']} vectors from cache)")
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
    long_question_cost(settings)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory     {peak:7.0f} MB (RSS)")
    return 0


def answer_latency(settings: Settings, questions: list[str]) -> None:
    """/ask's work in-process, stage by stage: a first pass where every question is new (its
    embedding computed) and a second where the question-embedding cache holds it."""
    from .answer import Answerer

    a = Answerer(settings)
    a.ask("预热")  # load LAC and jieba's tagger once, as a server does at its first request
    a.retriever.clear_cache()
    for name in ("new questions", "repeated"):
        stages: dict[str, list[float]] = {"analyse": [], "retrieve": [], "candidates": [], "decide": [], "total": []}
        for q in questions:
            t0 = time.perf_counter()
            qa = a.analyse(q)
            t1 = time.perf_counter()
            hits = a.retrieve(qa, 5, None)
            t2 = time.perf_counter()
            cands = a.candidates(qa, hits)
            t3 = time.perf_counter()
            found, _, chosen = a._decide(qa, cands)
            a._citations(chosen, cands, hits, 3)
            t4 = time.perf_counter()
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                stages[k].append(v * 1000)
        parts = "  ".join(f"{k} {statistics.median(v):.1f}" for k, v in stages.items() if k != "total")
        print(f"ask ({name:<13}) p50 {statistics.median(stages['total']):6.1f} ms   p95 {_pct(stages['total'], .95):6.1f} ms"
              f"   median per stage (ms): {parts}")


def long_question_cost(settings: Settings) -> None:
    """The worst a single request can cost: a question at the length limit that names places."""
    from .answer import Answerer

    a = Answerer(settings)
    a.ask("预热")
    names = "洛阳市、洛龙区、新安县、中原区、鲅鱼圈区、盖州市、大石桥市、老边区、站前区、西市区、汝阳县、嵩县、"
    q = (names * 40)[: settings.max_question_chars - 20] + "分别召开了多少次常委会会议？"
    for label, text in (("1,000-character question naming places", q[: settings.max_question_chars]),
                        ("'洛阳' × 499", "洛阳" * 499 + "？")):
        t0 = time.perf_counter()
        a.ask(text)
        print(f"ask ({label}) {1000 * (time.perf_counter() - t0):.0f} ms")


def http_load(questions: list[str], duration: float, clients: int, url: str = "http://127.0.0.1:8000") -> int:
    """``clients`` threads posting eval questions to /ask for ``duration`` seconds (loopback only)."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError("the load check only targets a server on loopback")
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker(offset: int) -> None:
        i = offset
        while time.monotonic() < stop:
            body = json.dumps({"question": questions[i % len(questions)]}).encode()
            req = urllib.request.Request(f"{url}/ask", body, {"Content-Type": "application/json"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
                    ok = resp.status == 200
            except Exception:
                ok = False
            with lock:
                lat.append((time.perf_counter() - t0) * 1000)
                errors[0] += not ok
            i += clients

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    print(f"{clients} clients × {elapsed:.0f} s against {url}/ask")
    print(f"requests {len(lat)}   {len(lat) / elapsed:.1f} req/s   errors {errors[0]}")
    print(f"latency p50 {_pct(lat, .5):.0f} ms   p95 {_pct(lat, .95):.0f} ms   p99 {_pct(lat, .99):.0f} ms")
    return 0
