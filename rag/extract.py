"""A publication as it arrives (PDF, Word, web page, text) → plain text, its page map and the
metadata the file itself states.

The type is read from the content, not the extension. Every failure is an ExtractError that
names the file and the problem (encrypted, scanned, damaged, empty, no article), so `rag add`
can refuse the file and keep the corpus as it was.

Libraries, chosen on the files `tests/test_extract.py` builds: pdfplumber (MIT; per-character
positions, so two-column pages are read column by column and running headers and page numbers are
told from the body), python-docx (MIT; paragraphs and tables in document order), trafilatura
(Apache-2.0; the article of a web page without its navigation, with its title and date).
"""

from __future__ import annotations

import datetime
import io
import re
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .reference import ISSUE

MAX_BYTES = 50 * 1024 * 1024
MAX_PAGES = 2000
MAX_SECONDS = 300.0
# a line this close to the top or bottom edge of a page is a header or footer candidate
MARGIN = 0.05
DATE = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
# a date the publication labels as its own: a journal's 印刷日期 (in the masthead, often far in)
LABELLED_DATE = re.compile(r"(?:印刷日期|出版日期|发布日期|发布时间|印发日期)\s*[:：]?\s*((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
PAGE_NUMBER = re.compile(r"^[-—\s]*(?:第\s*)?\d{1,4}(?:\s*页)?[-—\s]*$|^\d{1,4}\s*/\s*\d{1,4}$")


@dataclass(frozen=True)
class Limits:
    pages: int
    deadline: float  # time.monotonic() after which extraction stops
    seconds: float


class ExtractError(Exception):
    """``unsupported``: the content is of a type that is not read at all (HTTP 415), not a
    readable type that is broken (422); ``too_large``: over a size limit (413)."""

    def __init__(self, path: str | Path, problem: str, unsupported: bool = False, too_large: bool = False):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem, self.unsupported, self.too_large = str(path), problem, unsupported, too_large

    @property
    def status(self) -> int:
        return 415 if self.unsupported else 413 if self.too_large else 422


@dataclass
class Extracted:
    text: str
    kind: str  # pdf | docx | html | text
    pages: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, printed page number)
    title: str | None = None
    date: str | None = None  # ISO
    doc_type: str | None = None
    removed: int = 0  # header, footer and page-number lines left out of the text
    url: str | None = None  # a web page's own address (its canonical link), for the reference
    place: dict = field(default_factory=dict)  # {"province"|"city"|"county": name} the text names most

    def page_of(self, offset: int) -> int | None:
        return page_at(self.pages, offset)


def page_at(pages: list, offset: int) -> int | None:
    """The printed page number holding character ``offset`` of the text (None without a page
    map); a map of (start, end) pairs numbers its pages from 1."""
    for n, (_start, end, *printed) in enumerate(pages, 1):
        if offset < end or n == len(pages):
            return printed[0] if printed else n
    return None


def sniff(data: bytes, path: str | Path) -> str:
    if not data.strip():
        raise ExtractError(path, "the file is empty")
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            members = zipfile.ZipFile(io.BytesIO(data)).infolist()
        except zipfile.BadZipFile:
            raise ExtractError(path, "a damaged zip archive (a .docx is one)") from None
        if not any(m.filename == "word/document.xml" for m in members):
            raise ExtractError(path, "a zip archive but not a Word document (no word/document.xml)", True)
        unpacked = sum(m.file_size for m in members)
        if unpacked > 20 * max(len(data), 1 << 20):
            raise ExtractError(path, f"a Word document that unpacks to {unpacked} bytes (over 20× its size)",
                               too_large=True)
        return "docx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ExtractError(path, "an old binary Word (.doc) file; save it as .docx", True)
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:1024]:
        return "html"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ExtractError(path, f"not PDF, Word, HTML or UTF-8 text (byte {e.start} is not UTF-8; GBK text can be "
                                 "converted with `iconv -f GBK -t UTF-8`)", True) from None
    return "text"


