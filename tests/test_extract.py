"""Publications as they arrive: PDF, Word and web pages made here from corpus text are read in
order with their pages; broken files are refused by name; `rag add` puts one in the index."""

import re
import zipfile

import pytest

from rag.extract import ExtractError, extract
from tests.publications import RUNNING_TITLE, two_column_pdf, web_page, word_file

TITLE = "青石县人大常委会2025年工作报告"
FACT = "青石县人大常委会推动老旧小区加装电梯86部，惠及群众3200余户。"


def squashed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def paragraphs(settings):
    """Forty paragraphs of the journal, with one stated fact of a county no publication names,
    and a jump: a paragraph continued (下转) on a later page, where it picks up (上接)."""
    text = (settings.corpus_dir / "luoyang-renda-2024-03.txt").read_text(encoding="utf-8")
    paras = [squashed(p) for p in text[20000:34000].split("\n") if len(p.strip()) > 30][:40]
    paras.insert(25, FACT)
    paras[8] += "（下转第5页）"
    paras[33] = "（上接第2页）" + paras[33]
    return paras


@pytest.fixture(scope="module")
def pdf(tmp_path_factory, paragraphs):
    path = tmp_path_factory.mktemp("pdf") / "qingshi-2025.pdf"
    starts = two_column_pdf(path, TITLE, paragraphs, first_page=21)  # printed pages 21, 22, …
    return path, starts


def test_a_two_column_pdf_reads_in_order_with_pages_and_without_running_heads(pdf, paragraphs):
    path, starts = pdf
    ex = extract(path)
    flat = squashed(ex.text)
    at = 0
    for p in paragraphs:  # every paragraph whole, in the order printed (left column before right),
        # the jump marks where they are printed
        found = flat.find(p, at)
        assert found >= 0, p[:30]
        at = found + len(p)
    source = sum(len(p) for p in paragraphs) + len(TITLE)
    assert len(flat) >= 0.99 * source and len(flat) <= 1.01 * source
    assert RUNNING_TITLE.replace(" ", "") not in flat and ex.removed >= 2 * len(ex.pages)
    assert len(ex.pages) == max(starts) - 20 > 2 and [p[2] for p in ex.pages][:2] == [21, 22]
    at = 0
    for p, page in zip(paragraphs, starts):  # each paragraph's first characters are on its page
        at = re.compile(r"\s*".join(map(re.escape, p[:10]))).search(ex.text, at).start()
        assert ex.page_of(at) == page, p[:20]
    assert ex.title == TITLE and ex.doc_type == "work_report"
    assert ex.place.get("county") == "青石县"  # Baidu LAC's place names, the title's counted thrice


def test_the_shipped_journal_read_as_a_text_file_gets_its_printing_date_type_and_place(settings):
    ex = extract(settings.corpus_dir / "luoyang-renda-2024-03.txt")
    assert (ex.date, ex.doc_type) == ("2024-08-02", "journal_issue")  # 印刷日期 2024年8月2日, 第3期
    assert ex.place.get("city") == "洛阳市"


def test_a_pdf_that_takes_too_long_to_read_is_stopped(pdf):
    with pytest.raises(ExtractError, match="extraction stopped after 0 s at page 1"):
        extract(pdf[0], max_seconds=0)


def test_word_and_web_page_keep_title_date_and_article_only(tmp_path, paragraphs):
    doc = tmp_path / "report.docx"
    word_file(doc, TITLE, paragraphs[:5])
    ex = extract(doc)
    assert ex.kind == "docx" and ex.title == TITLE
    assert all(p in squashed(ex.text) for p in paragraphs[:5])

    page = tmp_path / "news.html"
    web_page(page, "青石县人大代表视察加装电梯", "2025-06-18", paragraphs[:4])
    ex = extract(page)
    assert ex.kind == "html" and ex.title == "青石县人大代表视察加装电梯" and ex.date == "2025-06-18"
    assert all(p in squashed(ex.text) for p in paragraphs[:4]) and "网站地图" not in ex.text


