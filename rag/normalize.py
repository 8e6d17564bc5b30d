"""Normalised text that remembers, for every character, where it came from in the raw file.

Matching and embedding want clean text: NFKC, lines broken at column width joined back into
paragraphs, no spaces inside figures ("138 部" → "138部"), no page-continuation marks.
Citations want raw offsets. ``NormText`` gives both: ``offsets[i]`` is the raw index of
normalised character ``i``, so a normalised span maps back to ``raw[start:end]``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PAGE_MARK = re.compile(r"[（(]\s*[上下]\s*[转接]\s*第?\s*(\d+)\s*页\s*[)）]")
# After NFKC: characters that end a sentence or a clause block, so a line ending in one is a
# real paragraph end and not a break at column width.
TERMINAL = set("。!?;:…”’)」』》】\"'")
CLAUSE_PUNCT = set("。,、;:!?“”《》()")


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def squash(s: str) -> str:
    """NFKC with all whitespace removed: how a quote is compared with normalised text."""
    return re.sub(r"\s", "", nfkc(s or ""))


@dataclass(frozen=True)
class NormText:
    text: str
    offsets: tuple[int, ...]  # raw index of each normalised character

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Raw [start, end) covering normalised [start, end)."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"bad normalised span {start}:{end} of {len(self.text)}")
        return self.offsets[start], self.offsets[end - 1] + 1


def _normalise_line(raw: str, start: int, end: int) -> tuple[list[str], list[int]]:
    """NFKC each character of raw[start:end], dropping page marks and spaces that only
    separate CJK characters or figures from their units."""
    chars: list[str] = []
    offs: list[int] = []
    line = raw[start:end]
    removed = [(m.start() + start, m.end() + start) for m in PAGE_MARK.finditer(line)]
    pending_space = -1
    i = start
    while i < end:
        if removed and removed[0][0] == i:
            i = removed.pop(0)[1]
            continue
        ch = raw[i]
        if ch.isspace():
            if chars and pending_space < 0:
                pending_space = i
            i += 1
            continue
        n = nfkc(ch)
        if pending_space >= 0 and n and chars:
            before, after = chars[-1], n[0]
            if before.isascii() and before.isalnum() and after.isascii() and after.isalnum():
                chars.append(" ")
                offs.append(pending_space)
        pending_space = -1
        for c in n:
            if c.isspace():
                continue
            chars.append(c)
            offs.append(i)
        i += 1
    return chars, offs


def _is_heading_like(line: str) -> bool:
    return len(line) <= 30 and not any(c in CLAUSE_PUNCT for c in line)


def normalize_span(raw: str, start: int = 0, end: int | None = None) -> NormText:
    """Normalise raw[start:end] into paragraphs separated by "\\n"."""
    end = len(raw) if end is None else end
    chars: list[str] = []
    offs: list[int] = []
    prev_line = ""
    pos = start
    while pos < end:
        nl = raw.find("\n", pos, end)
        line_end = end if nl < 0 else nl
        lc, lo = _normalise_line(raw, pos, line_end)
        if lc:
            if chars:
                if prev_line[-1] in TERMINAL or _is_heading_like(prev_line):
                    chars.append("\n")
                    offs.append(offs[-1] + 1)
            chars.extend(lc)
            offs.extend(lo)
            prev_line = "".join(lc)
        pos = line_end + 1
    return NormText("".join(chars), tuple(offs))