def extract(path: str | Path, max_bytes: int = MAX_BYTES, max_pages: int = MAX_PAGES,
            max_seconds: float = MAX_SECONDS) -> Extracted:
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ExtractError(path, f"{size} bytes; the limit is {max_bytes}", too_large=True)
    data = path.read_bytes()
    kind = sniff(data, path)
    limits = Limits(max_pages, time.monotonic() + max_seconds, max_seconds)
    out = {"pdf": _pdf, "docx": _docx, "html": _html, "text": _text}[kind](data, path, limits)
    out.text = out.text.rstrip("\n") + "\n"  # not lstrip: the page map's offsets start at 0
    if not out.pages:
        out.text = out.text.replace("\x00", "")  # the corpus holds text, never a NUL
    if not out.text.strip():
        raise ExtractError(path, "no text in it")
    head = out.text[:2000]
    # a date the text labels as its own wins (a web page's metadata may only guess the year)
    labelled = LABELLED_DATE.search(out.text[:50000])
    if labelled or out.date is None:
        out.date = _iso(labelled or DATE.search(head)) or out.date
    if out.doc_type is None:
        out.doc_type = ("journal_issue" if ISSUE.search(head) else "work_report" if "工作报告" in head[:300]
                        else "news_article")
    if out.title is None:
        out.title = next((ln.strip() for ln in out.text.splitlines() if len(ln.strip()) >= 4), None)
    out.place = detect_place(f"{out.title or ''}\n{head[:1200]}")
    return out


def _iso(m: re.Match | None) -> str | None:
    """The date a match names, if it is a real one (not 2023年2月30日)."""
    try:
        return datetime.date(int(m[1]), int(m[2]), int(m[3])).isoformat() if m else None
    except ValueError:
        return None


ADMIN = re.compile(r"[\u4e00-\u9fff]{1,8}?(?:省|市|区|县|旗)")


def detect_place(text: str) -> dict:
    """The places a text is about: the place names Baidu LAC tags (LOC, and the place an ORG
    such as 汝阳县人大常委会 starts with), the most frequent of each level; the title counts
    three times. A 市 beside a 县 or 区 is the city; a 市 alone (a county-level city too) is given
    as the city."""
    from .question import lac_tags

    counts: Counter = Counter()
    lines = [t for t in text.splitlines() if t.strip()]
    for i, line in enumerate(lines):
        for sentence in re.split(r"(?<=[。！？；])", line)[:40]:
            for word, tag in lac_tags(sentence[:200]):
                m = ADMIN.fullmatch(word) if tag == "LOC" else ADMIN.match(word) if tag == "ORG" else None
                if m and len(m.group(0)) >= 2:
                    counts[m.group(0)] += 3 if i == 0 else 1

    def most(*suffixes: str) -> str | None:
        return max((n for n in counts if n.endswith(suffixes)), key=lambda n: (counts[n], n), default=None)

    found = {"province": most("省"), "city": most("市"), "county": most("县", "区", "旗")}
    return {k: v for k, v in found.items() if v}


def _text(data: bytes, path: Path, limits: Limits) -> Extracted:
    if b"\x00" in data:
        raise ExtractError(path, "a binary file (it holds NUL bytes), not text", True)
    return Extracted(data.decode("utf-8").lstrip("\ufeff").replace("\r\n", "\n"), "text")


def _docx(data: bytes, path: Path, limits: Limits) -> Extracted:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as e:  # python-docx raises several kinds for a broken package
        raise ExtractError(path, f"a damaged Word document ({type(e).__name__})") from None
    lines = []
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append(Paragraph(block, document).text)
        elif tag == "tbl":
            for row in Table(block, document).rows:
                lines.append("\t".join(cell.text.strip() for cell in row.cells))
    title = (document.core_properties.title or "").strip() or None
    return Extracted("\n".join(lines), "docx", title=title)


def _html(data: bytes, path: Path, limits: Limits) -> Extracted:
    import trafilatura

    html = data  # bytes: trafilatura reads the page's declared charset (GB2312 pages are common)
    text = trafilatura.extract(html, include_tables=True, include_comments=False, favor_recall=True)
    if not text or len(text.strip()) < 20:
        raise ExtractError(path, "a web page with no article text")
    meta = trafilatura.extract_metadata(html)
    # a date the page labels (发布时间：2023年5月12日) often sits outside the article; it beats the
    # metadata's guess, which may be only a year
    charset = re.search(rb"charset=['\"]?([\w-]+)", data[:4096])
    try:
        page_text = data.decode(charset.group(1).decode() if charset else "utf-8", errors="replace")
    except LookupError:
        page_text = data.decode("utf-8", errors="replace")
    labelled = _iso(LABELLED_DATE.search(re.sub(r"<[^>]+>", " ", page_text)))
    return Extracted(text, "html", title=(meta.title if meta else None) or None,
                     date=labelled or (meta.date if meta else None) or None, doc_type="news_article",
                     url=(meta.url if meta and (meta.url or "").startswith("http") else None))


