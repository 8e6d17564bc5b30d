"""jieba tokens for BM25 and keyword matching: domain terms kept whole, figures kept with their
units ("138部" next to "138"), punctuation and function words dropped."""

from __future__ import annotations

import functools
import logging
import re
import threading

import jieba

from .normalize import nfkc

# Terms of congress work that jieba would otherwise cut apart.
DOMAIN_TERMS = [
    "人大常委会", "常委会", "人大代表", "代表联络站", "联络站", "流动工作站", "人大代表流动工作站",
    "加装电梯", "老旧小区", "飞线", "专题询问", "执法检查", "主任会议", "常委会会议", "党组会议",
    "专项工作报告", "代表建议", "议案", "任免", "人次", "基层立法联系点", "立法信息采集点",
    "代表之家", "家站点", "数字人大", "满意度测评", "视察调研", "履职考评", "民生实事",
    "票决制", "古树名木", "牡丹", "治未病", "养老服务", "助老食堂", "助餐点", "旁听庭审",
    "三个微平台", "双联系", "第一议题", "一府一委两院", "两代表一委员", "全过程人民民主",
    "乡村振兴", "高质量发展", "民法典", "半失能", "失能", "老年人", "联动监督", "清单式",
    "洛阳人大", "洛龙区", "新安县", "中原区", "鲅鱼圈区", "盖州市", "大石桥市", "老边区",
    "站前区", "西市区", "汝阳县", "瀍河", "宜阳县", "营口市", "洛阳市", "郑州市",
]
STOPWORDS = set(
    "的 了 和 与 及 是 在 有 对 为 等 中 将 把 被 从 以 并 也 都 而 或 这 那 其 之 于 上 下 "
    "年 月 日 个 多少 几 什么 哪些 哪个 如何 怎样 怎么 是否 吗 呢 啊 共 一共 总共 请问 请 "
    "情况 方面 工作 开展 进行".split()
)
UNIT = re.compile(r"^(?:[部个次人件项条家名位所处株场篇本栋户岁元亿万千百张台辆座间期届批类余多]|人次|件次|万元|亿元|公里|平方米|%)")
NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
QUESTION_WORD = re.compile(r"^(?:多少|几)\w?$")
_WORD = re.compile(r"\w", re.UNICODE)

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None


def tokenizer() -> jieba.Tokenizer:
    """One jieba tokenizer with the domain dictionary, built once per process."""
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            jieba.setLogLevel(logging.WARNING)
            t = jieba.Tokenizer()
            t.initialize()
            for term in DOMAIN_TERMS:
                t.add_word(term, freq=200000)
            _tokenizer = t
    return _tokenizer


def tokens(text: str, keep_stopwords: bool = False) -> list[str]:
    """Search-mode jieba tokens (compounds and their parts), figures bound to their units."""
    text = nfkc(text).lower()
    raw = [w.strip() for w in tokenizer().cut_for_search(text)]
    raw = [w for w in raw if w and _WORD.search(w)]
    out: list[str] = []
    for i, w in enumerate(raw):
        if keep_stopwords or not (w in STOPWORDS or QUESTION_WORD.match(w)):
            out.append(w)
        if NUMBER.match(w) and i + 1 < len(raw):
            m = UNIT.match(raw[i + 1])
            if m:
                out.append(w + m.group(0))
    return out


def keywords(text: str) -> list[str]:
    """Distinct content tokens of a question, longest first."""
    seen = dict.fromkeys(t for t in tokens(text) if len(t) > 1 or NUMBER.match(t) or "\u4e00" <= t <= "\u9fff")
    return sorted(seen, key=len, reverse=True)


_pos_tokenizer = None


def _pos():
    """jieba's POS tagger over the shared tokenizer, made once."""
    global _pos_tokenizer
    import jieba.posseg

    base = tokenizer()  # before the lock: tokenizer() takes it too
    with _lock:
        if _pos_tokenizer is None:
            _pos_tokenizer = jieba.posseg.POSTokenizer(base)
    return _pos_tokenizer


def dictionary_tag(word: str) -> str | None:
    """The part of speech jieba's dictionary gives a word (采纳 → v, 电梯 → n), None for a word
    it lacks: how an English question's verbs are told apart once they are Chinese words."""
    return _pos().word_tag_tab.get(word)


@functools.lru_cache(maxsize=50_000)
def person_names(text: str) -> tuple[tuple[int, int], ...]:
    """Spans of the personal names jieba tags in ``text`` (nr). A surname cut off from its
    given name (李 + 保国) is joined back. Cached: the same passages come back for many
    questions, and POS tagging is the slowest step of answering a who-question."""
    pos = _pos()
    with _lock:
        words = [(w.word, w.flag) for w in pos.cut(text)]
    spans, at, i = [], 0, 0
    while i < len(words):
        word, flag = words[i]
        start, end = at, at + len(word)
        if flag.startswith("nr"):
            if len(word) == 1 and i + 1 < len(words) and _is_given_name(words[i + 1][0]):
                end += len(words[i + 1][0])
                i += 1
            if 2 <= end - start <= 4 and _hanzi(text[start:end]):
                spans.append((start, end))
        at = end
        i += 1
    return tuple(spans)


def _is_given_name(word: str) -> bool:
    return 1 <= len(word) <= 2 and _hanzi(word)


def _hanzi(text: str) -> bool:
    """Only Chinese ideographs: what a personal name is written in."""
    return all("\u4e00" <= ch <= "\u9fff" for ch in text)
