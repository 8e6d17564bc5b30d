"""A citation's source as a GB/T 7714-2015 reference, the form Chinese researchers must use:
"主要责任者. 题名[文献类型标识]. 出处." — a journal article ([J]: journal, year(issue): pages),
a report ([R]: place: publisher, year), a news item or web page ([EB/OL] with its date and URL).
"""

from __future__ import annotations

import datetime
import re

from .schema import Chunk

JOURNAL = re.compile(r"《([^》]+)》")
PART = re.compile(r"^(\S{2,16}?人大常委会)\s*[：:]\s*(.+)$")
ISSUE = re.compile(r"((?:19|20)\d{2})年第\s*(\d{1,2})\s*期")  # 2024年第3期: also how `rag add` tells a journal
UNKNOWN_BODY = "[出版者不详]"


def reference(entry: dict, chunk: Chunk, pages: str | None = None) -> str:
    """``pages``: the article's (or the cited page's) printed pages, when known."""
    kind = entry.get("doc_type")
    body = entry.get("publisher") or _body(entry)
    author = chunk.author or (body if body != UNKNOWN_BODY else "佚名")
    pages = pages or chunk.article_pages
    if kind == "journal_issue":
        journal = JOURNAL.search(entry.get("title", ""))
        issue = ISSUE.search(entry.get("issue") or entry.get("title", ""))
        title = chunk.article or entry["title"]
        where = journal.group(1) if journal else entry["title"]
        year = issue.group(1) if issue else str(entry.get("year") or "")
        number = f"({int(issue.group(2))})" if issue else ""
        source = ", ".join(x for x in (where, f"{year}{number}") if x)
        return f"{author}. {_plain(title)}[J]. {source}" + (f": {pages}." if pages else ".")
    if kind == "work_report":
        town = _where(entry) or "[出版地不详]"
        year = entry.get("year") or (entry.get("date") or "")[:4]
        tail = f"{town}: {body}" + (f", {year}" if year else "") + (f": {pages}." if pages else ".")
        # one committee's part of a joint report is cited as a contribution (析出文献, "//")
        part = PART.match(chunk.article or "")
        if part and part.group(1) != body:
            return f"{part.group(1)}. {_plain(part.group(2))}[R]//{body}. {_plain(entry['title'])}. {tail}"
        return f"{body}. {_plain(entry['title'])}[R]. {tail}"
    # a web page [EB/OL]; a news item that came as a file, not a page, is "other" [Z]
    online = bool(entry.get("url")) or str(entry.get("original", "")).endswith(".html") or not entry.get("original")
    parts = [f"{author}. {_plain(entry['title'])}[{'EB/OL' if online else 'Z'}]."]
    # (published)[cited], then where it is
    parts.append(f"({entry['date']})[{datetime.date.today().isoformat()}]." if entry.get("date")
                 else f"[{datetime.date.today().isoformat()}].")
    if entry.get("url"):
        parts.append(f"{entry['url']}.")
    return " ".join(parts)


def _where(entry: dict) -> str | None:
    """The most specific place of the publication."""
    place = entry.get("place") or {}
    return place.get("county") or place.get("city") or place.get("province")


def _body(entry: dict) -> str:
    return f"{_where(entry)}人大常委会" if _where(entry) else UNKNOWN_BODY


def _plain(title: str) -> str:
    return re.sub(r"\s+", " ", title).strip()
