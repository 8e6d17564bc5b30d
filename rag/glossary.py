"""A bilingual glossary of the domain, used to turn an English question into Chinese search terms.

No retriever here handles English questions over Chinese text well (DESIGN.md), so an English
question is expanded with the Chinese terms of the words it contains.
"""

from __future__ import annotations

import re
from pathlib import Path


def _load(path: Path) -> dict[str, str]:
    """English phrase → Chinese terms, from a tab-separated data file next to this module."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            en, zh = line.split("\t", 1)
            out[en.strip().lower()] = zh.strip()
    return out


def _key(phrase: str) -> str:
    """A phrase without its possessive marks: "director's meeting" → "director meeting"."""
    return re.sub(r"'s\b|(?<=s)'(?![a-z])", "", phrase.lower())


GLOSSARY: dict[str, str] = _load(Path(__file__).with_name("data") / "glossary.tsv")
_BY_KEY = {_key(p): zh for p, zh in GLOSSARY.items()}
# each word of a phrase as written or possessive ("directors' meetings" meets "director's meeting",
# "deputies homes" meets "deputies' homes"); the phrase itself may be plural
_FORMS = {k: r"\s+".join(re.escape(w) + r"(?:'s|s'|')?" for w in k.split())
          for k in sorted(_BY_KEY, key=len, reverse=True)}
_PATTERN = re.compile(r"(?<![a-z])(" + "|".join(_FORMS.values()) + r")(?:s|es)?(?![a-z])", re.IGNORECASE)


def _entry(matched: str) -> str:
    """The glossary's Chinese for the phrase ``_PATTERN`` matched (its group 1)."""
    k = _key(matched)
    if k not in _BY_KEY:  # "directors' meeting": its key keeps the s, the entry's has none
        k = next(k for k, form in _FORMS.items() if re.fullmatch(form, matched, re.IGNORECASE))
    return _BY_KEY[k]


def is_english(text: str) -> bool:
    letters = sum(c.isascii() and c.isalpha() for c in text)
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in text)
    return letters > 3 * max(cjk, 1)


def to_chinese_terms(text: str) -> str:
    """Chinese terms for the glossary phrases in an English text, plus any figures it names."""
    terms: list[str] = []
    lowered = text.lower()
    for m in _PATTERN.finditer(lowered):
        terms.extend(_entry(m.group(1)).split())
    for year in re.findall(r"\b(?:19|20)\d{2}\b", text):
        terms.append(f"{year}年")
    for age in re.findall(r"\b(\d{1,3})(?: years old| years)? (?:and|or) (?:over|above|older)\b", lowered):
        terms.append(f"{age}岁以上")
    for age in re.findall(r"\b(?:over|above) (?:the age of )?(\d{1,3})\b(?! percent| %)", lowered):
        terms.append(f"{age}岁以上")
    return " ".join(dict.fromkeys(terms))


def expand_query(question: str) -> str:
    """The question itself, with Chinese terms appended when it is English."""
    if not is_english(question):
        return question
    zh = to_chinese_terms(question)
    return f"{question} {zh}".strip()


# words of an English question that carry no topic
_FUNCTION_WORDS = set("""a an the how many much what which who whom whose when where why is are was were be been
being do does did done has have had in on of for to from by with at as and or but its it their there this that
these those any all each per into about up out over under than then so such can could will would should may
might must shall our your his her they them we you i me my he she also not no yes total number amount
use used using live lives according after before most now get got make made far back one two three
several every since during through among whereby while within without via already still just only
more less least other another same both either neither ever year years""".split())


def glossary_coverage(text: str) -> tuple[float, list[str]]:
    """The share of an English question's topic words the glossary knows, and the ones it
    does not. A question whose words are mostly unknown has no Chinese terms to search for,
    so an answer to it would be a guess."""
    lowered = text.lower()
    known = [m.span(1) for m in _PATTERN.finditer(lowered)]
    words = [(m.start(), m.group(0)) for m in re.finditer(r"[a-z][a-z'-]*", lowered)]
    topic = [(at, w) for at, w in words if w not in _FUNCTION_WORDS and len(w) > 2]
    unknown = [w for at, w in topic if not any(s <= at < e for s, e in known)]
    return (1 - len(unknown) / len(topic) if topic else 1.0), unknown
