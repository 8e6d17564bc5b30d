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


@pytest.fixture(scope="module")
def server(built):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"])
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


def test_question_answer_and_citation_in_the_page(server):
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get when it can)")
    playwright = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 390, "height": 900},  # a phone's width
                                      permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.goto(server)
        page.fill("#q", "洛阳市登记建档的古树名木共计多少株？")
        page.click("button[type=submit]")
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
        assert "2022" in page.inner_text("#answer")
        if page.locator(".card").count():  # nearby passages are shown as such, not as evidence
            assert "并不是" in page.inner_text("h2.nearest")
        assert page.get_attribute("button[type=submit]", "aria-busy") is None
        assert page.get_attribute("#answer", "aria-live") == "polite"
        page.screenshot(path=str(SHOTS / "not-found.png"), full_page=True)
        browser.close()
