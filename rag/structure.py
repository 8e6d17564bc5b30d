"""Finding the parts of a document: articles of a journal issue, committees of a joint report.

Every chunk must know which article, place and year it belongs to, because the same measure
(任免 … 人次, 常委会会议 … 次) recurs across places and years. The journal issue is segmented
from its own table of contents: each entry's title is looked up in the body; page-continuation
marks ("（下转第30页）" … "（上接第28页）") move the continued text back to its article.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .normalize import PAGE_MARK, TERMINAL, is_cjk, nfkc
from .schema import Document, Place, Section

# Journal columns (栏目) as printed in tables of contents of congress journals.
COLUMNS = {
    "卷首语", "特稿", "常委会视点", "经验交流", "人大70年", "主任论坛", "法制宣传", "代表风采",
    "立法工作", "监督纵横", "基层之声", "人大论坛", "调查研究", "理论研究", "代表之声", "工作研究",
    "他山之石", "人大文苑", "县区人大", "代表工作", "监督工作", "立法视窗", "专题报道", "要闻",
}
COMMITTEE_LINE = re.compile(r"^(\S{2,12}?(?:区|县|市|旗))人大常委会$")
YEAR_LINE = re.compile(r"^((?:19|20)\d{2})$")
TOC_ENTRY = re.compile(r"^[-–—·•]?\s*(\d{1,3})\s+(.+)$")
BYLINE = re.compile(r"^[（(]([\u4e00-\u9fff ]{2,15})[)）]$")
NAME = re.compile(r"^[\u4e00-\u9fff]{2,3}$")


@dataclass(frozen=True)
class Line:
    start: int  # raw offset of the first character
    end: int  # raw offset after the last character (before "\n")
    text: str  # stripped NFKC text

    @property
    def compact(self) -> str:
        return re.sub(r"\s+", "", self.text)


def lines_of(raw: str) -> list[Line]:
    out, pos = [], 0
    for part in raw.split("\n"):
        stripped = nfkc(part).strip()
        if stripped:
            lead = len(part) - len(part.lstrip())
            out.append(Line(pos + lead, pos + len(part.rstrip()), stripped))
        pos += len(part) + 1
    return out


def sections_of(doc: Document) -> list[Section]:
    if doc.doc_type == "journal_issue":
        sections = journal_sections(doc)
        if sections:
            return sections
    return report_sections(doc)


def _nonblank(raw: str, spans) -> tuple[tuple[int, int], ...]:
    return tuple((a, b) for a, b in spans if b > a and raw[a:b].strip())


# ---------------------------------------------------------------- reports and news articles


def report_sections(doc: Document) -> list[Section]:
    """Split a report into per-committee parts (a title line, then "<place>人大常委会"), and
    within each part at bare year lines ("2020", "2021") that head the review and the plan."""
    lines = lines_of(doc.text)
    starts: list[tuple[int, str | None, Place | None]] = [(0, doc.title, None)]
    for i, line in enumerate(lines):
        m = COMMITTEE_LINE.match(line.compact)
        if m and i > 0:
            title_line = lines[i - 1]
            place = Place(doc.place.province, doc.place.city, m.group(1))
            if m.group(1) == doc.place.city:
                place = doc.place
            starts.append((title_line.start, f"{m.group(1)}人大常委会：{title_line.text}", place))
    if len(starts) > 1 and not doc.text[: starts[1][0]].strip():
        starts.pop(0)
    bounds = [s[0] for s in starts[1:]] + [len(doc.text)]
    sections: list[Section] = []
    for (start, title, place), end in zip(starts, bounds):
        year = doc.year
        cut = start
        for line in lines:
            if start <= line.start < end and YEAR_LINE.match(line.compact):
                if doc.text[cut : line.start].strip():
                    sections.append(_report_part(doc, title, (cut, line.start), place, year))
                cut, year = line.start, int(line.compact)
        sections.append(_report_part(doc, title, (cut, end), place, year))
    return [s for s in sections if s.spans]


def _report_part(doc, title, span, place, year) -> Section:
    return Section(
        kind="article",
        title=title,
        spans=_nonblank(doc.text, [span]),
        place=place or doc.place,
        year=year,
    )


# ---------------------------------------------------------------- journal issues


@dataclass
class TocEntry:
    title: str
    page: int | None
    column: str | None
    author: str | None = None
    line: int = -1  # index into lines of the article's title in the body
    printed: str = ""  # the title as printed above the article


def parse_toc(lines: list[Line]) -> tuple[int, list[TocEntry]]:
    """Index of the 目录 line and its entries (title, page, column, author)."""
    toc = next((i for i, ln in enumerate(lines) if ln.compact == "目录"), -1)
    if toc < 0:
        return -1, []
    entries: list[TocEntry] = []
    column = None
    after_entry = False
    for ln in lines[toc + 1 :]:
        if len(ln.text) > 60:
            break
        c = ln.compact
        if c in COLUMNS:
            column, after_entry = c, False
            entries.append(TocEntry("", None, column))  # placeholder for an unpaged entry
            continue
        m = TOC_ENTRY.match(ln.text)
        if m:
            title, author = m.group(2).strip(), None
            parts = title.rsplit(" ", 1)
            if len(parts) == 2 and NAME.match(parts[1]) and len(parts[0]) > 4:
                title, author = parts[0].strip(), parts[1]
            if entries and not entries[-1].title:
                entries.pop()
            entries.append(TocEntry(title, int(m.group(1)), column, author))
            after_entry = True
            continue
        if after_entry and NAME.match(c) and entries[-1].author is None:
            entries[-1].author = c
            after_entry = False
            continue
        if entries and not entries[-1].title and len(c) > 6:
            entries[-1].title = ln.text
        after_entry = False
    return toc, [e for e in entries if e.title]


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _followed_by_body(lines: list[Line], i: int, within: int = 5, long: int = 80) -> bool:
    return any(len(ln.text) >= long for ln in lines[i + 1 : i + 1 + within])


def locate_titles(lines: list[Line], toc: int, entries: list[TocEntry]) -> None:
    """Find each entry's title line in the body (fuzzy: printed titles differ from the TOC by a
    character or a line break); the cover repeats headlines, so a title must lead to body text."""
    toc_end = next((j for j in range(toc + 1, len(lines)) if len(lines[j].text) > 60), len(lines))
    used: set[int] = set()
    for e in entries:
        target = re.sub(r"\s+", "", e.title)
        best, best_i = 0.0, -1
        for i, ln in enumerate(lines):
            if toc <= i < toc_end - 3 or i in used or len(ln.compact) > 2 * len(target) + 10:
                continue
            joined = ln.compact + (lines[i + 1].compact if i + 1 < len(lines) else "")
            single, double = _similarity(target, ln.compact), _similarity(target, joined)
            score = max(single, double)
            if score > best + 1e-9 and score >= 0.75 and _followed_by_body(lines, i):
                best, best_i = score, i
                printed = ln.text if single >= double else f"{ln.text} {lines[i + 1].text}"
        if best_i >= 0:
            e.line, e.printed = best_i, printed
            used.add(best_i)


def journal_sections(doc: Document) -> list[Section]:
    raw = doc.text
    lines = lines_of(raw)
    toc, entries = parse_toc(lines)
    locate_titles(lines, toc, entries)
    found = sorted((e for e in entries if e.line >= 0), key=lambda e: e.line)
    if not found:
        return []
    toc_start = lines[toc].start
    # Article i runs from its title to the next title (or the TOC / end of file).
    starts = [lines[e.line].start for e in found]
    regions: list[list[int]] = []
    for k, s in enumerate(starts):
        nxt = [x for x in starts[k + 1 :] + [len(raw)] + ([toc_start] if toc_start > s else [])]
        regions.append([s, min(nxt)])
    # A "（下转…）" mark ends its article; what follows up to the next title is that title's
    # kicker, so the next article starts right after the mark.
    downs: dict[int, list[int]] = {}  # article index → positions of 下转 marks
    continued_on: dict[int, int] = {}  # article index → the page its 下转 mark names
    marks = [(m.start(), m.end(), m.group(0)) for m in PAGE_MARK.finditer(raw)]
    for ms, me, text in marks:
        if "下" not in text:
            continue
        k = _region_index(regions, ms)
        if k is None:
            continue
        downs.setdefault(k, []).append(ms)
        continued_on.setdefault(k, int(PAGE_MARK.match(text).group(1)))
        if k + 1 < len(regions) and regions[k + 1][0] > me:
            regions[k + 1][0] = me
        regions[k][1] = min(regions[k][1], ms)
    # A "（上接第N页）" mark starts a continuation of the article printed on page N: the one
    # with a 下转 mark whose first page is the latest not after N.
    extra: dict[int, list[tuple[int, int]]] = {}
    holes: dict[int, list[tuple[int, int]]] = {}
    for ms, me, text in marks:
        if "上" not in text:
            continue
        page = int(PAGE_MARK.match(text).group(1))
        host = _region_index(regions, ms)
        owners = [k for k in downs if found[k].page is not None and found[k].page <= page]
        if host is None or not owners:
            continue
        owner = max(owners, key=lambda k: found[k].page)
        end = _continuation_end(lines, raw, me, regions[host][1])
        extra.setdefault(owner, []).append((me, end))
        holes.setdefault(host, []).append((ms, end))
    sections: list[Section] = []
    if starts[0] > 0 and raw[: min(starts[0], toc_start)].strip():
        sections.append(
            Section("article", "封面", _nonblank(raw, [(0, min(starts[0], toc_start))]), "封面")
        )
    toc_end = next((s for s in starts if s > toc_start), len(raw))
    sections.append(Section("toc", "目录与编委会", ((toc_start, toc_end),), "目录"))
    for k, e in enumerate(found):
        own = _subtract([tuple(regions[k])], holes.get(k, []))
        spans = _nonblank(raw, sorted(own + extra.get(k, [])))
        author = e.author or _author_from_text(lines, e.line, spans, raw)
        title = tidy_title(e.printed or e.title)
        sections.append(Section("article", title, spans, e.column, author, pages=_pages(found, k, own, extra.get(k, []),
                                                                                        continued_on.get(k))))
    return sections


def _pages(found: list[TocEntry], k: int, own, continuations, continued_on: int | None):
    """(raw start, raw end, first page, last page) of an article's parts: its own pages run from
    its TOC page to the page before the next article's; a continuation is on the page its 下转
    mark names."""
    first = found[k].page
    if first is None:
        return ()
    later = [e.page for e in found[k + 1:] if e.page is not None and e.page > first]
    last = max(first, min(later) - 1) if later else first
    out = tuple((s, e, first, last) for s, e in own)
    if continued_on is not None:
        out += tuple((s, e, continued_on, continued_on) for s, e in continuations)
    return out


def tidy_title(text: str) -> str:
    """A printed title for display: no spaces next to figures ("2024 年" → "2024年")."""
    return re.sub(r"(?<=\d)\s+|\s+(?=\d)", "", text).strip()


def _region_index(regions, pos: int) -> int | None:
    for k, (a, b) in enumerate(regions):
        if a <= pos < b:
            return k
    return None


def _continuation_end(lines: list[Line], raw: str, start: int, limit: int) -> int:
    """A continuation runs until a heading-like line, a byline (included) or the region end."""
    end = start
    for ln in lines:
        if ln.end <= start:
            continue
        if ln.start >= limit:
            break
        if ln.start > start and len(ln.text) <= 30 and ln.text[-1] not in TERMINAL:
            break
        end = ln.end
        if BYLINE.match(ln.text) or PAGE_MARK.search(raw, max(ln.start, start), ln.end):
            break
    return min(end, limit)


def _subtract(spans: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = list(spans)
    for hs, he in holes:
        nxt = []
        for a, b in out:
            if he <= a or hs >= b:
                nxt.append((a, b))
                continue
            if a < hs:
                nxt.append((a, hs))
            if he < b:
                nxt.append((he, b))
        out = nxt
    return out


def _author_from_text(lines, title_line: int, spans, raw: str) -> str | None:
    """A byline under the title ("…主任 李保国", "习近平") or at the end ("（张艳艳）")."""
    nxt = lines[title_line + 1] if title_line + 1 < len(lines) else None
    if nxt and len(nxt.text) <= 30 and nxt.text[-1] not in TERMINAL:
        last = nxt.text.split()[-1]
        if NAME.match(last) or (NAME.match(nxt.compact) and all(is_cjk(c) for c in nxt.compact)):
            return last if NAME.match(last) else nxt.compact
    for a, b in spans:
        inside = [ln for ln in lines if a <= ln.start < b]
        m = BYLINE.match(inside[-1].text) if inside else None
        if m:
            return m.group(1).strip()
    return None