def test_a_gb2312_web_page_reads_in_its_charset_and_its_labelled_date_wins(tmp_path, paragraphs):
    page = tmp_path / "old-site.htm"
    body = "".join(f"<p>{p}</p>" for p in paragraphs[:3])
    html = (f"<html><head><meta http-equiv='Content-Type' content='text/html; charset=gb2312'><title>代表视察</title>"
            f"</head><body><div class='info'>发布时间：2023年5月12日</div><div class='content'>{body}</div></body></html>")
    page.write_bytes(html.encode("gb18030"))
    ex = extract(page)
    assert all(p in squashed(ex.text) for p in paragraphs[:3]) and "\ufffd" not in ex.text
    assert ex.date == "2023-05-12"


def _scanned_pdf(path):
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setFillGray(0.3)
    for i in range(40):  # a page of image marks only, no text layer
        c.rect(60, 780 - 18 * i, 400, 10, fill=1, stroke=0)
    c.save()


def _zip_of_something_else(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("photos/1.txt", "not a document")


BROKEN = {
    "encrypted.pdf": (lambda p, pdf: two_column_pdf(p, TITLE, ["保密内容。"], encrypt="secret"), "encrypted"),
    "scanned.pdf": (lambda p, pdf: _scanned_pdf(p), "no text layer"),
    "truncated.pdf": (lambda p, pdf: p.write_bytes(pdf.read_bytes()[: pdf.stat().st_size // 3]), "damaged PDF"),
    "fake.docx": (lambda p, pdf: _zip_of_something_else(p), "not a Word document"),
    "empty.txt": (lambda p, pdf: p.write_bytes(b""), "empty"),
    "nav-only.html": (lambda p, pdf: p.write_text("<!DOCTYPE html><html><body><nav><a href='/'>首页</a></nav></body></html>",
                                                  encoding="utf-8"), "no article"),
    "gbk.txt": (lambda p, pdf: p.write_bytes("人大代表".encode("gbk")), "not UTF-8"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_file_is_refused_naming_the_file_and_the_problem(tmp_path, pdf, name):
    make, problem = BROKEN[name]
    path = tmp_path / name
    make(path, pdf[0])
    with pytest.raises(ExtractError, match=problem) as e:
        extract(path)
    assert name in str(e.value)


def test_rag_add_indexes_a_pdf_whose_answer_cites_its_page(corpus_copy, pdf, paragraphs, tmp_path, capsys):
    from rag import store
    from rag.answer import Answerer
    from rag.cli import main

    store.build_index(corpus_copy)
    path, starts = pdf
    bad = tmp_path / "scan.pdf"
    _scanned_pdf(bad)
    before = sorted(p.name for p in corpus_copy.corpus_dir.iterdir())
    args = ["--corpus-dir", str(corpus_copy.corpus_dir), "--index-dir", str(corpus_copy.index_dir), "add"]
    code = main([*args, str(path), str(bad), "--county", "青石县", "--date", "2025-12-20"])
    out = capsys.readouterr().out
    assert code == 1 and "added" in out and "FAILED" in out and "scan.pdf" in out  # the good one still went in
    assert (corpus_copy.corpus_dir / "originals" / "qingshi-2025.pdf").read_bytes() == path.read_bytes()
    assert sorted(p.name for p in corpus_copy.corpus_dir.iterdir()) == sorted(before + ["originals", "qingshi-2025.txt"])
    assert [p.name for p in (corpus_copy.corpus_dir / "originals").iterdir()] == ["qingshi-2025.pdf"]

    ans = Answerer(corpus_copy).ask("青石县加装电梯多少部？")
    assert ans.found and "86部" in ans.answer, ans.answer
    cite = ans.citations[0]
    text = (corpus_copy.corpus_dir / "qingshi-2025.txt").read_text(encoding="utf-8")
    assert cite.doc_id == "qingshi-2025" and text[cite.start:cite.end] == cite.quote
    assert cite.page == starts[paragraphs.index(FACT)]

    assert main([*args, str(path)]) == 0 and "unchanged" in capsys.readouterr().out  # same file: a no-op
    store.remove_document(corpus_copy, "qingshi-2025")
    assert not (corpus_copy.corpus_dir / "originals" / "qingshi-2025.pdf").exists()


def test_a_changed_file_replaces_its_old_version_and_a_failed_replacement_keeps_it(corpus_copy, tmp_path, monkeypatch):
    from rag import adding, store
    from rag.corpus import load_manifest

    store.build_index(corpus_copy)
    page = tmp_path / "qingshi-news.html"
    web_page(page, "青石县人大代表视察", "2025-06-18", ["青石县人大代表视察老旧小区加装电梯工作，听取住建部门汇报。"])
    assert adding.add_files(corpus_copy, [page], {})[0].status == "added"
    web_page(page, "青石县人大代表视察", "2025-06-19", [FACT])
    result = adding.add_files(corpus_copy, [page], {})[0]
    assert result.status == "replaced" and result.doc_id == "qingshi-news"
    text = (corpus_copy.corpus_dir / "qingshi-news.txt").read_text(encoding="utf-8")
    assert "86部" in text and "听取住建部门汇报" not in text
    assert (corpus_copy.corpus_dir / "originals" / "qingshi-news.html").read_bytes() == page.read_bytes()
    index = store.load_index(corpus_copy)
    assert sum(c.doc_id == "qingshi-news" for c in index.chunks) >= 1 and all(
        "听取住建部门汇报" not in c.text for c in index.chunks)

    web_page(page, "青石县人大代表视察", "2025-06-20", ["第三版：代表们建议加快审批流程。"])
    real_embed = store.EmbeddingCache.embed

    def fail_on_the_third(self, embedder, texts, progress=False, on_progress=None):
        if any("第三版" in t for t in texts):
            raise OSError("disk full")
        return real_embed(self, embedder, texts, progress, on_progress)

    monkeypatch.setattr(store.EmbeddingCache, "embed", fail_on_the_third)
    failed = adding.add_files(corpus_copy, [page], {})[0]
    assert failed.status == "failed" and "disk full" in failed.problem
    # the old version was never let go: the new one fails while it is embedded
    assert "86部" in (corpus_copy.corpus_dir / "qingshi-news.txt").read_text(encoding="utf-8")
    assert any(e["doc_id"] == "qingshi-news" for e in load_manifest(corpus_copy.manifest_path))
    assert any(c.doc_id == "qingshi-news" for c in store.load_index(corpus_copy).chunks)


def test_files_whose_names_differ_only_in_chinese_are_two_documents(corpus_copy, tmp_path):
    from rag import adding, store

    store.build_index(corpus_copy)
    a, b = tmp_path / "洛阳市人大常委会2023年工作报告.txt", tmp_path / "汝阳县人大常委会2023年工作报告.txt"
    a.write_text("洛阳市人大常委会2023年召开常委会会议12次。", encoding="utf-8")
    b.write_text("汝阳县人大常委会2023年召开常委会会议9次。", encoding="utf-8")
    results = adding.add_files(corpus_copy, [a, b], {})
    assert [r.status for r in results] == ["added", "added"]
    assert len({r.doc_id for r in results}) == 2 and all(r.doc_id.startswith("doc-") for r in results)
    # a file of the same name is its new version; another file whose id would be the same is not
    (tmp_path / "report.txt").write_text("第一份报告。", encoding="utf-8")
    (tmp_path / "Report!.txt").write_text("另一份报告。", encoding="utf-8")
    first = adding.add_files(corpus_copy, [tmp_path / "report.txt"], {})[0]
    (tmp_path / "report.txt").write_text("第一份报告，修订版。", encoding="utf-8")
    again = adding.add_files(corpus_copy, [tmp_path / "report.txt"], {})[0]
    other = adding.add_files(corpus_copy, [tmp_path / "Report!.txt"], {})[0]
    assert (first.doc_id, again.status, again.doc_id) == ("report", "replaced", "report")
    assert other.status == "added" and other.doc_id.startswith("report-")
