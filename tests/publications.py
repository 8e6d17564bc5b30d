"""Publications as they arrive, made here from corpus text: a two-column A4 PDF with running
headers and page numbers (reportlab, the WenQuanYi font Debian ships), a Word file and a saved
web page — and broken ones."""

from __future__ import annotations

from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
RUNNING_TITLE = "洛阳人大 2024年第3期"


def two_column_pdf(path: Path, title: str, paragraphs: list[str], encrypt: str | None = None,
                   first_page: int = 1) -> list[int]:
    """Writes the PDF, its pages numbered from ``first_page`` (a journal issue's run on from the
    issue before); returns the printed page each paragraph starts on."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph

    pdfmetrics.registerFont(TTFont("WQY", str(FONT), subfontIndex=0))
    width, height = A4
    margin, gap = 50, 24
    col = (width - 2 * margin - gap) / 2
    frames = [Frame(margin, margin, col, height - 2 * margin, id="left"),
              Frame(margin + col + gap, margin, col, height - 2 * margin, id="right")]

    def furniture(canvas, doc):
        canvas.setFont("WQY", 9)
        canvas.drawString(margin, height - 30, RUNNING_TITLE)
        canvas.drawCentredString(width / 2, 25, str(doc.page + first_page - 1))

    starts: dict[int, int] = {}

    class Numbered(Paragraph):
        def split(self, available_width, available_height):
            parts = super().split(available_width, available_height)
            for part in parts:
                part.__class__, part.paragraph_no = Numbered, self.paragraph_no
            return parts

        def draw(self):
            starts.setdefault(self.paragraph_no, self.canv.getPageNumber() + first_page - 1)
            super().draw()

    doc = BaseDocTemplate(str(path), pagesize=A4, encrypt=encrypt, title=title)
    doc.addPageTemplates([PageTemplate(id="cols", frames=frames, onPage=furniture)])
    body = ParagraphStyle("body", fontName="WQY", fontSize=10.5, leading=15, wordWrap="CJK", spaceAfter=6)
    head = ParagraphStyle("head", parent=body, fontSize=14, leading=20, spaceAfter=10)
    story = [Paragraph(title, head)]
    for i, text in enumerate(paragraphs):
        p = Numbered(text, body)
        p.paragraph_no = i
        story.append(p)
    doc.build(story)
    return [starts[i] for i in range(len(paragraphs))]


def word_file(path: Path, title: str, paragraphs: list[str]) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = title
    d.add_heading(title, level=1)
    for text in paragraphs:
        d.add_paragraph(text)
    d.save(str(path))


def web_page(path: Path, title: str, date: str, paragraphs: list[str]) -> None:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<meta property='article:published_time' content='{date}'></head><body>"
        f"<nav><a href='/'>首页</a> <a href='/news'>人大新闻</a> <a href='/about'>关于我们</a></nav>"
        f"<article><h1>{title}</h1><p class='date'>{date}</p>{body}</article>"
        f"<footer>版权所有 洛阳市人大常委会 网站地图 联系我们</footer></body></html>", encoding="utf-8")
