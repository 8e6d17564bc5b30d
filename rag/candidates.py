"""Answer candidates cut from the retrieved passages, and the features the ranker scores them by.

A candidate is a sentence, a figure (or date, or name) inside a sentence, or a field of the
masthead ("邮 编 471023": a short line of label and value). Each keeps its span in the
passage's normalised text, so the answer and its citation map back to the file's characters.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from .chunking import sentence_spans, sentence_windows
from .normalize import NormText, squash
from .question import (
    DAY,
    FIGURE,
    PERIODS,
    ROLES,
    VERB_SYNONYMS,
    Question,
    months_named,
    printed_values,
    short_place,
    unit_fits,
)
from .schema import Hit
from .tokenize import person_names

CLAUSE = re.compile(r"[^,;:。!?\n]+[,;:。!?]?")
# an item of an enumeration: (一) (二)…, 一是 二是…, 1. 2.…
ENUMERATION = re.compile(r"[(（][一二三四五六七八九十]{1,2}[)）]|(?<![\u4e00-\u9fff])[一二三四五六七八九十]是|(?<![\d.])\d{1,2}[.、](?!\d)")
DATE_SPAN = re.compile(r"(?:(?:19|20)\d{2}年)?\d{1,2}月(?:\d{1,2}日)?|(?:19|20)\d{2}年\d{1,2}月|(?:19|20)\d{2}年")
# how a sentence states a method or reason
METHOD = re.compile(r"通过|针对|为了|为进一步|采取|采用|实行|推行|建立|探索|创新|坚持|围绕|依托|借助|坚持|以[^,。]{1,12}为|"
                    r"“[^”]{2,14}”|[一二三四五六七八九十两]\S{0,4}法|机制|模式|办法|方式|措施|制度")
# a masthead line: a label of 2-4 characters (printed with spaces between them), then a value
FIELD = re.compile(r"^([\u4e00-\u9fff](?: ?[\u4e00-\u9fff]){1,4}|E ?- ?mail)\s+(\S.{0,60})$")
NARROWER = re.compile(r"[\u4e00-\u9fff]{2,5}?(?:小区|社区|村|街道|镇|乡|县|区)(?![\u4e00-\u9fff]{0,1}(?:人大|常委))")
ORG_NAME = re.compile(r"[\u4e00-\u9fff“”]{2,14}?(?:公司|集团|医院|大学|学院|研究所|研究院|银行|协会|基地|中心|厂|工委|"
                      r"委员会|局|院|所)")
PLACE_NAME = re.compile(r"[\u4e00-\u9fff]{1,6}?(?:省|市|区|县|镇|乡|村|街道|社区|小区)")
SPOKEN = re.compile(r"[(（]((?:19|20)\d{2})年\d{1,2}月(?:\d{1,2}日)?[^()（）]{0,80}(?:讲话|致辞|报告|演讲|批示|指示|信)[^()（）]{0,6}[)）]")
# a line wholly in brackets: where an excerpt was said or a report comes from, (2022年12月23日在
# 中央农村工作会议上的讲话), (来源:…微信公众号2024年5月11日)
SOURCE_LINE = re.compile(r"[(（][^()（）]{4,}[)）][。.]?")
# a question that asks when, on what occasion or from where something was said or printed
OCCASION_ASKED = re.compile(r"哪天|哪一天|何时|什么时候|场合|哪个会|什么会|哪次会|出自|来源|出处|"
                            r"\bwhen\b|\bdate\b|occasion|\bsource\b|which (?:meeting|conference|session|event)", re.I)
SO_FAR = {"今年以来", "年初以来"}  # since the start of the year: the period of the text around it
PERIOD_WORDS = re.compile(r"上半年|下半年|全年|一季度|第一季度|前三季度|今年以来|年初以来|\d{1,2}月(?:份|底|末|以来)|五年来|连续五年|本届|"
                          r"任期内")

FEATURES = (
    "dense", "dense_gap", "rank_inv", "fused", "cov", "cov_ctx", "focus_cov", "focus_missing",
    "focus_unknown", "unmapped", "quantity_fig", "quantity_nofig", "unit_match", "unit_mismatch",
    "bind_noun", "bind_pred", "fig_first", "rate_match", "rate_count", "who_name", "who_noname",
    "field_match", "is_field", "date_match", "list_enum", "list_seps", "explain_marker", "length",
    "place_sent", "place_chunk", "place_miss", "place_other", "year_match", "year_miss",
    "period_hit", "period_miss", "unknown_place", "year_uncovered", "lang_en",
    "own_cov", "own_asked", "date_full", "in_question", "asked_elsewhere", "dense_gap_en", "article_match",
    "missing_max", "narrower", "noun_right_after", "rate_named", "rate_other", "missing_passage", "missing_alien",
    "dense_sent", "dense_sent_gap", "second_sent", "second_sent_gap",
)
# a rate's name: 办结率, 满意率, 老龄化率 (the two characters before 率)
RATE_WORD = re.compile(r"[\u4e00-\u9fff]{2}率")


def _field_words(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, words = line.split("\t", 1)
            out[squash(label).lower()] = [squash(label).lower()] + [w.strip().lower() for w in words.split(",") if w.strip()]
    return out


FIELD_WORDS = _field_words(Path(__file__).with_name("data") / "fields.tsv")


UNSCORED = -1e9  # a candidate's ``near`` before the ranker has scored it


@dataclass
class Candidate:
    hit: Hit
    norm: NormText
    start: int  # the sentence (or field line), normalised span within ``norm``
    end: int
    kind: str = "sentence"  # sentence | figure | field
    target: tuple[int, int] | None = None  # the figure, date, name or field value asked for
    label: str | None = None  # a masthead field's label (邮编)
    features: dict[str, float] = field(default_factory=dict)
    p: float = 0.0  # the ranker's probability that this candidate answers the question
    near: float = UNSCORED  # the ranker's score, for one that cannot answer but shows what is nearby
    period: str | None = None  # in an article titled with two periods, the one of its part

    @property
    def sentence(self) -> str:
        return self.norm.text[self.start:self.end]

    def answer_span(self, q: Question) -> tuple[int, int]:
        """Normalised span of the answer: the clause holding the target, else the sentence."""
        text = self.norm.text
        if self.kind == "field" and self.target:
            return self.start, self.end
        if q.kind == "who" and self.target:  # the name, with the title printed right before it
            before = text[max(self.start, self.target[0] - 16):self.target[0]]
            cut = max((m.end() for m in re.finditer(r"[,;。、:()（）\s]", before)), default=-1)
            if cut < 0:
                role = next((r for r in ROLES if before.endswith(r)), "")
                cut = len(before) - len(role)
            return self.target[0] - len(before) + cut, self.target[1]
        if self.target:
            for m in CLAUSE.finditer(text, self.start, self.end):
                if m.start() <= self.target[0] < m.end():
                    s, e = m.start(), m.end()
                    bare = re.sub(r"[\W_]", "", text[s:e])
                    if len(bare) - len(re.sub(r"[\W_]", "", text[slice(*self.target)])) < 2:
                        return self.start, self.end  # the figure alone says nothing: the sentence
                    return _enumerated_item(text, s, e, self.target)
        s, e = self.start, self.end
        if q.kind not in ("list", "explain") and e - s > 150:
            e = s + 150
            while e < self.end and not re.match(r"[,;、。]", text[e - 1]):
                e += 1
        return s, e


def _enumerated_item(text: str, s: int, e: int, target: tuple[int, int]) -> tuple[int, int]:
    """Within a clause that enumerates figures with 、 (推动加装电梯138部、治理飞线3047处、…), the
    item holding the target, when it says more than the figure; else the whole clause."""
    if "、" not in text[s:e]:
        return s, e
    a = max(s, text.rfind("、", s, target[0]) + 1)
    b = text.find("、", target[1], e)
    b = e if b < 0 else b
    if len(re.sub(r"[\W_\d]", "", text[a:b])) - len(re.sub(r"[\W_\d]", "", text[slice(*target)])) < 3:
        return s, e
    return a, b


def _fields(raw: str, start: int, end: int, norm: NormText) -> list[tuple[int, int, int, int, str]]:
    """Masthead fields inside raw[start:end] as normalised spans (line, value) with the label."""
    out = []
    pos = start
    for line in raw[start:end].split("\n"):
        m = FIELD.match(line.strip())
        if m and len(line.strip()) <= 70:
            lead = len(line) - len(line.lstrip())
            ls = pos + lead
            vs = ls + m.start(2)
            le = ls + len(line.strip())
            ns, vn, ne = _norm_at(norm, ls), _norm_at(norm, vs), _norm_at(norm, le - 1) + 1
            if ns < vn < ne:
                out.append((ns, ne, vn, ne, squash(m.group(1))))
        pos += len(line) + 1
    return out


def _norm_at(norm: NormText, raw_pos: int) -> int:
    return min(bisect_left(norm.offsets, raw_pos), len(norm.text) - 1) if norm.text else 0


_PERIOD_MARKS: dict[tuple[str, int, str], list[tuple[int, str]]] = {}


def part_period(text: str, at: int, article: str, doc_id: str = "") -> str:
    """Which period an article titled with two (2024年上半年工作总结暨下半年工作打算) is about at
    ``at``: a paragraph opening with one of them (下半年,市人大常委会将…) starts its part; the
    title's own line, or none within 20,000 characters, means the first, which the title reviews.
    The marks are found once per document and article."""
    named = list(dict.fromkeys(PERIOD_WORDS.findall(article)))
    key = (doc_id, len(text), article)
    if key not in _PERIOD_MARKS:
        title = r"\n[^\n]*" + r"[^\n]*".join(map(re.escape, named))
        opens = rf"\n\s*({'|'.join(map(re.escape, named))})[,，]"
        _PERIOD_MARKS[key] = sorted([(m.end(), named[0]) for m in re.finditer(title, text)]
                                    + [(m.start(), m.group(1)) for m in re.finditer(opens, text)])
    marks = _PERIOD_MARKS[key]
    i = bisect_left(marks, (at, "")) - 1
    return marks[i][1] if i >= 0 and at - marks[i][0] <= 20000 else named[0]


def generate(q: Question, hits: list[Hit], norms: dict[str, NormText], raw: dict[str, str]) -> list[Candidate]:
    """Every sentence of the passages; inside each, a candidate per figure (number and rate
    questions), date (date questions) or name (who questions); and the masthead fields."""
    out: list[Candidate] = []
    for hit in hits:
        c = hit.chunk
        norm = norms[c.id]
        text = norm.text
        two = len(set(PERIOD_WORDS.findall(c.article or ""))) > 1
        for s, e in sentence_spans(text):
            sent = text[s:e]
            period = part_period(raw[c.doc_id], norm.raw_span(s, e)[0], c.article, c.doc_id) if two else None
            targets: list[tuple[int, int]] = []
            if q.is_quantity:
                targets = [m2.span() for m2 in FIGURE.finditer(sent) if not _not_a_count(sent, *m2.span())]
            elif q.kind == "date":
                targets = [m2.span() for m2 in DATE_SPAN.finditer(sent)]
            elif q.kind == "who":
                targets = person_names(sent)
            if targets:
                out += [Candidate(hit, norm, s, e, "figure", (s + a, s + b), period=period) for a, b in targets]
            else:
                out.append(Candidate(hit, norm, s, e, period=period))
        for ns, ne, vs, ve, label in _fields(raw[c.doc_id], c.start, c.end, norm):
            out.append(Candidate(hit, norm, ns, ne, "field", (vs, ve), label))
    return out


def _not_a_count(sentence: str, fs: int, fe: int) -> bool:
    said = sentence[fs:fe]
    if re.fullmatch(r"(?:19|20)\d{2}年", said):
        return True  # a year is a date, not the quantity asked for
    if sentence[fs - 1:fs] == "第":
        return True  # 第三次: an ordinal
    return bool(re.search(r"届[^,;、。]{0,6}$", sentence[max(0, fs - 8):fs]) and sentence.startswith("会议", fe))


def featurise(q: Question, cands: list[Candidate], qvec: np.ndarray | None, window_vectors, corpus_years: set[int],
              sentence_vectors=None, second_qvec: np.ndarray | None = None) -> None:
    """Fill each candidate's features. ``window_vectors(hit)`` gives the stored dense vectors of
    the passage's sentence windows and ``sentence_vectors(hit)`` those of its sentences (spans,
    vectors and the second encoder's vectors, or None), so only the question is embedded at
    query time (``second_qvec``: by the second encoder, None without it)."""
    total = sum(q.terms.values()) or 1.0
    focus_w = {k: q.terms[k] for k in q.focus}
    topical = list(focus_w) or list(q.terms)  # the words besides places and years
    titles = [squash(t) for t in re.findall(r"《([^》]{4,})》", q.text)]
    asked_rates = set(RATE_WORD.findall(q.text))  # 办结率 in "…办结率是多少"
    asked_units = (q.unit,) if q.unit else q.measure_words
    idf_top = max(q.terms.values(), default=1.0) or 1.0
    focus_total = sum(focus_w.values()) or 1.0
    focus_unknown = min(1.0, sum(focus_w[k] for k in q.absent if k in focus_w) / focus_total)
    dense_by_chunk: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}
    own: dict[tuple[str, int, int], float] = {}  # (chunk id, start, end) of a stored sentence → its similarity
    second: dict[tuple[str, int, int], float] = {}  # the same by the second encoder
    for cand in cands:
        c = cand.hit.chunk
        if c.id not in dense_by_chunk:
            spans = _window_spans(cand.norm.text, c.text)
            vecs = window_vectors(cand.hit)
            sims = (vecs @ qvec) if (qvec is not None and vecs is not None and len(vecs)) else np.zeros(len(spans))
            dense_by_chunk[c.id] = (spans, np.asarray(sims, dtype=np.float32))
            stored = sentence_vectors(cand.hit) if sentence_vectors is not None and qvec is not None else None
            if stored is not None:
                sent_spans, sent_vecs, second_vecs = stored
                keys = [(c.id, a, b) for a, b in sent_spans.tolist()]
                own.update(zip(keys, (np.asarray(sent_vecs, dtype=np.float32) @ qvec).tolist()))
                if second_vecs is not None and second_qvec is not None:
                    second.update(zip(keys, (np.asarray(second_vecs, dtype=np.float32) @ second_qvec).tolist()))
    best_dense = best_sent = 0.0
    best_second = max(second.values(), default=0.0)
    top_fused = max((cd.hit.score for cd in cands), default=1.0) or 1.0
    for cand in cands:
        c = cand.hit.chunk
        sent = cand.sentence
        context = " ".join([c.article or "", *c.places, f"{c.year}年" if c.year else ""])
        f = cand.features
        spans, sims = dense_by_chunk[c.id]
        over = [float(s) for (a, b), s in zip(spans, sims) if a < cand.end and cand.start < b]
        f["dense"] = max(over) if over else (float(sims.max()) if len(sims) else 0.0)
        best_dense = max(best_dense, f["dense"])
        # the sentence's own vector where the index has it (a field line, or an index built
        # without sentence vectors, falls back to its window's)
        f["dense_sent"] = own.get((c.id, cand.start, cand.end), f["dense"])
        best_sent = max(best_sent, f["dense_sent"])
        # a field line, or an index without the second encoder: 0, and no gap
        f["second_sent"] = second.get((c.id, cand.start, cand.end), 0.0)
        f["second_sent_gap"] = f["second_sent"] - best_second if f["second_sent"] else 0.0
        f["rank_inv"] = 1.0 / cand.hit.rank
        f["fused"] = cand.hit.score / top_fused
        in_sent = {k for k in q.terms if k in sent}
        f["cov"] = sum(k in sent for k in topical) / len(topical) if topical else 0.0  # unweighted share
        f["cov_ctx"] = sum(w for k, w in q.terms.items() if k not in in_sent and k in context) / total
        f["focus_cov"] = sum(w for k, w in focus_w.items() if k in sent) / focus_total if focus_w else 0.5
        f["focus_missing"] = (sum(w for k, w in focus_w.items() if k not in sent and k not in context) / focus_total
                              if focus_w else 0.0)
        f["focus_unknown"] = focus_unknown
        missing = [focus_w[k] for k in focus_w if k not in sent and k not in context]
        f["missing_max"] = max(missing, default=0.0) / idf_top  # the rarest word asked that is not here
        # a word asked that the whole passage lacks is a detail it does not give; one that shares
        # no character with it is not even a rewording of what it says (女性, not 印出来 for 印刷)
        passage = cand.norm.text
        gone = [k for k in focus_w if k not in passage and k not in context]
        f["missing_passage"] = sum(focus_w[k] for k in gone) / focus_total if focus_w else 0.0
        f["missing_alien"] = (sum(focus_w[k] for k in gone if not any(ch in passage for ch in k)) / focus_total
                              if focus_w else 0.0)
        f["unmapped"] = min(1.0, len(q.unmapped) / 4)
        f["lang_en"] = 1.0 if q.lang == "en" else 0.0
        f["length"] = math.log(1 + len(sent)) / 5
        # the kind of answer asked for
        tgt = cand.norm.text[slice(*cand.target)] if cand.target else ""
        if q.is_quantity:
            is_fig = cand.kind == "figure"
            f["quantity_fig"], f["quantity_nofig"] = float(is_fig), float(not is_fig and cand.kind != "field")
            if is_fig:
                rel = (cand.target[0] - cand.start, cand.target[1] - cand.start)
                f.update(_binding(sent, rel, q))
                is_rate = tgt.endswith("%") or "率" in sent[max(0, rel[0] - 6):rel[0]]
                if q.kind == "rate":
                    f["rate_match"], f["rate_count"] = float(is_rate), float(not is_rate)
                    named = set(RATE_WORD.findall(sent[max(0, rel[0] - 8):rel[0]]))
                    if asked_rates and named:  # 办结率 asked; is this figure the 办结率 or the 满意率?
                        f["rate_named"], f["rate_other"] = float(bool(named & asked_rates)), float(not named & asked_rates)
                elif is_rate:
                    f["rate_count"] = 1.0
                if q.kind == "number" and q.unit != "元" and re.search(r"(?:元|万|亿)$", tgt) and \
                        re.search(r"多少[个名位人件项条家所处次部]|几|how many", q.text, re.I):
                    f["unit_mismatch"] = 1.0  # an amount of money for a count asked
                elif asked_units and q.kind == "number":
                    if any(unit_fits(u, tgt) for u in asked_units):
                        f["unit_match"] = 1.0
                    else:
                        f["unit_mismatch"] = 1.0
                digits = re.match(r"[\d.]+", tgt)
                f["in_question"] = float(bool(digits) and digits.group(0).rstrip(".") in q.stated)
                first = FIGURE.search(sent)
                f["fig_first"] = float(first is not None and first.start() == rel[0])
        if titles:  # 《…》 in the question: is this passage the article it names?
            art = squash(c.article or "")
            f["article_match"] = max(SequenceMatcher(None, t, art).ratio() if art else 0.0 for t in titles)
        if q.kind == "who":
            if cand.kind == "figure":
                f["who_name"] = _after_role(sent, cand.target[0] - cand.start, q.roles, c.author)
            else:
                f["who_noname"] = float(cand.kind != "field")
        if q.kind == "date":
            f["date_match"] = float(cand.kind == "figure")
            f["date_full"] = float("日" in tgt)
        if cand.kind == "field":
            f["is_field"] = 1.0
            f["field_match"] = float(bool(cand.label) and _names_field(q.text, cand.label))
        if q.kind == "list":
            item = ENUMERATION.search(sent)
            heading = sent[:item.start()] if item else ""
            f["list_enum"] = 1.0 if item and any(k in heading for k in q.focus) else (0.4 if item else 0.0)
            f["list_seps"] = min(1.0, sent.count("、") / 4)
        if q.kind == "explain":
            f["explain_marker"] = min(1.0, len(METHOD.findall(sent)) / 2)
        # scope: the places, years and period asked
        # the sentence is about a part (a compound, a village, a district) of what was asked
        parts = [m.group(0) for m in NARROWER.finditer(sent)]
        f["narrower"] = float(any(not any(p_ in m or short_place(p_) in m for p_ in q.places) and m not in q.text
                                  for m in parts))
        if q.places:
            where = " ".join(c.places) + (c.article or "") + c.text  # the passage may name the place
            in_s = [p for p in q.places if p in sent or short_place(p) in sent]
            in_c = [p for p in q.places if p in where or short_place(p) in where]
            f["place_sent"] = len(in_s) / len(q.places)
            f["place_chunk"] = len(in_c) / len(q.places)
            f["place_miss"] = float(not in_s and not in_c)  # about none of the places asked
            f["place_other"] = float(bool(c.places) and not any(p == c.places[0] or short_place(p) == short_place(c.places[0])
                                                                for p in q.places) and not in_s)
        if q.years:  # a year the sentence prints overrides the passage's
            # 2022年以来 in a passage of 2024 runs to 2024: each of those years is the sentence's
            printed = {y for year, since in re.findall(r"((?:19|20)\d{2})年(以来|来)?", sent)
                       for y in (range(int(year), max(int(year), c.year or 0) + 1) if since else (int(year),))}
            # an excerpt of a speech is of the year its closing attribution gives: (2017年12月18日在…讲话)
            said = SPOKEN.search(cand.norm.text, cand.end, cand.end + 600) if not printed else None
            ok = [y for y in q.years if y in printed or (c.year == y and not printed) or (said and int(said.group(1)) == y)]
            f["year_match"] = len(ok) / len(q.years)
            f["year_miss"] = float(len(ok) < len(q.years))
        f["year_uncovered"] = float(any(y not in corpus_years for y in q.years))
        f["unknown_place"] = float(bool(q.unknown_places))
        if q.periods:  # the sentence's own period (上半年, …) wins over its article's title
            # a title naming two periods (2024年上半年工作总结暨下半年工作打算) reviews the first and
            # plans the second: a sentence is of the part it is in (part_period)
            named = PERIOD_WORDS.findall(c.article or "")
            article = (cand.period or named[0]) if len(set(named)) > 1 else (c.article or "")
            # 今年以来 in a half-year summary is that half-year: the article's period stands
            here = sent if set(PERIOD_WORDS.findall(sent)) - SO_FAR else sent + article
            hit_p = any(re.search(PERIODS[p], here, re.I) for p in q.periods)
            f["period_hit"] = float(hit_p)
            f["period_miss"] = float(not hit_p and bool(PERIOD_WORDS.search(here)))
        if q.months:  # 1月至7月 asked, 自8月以来 printed
            said = months_named(sent)
            if said and not said & q.months:
                f["period_miss"] = 1.0
        if q.per_unit and q.is_quantity and cand.kind == "figure":  # 人均 asked: a figure per person or item
            f["total_for_mean"] = float(not re.search(r"均|每", sent))  # 人均, 户均, 平均, 每
        if q.anchors and q.is_quantity and cand.kind == "figure":
            f["anchor_miss"] = float(not _anchored(q, sent, cand.target[0] - cand.start, focus_w, context))
    bound = {(c.hit.chunk.id, c.start) for c in cands if c.kind == "figure" and "asked_elsewhere" in c.features
             and not c.features["asked_elsewhere"] and q.asked_verb
             and any(w in c.sentence for w in (q.asked_verb, *VERB_SYNONYMS.get(q.asked_verb, ())))}
    for cand in cands:
        cand.features["dense_gap"] = cand.features["dense"] - best_dense
        cand.features["dense_sent_gap"] = cand.features["dense_sent"] - best_sent
        if cand.features.get("asked_elsewhere") and (cand.hit.chunk.id, cand.start) in bound:
            cand.features["sibling_asked"] = 1.0  # another figure of this sentence is the one asked
        if q.lang == "en":  # an English question's glossary terms are few: the dense side carries it
            cand.features["dense_gap_en"] = cand.features["dense_gap"]


def _anchored(q: Question, sent: str, at: int, focus_w: dict[str, float], context: str) -> bool:
    """Whether a figure answers a question that gives a count of what it asks about (552名群众联络员
    中，女性有多少名; 1518件民情民意中，已解决多少件): the sentence prints that count, and the words
    the question adds to it (女性, 解决) — those the count's own clause lacks — are in the
    figure's clause, so the figure is the part asked and not another figure beside the count."""
    clauses = [(m.start(), m.group(0)) for m in re.finditer(r"[^,;:。、]+", sent)]
    given = [c for _, c in clauses if q.anchors & printed_values(c)]
    if not given:
        return False
    own = next((c for start, c in clauses if start <= at < start + len(c)), "")
    if own in given:
        return True  # the count given and the figure in one clause
    added = [k for k in focus_w if not any(k in c for c in given)]
    # a word the passage's article is about (老龄化 in a report on 人口老龄化) may bind the figure;
    # it need not, when it says what the whole article is about
    return any(k in own for k in added) or all(k in context for k in added)


