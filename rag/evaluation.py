"""`rag eval`: every reference question through the same path as /ask, scored against the
verbatim evidence and answer strings of eval/questions.jsonl, gated by eval/thresholds.toml."""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

from .config import Settings
from .normalize import squash

METRICS = ("recall@1", "recall@5", "mrr", "answer_accuracy", "citation_validity",
           "citation_support", "refusal_accuracy", "near_miss_refusal", "false_refusals")
SPLITS = ("dev", "test")
GAP = 0.05  # dev may beat test by this much on a metric before `rag eval` warns


def split_of(qid: str) -> str:
    """The fixed rule that gives each question its "split" in eval/questions.jsonl: 60% of ids (by
    hash) are dev, the rest test. The ranker is trained and tuned on dev only; test measures what
    that tuning is worth on questions it never saw. eval/check_questions.py holds every line to it."""
    return "dev" if int(hashlib.sha256(qid.encode("utf-8")).hexdigest(), 16) % 10 < 6 else "test"


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
           "style": q.get("style", "source-worded"), "split": q["split"],
           "answer": ans.answer, "found": ans.found, "ms": ans.took_ms,
           "citations": [f"{c.doc_id}:{c.start}-{c.end}" for c in ans.citations]}
    row["citation_valid"] = all(texts.get(c.doc_id, "")[c.start:c.end] == c.quote for c in ans.citations)
    if not answerable:
        row["ok"] = not ans.found
        row["category"] = None if row["ok"] else "false answer"
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
    row["category"] = None
    if not row["ok"]:
        if not ans.found:
            row["category"] = "false refusal"
        elif rank is None:
            row["category"] = "retrieval miss"
        elif first and first.doc_id == q["doc_id"] and first.start < ev_end and ev_start < first.end:
            row["category"] = "wrong figure in the right sentence"
        else:
            row["category"] = "wrong sentence"
    return row


CATEGORIES = ("retrieval miss", "wrong sentence", "wrong figure in the right sentence", "false answer",
              "false refusal")


def aggregate(rows: list[dict]) -> dict:
    ans = [r for r in rows if r["kind"] != "unanswerable"]
    un = [r for r in rows if r["kind"] == "unanswerable"]
    ms = sorted(r["ms"] for r in rows)

    def mean(xs):
        return round(sum(xs) / len(xs), 3) if xs else None

    near = [r for r in un if r["style"] == "near-miss"]
    return {
        "n": len(rows),
        "recall@1": mean([r["rank"] == 1 for r in ans]),
        "recall@5": mean([r["rank"] is not None for r in ans]),
        "mrr": mean([1 / r["rank"] if r["rank"] else 0 for r in ans]),
        "answer_accuracy": mean([r["correct"] for r in ans]),
        "citation_validity": mean([r["citation_valid"] for r in rows]),
        "citation_support": mean([r["supported"] for r in ans]),
        "refusal_accuracy": mean([not r["found"] for r in un]),
        "near_miss_refusal": mean([not r["found"] for r in near]),
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


def _gap_warnings(groups: dict[str, dict]) -> list[str]:
    dev, test = groups.get("split:dev"), groups.get("split:test")
    if not dev or not test:
        return []
    out = []
    for m in METRICS:
        if dev[m] is None or test[m] is None:
            continue
        worse = test[m] - dev[m] if m == "false_refusals" else dev[m] - test[m]
        if worse > GAP:
            out.append(f"{m}: dev {dev[m]} vs test {test[m]}")
    return out


def evaluate(settings: Settings, questions: list[dict]) -> list[dict]:
    """Each question asked as /ask does and scored; a dev question is answered by the ranker
    that was fitted without it."""
    from .answer import Answerer

    answerer = Answerer(settings)
    shipped = answerer.ranker
    rows = []
    for q in questions:
        answerer.ranker = shipped.without(q["id"]) if shipped is not None else None
        rows.append(score_question(q, answerer.ask(q["question"]), answerer.texts))
    return rows


def run_eval(settings: Settings, as_json: bool = False, mode: str | None = None,
             limit: int | None = None, gate: bool = True, failures: Path | None = None,
             split: str | None = None) -> int:
    from .store import build_index, index_status

    if mode:
        settings = settings.replace(retriever=mode)
    if index_status(settings):
        build_index(settings)
    questions = [q for q in load_questions(settings.eval_dir / "questions.jsonl")
                 if split is None or q["split"] == split][:limit]
    rows = evaluate(settings, questions)
    groups = {"overall": aggregate(rows)}
    for key in ("split", "kind", "lang", "style"):
        by = defaultdict(list)
        for r in rows:
            by[r[key]].append(r)
        for name in sorted(by):
            groups[f"{key}:{name}"] = aggregate(by[name])
    for sp in SPLITS:  # the test split by language: the bar is per language
        for lang in ("zh", "en"):
            sub = [r for r in rows if r["split"] == sp and r["lang"] == lang]
            if sub:
                groups[f"{sp}:{lang}"] = aggregate(sub)
    failed = [r for r in rows if not r["ok"]]
    categories = {c: sum(r["category"] == c for r in failed) for c in CATEGORIES}
    thresholds = tomllib.loads((settings.eval_dir / "thresholds.toml").read_text(encoding="utf-8"))
    problems = []
    if gate and mode in (None, "hybrid"):
        for sp in SPLITS:
            if f"split:{sp}" in groups:
                problems += [f"{sp}: {p}" for p in check_gate(groups[f"split:{sp}"], thresholds)]
    gaps = _gap_warnings(groups)
    report = {"retriever": settings.retriever, "embedder": settings.embedder, "groups": groups,
              "failure_categories": categories, "failed": failed, "gate": problems, "gap_warnings": gaps,
              "rows": rows}
    (settings.eval_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    md = [f"# Eval report ({settings.retriever}, {settings.embedder})", "", _markdown(groups), "",
          "Failures by category: " + ", ".join(f"{k} {v}" for k, v in categories.items()), "",
          "## Failed questions", ""]
    md += [f"- {r['id']} ({r['split']}) [{r['kind']}] {r['category']}: {r['question']} → found={r['found']} "
           f"{r['answer']!r}" for r in failed]
    (settings.eval_dir / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    if failures:
        with failures.open("w", encoding="utf-8") as f:
            for r in failed:
                f.write(json.dumps({k: r.get(k) for k in ("id", "split", "category", "kind", "lang", "style",
                                                         "question", "found", "answer", "rank", "citations")},
                                   ensure_ascii=False) + "\n")
    if as_json:
        print(json.dumps({k: v for k, v in report.items() if k != "rows"}, ensure_ascii=False, indent=1))
    else:
        print(f"retriever={settings.retriever} embedder={settings.embedder} questions={len(rows)}")
        print(_table(groups))
        print("\nfailures by category: " + ", ".join(f"{k} {v}" for k, v in categories.items()))
        if failures:
            print(f"each failed question with its category: {failures}")
    for g in gaps:
        print(f"WARNING: dev beats test by more than {GAP}: {g}", file=sys.stderr)
    if problems:
        print("\nEVAL GATE FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    verdict = "eval gate passed (dev and test)" if gate and mode in (None, "hybrid") else "(no gate for this configuration)"
    print(f"\n{verdict}", file=sys.stderr if as_json else sys.stdout)
    return 0
