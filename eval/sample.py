"""Draw the sentences eval questions are written from: a fixed seed, every section covered.

    python -m eval.sample [--per-section 4] [--seed 20261124] > eval/samples.jsonl

Each journal article, each committee part of a joint report and each year part of a report is
a section; from each, ``--per-section`` sentences of at least 20 characters are drawn at random.
Questions are then written for the drawn sentences, not for the ones the system already answers
(eval/README.md). Each line gives the section, the sentence as normalised text, and the raw span
of the corpus file it comes from, so a writer can copy verbatim evidence out of ``raw``.
"""

from __future__ import annotations

import argparse
import json
import random
import re

from rag.config import Settings
from rag.corpus import load_corpus
from rag.normalize import normalize_span
from rag.structure import sections_of

SENTENCE = re.compile(r"[^。!?;\n]+[。!?;]?")


def drawn(per_section: int, seed: int, min_chars: int = 20) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for doc in load_corpus(Settings.from_env().corpus_dir).documents:
        for n, sec in enumerate(s for s in sections_of(doc) if s.kind == "article"):
            pool = []
            for start, end in sec.spans:
                norm = normalize_span(doc.text, start, end)
                for m in SENTENCE.finditer(norm.text):
                    sentence = m.group(0).strip()
                    if len(sentence) >= min_chars:
                        rs, re_ = norm.raw_span(m.start(), m.end())
                        pool.append((sentence, rs, re_))
            for sentence, rs, re_ in rng.sample(pool, min(per_section, len(pool))):
                out.append({"doc_id": doc.doc_id, "section": sec.title or f"part {n + 1}",
                            "place": (sec.place or doc.place).label(), "year": sec.year or doc.year,
                            "sentence": sentence, "raw_start": rs, "raw_end": re_,
                            "raw": doc.text[rs:re_]})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-section", type=int, default=4)
    p.add_argument("--seed", type=int, default=20261124)
    a = p.parse_args()
    for i, row in enumerate(drawn(a.per_section, a.seed)):
        print(json.dumps({"n": i, **row}, ensure_ascii=False))


if __name__ == "__main__":
    main()