def _names_field(question: str, label: str) -> bool:
    """Whether the question names the field: its label or another word for it (Chinese words
    as substrings, English ones as whole words)."""
    qs, lowered = squash(question).lower(), question.lower()
    for w in FIELD_WORDS.get(label.lower(), [label.lower()]):
        if w.isascii() and re.search(rf"\b{re.escape(w)}\b", lowered):
            return True
        if not w.isascii() and squash(w) in qs:
            return True
    return False


def _window_spans(norm_text: str, chunk_text: str) -> list[tuple[int, int]]:
    """Where each stored sentence window of the chunk lies in the passage's normalised text."""
    spans, at = [], 0
    for w in sentence_windows(chunk_text):
        i = norm_text.find(w[:20], at)
        if i < 0:
            spans.append((0, len(norm_text)))
            continue
        spans.append((i, i + len(w)))
        at = i + 1
    return spans


def _binding(sentence: str, fig: tuple[int, int], q: Question) -> dict[str, float]:
    """How tightly the figure is bound to the question's nouns and verbs within its clause:
    加装电梯138部 (noun before), 311个村党群服务中心 (noun after), 办结3375条 (verb before)."""
    fs, fe = fig
    cs = max((m.end() for m in re.finditer(r"[,;。:、]", sentence[:fs])), default=0)
    ce = next((m.start() + fe for m in re.finditer(r"[,;。、]", sentence[fe:])), len(sentence))
    clause_before, clause_after = sentence[cs:fs], sentence[fe:ce]
    # the comma clause (、 joins an enumeration, it does not end one): a verb may sit before an
    # enumeration of figures, 已推动4处助老食堂、19处助餐点
    ccs = max((m.end() for m in re.finditer(r"[,;。:]", sentence[:fs])), default=0)
    cce = next((m.start() + fe for m in re.finditer(r"[,;。]", sentence[fe:])), len(sentence))
    verb_zone = sentence[ccs:fs]
    total = sum(q.terms.values()) or 1.0
    # 4处助老食堂: the noun asked printed right after the figure's classifier
    if q.counted:  # the noun the question counts, within a couple of characters after the figure
        right_after = float(q.counted in clause_after[:len(q.counted) + 2])
    else:
        right_after = float(any(clause_after.startswith(k) or clause_after[1:].startswith(k)
                                for k in q.terms if len(k) >= 2 and not k.isdigit()))
    noun = 0.0
    for k, w in q.terms.items():
        near = 0.0
        b = clause_before.rfind(k)
        if b >= 0:
            near = max(0.0, 1.0 - (len(clause_before) - b - len(k)) / 12)
        a = clause_after.find(k)
        if a >= 0:
            near = max(near, 1.0 - a / 8)
        noun += (w / total) * near
    pred = 0.0
    for v in q.predicates:
        forms = {v, *VERB_SYNONYMS.get(v, ())}  # 采用 asked, 采纳 printed
        for stem in forms | {v[:2]}:
            b = verb_zone.rfind(stem)
            if b >= 0:
                pred = max(pred, 1.0 - (len(verb_zone) - b - len(stem)) / 16)
        if clause_after.startswith("被") and any(w in clause_after for w in forms):
            pred = 1.0  # passive, the verb after the figure: 其中4条被省级立法机关采纳
    # the figure's own words: from the previous figure (or the clause start) up to it
    prev = max((m.end() for m in FIGURE.finditer(sentence[:fs])), default=cs)
    own = sentence[max(prev, cs):fs]
    own_cov = sum(w for k, w in q.terms.items() if k in own) / total
    asked = elsewhere = 0.0
    if q.asked:
        asked = 1.0 if q.asked in own else (0.5 if q.asked[:2] in own or q.asked[-2:] in own else 0.0)
    if q.asked_verb:
        # the verb asked binds a figure of another clause: 收集4297条,办结3375条 — 办结多少 (a verb
        # before an enumeration, 召开常委会会议8次、主任会议39次, governs all of it)
        forms = (q.asked_verb, *VERB_SYNONYMS.get(q.asked_verb, ()))
        here = sentence[ccs:cce]
        outside = sentence[:ccs] + "|" + sentence[cce:]
        # The noun asked may be counted by both figures (征集意见建议486条,采纳吸收143条 — 被采用的意见建议):
        # then the verb asked binds the other one only where it comes after this figure's clause;
        # one before it may govern an enumeration (召开党组会议35次,主任会议39次 — 召开主任会议多少次)
        after = sentence[cce:]
        elsewhere = float(not any(w in here for w in forms)
                          and any(w in (after if asked >= 1 else outside) for w in forms))
    return {"bind_noun": noun, "bind_pred": max(0.0, pred), "own_cov": own_cov, "own_asked": asked,
            "noun_right_after": right_after,
            "asked_elsewhere": elsewhere}