def _pdf(data: bytes, path: Path, limits: Limits) -> Extracted:
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfplumber.utils.exceptions import PdfminerException

    try:
        pdf = pdfplumber.open(io.BytesIO(data))
        pages = pdf.pages
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise ExtractError(path, "an encrypted PDF; remove the password first") from None
    except (PDFSyntaxError, PdfminerException, ValueError, KeyError, TypeError) as e:
        cause = e.args[0] if isinstance(e, PdfminerException) and e.args else e
        if isinstance(cause, (PDFPasswordIncorrect, PDFEncryptionError)):
            raise ExtractError(path, "an encrypted PDF; remove the password first") from None
        raise ExtractError(path, f"a damaged PDF ({type(cause).__name__})") from None
    with pdf:
        if len(pages) > limits.pages:
            raise ExtractError(path, f"{len(pages)} pages; the limit is {limits.pages}")
        try:
            per_page = []
            for page in pages:
                if time.monotonic() > limits.deadline:
                    raise ExtractError(path, f"extraction stopped after {limits.seconds:.0f} s at page "
                                             f"{len(per_page) + 1} of {len(pages)}")
                per_page.append(_page_lines(page))
            title = _largest_line(pages[0]) if pages else None
        except ExtractError:
            raise
        except Exception as e:  # pdfminer fails in many ways on a truncated stream
            raise ExtractError(path, f"a damaged PDF ({type(e).__name__})") from None
    if not any(body for _, body, _ in per_page):
        raise ExtractError(path, "a PDF with no text layer (scanned pages?); it needs OCR first")
    # a margin line that comes back on several pages (the running title, with its page number
    # ignored) or that is only a page number is not part of the text
    shape = lambda s: re.sub(r"\d+", "#", s.replace(" ", ""))  # noqa: E731
    seen = Counter(shape(s) for head, _, foot in per_page for s in set(head + foot))
    drop = lambda s: bool(PAGE_NUMBER.match(s)) or (seen[shape(s)] >= 2 and len(per_page) > 1)  # noqa: E731
    text, spans, removed = "", [], 0
    for n, (head, body, foot) in enumerate(per_page, 1):
        lines = [s for s in head if not drop(s)] + body + [s for s in foot if not drop(s)]
        removed += len(head) + len(body) + len(foot) - len(lines)
        start = len(text)
        text += "\n".join(lines) + "\n"
        # the number printed on the page (a journal's pages run on from the issue before), else its place
        printed = next((int(re.search(r"\d+", s).group(0)) for s in foot + head if PAGE_NUMBER.match(s)), n)
        spans.append((start, len(text), printed))
    return Extracted(text, "pdf", pages=spans, removed=removed, title=title)


def _columns(page) -> list[tuple[float, float, float, float]]:
    """The body's boxes in reading order: two when the characters leave the middle of the page
    empty (left is read before right), else one."""
    width, height = float(page.width), float(page.height)
    top, bottom = height * MARGIN, height * (1 - MARGIN)
    body = [c for c in page.chars if c["text"].strip() and top <= c["top"] and c["bottom"] <= bottom]
    mid = width / 2
    straddle = sum(c["x0"] < mid - 2 and c["x1"] > mid + 2 for c in body)
    sides = (sum(c["x1"] <= mid for c in body), sum(c["x0"] >= mid for c in body))
    two = bool(body) and straddle <= 0.01 * len(body) and min(sides) >= 20  # a short right column is one too
    return [(0, top, mid, bottom), (mid, top, width, bottom)] if two else [(0, top, width, bottom)]


def _largest_line(page) -> str | None:
    """The title: the line in the largest type on the upper half of the first page."""
    best, size = None, 0.0
    for box in _columns(page):
        for ln in page.within_bbox(box).extract_text_lines(return_chars=True):
            chars = [c for c in ln["chars"] if c["text"].strip()]
            if len(chars) >= 4 and ln["top"] < float(page.height) / 2:
                mean = sum(c["size"] for c in chars) / len(chars)
                if mean > size + 0.5:
                    best, size = ln["text"].strip(), mean
    return best


def _page_lines(page) -> tuple[list[str], list[str], list[str]]:
    """(header lines, body lines in reading order, footer lines) of one page."""
    height = float(page.height)
    top, bottom = height * MARGIN, height * (1 - MARGIN)
    lines = [ln["text"].strip().replace("\x00", "") for box in _columns(page)
             for ln in page.within_bbox(box).extract_text_lines(return_chars=False) if ln["text"].strip()]
    edge = [ln for ln in page.extract_text_lines(return_chars=False) if ln["text"].strip()]
    head = [ln["text"].strip() for ln in edge if ln["top"] < top]
    foot = [ln["text"].strip() for ln in edge if ln["bottom"] > bottom and ln["top"] >= top]
    return head, lines, foot
