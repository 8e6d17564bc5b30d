"""End to end: the real server on loopback, the page in headless Chromium (Debian's)."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).parent / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


READ_KEY, WRITE_KEY = "read-key-for-the-page", "write-key-for-the-page"


@pytest.fixture(scope="module")
def server(built, tmp_path_factory):
    """The server over a private copy of corpus and index (the upload test adds to it), with a
    read key and a write key."""
    import os

    root = tmp_path_factory.mktemp("served")
    shutil.copytree(built.corpus_dir, root / "corpus")
    shutil.copytree(built.index_dir, root / "index", symlinks=True)
    env = dict(os.environ, RAG_CORPUS_DIR=str(root / "corpus"), RAG_INDEX_DIR=str(root / "index"),
               RAG_READ_KEY=READ_KEY, RAG_API_KEY=WRITE_KEY)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("server did not become healthy")
    yield url
    proc.terminate()
    proc.wait(10)


def _browser(p):
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get when it can)")
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])


def test_question_answer_and_citation_in_the_page(server):
    playwright = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = _browser(p)
        context = browser.new_context(viewport={"width": 390, "height": 900},  # a phone's width
                                      permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.goto(server)
        assert not page.is_visible("#keyform")
        page.fill("#q", "洛阳市登记建档的古树名木共计多少株？")
        page.click("#ask button[type=submit]")
        # the server has a read key: the page asks for it, then asks the question again
        page.wait_for_selector("#keyform", state="visible", timeout=30000)
        page.fill("#readkey", READ_KEY)
        page.click("#keyform button")
        page.wait_for_selector("#answer.found", timeout=30000)
        assert "88965" in page.inner_text("#answer")
        assert page.locator("#answer mark.fig", has_text="88965").count() == 1
        cards = page.locator(".card")
        assert cards.count() >= 1 and "88965" in cards.first.inner_text()
        # the quote is highlighted inside its passage, and the passage is longer than the quote
        page.wait_for_selector(".card mark.quote", timeout=10000)
        quote = cards.first.locator("mark.quote")
        assert "88965" in quote.inner_text()
        assert len(cards.first.locator("blockquote").inner_text()) > len(quote.inner_text())
        # 复制引文 copies the source as a GB/T 7714 journal reference with its pages
        assert "页" in cards.first.locator(".src").inner_text()
        cards.first.locator("button.copyref").click()
        page.wait_for_selector("button.copyref:has-text('已复制')", timeout=5000)
        copied = page.evaluate("navigator.clipboard.readText()")
        assert "[J]. 洛阳人大, 2024(3): " in copied and copied.endswith(".")
        cards.first.locator("a.ctx").click()
        page.wait_for_selector(".context b", timeout=10000)
        page.screenshot(path=str(SHOTS / "answer.png"), full_page=True)
        page.click(".examples a:last-child")  # a year the corpus does not cover
        page.wait_for_selector("#answer.notfound", timeout=30000)
        assert "2019" in page.inner_text("#answer")
        if page.locator(".card").count():  # nearby passages are shown as such, not as evidence
            assert "并不是" in page.inner_text("h2.nearest")
        assert page.get_attribute("#ask button[type=submit]", "aria-busy") is None
        assert page.get_attribute("#answer", "aria-live") == "polite"
        page.screenshot(path=str(SHOTS / "not-found.png"), full_page=True)
        browser.close()


def test_staff_add_a_web_page_in_the_page_and_it_is_answered_from(server, tmp_path):
    from tests.publications import web_page
    from tests.test_extract import FACT

    playwright = pytest.importorskip("playwright.sync_api")
    news = tmp_path / "qingshi-news.html"
    web_page(news, "青石县人大代表视察加装电梯", "2025-06-18",
             ["青石县人大代表近日视察老旧小区加装电梯工作，听取住建部门汇报。", FACT, "代表们建议加快审批流程。"])
    with playwright.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1000, "height": 1000})
        page.add_init_script(f"sessionStorage.setItem('rag-read-key', '{READ_KEY}')")
        page.goto(server)
        page.click("details#add summary")
        page.set_input_files("#file", str(news))
        page.fill("#writekey", "wrong-key")
        page.click("#upload button[type=submit]")
        page.wait_for_selector("#upload-result.error", timeout=30000)
        assert "密钥不对" in page.inner_text("#upload-result")
        page.fill("#writekey", WRITE_KEY)
        page.fill("#upload input[name=place]", "青石县")
        page.click("#upload button[type=submit]")
        page.wait_for_function("document.querySelector('#upload-result').textContent.startsWith('已添加')",
                               timeout=60000)
        assert "qingshi-news" in page.inner_text("#upload-result")
        page.fill("#q", "青石县加装电梯多少部？")
        page.click("#ask button[type=submit]")
        page.wait_for_selector("#answer.found", timeout=30000)
        assert "86部" in page.inner_text("#answer") and not page.is_visible("#keyform")
        assert "青石县人大代表视察加装电梯" in page.locator(".card").first.inner_text()
        page.screenshot(path=str(SHOTS / "upload.png"), full_page=True)
        browser.close()