def _after_role(sentence: str, at: int, roles: tuple[str, ...], author: str | None) -> float:
    """1 for a name right after an asked title (主任 李杰) or the article's author, 0.5 for a
    name after some other title, 0.2 for any name."""
    if author and any(sentence[at:].startswith(a) for a in author.split()):
        return 1.0
    if roles == ("作者",):
        return 0.0  # the byline is asked for: another name in the text is not the author
    before = sentence[:at].rstrip()
    for r in roles:
        if before.endswith(r) and (r.startswith("副") or not before[:-len(r)].endswith("副")):
            return 1.0
    if re.search(r"(?:主任|书记|主编|编辑|委员|长)$", before):
        return 0.5 if roles else 0.8
    return 0.2


DAY_ASKED = re.compile(DAY.pattern + r"|什么日子|日期", re.I)  # a day asked, as a date question's kind is read


# a question asking for two things (哪两项, which two) and a sentence joining two (A和B, A及B)
PAIR_ASKED = re.compile(r"[两二](?:项|个|类|种|条|件|大|方面)|\b(?:two|both)\b", re.I)
PAIR = re.compile(r"[\u4e00-\u9fff]{2}(?:和|及|与|以及)[\u4e00-\u9fff]{2}")


# two items and "and so on" (消防、食品等安全责任制): a list cut short, not a pair
ITEMS_AND_SO_ON = re.compile(r"、[^,;:。、]{1,24}等")


