"""Answers with verified citations: pick the sentence (and the figure in it) that answers the
question, check the question's place and year against the passage, refuse when unsupported.

The answer is always text cut from the cited passage, so it never states what the source does
not say; every citation is checked against the corpus file before it is returned.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

from .config import Settings
from .corpus import load_corpus
from .glossary import GLOSSARY, expand_query, glossary_coverage, is_english, to_chinese_terms
from .normalize import NormText, normalize_span, squash
from .retrieve import QueryError, Retriever
from .schema import Answer, Chunk, Citation, Hit
from .tokenize import keywords, person_names, tokenizer

log = logging.getLogger("rag.answer")

UNITS = "人次|件次|万元|亿元|公里|平方米|%|[部个次人件项条家名位所处株棵场篇本份栋户岁元张台辆座期届批类轮天年万]"
FIGURE = re.compile(
    rf"(?:\d+(?:\.\d+)?(?:万|亿)?(?:余|多)?(?:{UNITS})|[一二三四五六七八九十两]+(?:{UNITS}))"
)
ASKED_UNIT = re.compile(rf"(?:多少|几)({UNITS})")
EN_UNITS = [
    (r"person-times|person times", "人次"), (r"\btimes\b|\bsessions\b|\bmeetings\b", "次"),
    (r"percent|percentage|\brate\b", "%"), (r"elevators|lifts", "部"), (r"kilomet", "公里"),
    (r"\byuan\b", "元"), (r"\btrees\b", "株"), (r"\bitems\b|\bsuggestions\b|\bopinions\b", "条"),
]
QUANTITY = re.compile(r"多少|几[个次部人件项条家名位所处株场篇本栋户岁天年]?|数量|比例|比率|占比|百分|[^\w]率|率[是为]|how many|how much|what percentage|what proportion|number of", re.I)
LIST = re.compile(r"哪些|哪几|有什么|包括什么|包含|which measures|what measures|what are the|list", re.I)
EXPLAIN = re.compile(r"如何|怎样|怎么|为什么|为何|why|how does|how do|how did|how is|how are|how was", re.I)
WHO = re.compile(r"是谁|谁[是写作]|哪位|作者|撰稿|\bwho\b|\bauthor\b|\bwrote\b", re.I)
# the titles a who-question asks after; a longer one first, so 副主任 is not read as 主任
ROLES = ("党组书记", "副主任", "主任", "秘书长", "副主编", "主编", "书记", "主席", "县长", "区长", "市长",
         "局长", "院长", "部长", "组长", "委员")
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?:年|\b)")
GENERIC_PLACES = {"城市", "全市", "本市", "市区", "城区", "小区", "社区", "辖区", "园区", "景区", "街区",
                  "片区", "地区", "山区", "新区", "全区", "全县", "本区", "本县", "县区", "各区", "各县",
                  "县市区", "市县区", "全省", "各省", "城市区", "老旧小区"}
# classifiers a question may use for what the text counts with another
UNIT_ALIASES = {"位": "名人", "名": "位人", "人": "名位", "棵": "株", "株": "棵", "台": "部", "部": "台",
                "个": "处家所项座", "场": "次", "次": "场"}
# an item of an enumeration: (一) (二)…, 一是 二是…, 1. 2.…
ENUMERATION = re.compile(r"[(（][一二三四五六七八九十]{1,2}[)）]|(?<![\u4e00-\u9fff])[一二三四五六七八九十]是|(?<![\d.])\d{1,2}[.、](?!\d)")
SENTENCE = re.compile(r"[^。!?;\n]+[。!?;]?")
CLAUSE = re.compile(r"[^,;:。!?\n]+[,;:。!?]?")
# A capitalised name after "in/of/did/…" in an English question: a place the glossary must know.
EN_PLACE = re.compile(r"\b(?:in|of|did|does|has|for|at) ([A-Z][a-z]+(?:'[a-z]+(?<!'s))?)")
NOT_FOUND = "出版物中没有找到这个问题的答案。"


@dataclass
class Candidate:
    hit: Hit
    norm: NormText
    start: int  # normalised span of the sentence within norm
    end: int
    score: float
    figure: tuple[int, int] | None = None
    in_scope: bool = True
    on_topic: bool = True  # shares a word with the question besides its places and years

    @property
    def sentence(self) -> str:
        return self.norm.text[self.start:self.end]


class Answerer:
    """Retrieval + answer selection over one loaded index; built once, shared by requests."""

    def __init__(self, settings: Settings, retriever: Retriever | None = None):
        self.settings = settings
        self.retriever = retriever or Retriever(settings)
        self.texts = {d.doc_id: d.text for d in load_corpus(settings.corpus_dir, skip_bad=True).documents}
        self.places = self._gazetteer(self.retriever.index.chunks)
        self.corpus_text = "".join(c.text for c in self.retriever.index.chunks)
        self._df: dict[str, int] = {}
        self.years = {c.year for c in self.retriever.index.chunks if c.year}

    @staticmethod
    def _gazetteer(chunks: list[Chunk]) -> dict[str, str]:
        """Every place name of the corpus and its short form (洛龙区, 洛龙) → full name."""
        names: dict[str, str] = {}
        for c in chunks:
            for p in c.places:
                names[p] = p
                short = re.sub(r"(省|市|区|县|旗)$", "", p)
                if len(short) >= 2:
                    names.setdefault(short, p)
        return names

    # ------------------------------------------------------------------ question analysis

    def validate(self, question: str) -> str:
        q = (question or "").strip()
        if not q:
            raise QueryError("question is empty")
        if len(q) > self.settings.max_question_chars:
            raise QueryError(f"question is {len(q)} characters; the limit is {self.settings.max_question_chars}")
        return q

    def scope(self, question: str) -> tuple[list[str], list[str], list[int]]:
        """(places of the corpus named, places not in the corpus named, years named)."""
        text = expand_query(question)
        known, unknown = [], []
        for name in sorted(self.places, key=len, reverse=True):
            if name in text and not any(name in k for k in known):
                full = self.places[name]
                if full not in known:
                    known.append(full)
        for tok in tokenizer().cut(text):
            if len(tok) >= 3 and tok[-1] in "省市县区" and tok not in GENERIC_PLACES and not any(
                tok in k for k in known
            ):
                if tok in self.corpus_text:
                    known.append(tok)  # a place the publications write about, e.g. 汝阳县
                else:
                    unknown.append(tok)
        if is_english(question):
            unknown += [w for w in EN_PLACE.findall(question) if w.lower() not in GLOSSARY]
        years = sorted({int(y) for y in YEAR.findall(text)})
        return known, unknown, years

    @staticmethod
    def kind(question: str) -> str:
        if QUANTITY.search(question):
            return "number"
        if WHO.search(question):
            return "who"
        if EXPLAIN.search(question):
            return "explain"
        if LIST.search(question):
            return "list"
        return "fact"

    @staticmethod
    def asked_roles(question: str) -> list[str]:
        """The titles a who-question names (主任, 主编, …); 主任 only where not part of 副主任."""
        text = expand_query(question)
        roles = [r for r in ROLES if r in text]
        return [r for r in roles if not any(r in o and r != o and text.count(r) == text.count(o) for o in roles)]

    @staticmethod
    def _person(sentence: str, roles: list[str], authors: list[str]) -> tuple[int, int, float] | None:
        """The name a who-question asks for: one right after an asked title (主任 李杰), or the
        article's author; else, with no title asked, any name."""
        names = person_names(sentence)
        for s, e in names:
            if sentence[s:e] in authors:
                return s, e, 0.4
            before = sentence[:s].rstrip()
            for r in roles:
                if before.endswith(r) and (r.startswith("副") or not before[:-len(r)].endswith("副")):
                    return s, e, 0.4
        if names and not roles:
            return names[0][0], names[0][1], 0.1
        return None

    @staticmethod
    def asked_unit(question: str) -> str | None:
        m = ASKED_UNIT.search(question)
        if m:
            return m.group(1)
        for pattern, unit in EN_UNITS:
            if re.search(pattern, question, re.I):
                return unit
        return None

    # ------------------------------------------------------------------ scoring

    def _weights(self, question: str) -> dict[str, float]:
        text = question
        if is_english(question):
            text = to_chinese_terms(question)
        kws = [k for k in keywords(text) if not k.isascii() or k.isdigit()]
        n = len(self.retriever.index.chunks)
        weights = {}
        for k in kws:
            if k not in self._df:
                self._df[k] = sum(k in c.text for c in self.retriever.index.chunks)
            # rare words say more about which sentence answers than 人大常委会 does
            weights[k] = math.log((n + 1) / (self._df[k] + 1)) + 0.2 * math.log(len(k) + 1)
        return weights

    def _in_scope(self, chunk: Chunk, sentence: str, places: list[str], years: list[int]) -> bool:
        for p in places:
            short = re.sub(r"(省|市|区|县|旗)$", "", p)
            where = " ".join(chunk.places) + (chunk.article or "") + sentence
            if p not in where and short not in where:
                return False
        for y in years:
            if chunk.year != y and f"{y}年" not in sentence:
                return False
        return True

    def candidates(self, question: str, hits: list[Hit], places, years, qkind, unit) -> list[Candidate]:
        weights = self._weights(question)
        roles = self.asked_roles(question) if qkind == "who" else []
        topical = [k for k in weights if not k.isdigit() and not any(k in p for p in self.places)]
        total = sum(weights.values()) or 1.0
        out: list[Candidate] = []
        for hit in hits:
            c = hit.chunk
            norm = normalize_span(self.texts[c.doc_id], c.start, c.end)
            context = " ".join([c.article or "", *c.places, f"{c.year}年" if c.year else ""])
            for m in SENTENCE.finditer(norm.text):
                s, e = m.start(), m.end()
                while s < e and norm.text[s].isspace():
                    s += 1
                sent = norm.text[s:e]
                if len(sent.strip()) < 4:
                    continue
                covered = sum(w for k, w in weights.items() if k in sent)
                ctx = sum(w for k, w in weights.items() if k not in sent and k in context)
                score = (covered + 0.5 * ctx) / total + 0.15 / hit.rank
                cand = Candidate(hit, norm, s, e, score)
                cand.on_topic = any(k in sent or k in context for k in topical)
                if qkind in ("number", "who"):  # the figure or the name asked for, with its bonus
                    found = (self._best_figure(sent, weights, unit, total) if qkind == "number"
                             else self._person(sent, roles, (c.author or "").split()))
                    if found is None:
                        cand.score -= 0.5 if qkind == "number" else 0.3
                    else:
                        cand.figure = (s + found[0], s + found[1])
                        cand.score += found[2]
                elif qkind == "list":
                    item = ENUMERATION.search(sent)
                    heading = sent[:item.start()] if item else ""
                    if item and any(k in heading for k in topical):
                        cand.score += 0.35  # 二、存在问题(一)…: a heading naming what is asked, then items
                    elif item or sent.count("、") >= 2:
                        cand.score += 0.1
                cand.in_scope = self._in_scope(c, sent, places, years)
                for p in places:
                    if p in sent or re.sub(r"(省|市|区|县|旗)$", "", p) in sent or c.places[:1] == (p,):
                        cand.score += 0.1  # the passage is about the place asked, not a part of it
                    elif c.places and c.places[0] != p and p in c.places:
                        cand.score -= 0.1  # a county's figure when the city was asked
                out.append(cand)
        out.sort(key=lambda x: -x.score)
        return out

    @staticmethod
    def _best_figure(sentence: str, weights: dict[str, float], unit: str | None, total: float):
        """The figure bound to the noun asked about: the one right after a question keyword,
        with the unit the question asks for."""
        best = None
        for m in FIGURE.finditer(sentence):
            fs, fe = m.span()
            if re.match(r"(?:19|20)\d{2}年", m.group(0)):
                continue  # a year is a date, not the quantity asked for
            if sentence[fs - 1:fs] == "第" or (
                    re.search(r"届[^,;、。]{0,6}$", sentence[max(0, fs - 8):fs]) and sentence.startswith("会议", fe)):
                continue  # 第三次, 十六届人大五次会议: an ordinal naming a session, not a count
            bonus = 0.0
            for k, w in weights.items():
                # the noun counted comes before (加装电梯138部) or after (311个村党群服务中心)
                before, after = sentence.rfind(k, 0, fs), sentence.find(k, fe)
                near = 0.0
                if before >= 0 and not re.search(r"[,;、。]", sentence[before + len(k):fs]):
                    near = max(0.0, 1.0 - (fs - before - len(k)) / 12)
                if after >= 0 and not re.search(r"[,;、。]", sentence[fe:after]):
                    near = max(near, 1.0 - (after - fe) / 12)
                bonus += 0.3 * (w / total) * near
            if unit:
                said = m.group(0)
                if said.endswith(unit) or any(said.endswith(u) for u in UNIT_ALIASES.get(unit, "")):
                    bonus += 0.25
                else:  # 个 is the catch-all classifier; a 届 is never the 部 asked for
                    bonus -= 0.05 if unit == "个" else 0.3
            if best is None or bonus > best[2]:
                best = (fs, fe, bonus)
        return best

    # ------------------------------------------------------------------ answer text

    @staticmethod
    def _following_items(text: str, end: int, limit: int = 220) -> int:
        """The end of the sibling items (二)…, 二是… after ``end`` in the passage: a list answer
        names every item the passage holds, each by its first sentence, within ``limit``."""
        start = end
        for m in ENUMERATION.finditer(text, end):
            if m.start() - start > limit:
                break
            stop = SENTENCE.match(text, m.end())
            end = stop.end() if stop else m.end()
        return end

    @staticmethod
    def _answer_span(cand: Candidate, qkind: str) -> tuple[int, int]:
        """Normalised span of the answer: the clause holding the figure, else the sentence."""
        text = cand.norm.text
        if cand.figure:
            for m in CLAUSE.finditer(text, cand.start, cand.end):
                if m.start() <= cand.figure[0] < m.end():
                    s, e = m.start(), m.end()
                    if e - s < 8:  # too short to say what the figure counts: take the sentence
                        return cand.start, cand.end
                    return s, e
        s, e = cand.start, cand.end
        if qkind in ("fact", "number", "who") and e - s > 150:
            e = s + 150
            while e < cand.end and not re.match(r"[,;、。]", text[e - 1]):
                e += 1
        return s, e

    def _citation(self, hit: Hit, norm: NormText, span: tuple[int, int] | None, score: float) -> Citation | None:
        """The passage (widened to the whole chunk) as a citation, checked against the file."""
        c = hit.chunk
        start, end = c.start, c.end
        if span is not None:
            rs, re_ = norm.raw_span(*span)
            start, end = min(start, rs), max(end, re_)
        text = self.texts.get(c.doc_id)
        quote = text[start:end] if text is not None else None
        if quote is None or end > len(text) or squash(c.text) not in squash(quote):
            log.warning("dropped citation %s %s-%s: does not verify against the file", c.doc_id, start, end)
            return None
        return Citation(c.doc_id, c.title, c.article, c.date, start, end, quote, round(float(score), 4))

    def verify(self, citation: Citation) -> bool:
        text = self.texts.get(citation.doc_id)
        return text is not None and text[citation.start:citation.end] == citation.quote

    # ------------------------------------------------------------------ the pipeline

    def ask(self, question: str, top_k: int = 5, filters: dict | None = None) -> Answer:
        t0 = time.perf_counter()
        q = self.validate(question)
        if not 1 <= top_k <= self.settings.max_top_k:
            raise QueryError(f"top_k must be between 1 and {self.settings.max_top_k}, got {top_k}")
        places, unknown, years = self.scope(q)
        qkind, unit = self.kind(q), self.asked_unit(q)
        depth = max(top_k, 16)
        hits = self.retriever.search(q, k=depth, filters=filters)
        if places and not filters:  # make sure every place named has its own passages
            for p in places:
                hits = _merge(hits, self.retriever.search(q, k=4, filters={"place": p}))
        cands = self.candidates(q, hits, places, years, qkind, unit)
        found, text, chosen = self._decide(q, cands, places, unknown, years, qkind)
        citations: list[Citation] = []
        seen: set[str] = set()
        for cand, span in chosen:
            cit = self._citation(cand.hit, cand.norm, span, cand.score)
            if cit and cand.hit.chunk.id not in seen and self.verify(cit):
                citations.append(cit)
                seen.add(cand.hit.chunk.id)
        for h in hits:
            if len(citations) >= min(3, top_k):
                break
            if h.chunk.id in seen:
                continue
            cit = self._citation(h, None, None, h.score)
            if cit and self.verify(cit):
                citations.append(cit)
                seen.add(h.chunk.id)
        if found and not citations:
            found, text = False, NOT_FOUND
        return Answer(q, text, found, citations[:3], (time.perf_counter() - t0) * 1000, hits)

    def _decide(self, q, cands, places, unknown, years, qkind):
        """(found, answer text, [(candidate, answer span)])."""
        if unknown:
            names = "、".join(unknown)
            return False, f"出版物中没有关于{names}的内容。", [(c, None) for c in cands[:1]]
        if is_english(q):
            share, unknown_words = glossary_coverage(q)
            if share <= 0.5:  # no Chinese terms for most of what is asked: any answer is a guess
                return (False, "无法把这个英文问题的主要词语对应到出版物的中文术语（"
                        f"{', '.join(unknown_words)}），请用中文提问。", [(c, None) for c in cands[:1]])
        missing = [y for y in years if y not in self.years]
        if missing and not any(c.in_scope for c in cands[:20]):
            have = "、".join(str(y) for y in sorted(self.years))
            best = cands[0] if cands else None
            return (False, f"出版物中没有{'、'.join(map(str, missing))}年的相关内容；语料只涵盖{have}年。",
                    [(best, None)] if best else [])
        threshold = self.settings.refusal_threshold
        if len(places) >= 2 and qkind in ("number", "fact", "who"):
            parts, chosen = [], []
            for p in places:
                best = next((c for c in cands if self._in_scope(c.hit.chunk, c.sentence, [p], years)), None)
                if best and best.score >= threshold:
                    span = self._answer_span(best, qkind)
                    parts.append(f"{p}：{best.norm.text[span[0]:span[1]].strip()}")
                    chosen.append((best, span))
            if chosen:
                return True, "；".join(parts), chosen
        in_scope = [c for c in cands if c.in_scope and c.on_topic]
        if not in_scope or in_scope[0].score < threshold:
            best = cands[0] if cands else None
            if best and best.score >= threshold and (places or years) and best.on_topic and not best.in_scope:
                span = self._answer_span(best, qkind)
                c = best.hit.chunk
                where = f"{c.place}{c.year or ''}年" if c.year else c.place
                return (False, f"出版物中没有所问地区或年份的这一数字；语料中只有{where}的：{best.norm.text[span[0]:span[1]].strip()}",
                        [(best, span)])
            return False, NOT_FOUND, [(best, None)] if best else []
        best = in_scope[0]
        span = self._answer_span(best, qkind)
        chosen = [(best, span)]
        text = best.norm.text[span[0]:span[1]].strip()
        if qkind == "list" and ENUMERATION.search(best.sentence):
            end = self._following_items(best.norm.text, span[1])
            span = (span[0], end)
            text = best.norm.text[span[0]:end].strip()
            chosen = [(best, span)]
        elif qkind in ("explain", "list") and len(text) < 60:
            nxt = next((c for c in in_scope[1:3] if c.hit.chunk.id == best.hit.chunk.id and c.start >= span[1]), None)
            if nxt:
                text = best.norm.text[span[0]:nxt.end].strip()
                span = (span[0], nxt.end)
                chosen = [(best, span)]
        return True, text, chosen


def _merge(a: list[Hit], b: list[Hit]) -> list[Hit]:
    seen = {h.chunk.id for h in a}
    out = list(a)
    for h in b:
        if h.chunk.id not in seen:
            out.append(Hit(h.chunk, h.score, len(out) + 1, h.sources))
            seen.add(h.chunk.id)
    return out


def highlight(quote: str, answer: str, ansi: bool = False) -> str:
    """The quote with the answer's figures marked (【…】, or bold on a terminal)."""
    marks = [m.group(0) for m in FIGURE.finditer(answer)] if answer else []
    out = quote.replace("\n", " ")
    for fig in sorted(set(marks), key=len, reverse=True):
        pattern = r"\s*".join(map(re.escape, fig))
        out = re.sub(pattern, lambda m: f"\033[1m{m.group(0)}\033[0m" if ansi else f"【{m.group(0)}】", out, count=1)
    return out
