"""The publications' Chinese in pinyin, for English questions that name people and places in
romanisation (Lei Xueqin → 雷雪芹, Wangcheng → 王城).

The table is flat arrays, built with the index and memory-mapped by each server process: the
distinct runs of Chinese one character per slot (0 between runs), each slot's syllable as a
number, and how often its run occurs. As Python lists of strings the same table took 0.5 GB and
13 s per worker at 100k passages; as arrays it is 14 bytes a character, shared by the workers,
and a lookup reads only the slots of the name's first syllable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import numpy as np

RUN = re.compile(r"[\u4e00-\u9fff]+")
# the first character of a place word: 城 in 隋唐城, 公 in 王城公园
PLACE_WORD_START = set("省市区县镇乡村街城公小社路河山湖园")
FILES = ("chars", "codes", "weight", "order")


class PinyinTable:
    """Slots of characters with their syllable codes; ``order`` sorts the slots by code, so the
    slots of one syllable are a contiguous range of it."""

    def __init__(self, syllables: list[str], chars: np.ndarray, codes: np.ndarray, weight: np.ndarray,
                 order: np.ndarray):
        self.syllables = syllables
        self.chars, self.codes, self.weight, self.order = chars, codes, weight, order
        self.code_of = {s: i for i, s in enumerate(syllables)}
        # where each code's slots begin in ``order`` (code -1, the separators, sort first)
        self.bounds = np.searchsorted(codes[order], np.arange(-1, len(syllables) + 1))

    @classmethod
    def build(cls, texts: Iterable[str]) -> PinyinTable:
        from pypinyin import lazy_pinyin

        runs: dict[str, int] = {}
        for text in texts:
            for run in RUN.findall(text):
                runs[run] = runs.get(run, 0) + 1
        code_of: dict[str, int] = {}
        chars, codes, weight = [], [], []
        for run, n in runs.items():  # the run's pinyin as a whole: 长乐 and 长春 read 长 apart
            chars.append(run + "\0")
            codes += [code_of.setdefault(s, len(code_of)) for s in lazy_pinyin(run)] + [-1]
            weight += [n] * (len(run) + 1)
        codes_a = np.asarray(codes, dtype=np.int32)
        return cls(list(code_of), np.frombuffer("".join(chars).encode("utf-32-le"), dtype=np.uint32).copy(),
                   codes_a, np.asarray(weight, dtype=np.int32), np.argsort(codes_a, kind="stable").astype(np.int32))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            np.save(folder / f"{name}.npy", getattr(self, name))
        (folder / "syllables.txt").write_text("\n".join(self.syllables), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> PinyinTable:
        arrays = [np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r")) for name in FILES]
        text = (folder / "syllables.txt").read_text(encoding="utf-8")
        return cls(text.split("\n") if text else [], *arrays)

    def _word(self, start: int, n: int) -> str:
        return self.chars[start:start + n].tobytes().decode("utf-32-le")

    def _slots(self, syllable: str) -> np.ndarray:
        code = self.code_of.get(syllable)
        if code is None:
            return np.empty(0, dtype=np.int64)
        return self.order[self.bounds[code + 1]:self.bounds[code + 2]].astype(np.int64)

    def _spellings(self, key: str, most: int) -> list[list[int]]:
        """Every way of reading ``key`` as 2..``most`` syllables the publications use."""
        out: list[list[int]] = []

        def walk(rest: str, path: list[int]) -> None:
            if not rest:
                if len(path) >= 2:
                    out.append(path)
                return
            if len(path) == most:
                return
            for n in range(1, min(6, len(rest)) + 1):
                code = self.code_of.get(rest[:n])
                if code is not None:
                    walk(rest[n:], [*path, code])

        walk(key, [])
        return out

    def transliterate(self, name: str, most: int = 4) -> str | None:
        """The Chinese the publications write for a romanised name: the most frequent run of 2–4
        characters whose pinyin is the name. No list: any name the text holds can be found."""
        key = re.sub(r"[^a-z]", "", name.lower())
        if len(key) < 4:
            return None
        found: dict[str, int] = {}
        for spelling in self._spellings(key, most):
            slots = self._slots(self.syllables[spelling[0]])
            slots = slots[slots + len(spelling) <= len(self.codes)]
            for j, code in enumerate(spelling[1:], 1):
                slots = slots[self.codes[slots + j] == code]
            for s in slots.tolist():
                word = self._word(s, len(spelling))
                found[word] = found.get(word, 0) + int(self.weight[s])
        return max(found, key=found.get) if found else None

    @cached_property
    def romanised(self) -> set[str]:
        """Every run of one to three syllables the publications write before a place word (隋唐|城,
        王城|公园), in pinyin: an English question's place names are checked against it."""
        place = np.flatnonzero(np.isin(self.chars, [ord(c) for c in PLACE_WORD_START]))
        out: set[str] = set()
        for n in (1, 2, 3):
            starts = place[place >= n] - n
            keep = np.ones(len(starts), dtype=bool)
            for j in range(n):
                keep &= self.codes[starts + j] >= 0
            for row in np.unique(self.codes[starts[keep, None] + np.arange(n)], axis=0).tolist():
                out.add("".join(self.syllables[c] for c in row))
        return out