def _parallel_clauses(sent: str) -> bool:
    """Three or more short clauses in a row (制度优势显著,治理效能提升,经济长期向好,…;
    私人会所不要去,高档娱乐场所不要去,…): items listed by commas, not by 、 or numbers."""
    clauses = [c for c in re.split(r"[,;，；]", sent.rstrip("。!?")) if c.strip()]
    return len(clauses) >= 3 and sum(len(c) <= 14 for c in clauses) >= 3


def eligible(q: Question, cand: Candidate) -> bool:
    """Whether the candidate can be the answer at all: about the place and year asked, and of
    the kind of answer asked (a figure with a fitting unit for how-many, a name for who, a
    date for when). The ranker chooses among these; the rest only show what is nearby."""
    f = cand.features
    if f.get("place_miss", 0) or f.get("year_miss", 0) or f.get("period_miss", 0) or f.get("anchor_miss", 0) \
            or f.get("total_for_mean", 0):
        return False
    if cand.kind == "field" and not f.get("field_match"):
        return False  # a short labelled line, but not the label asked
    if SOURCE_LINE.fullmatch(cand.sentence.strip()) and not OCCASION_ASKED.search(q.text):
        return False  # says when and where a passage was said or printed, not what it says
    if f.get("sibling_asked"):
        return False  # 收集4297条,办结3375条: the verb asked (办结) binds the other figure
    if q.is_quantity:  # a figure the question itself states is what it knows, not what it asks
        return cand.kind in ("figure", "field") and f.get("unit_mismatch", 0) < 1 and not f.get("in_question") and (
            q.kind != "rate" or f.get("rate_match", 0) > 0 or cand.kind == "field")
    if q.kind == "org":  # a named company, hospital, institute… that the question does not name itself
        return cand.kind == "field" or any(m.group(0) not in q.text for m in ORG_NAME.finditer(cand.sentence))
    if q.kind == "where":  # a place, address or institution the question does not name itself
        return cand.kind == "field" or any(m.group(0) not in q.text for rx in (PLACE_NAME, ORG_NAME)
                                           for m in rx.finditer(cand.sentence))
    if q.kind == "list":  # items: an enumeration, a run of 、 or of short clauses, several quoted names, a pair asked
        sent = cand.sentence
        # the set the question names (“三大核心板块”), where the sentence names it too: its items follow it
        named = [n for n in re.findall(r"“([^”]{2,12})”", q.text) if f"“{n}”" in sent]
        if named:
            sent = sent[sent.index(f"“{named[0]}”") + len(named[0]) + 2:]
        return bool(ENUMERATION.search(sent)) or sent.count("、") >= 2 or len(re.findall(r"“[^”]{2,}”", sent)) >= 2 \
            or bool(ITEMS_AND_SO_ON.search(sent)) or _parallel_clauses(sent) or (bool(PAIR_ASKED.search(q.text)) and bool(PAIR.search(sent)))
    if q.kind in ("who", "date"):
        if cand.kind not in ("figure", "field"):
            return False
        if q.kind == "who" and q.roles and cand.kind == "figure" and f.get("who_name", 0) < 1.0:
            return False  # a name, but not after the title asked
        if q.roles == ("作者",) and "《" in q.text and f.get("article_match", 0) < 0.6:
            return False  # the byline of another article
        return not (q.kind == "date" and DAY_ASKED.search(q.text) and cand.kind == "figure" and not f.get("date_full"))
    return True


