"""Real faults: kill -9 of a writer at exact moments, an unwritable index folder, concurrent writers,
a symlink out of the folder, an oversized file, a mistyped model path, the API without `history`.
Each ends with the folder and the index agreeing, nothing lost or duplicated, and a clear message."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from qa import QA, IndexBusy, ModelLoadError
from qa.config import PACKAGE_ROOT
from qa.reader import Reader
from qa.stores.embedded import load_index, writer_lock

from .conftest import SEED_ARTICLE, SEEDS

WORKER = Path(__file__).parent / "fault_worker.py"
MAYOR = ("# Lindenbrook elects a new mayor\n\n2026-03-02\n\nThe town of Lindenbrook elected Maria Okafor as its mayor "
         "on Sunday. Okafor, a former school teacher, won 58 percent of the vote.\n\n"
         + "\n\n".join(f"Paragraph {i} of the report describes the count in district {i}, where turnout was "
                       f"{40 + i} percent and the polls closed at eight in the evening without incident. "
                       f"Observers from the regional office confirmed the result of district {i} on Monday."
                       for i in range(12)))
LIGHTHOUSE = "The Port Ellis lighthouse\n\nThe Port Ellis lighthouse was designed by the architect Odile Brandt in 1911.\n"


def env(**extra) -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(PACKAGE_ROOT))
    e.update(extra)
    return e


def files(index: Path) -> set[str]:
    return {p.name for p in index.iterdir()}


def assert_clean(index: Path) -> None:
    """Only the live version, the one before it and the lock files: no leftovers of anyone."""
    live = load_index(index)
    names = files(index) - {"CURRENT", ".writer.lock", ".writer.pid"}
    assert names <= {live.path.name, live.manifest.get("previous")}, names


# -- kill -9 of a writer at exact moments ----------------------------------------------------------------
@pytest.mark.parametrize("point, switched", [("embedding", False), ("files-written", False),
                                             ("before-switch", False), ("before-clean-up", True)])
def test_writer_killed_at_any_moment_leaves_a_loadable_index(make_qa, point, switched):
    qa = make_qa()
    folder, index = qa.settings.articles, qa.settings.index
    (folder / "lindenbrook.md").write_text(MAYOR, encoding="utf-8")
    qa.update()  # a second version, so that there is an older one to clean up later
    (folder / "lindenbrook.md").write_text(MAYOR.replace("58 percent", "61 percent"), encoding="utf-8")
    before = load_index(index)

    done = subprocess.run([sys.executable, str(WORKER), "kill", point, str(folder), str(index)],
                          check=False, capture_output=True, text=True, timeout=300, env=env())
    assert done.returncode == -9, done.stdout + done.stderr

    live = load_index(index)  # whatever the moment, the index loads, old or new, never half
    assert (live.path != before.path) == switched
    sha = live.manifest["articles"]["lindenbrook.md"]["sha256"]
    assert (sha != before.manifest["articles"]["lindenbrook.md"]["sha256"]) == switched

    again = make_qa()  # the next writer: brings the index up to date and removes the leftovers
    assert again.last_report.changed == ([] if switched else ["lindenbrook.md"])
    assert_clean(index)
    a = again.answer("What share of the vote did Okafor win?")
    assert a.text == "61 percent"


# -- the index folder cannot be written -----------------------------------------------------------------
# Root without any capability (CAP_DAC_OVERRIDE and the rest: what lets root ignore file permissions and
# ownership). Still uid 0, so it reaches all that root owns and may enter, the virtual environment and the
# checkout included, wherever they are (a clone under a folder only root may enter, which `nobody` cannot).
DROP_PRIVILEGES = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"]


def _without_root_privileges() -> list[str]:
    """The prefix that runs a command as root without capabilities, once shown to work here: a folder of
    nobody's, mode 555, stays unwritable. Skips, saying why, where it does not."""
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv (util-linux): cannot drop root's privileges")
    probe = Path(tempfile.mkdtemp(prefix="qa-noprivs-"))
    try:
        os.chown(probe, 65534, 65534)
        os.chmod(probe, 0o555)
        done = subprocess.run([*DROP_PRIVILEGES, sys.executable, "-c", "import sys; open(sys.argv[1] + '/x', 'w')",
                               str(probe)], check=False, capture_output=True, text=True, timeout=60, env=env())
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if "PermissionError" not in done.stderr:
        pytest.skip("cannot drop root's privileges here: "
                    + ((done.stderr.strip() or "a folder of nobody's, mode 555, stayed writable")[-500:]))
    return DROP_PRIVILEGES


