"""`rag index --ray ADDRESS` on a two-node Ray cluster equals the one-process build.

Ray binds the host's interface address even when told 127.0.0.1, so the cluster runs in a
network namespace this test makes (only loopback exists there) and a PID namespace, as root:
`unshare -n -p -f --mount-proc`. The script run there starts a head and a second node, builds
the index through them, then stops every process it started by PID (SIGTERM, then SIGKILL) —
never `ray stop`, which kills by name whatever Ray runs on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

pytest.importorskip("ray")

from rag.store import build_index, current_dir  # noqa: E402

DOCS = ("luolong-2025-xunli", "xinan-2023-xunli", "zhongyuan-2020-report")


def _can_unshare() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _can_unshare(), reason="needs root for `unshare -n -p` (a loopback-only "
                                                           "network namespace for Ray)")

# Runs as PID 1 of the new namespaces; every process Ray starts is its descendant there.
CLUSTER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    bin_dir, index_dir, temp_dir, port = sys.argv[1:5]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    def ray(*args):
        r = subprocess.run([f"{bin_dir}/ray", "start", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                            "--disable-usage-stats", *args], env=env, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise SystemExit(f"ray start {' '.join(args)} failed: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    code = 1
    try:
        ray("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}")
        ray(f"--address=127.0.0.1:{port}", f"--temp-dir={temp_dir}")
        t0 = time.monotonic()
        run = subprocess.run([f"{bin_dir}/rag", "--index-dir", index_dir, "index", "--ray", f"127.0.0.1:{port}"],
                             env=env, capture_output=True, text=True, timeout=600)
        print(run.stdout, run.stderr[-3000:] if run.returncode else "", sep="\\n")
        print(f"seconds {time.monotonic() - t0:.1f}")
        code = run.returncode
    finally:
        mine = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in mine:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    pass
                if not any(os.path.exists(f"/proc/{pid}") for pid in mine):
                    break
                time.sleep(0.2)
        left = [pid for pid in mine if os.path.exists(f"/proc/{pid}")]
        print(f"stopped {len(mine)} processes; left {len(left)}")
    sys.exit(code)
""")


@pytest.fixture()
def small_corpus(tmp_path, built):
    """Three short documents of the shipped corpus: a cluster build in well under a minute."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    manifest = json.loads(built.manifest_path.read_text(encoding="utf-8"))
    manifest["documents"] = [e for e in manifest["documents"] if e["doc_id"] in DOCS]
    for e in manifest["documents"]:
        shutil.copy(built.corpus_dir / e["file"], corpus / e["file"])
    (corpus / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return built.replace(corpus_dir=corpus, index_dir=tmp_path / "one")


def test_a_two_node_cluster_builds_the_index_the_one_process_build_does(small_corpus, built, tmp_path):
    one = small_corpus
    if (built.index_dir / "cache").exists():  # vectors a one-process build embedded
        shutil.copytree(built.index_dir / "cache", one.index_dir / "cache")
    build_index(one)
    ray_index = tmp_path / "ray"  # no embedding cache: every vector comes from the cluster
    bin_dir = os.path.dirname(sys.executable)
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    try:
        # a private HOME: Ray keeps an auth token in ~/.ray, and a stray one breaks joining a head
        env = {**os.environ, "RAG_CORPUS_DIR": str(one.corpus_dir), "HOME": temp_dir}
        run = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", sys.executable, "-c", CLUSTER,
                              bin_dir, str(ray_index), temp_dir, "6390"],
                             env=env, capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    assert "embedded on 2 node(s)" in out, out  # rows came from both nodes
    assert "left 0" in out, out  # every process the cluster started is gone
    a, b = current_dir(one), ray_index / "current"
    assert (a / "chunks.jsonl").read_text(encoding="utf-8") == (b / "chunks.jsonl").read_text(encoding="utf-8")
    assert np.array_equal(np.load(a / "owner.npy"), np.load(b / "owner.npy"))
    assert np.array_equal(np.load(a / "vectors.npy"), np.load(b / "vectors.npy"))
    manifest = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == json.loads((a / "manifest.json").read_text(encoding="utf-8"))["counts"]