def narrow(q: Question, fit: list[Candidate]) -> list[Candidate]:
    """Among the candidates that can answer (best first), the ones of the strongest form when
    the question's form asks for it: for a list, an enumeration under a heading that names what
    is asked (二、存在问题(一)…) if the passages hold one; for a count, the figure of the best
    sentence that the noun asked follows right away."""
    if q.kind == "list":
        headed = [c for c in fit if c.features.get("list_enum") == 1.0]
        if headed:
            return headed
    if q.is_quantity and fit and not fit[0].features.get("noun_right_after"):
        # 4处助老食堂、19处助餐点 — 多少处助老食堂: in the best sentence, the figure the noun asked
        # follows right away is the one counted; it takes the sentence's probability
        best = fit[0]
        bound = [c for c in fit if (c.hit.chunk.id, c.start) == (best.hit.chunk.id, best.start)
                 and c.features.get("noun_right_after")]
        if len(bound) == 1:
            bound[0].p = max(bound[0].p, best.p)
            return [bound[0], *[c for c in fit if c is not bound[0]]]
    return fit


def is_lookup(q: Question, cand: Candidate) -> bool:
    """A value the publication labels as what was asked: a masthead field whose label the
    question names (邮编 for 邮政编码), the byline of the article the question names, or the name
    after the title asked where the place asked is named. These are read off, not inferred, so
    they need no ranker confidence."""
    f = cand.features
    if cand.kind == "field" and f.get("field_match"):
        return True
    if q.roles == ("作者",):
        return cand.kind == "figure" and f.get("who_name", 0) >= 1.0 and f.get("article_match", 0) >= 0.8
    # 汝阳县人大常委会党组书记、主任李杰: the name printed right after the title asked, in a
    # sentence that names the place asked
    return (q.kind == "who" and bool(q.roles) and bool(q.places) and cand.kind == "figure"
            and f.get("who_name", 0) >= 1.0 and f.get("place_sent", 0) >= 1.0)


def vectorise(cands: list[Candidate]) -> np.ndarray:
    rows = [[c.features.get(n, 0.0) for n in FEATURES] for c in cands]
    return np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))
