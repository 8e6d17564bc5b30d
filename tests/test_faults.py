"""Faults with real processes: `kill -9` during a build and during `--add`, and a question
built to be expensive. Small corpora and a small cache flush keep each under a minute."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag import store

ROOT = Path(__file__).parent.parent


def _corpus(settings, tmp_path, doc_ids: list[str]):
    """A corpus of some of the real documents, with an empty index folder (nothing cached)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    manifest = json.loads((settings.corpus_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["documents"] = [e for e in manifest["documents"] if e["doc_id"] in doc_ids]
    for e in manifest["documents"]:
        shutil.copy(settings.corpus_dir / e["file"], corpus / e["file"])
    (corpus / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return settings.replace(corpus_dir=corpus, index_dir=tmp_path / "index", embed_flush=16)


def _rag(settings, *args, wait: bool = True):
    cmd = [sys.executable, "-m", "rag.cli", "--corpus-dir", str(settings.corpus_dir), "--index-dir",
           str(settings.index_dir), *args]
    env = {**os.environ, "RAG_EMBED_FLUSH": str(settings.embed_flush)}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)


def _kill_when(proc: subprocess.Popen, marker: str, seconds: float = 120) -> str:
    """SIGKILL the process as soon as its output shows ``marker`` (bounded); its output so far."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not any(marker in ln for ln in lines) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    seen = "".join(lines)
    assert marker in seen, f"never saw {marker!r}: {seen[-500:]}"
    return seen


def test_a_build_killed_while_embedding_keeps_the_old_index_and_the_next_build_resumes(settings, tmp_path):
    s = _corpus(settings, tmp_path, ["luolong-2025-xunli"])
    assert _rag(s, "index").returncode == 0
    old = store.load_index(s)
    # a second document arrives; its build is killed after the first flushes of the cache
    entry = next(e for e in json.loads((settings.corpus_dir / "manifest.json").read_text())["documents"]
                 if e["doc_id"] == "yingkou-2025-reports")
    shutil.copy(settings.corpus_dir / entry["file"], s.corpus_dir / entry["file"])
    manifest = json.loads((s.corpus_dir / "manifest.json").read_text())
    manifest["documents"].append(entry)
    (s.corpus_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    _kill_when(_rag(s, "index", wait=False), "embedded 32/")

    # the old index is whole and still served (stale, not broken)
    survivor = store.load_index(s, check_corpus=False)
    assert [c.id for c in survivor.chunks] == [c.id for c in old.chunks]
    with pytest.raises(store.IndexError_, match="stale"):
        store.load_index(s)

    again = _rag(s, "index")
    assert again.returncode == 0, again.stderr
    new = store.load_index(s)  # current again, with both documents
    assert {c.doc_id for c in new.chunks} == {"luolong-2025-xunli", "yingkou-2025-reports"}
    assert not list(s.index_dir.glob("building-*"))
    embedded, cached = map(int, re.search(r"\((\d+) embedded, (\d+) from cache\)", again.stdout).groups())
    assert cached >= len(old.owner) + 32  # the killed build's flushed vectors were kept: it resumed


def test_an_add_killed_while_embedding_changes_nothing_and_adding_again_works(settings, tmp_path):
    s = _corpus(settings, tmp_path, ["luolong-2025-xunli"])
    assert _rag(s, "index").returncode == 0
    before = (s.corpus_dir / "manifest.json").read_text()
    src = tmp_path / "yingkou.txt"
    shutil.copy(settings.corpus_dir / "yingkou-2025-reports.txt", src)
    args = ("index", "--add", str(src), "--doc-id", "yingkou-copy", "--title", "营口市人大常委会工作报告",
            "--city", "营口市", "--year", "2025", "--doc-type", "work_report")
    proc = _rag(s, *args, wait=False)
    time.sleep(4)  # well inside its embedding (~150 sentence windows at ~20 a second)
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    # nothing half-done: the manifest, the corpus folder and the index are as before
    assert (s.corpus_dir / "manifest.json").read_text() == before
    assert not (s.corpus_dir / "yingkou-copy.txt").exists()
    assert {c.doc_id for c in store.load_index(s).chunks} == {"luolong-2025-xunli"}  # not stale either

    added = _rag(s, *args)
    assert added.returncode == 0, added.stderr
    assert "yingkou-copy" in {c.doc_id for c in store.load_index(s).chunks}


def test_an_expensive_question_is_bounded_before_it_reaches_the_encoder(answerer):
    """The cost of a question grows with the tokens embedded, the characters LAC tags and the
    places searched: a 1,000-character question gets at most 1.5 × max_embed_tokens tokens,
    LAC_CHARS characters tagged and four places."""
    from rag import question
    from rag.embedders import within_tokens

    r, cap = answerer.retriever, answerer.settings.max_embed_tokens
    names = "洛阳市、洛龙区、新安县、中原区、鲅鱼圈区、盖州市、大石桥市、老边区、站前区、西市区、汝阳县、嵩县、"
    long_q = ((names * 40)[:980] + "分别召开了多少次常委会会议？")[:1000]
    embedded = []
    original = r.embedder.embed_queries
    r.embedder.embed_queries = lambda texts: embedded.extend(texts) or original(texts)
    searches = []
    search = r.search
    r.search = lambda *a, **k: searches.append(k.get("filters")) or search(*a, **k)
    tagged = []
    lac = question._lac_tags
    question._lac_tags = lambda text: tagged.append(text) or lac(text)
    try:
        r.clear_cache()
        answerer.ask(long_q)
    finally:
        r.embedder.embed_queries, r.search, question._lac_tags = original, search, lac
    assert tagged and max(map(len, tagged)) <= question.LAC_CHARS
    assert len(embedded) == 1  # once per request, whatever the places
    assert r.embedder.token_count(embedded[0]) <= cap * 1.5
    assert len([f for f in searches if f]) <= 4
    assert within_tokens(r.embedder, "洛阳市加装了多少部电梯？", cap) == "洛阳市加装了多少部电梯？"  # ordinary ones untouched
