"""The running service picks up a new index, survives a stray corpus file, and builds when it
starts without an index — a real server process on loopback, bounded waits, stopped by pid."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rag import store

NEW_DOC = "2025年,青山县人大常委会召开常委会会议6次,听取审议专项工作报告12个,协调推进加装电梯77部。\n"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None, None


def _post(url: str, body: dict):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _wait(predicate, seconds: float = 90.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return None


@pytest.fixture()
def server(corpus_copy, tmp_path):
    def start(workers: int = 0):
        """One uvicorn process, or with ``workers`` `rag serve --workers N` (a master and N
        worker processes; stderr goes to tmp_path/serve.log)."""
        port = _port()
        env = {**os.environ, "RAG_CORPUS_DIR": str(corpus_copy.corpus_dir), "RAG_INDEX_DIR": str(corpus_copy.index_dir),
               "RAG_RELOAD_SECONDS": "0.5"}
        cmd = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]
        if workers:
            cmd = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--workers", str(workers),
                   "--threads", "1"]
        with open(tmp_path / "serve.log", "w") as log:
            proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).parent.parent, stderr=log)
        procs.append(proc)
        return f"http://127.0.0.1:{port}"

    procs: list[subprocess.Popen] = []
    yield corpus_copy, start
    for p in procs:
        p.terminate()
        p.wait(10)


def _rag(settings, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", "--corpus-dir", str(settings.corpus_dir), "--index-dir",
                           str(settings.index_dir), *args], capture_output=True, text=True, timeout=300)


class Load:
    """``clients`` threads asking questions as fast as the server answers, until stopped;
    every status other than 200 is kept."""

    def __init__(self, url: str, clients: int = 8):
        import threading

        self.url, self.stop, self.failures, self.done = url, threading.Event(), [], 0
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, i: int) -> None:
        questions = ["洛阳市加装了多少部电梯？", "盖州市人大常委会2025年召开常委会会议多少次？", "汝阳县有多少名60岁以上老年人？"]
        while not self.stop.is_set():
            try:
                _post(f"{self.url}/ask", {"question": questions[(i + self.done) % len(questions)]})
                self.done += 1
            except (urllib.error.HTTPError, OSError) as e:
                self.failures.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_the_server_swaps_in_a_new_index_under_load_and_survives_a_stray_file(server, tmp_path):
    settings, start = server
    store.build_index(settings)
    url = start()
    status, health = _wait(lambda: (lambda r: r if r[0] == 200 else None)(_get(f"{url}/healthz")))
    chunks = health["chunks"]
    src = tmp_path / "qingshan.txt"
    src.write_text(NEW_DOC, encoding="utf-8")
    with Load(url, clients=8) as load:  # staff keep asking while a clerk adds a document
        (settings.corpus_dir / "stray.txt").write_bytes("不是UTF-8".encode("gbk"))  # not in the manifest
        added = _rag(settings, "index", "--add", str(src), "--doc-id", "qingshan-2025", "--title",
                     "青山县2025年工作报告", "--county", "青山县", "--year", "2025", "--doc-type", "work_report")
        assert added.returncode == 0, added.stderr
        swapped = _wait(lambda: (lambda r: r if r[1] and r[1].get("chunks", 0) > chunks else None)(
            _get(f"{url}/healthz")), 10)  # picked up within 10 s, no restart
    assert load.failures == [] and load.done > 8
    assert swapped, "the new index was not served within 10 s"
    health = swapped[1]
    assert health["status"] == "ok" and not health["stale"]
    status, doc = _get(f"{url}/documents/qingshan-2025?start=0&end=10")
    assert status == 200 and doc["passage"]["quote"] == NEW_DOC[:10]
    answer = _post(f"{url}/ask", {"question": "青山县2025年协调推进加装电梯多少部？"})
    assert answer["found"] and "77部" in answer["answer"]


def test_a_server_of_two_workers_started_without_an_index_builds_it_once_and_then_serves(server, tmp_path):
    settings, start = server
    url = start(workers=2)
    first = _wait(lambda: (lambda r: r if r[0] is not None else None)(_get(f"{url}/healthz")), 30)
    assert first[0] in (503, 200)
    if first[0] == 503:
        assert first[1]["status"] == "building"
    status, health = _wait(lambda: (lambda r: r if r[0] == 200 else None)(_get(f"{url}/healthz")), 240)
    assert status == 200 and health["chunks"] > 300
    # one worker built the index; the other saw the write lock held, waited, then loaded it
    log = (tmp_path / "serve.log").read_text()
    assert "index built by another process" in log and "2 worker process(es) × 1 thread(s)" in log

    def every_worker_answers() -> bool:
        try:
            return all(_post(f"{url}/ask", {"question": "洛阳市加装了多少部电梯？"})["found"] for _ in range(8))
        except urllib.error.HTTPError:
            return False

    assert _wait(every_worker_answers, 60)