def test_unwritable_index_changes_nothing_and_says_so(embedder, reader):
    """As root (which ignores file permissions), the index is handed to `nobody` and the add, the remove and
    the CLI run as root without its privileges (DROP_PRIVILEGES): they can neither write the index nor take it."""
    work = Path(tempfile.mkdtemp(prefix="qa-unwritable-"))
    try:
        os.chmod(work, 0o755)
        articles, index = work / "articles", work / "index"
        articles.mkdir()
        shutil.copy2(SEEDS / SEED_ARTICLE, articles)
        (articles / "second.txt").write_text(LIGHTHOUSE, encoding="utf-8")
        QA(articles=articles, index=index, embedder=embedder, reader=reader)  # built while writable
        home = work / "home"
        home.mkdir()
        if os.geteuid() == 0:
            prefix = _without_root_privileges()
            for p in [index, *index.rglob("*")]:  # not the process's own: it cannot chmod it back either
                os.chown(p, 65534, 65534)
        else:
            prefix = []
        for p in [index, *index.rglob("*")]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        # the same runtime as the index was built with (its embedder id), from a readable copy of the
        # model export cache (qa/runtime.py), so that the user does not export the models again
        try:
            from qa.export import cache_root
        except ImportError:  # no export cache in this version
            cache_root = None
        if cache_root is not None and cache_root().is_dir():
            shutil.copytree(cache_root(), home / "runtime-cache")
        run_env = env(HOME=str(home), HF_HOME=str(home / "hf"), QA_RUNTIME_CACHE=str(home / "runtime-cache"))
        done = subprocess.run([*prefix, sys.executable, str(WORKER), "unwritable", str(articles), str(index)],
                              check=False, capture_output=True, text=True, timeout=300, env=run_env, cwd=work)
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        for attempt in out["add"]:  # the add and its retry: refused, and no file left behind
            assert attempt.startswith("StorageError: cannot write the index in") and str(work) not in attempt.split("public:")[1]
        assert out["files_after"] == out["files_before"] == sorted([SEED_ARTICLE, "second.txt"])
        assert out["remove"].startswith("StorageError")  # the file stays, and so does its entry
        assert out["articles_after"] == out["on_disk"] == out["articles_before"]
        assert out["answer"] == "second.txt"

        # the CLI: one clear line and exit code 2, no traceback
        (articles / "third.txt").write_text("Third\n\nA third article about the harbour of Port Ellis.\n")
        done = subprocess.run([*prefix, sys.executable, "-m", "qa.cli", "index", "--articles", str(articles),
                               "--index", str(index)], check=False, capture_output=True, text=True, timeout=300, env=run_env, cwd=work)
        assert done.returncode == 2 and "error: cannot write the index" in done.stderr, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
    finally:
        for p in work.rglob("*"):
            if p.is_dir():
                os.chmod(p, 0o755)
        shutil.rmtree(work, ignore_errors=True)


# -- one writer at a time -------------------------------------------------------------------------------
@pytest.mark.parametrize("writers", [2, 3])
def test_concurrent_writers_wait_their_turn(make_qa, writers):
    qa = make_qa()
    folder, index = qa.settings.articles, qa.settings.index
    procs, logs = [], []
    with writer_lock(index):  # held here, so that every writer has to wait for the others
        for i in range(writers):
            (folder / f"note-{i}.txt").write_text(f"Note {i}\n\nThe harbour festival number {i} takes place in "
                                                  f"Port Ellis on {i + 10} June.\n", encoding="utf-8")
            log = open(folder.parent / f"writer-{i}.log", "w+")  # noqa: SIM115 - closed below
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, "-m", "qa.cli", "index", "--articles", str(folder),
                                           "--index", str(index)], stdout=log, stderr=subprocess.STDOUT, env=env()))
        deadline = time.time() + 120
        while time.time() < deadline and not all("waiting" in Path(log.name).read_text() for log in logs):
            time.sleep(0.2)
        assert all("waiting" in Path(log.name).read_text() for log in logs)
    for p in procs:
        assert p.wait(timeout=300) == 0, [Path(log.name).read_text() for log in logs]
    live = load_index(index)
    assert sorted(live.manifest["articles"]) == sorted(p.name for p in folder.iterdir())
    assert_clean(index)
    # each article embedded once: later writers found the work done
    reports = [Path(log.name).read_text() for log in logs]
    for log in logs:
        log.close()
    assert sum(int(r.split(" added")[0].rsplit(None, 1)[-1]) for r in reports if " added" in r) == writers


def test_writer_gives_up_after_the_timeout(make_qa):
    qa = make_qa(lock_timeout=1)
    (qa.settings.articles / "note.txt").write_text("Note\n\nSomething new.\n")
    with writer_lock(qa.settings.index):
        t0 = time.perf_counter()
        with pytest.raises(IndexBusy, match="still being updated"):
            qa.update()
        assert time.perf_counter() - t0 < 10


