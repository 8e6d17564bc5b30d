"""Check a JSONL file of eval questions: fields, kinds, ids unique, evidence verbatim in its file.

    python3 eval/check_questions.py eval/questions.jsonl [more.jsonl ...]

Exit 1 and one line per problem when anything is wrong. Uses only the standard library, so a
question writer can run it without the project installed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
KINDS = {"number", "fact", "list", "explain", "cross-doc", "unanswerable"}
STYLES = {"source-worded", "paraphrase", "near-miss"}


def problems(paths: list[str]) -> list[str]:
    manifest = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    texts = {e["doc_id"]: (CORPUS / e["file"]).read_text(encoding="utf-8") for e in manifest["documents"]}
    out, seen = [], set()
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                q = json.loads(line)
            except ValueError as e:
                out.append(f"{where}: not JSON ({e})")
                continue
            missing = {"id", "question", "lang", "kind", "answers", "doc_id", "evidence"} - set(q)
            if missing:
                out.append(f"{where}: missing {sorted(missing)}")
                continue
            if q["id"] in seen:
                out.append(f"{where}: duplicate id {q['id']}")
            seen.add(q["id"])
            rule = "dev" if int(hashlib.sha256(q["id"].encode("utf-8")).hexdigest(), 16) % 10 < 6 else "test"
            if q.get("split") != rule:
                out.append(f"{where}: split must be {rule!r} (sha256 of the id mod 10 < 6 is dev), got {q.get('split')!r}")
            if q["kind"] not in KINDS:
                out.append(f"{where}: kind {q['kind']!r} not in {sorted(KINDS)}")
            if q["lang"] not in ("zh", "en"):
                out.append(f"{where}: lang must be zh or en")
            if q.get("style", "source-worded") not in STYLES:
                out.append(f"{where}: style {q.get('style')!r} not in {sorted(STYLES)}")
            if q["kind"] == "unanswerable":
                if q["answers"] or q["evidence"] is not None or q["doc_id"] is not None:
                    out.append(f"{where}: an unanswerable question has answers [], doc_id and evidence null")
                continue
            if q["doc_id"] not in texts:
                out.append(f"{where}: unknown doc_id {q['doc_id']!r}")
                continue
            if not q["answers"] or not all(isinstance(a, str) and a for a in q["answers"]):
                out.append(f"{where}: answers must be a non-empty list of strings")
            if not isinstance(q["evidence"], str) or q["evidence"] not in texts[q["doc_id"]]:
                out.append(f"{where}: evidence is not verbatim in {q['doc_id']}: {q['evidence']!r}")
    return out


if __name__ == "__main__":
    found = problems(sys.argv[1:] or [str(Path(__file__).parent / "questions.jsonl")])
    print("\n".join(found) or "ok")
    sys.exit(1 if found else 0)
