"""`rag eval`: every reference question through the same path as /ask, scored against the
verbatim evidence and answer strings of eval/questions.jsonl, gated by eval/thresholds.toml."""

from __future__ import annotations

import json
import statistics
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

from .config import Settings
from .normalize import squash

METRICS = ("recall@1", "recall@5", "mrr", "answer_accuracy", "citation_validity",
           "citation_support", "refusal_accuracy", "false_refusals")


def load_questions(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _supports(text: str, q: dict) -> bool:
    t = squash(text)
    return squash(q["evidence"]) in t or any(squash(a) in t for a in q["answers"])


def score_question(q: dict, ans, texts: dict[str, str]) -> dict:
    """Per-question outcome: retrieval rank of the first supporting passage, answer, citations."""
    answerable = q["kind"] != "unanswerable"
    row = {"id": q["id"], "kind": q["kind"], "lang": q["lang"], "question": q["question"],
           # "paraphrase": worded away from the source text, as users who never read it ask
           "style": q.get("style", "source-worded"),
           "answer": ans.answer, "found": ans.found, "ms": ans.took_ms,
           "citations": [f"{c.doc_id}:{c.start}-{c.end}" for c in ans.citations]}
    row["citation_valid"] = all(texts.get(c.doc_id, "")[c.start:c.end] == c.quote for c in ans.citations)
    if not answerable:
        row["ok"] = not ans.found
        return row
    rank = next((i for i, h in enumerate(ans.hits[:5], 1) if _supports(h.chunk.text, q)), None)
    row["rank"] = rank
    row["correct"] = ans.found and any(squash(a) in squash(ans.answer) for a in q["answers"])
    first = ans.citations[0] if ans.citations else None
    ev_start = texts[q["doc_id"]].find(q["evidence"])
    ev_end = ev_start + len(q["evidence"])
    row["supported"] = bool(first) and (
        any(squash(a) in squash(first.quote) for a in q["answers"])
        or (first.doc_id == q["doc_id"] and first.start < ev_end and ev_start < first.end)
    )
    row["ok"] = row["correct"]
    return row


def aggregate(rows: list[dict]) -> dict:
    ans = [r for r in rows if r["kind"] != "unanswerable"]
    un = [r for r in rows if r["kind"] == "unanswerable"]
    ms = sorted(r["ms"] for r in rows)

    def mean(xs):
        return round(sum(xs) / len(xs), 3) if xs else None

    return {
        "n": len(rows),
        "recall@1": mean([r["rank"] == 1 for r in ans]),
        "recall@5": mean([r["rank"] is not None for r in ans]),
        "mrr": mean([1 / r["rank"] if r["rank"] else 0 for r in ans]),
        "answer_accuracy": mean([r["correct"] for r in ans]),
        "citation_validity": mean([r["citation_valid"] for r in rows]),
        "citation_support": mean([r["supported"] for r in ans]),
        "refusal_accuracy": mean([not r["found"] for r in un]),
        "false_refusals": mean([not r["found"] for r in ans]),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1) if ms else None,
    }


def _table(groups: dict[str, dict]) -> str:
    cols = ["n", *METRICS, "p50_ms", "p95_ms"]
    width = {c: max(9, len(c) + 2) for c in cols}
    head = f"{'group':<18}" + "".join(f"{c:>{width[c]}}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, m in groups.items():
        cells = "".join(f"{'-' if m[c] is None else m[c]:>{width[c]}}" for c in cols)
        lines.append(f"{name:<18}{cells}")
    return "\n".join(lines)


def _markdown(groups: dict[str, dict]) -> str:
    cols = ["n", *METRICS, "p50_ms", "p95_ms"]
    out = ["| group | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in groups.items():
        out.append(f"| {name} | " + " | ".join("-" if m[c] is None else str(m[c]) for c in cols) + " |")
    return "\n".join(out)


def check_gate(overall: dict, thresholds: dict) -> list[str]:
    """The metrics that fall short; ``false_refusals`` and latency are maxima, the rest minima."""
    failures = []
    for name, limit in thresholds.get("min", {}).items():
        if overall.get(name) is None or overall[name] < limit:
            failures.append(f"{name} = {overall.get(name)} < {limit}")
    for name, limit in thresholds.get("max", {}).items():
        if overall.get(name) is not None and overall[name] > limit:
            failures.append(f"{name} = {overall.get(name)} > {limit}")
    return failures


def run_eval(settings: Settings, as_json: bool = False, mode: str | None = None,
             limit: int | None = None, gate: bool = True) -> int:
    from .answer import Answerer
    from .store import build_index, index_status

    if mode:
        settings = settings.replace(retriever=mode)
    if index_status(settings):
        build_index(settings)
    questions = load_questions(settings.eval_dir / "questions.jsonl")[:limit]
    answerer = Answerer(settings)
    rows = []
    for q in questions:
        rows.append(score_question(q, answerer.ask(q["question"]), answerer.texts))
    groups = {"overall": aggregate(rows)}
    for key in ("kind", "lang", "style"):
        by = defaultdict(list)
        for r in rows:
            by[r[key]].append(r)
        for name in sorted(by):
            groups[f"{key}:{name}"] = aggregate(by[name])
    failed = [r for r in rows if not r["ok"]]
    thresholds = tomllib.loads((settings.eval_dir / "thresholds.toml").read_text(encoding="utf-8"))
    problems = check_gate(groups["overall"], thresholds) if gate and mode in (None, "hybrid") else []
    report = {"retriever": settings.retriever, "embedder": settings.embedder, "groups": groups,
              "failed": failed, "gate": problems, "rows": rows}
    (settings.eval_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    md = [f"# Eval report ({settings.retriever}, {settings.embedder})", "", _markdown(groups), "",
          "## Failed questions", ""]
    md += [f"- {r['id']} [{r['kind']}] {r['question']} → found={r['found']} {r['answer']!r}" for r in failed]
    (settings.eval_dir / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    if as_json:
        print(json.dumps({k: v for k, v in report.items() if k != "rows"}, ensure_ascii=False, indent=1))
    else:
        print(f"retriever={settings.retriever} embedder={settings.embedder} questions={len(rows)}")
        print(_table(groups))
        if failed:
            print(f"\n{len(failed)} questions not answered as expected:")
            for r in failed:
                print(f"  {r['id']} [{r['kind']}/{r['lang']}] {r['question']}\n"
                      f"      → found={r['found']} {r['answer'][:100]!r} {r['citations'][:1]}")
    if problems:
        print("\nEVAL GATE FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    verdict = "eval gate passed" if gate and mode in (None, "hybrid") else "(no gate for this configuration)"
    print(f"\n{verdict}", file=sys.stderr if as_json else sys.stdout)
    return 0