def test_threads_adding_at_once_each_get_one_file(make_qa):
    qa = make_qa()
    results, errors = [], []

    def add(i):
        try:
            results.append(qa.add_article(f"town {i}.txt", f"Town {i}\n\nThe town number {i} has a new bakery.\n".encode()))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)
    threads = [threading.Thread(target=add, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == ["town-0.txt", "town-1.txt", "town-2.txt"]
    on_disk = sorted(load_index(qa.settings.index).manifest["articles"])
    assert sorted(qa.articles) == on_disk == sorted(p.name for p in qa.settings.articles.iterdir())


# -- inputs ---------------------------------------------------------------------------------------------
def test_symlink_out_of_the_folder_is_skipped_and_reported(make_qa, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("Vault\n\nThe vault password is swordfish-42.\n")
    qa = make_qa()
    (qa.settings.articles / "vault.txt").symlink_to(secret)
    report = qa.update()
    assert "vault.txt" not in qa.articles
    assert any(p.endswith("vault.txt") for p in report.skipped)
    assert "outside the articles folder" in report.summary()
    assert "swordfish" not in (qa.answer("What is the vault password?").text or "")


def test_oversized_file_in_the_folder_is_skipped_with_a_warning(make_qa, caplog):
    qa = make_qa(max_article_bytes=16 * 1024)
    (qa.settings.articles / "huge.txt").write_text("Huge\n\n" + "A long sentence about nothing. " * 1000)
    report = qa.update()
    assert "huge.txt" not in qa.articles and report.added == []
    assert "larger than the limit of 16 KB" in report.summary() and "larger than the limit of 16 KB" in caplog.text


# -- models ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ref, message", [("models/readr", "reader model folder not found: models/readr"),
                                          ("./nowhere/reader", "reader model folder not found"),
                                          ("someone/some-reader", "not in the Hugging Face cache")])
def test_wrong_model_reference_fails_at_once(ref, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=message):
        _ = Reader(ref).model
    assert time.perf_counter() - t0 < 5


# -- the API without `history` --------------------------------------------------------------------------
def call(url: str, route: str, data: list) -> tuple[str, object]:
    """A plain HTTP client: POST the call, then read its event stream."""
    req = urllib.request.Request(f"{url}gradio_api/call/{route}", data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/{route}/{event_id}", timeout=120).read().decode()
    event = stream.split("event: ")[-1].split("\n", 1)[0].strip()
    payload = json.loads(stream.split("data: ")[-1].strip())
    return event, payload


def test_plain_http_api_without_history(app_server):
    event, payload = call(app_server["url"], "ask", ["Who directed the film?"])
    assert event == "complete" and payload[0]["text"] == "Kang Yun-sung"
    event, payload = call(app_server["url"], "ask", ["When did it open in theaters?", ["Who directed Run to the West?"]])
    assert event == "complete" and payload[0]["text"] == "Wednesday"
    event, payload = call(app_server["url"], "chat", ["Who directed the film?"])
    assert event == "complete" and "Kang Yun-sung" in json.dumps(payload)
    event, payload = call(app_server["url"], "ask", ["   "])
    assert event == "error" and payload["error"] == "the question is empty"


# -- who may change the articles ------------------------------------------------------------------------
def elem_ids(url: str) -> set[str]:
    config = json.loads(urllib.request.urlopen(f"{url}config", timeout=30).read())
    return {c.get("props", {}).get("elem_id") for c in config["components"]} - {None}


def test_read_only_app_has_no_write_controls(app_server, app_qa):
    import socket

    from qa.web import page as chat_app

    writes = {"upload", "add", "remove", "confirm-remove", "url", "add-url"}
    assert writes <= elem_ids(app_server["url"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = chat_app.build_app(app_qa, read_only=True)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **chat_app.launch_options(app_qa))
    try:
        ids = elem_ids(demo.local_url)
        assert "read-only" in ids and not ids & writes
        # nothing but questions on the server: the chat, the examples, the panel's refresh, the ask API
        assert all(d.name in ("chat", "<lambda>", "ask_api", "follow") for d in demo.fns.values()), \
            [d.name for d in demo.fns.values()]
        event, payload = call(demo.local_url, "ask", ["Who directed the film?"])
        assert event == "complete" and payload[0]["text"] == "Kang Yun-sung"
    finally:
        demo.close()


def test_open_address_needs_a_login_or_read_only(capsys):
    import app as launcher

    assert launcher.main(["--host", "0.0.0.0", "--articles", "nowhere"]) == 2
    assert "--auth USER:PASSWORD" in capsys.readouterr().err
    assert launcher.main(["--host", "0.0.0.0", "--auth", "no-colon"]) == 2


def test_cli_is_quiet_and_fails_in_one_line(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "articles")
    done = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Who directed the film?", "--articles", "articles",
                           "--index", "idx"], check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=env(QA_READER="models/readr"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == "error: reader model folder not found: models/readr"  # no bars, no traceback
