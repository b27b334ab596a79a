"""The chat's edge, against real servers on 127.0.0.1 (one per kind, for the whole module): oversized
requests refused before any work, no session left by a one-shot HTTP call, real loopback only, the
article limit on uploads in our words, no files taken by a read-only page, slower failed logins, a
long article id kept inside the panel, and no error reaching a client as a bare {"error": null}."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from qa.web import page as chat_app
import app as launcher  # app.py, at the repo root pytest puts on sys.path
from qa.web import edge as web_edge
from qa import InvalidInput
from qa.limits import MAX_HISTORY_ITEMS

from .conftest import SEED_ARTICLE, SEED_FILE, SEEDS

QUESTION = "Who directed the film?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(qa, read_only: bool, auth=None):
    demo = chat_app.build_app(qa, read_only=read_only)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True, auth=auth,
                **chat_app.launch_options(qa))
    return demo


@pytest.fixture(scope="module")
def read_only(app_qa):
    """The page a --read-only server shows: /ask open to anyone, no login."""
    demo = _launch(app_qa, read_only=True)
    yield demo
    demo.close()


USERS = {"reader": "correct horse"}


@pytest.fixture(scope="module")
def with_login(app_qa):
    check = web_edge.login_check(USERS)
    demo = _launch(app_qa, read_only=True, auth=check)
    demo.logins = check.logins   # the failures it keeps per client, for the test to read
    yield demo
    demo.close()


def call(url: str, route: str, data: list) -> tuple[int, str, object]:
    """A plain HTTP client: POST the call, then read its event stream -> (status, event, payload)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        posted = http.post(f"gradio_api/call/{route}", json={"data": data})
        if posted.status_code != 200:
            return posted.status_code, "", posted.json()
        stream = http.get(f"gradio_api/call/{route}/{posted.json()['event_id']}").text
    event = stream.split("event: ")[-1].split("\n", 1)[0].strip()
    return 200, event, json.loads(stream.split("data: ")[-1].strip())


@pytest.fixture
def answers(app_qa, monkeypatch):
    """Counts the questions that reach QA.answer."""
    seen = []
    real = app_qa.answer

    def counting(question, *args, **kwargs):
        seen.append(question)
        return real(question, *args, **kwargs)

    monkeypatch.setattr(app_qa, "answer", counting)
    return seen


# -- 1. an oversized request is refused before any work ----------------------------------------------
def test_ten_megabyte_history_is_refused_before_any_work(read_only, app_qa, answers):
    url = read_only.local_url
    limit = chat_app.format_size(web_edge.request_limit(app_qa.settings))
    with httpx.Client(base_url=url, timeout=60) as http:
        refused = http.post("gradio_api/call/ask", json={"data": [QUESTION, ["x" * 10_000_000]]})
        assert refused.status_code == 413
        assert f"larger than the limit of {limit}" in refused.json()["error"]
        # the same without a Content-Length (chunked): counted as it arrives, refused at the limit
        body = json.dumps({"data": [QUESTION, ["y" * 2_000_000]]}).encode()
        chunked = http.post("gradio_api/call/ask", content=(body[i:i + 65536] for i in range(0, len(body), 65536)),
                            headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and "larger than the limit" in chunked.json()["error"]
        # the queue route a browser or gradio_client uses
        joined = http.post("gradio_api/queue/join", json={"data": ["x" * 10_000_000], "fn_index": 0,
                                                          "session_hash": "s" + uuid.uuid4().hex})
        assert joined.status_code == 413
    assert answers == []  # nothing reached the reader
    # the largest valid request still passes the edge (and is answered)
    status, event, payload = call(url, "ask", [QUESTION, ["why? " * 199] * MAX_HISTORY_ITEMS])
    assert status == 200 and event == "complete" and payload[0]["text"] == "Kang Yun-sung"


@pytest.mark.parametrize("history, message", [
    ([QUESTION] * (MAX_HISTORY_ITEMS + 1), f"the limit is {MAX_HISTORY_ITEMS}"),
    (["x" * 1001], "the limit is 1000"),
    ("Who directed the film?", "history must be a list"),
])
def test_history_over_the_limits_is_refused_in_one_line(read_only, history, message):
    status, event, payload = call(read_only.local_url, "ask", [QUESTION, history])
    assert status == 200 and event == "error"
    assert message in payload["error"] and "\n" not in payload["error"]
    with pytest.raises(AppError, match=message):
        Client(read_only.local_url, verbose=False).predict(QUESTION, history, api_name="/ask")


def test_chat_passes_at_most_the_last_history_items(read_only, app_qa, monkeypatch):
    got = {}

    def record(question, k=None, history=()):
        got["history"] = list(history)
        raise InvalidInput("stop here")

    monkeypatch.setattr(app_qa, "answer", record)
    chat = next(f.fn for f in read_only.fns.values() if f.name == "chat")
    turns = [{"question": f"question {i}", "valid": True, "reply": "<p>x</p>"} for i in range(3 * chat_app.TURNS_KEPT)]
    _, messages, kept = chat(QUESTION, turns)
    assert got["history"] == [f"question {i}" for i in range(3 * chat_app.TURNS_KEPT - MAX_HISTORY_ITEMS,
                                                              3 * chat_app.TURNS_KEPT)]
    assert len(kept) == chat_app.TURNS_KEPT and len(messages) == 2 * chat_app.TURNS_KEPT
    assert "stop here" in messages[-1]["content"]


# -- 2. one-shot HTTP calls leave no session behind ---------------------------------------------------
def test_one_shot_http_calls_leave_no_session(read_only):
    sessions = read_only.app.state_holder.session_data
    call(read_only.local_url, "ask", [QUESTION])  # the first call may set up what every call shares
    before = len(sessions)
    for _ in range(5):
        assert call(read_only.local_url, "ask", [QUESTION])[1] == "complete"
        assert call(read_only.local_url, "chat", [QUESTION])[1] == "complete"
    assert len(sessions) <= before
    # a client with a session of its own keeps it (its conversation)
    client = Client(read_only.local_url, verbose=False)
    client.predict(QUESTION, api_name="/chat")
    assert client.session_hash in sessions
    assert read_only.state_session_capacity == chat_app.SESSIONS_KEPT


# -- 3. loopback means a loopback address -------------------------------------------------------------
@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("::ffff:127.0.0.1", True),
    ("127.0.0.1.nip.io", False), ("127.example.com", False), ("0.0.0.0", False), ("::", False),
    ("10.0.0.1", False), ("localhost.example.com", False), ("", False),
])
def test_only_real_loopback_addresses_count(host, loopback):
    assert chat_app.is_loopback(host) is loopback


def test_a_name_that_starts_with_127_needs_a_login(capsys):
    assert launcher.main(["--host", "127.0.0.1.nip.io", "--articles", "nowhere"]) == 2
    assert "--auth USER:PASSWORD" in capsys.readouterr().err


def test_qa_serve_finds_the_edge_from_any_folder(tmp_path):
    """`qa serve` loads app.py by its path; it must find the package from any folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", "from qa.cli import main; main()", "serve", "--host", "10.0.0.1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2 and "--auth USER:PASSWORD" in run.stderr, run.stderr[-2000:]


# -- 4. uploads: the article limit in our words, nothing stored past it, nothing kept after an add ------
def test_upload_over_the_article_limit_gets_our_message(app_server, app_qa):
    limit = app_qa.settings.max_article_bytes
    ours = f"larger than the limit of {chat_app.format_size(limit)}"
    with httpx.Client(base_url=app_server["url"], timeout=60) as http:
        config = http.get("config").json()
        assert config["max_file_size"] == limit  # the page's own check uses the article limit too
        for size in (limit + 1, 3 * 1024 * 1024, 17 * 1024 * 1024):
            r = http.post("gradio_api/upload", files={"files": ("big.txt", b"w" * size, "text/plain")})
            assert r.status_code == 413 and ours in r.text, (size, r.status_code, r.text[:200])
        small = http.post("gradio_api/upload", files={"files": ("small.txt", b"a few words", "text/plain")})
        assert small.status_code == 200 and small.json()[0].endswith("small.txt")
    chat_app.discard_upload(app_server["demo"], small.json()[0])
    assert not Path(small.json()[0]).exists() and not Path(small.json()[0]).parent.exists()


MB = 1024 * 1024


def _multipart(parts: list[tuple[str, str, bytes]], boundary: str = "qa-test-boundary") -> tuple[bytes, dict]:
    """A multipart body of (field, file name, bytes) parts and its Content-Type header."""
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                    f"Content-Type: text/plain\r\n\r\n".encode() + data + b"\r\n" for field, name, data in parts)
    return body + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _chunked(body: bytes, size: int = 64 * 1024):
    """httpx sends a generator chunked: Transfer-Encoding: chunked, no Content-Length."""
    return (body[i:i + size] for i in range(0, len(body), size))


def _stored(demo, marker: bytes) -> list[Path]:
    """Files in Gradio's upload cache that begin with `marker` (every file a test uploads begins with its own)."""
    found = []
    for path in Path(demo.GRADIO_CACHE).rglob("*"):
        try:
            with path.open("rb") as f:
                if f.read(len(marker)) == marker:
                    found.append(path)
        except OSError:  # a folder, or a file another server just deleted
            continue
    return found


def test_no_request_shape_stores_anything_past_the_limit(app_server, app_qa):
    demo, marker = app_server["demo"], f"qa-test-{uuid.uuid4().hex}".encode()
    ours = f"larger than the limit of {chat_app.format_size(app_qa.settings.max_article_bytes)}"
    file = marker + b"w" * (19 * MB // 10 - len(marker))  # 1.9 MB: each one under the article limit
    noted = set(demo.upload_file_set)
    with httpx.Client(base_url=app_server["url"], timeout=120) as http:
        # ten 1.9 MB files, chunked: counted as they arrive, refused at the limit
        body, headers = _multipart([("files", f"part{i}.txt", file) for i in range(10)])
        r = http.post("gradio_api/upload", content=_chunked(body), headers=headers)
        assert r.status_code == 413 and ours in r.json()["error"]
        body, headers = _multipart([("files", "big.txt", file + file)])  # one 3.8 MB file, chunked
        assert http.post("gradio_api/upload", content=_chunked(body), headers=headers).status_code == 413
        # one file at a time, in the "files" field, with a name Gradio can store, from a complete body:
        # any other shape is refused before Gradio writes a byte (it would keep those files for good)
        for parts, why in [([("files", "a.txt", marker), ("files", "b.txt", marker)], "one file at a time, not 2"),
                           ([("other", "a.txt", marker)], 'a file in the "files" field'),
                           ([("files", "..", marker)], "the file name needs a letter or a digit"),
                           ([("files", "?..", marker)], "the file name needs a letter or a digit")]:
            body, headers = _multipart(parts)
            for content in (body, _chunked(body)):
                r = http.post("gradio_api/upload", content=content, headers=headers)
                assert r.status_code == 400 and why in r.json()["error"], (parts, r.status_code, r.text)
        body, headers = _multipart([("files", "a.txt", marker)])
        r = http.post("gradio_api/upload", content=body[:-30], headers=headers)  # cut short, no closing boundary
        assert r.status_code == 400 and "not a complete multipart body" in r.json()["error"]
        r = http.post("gradio_api/component_server", content=body, headers=headers)
        assert r.status_code == 403 and "only through its upload box" in r.json()["error"]
        assert _stored(demo, marker) == [] and demo.upload_file_set == noted
        # the same small file, chunked, is an upload like any other
        r = http.post("gradio_api/upload", content=_chunked(body, 7), headers=headers)
        assert r.status_code == 200 and Path(r.json()[0]).read_bytes() == marker
    chat_app.discard_upload(demo, r.json()[0])
    assert _stored(demo, marker) == [] and demo.upload_file_set == noted


def run_event(demo, name: str, data: list) -> dict:
    """One of the page's events, called over HTTP as the browser calls it (its private ones too): join
    the queue, read the session's event stream; returns the process_completed message."""
    fn_index = next(i for i, f in demo.fns.items() if f.name == name)
    session = uuid.uuid4().hex
    with httpx.Client(base_url=demo.local_url, timeout=120) as http:
        joined = http.post("gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                          "event_data": None, "trigger_id": None})
        assert joined.status_code == 200, joined.text
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError(f"{name}: no result")


def _file_data(path: str) -> dict:
    return {"path": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def test_uploads_leave_the_cache_once_added_or_refused(app_server, app_qa, monkeypatch):
    demo, marker = app_server["demo"], f"qa-test-{uuid.uuid4().hex}".encode()
    noted, cache = set(demo.upload_file_set), Path(demo.GRADIO_CACHE).resolve()
    opened, real = [], tempfile.NamedTemporaryFile  # Gradio's own file box opens an empty one for each add

    def spy(*args, **kwargs):
        if kwargs.get("dir") and Path(kwargs["dir"]).resolve() == cache:
            opened.append(kwargs["dir"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", spy)
    article = marker + b"\n\nThe city of Tartu opened a footbridge designed by the engineer Mirela Quantrell.\n"
    added = None
    try:
        with httpx.Client(base_url=app_server["url"], timeout=120) as http:
            body, headers = _multipart([("files", "tartu.txt", article)])
            chunked = http.post("gradio_api/upload", content=_chunked(body), headers=headers)
            binary = http.post("gradio_api/upload", files={"files": ("binary.txt", marker + b"\x00\x01" * 100)})
        assert chunked.status_code == binary.status_code == 200 and len(_stored(demo, marker)) == 2
        done = run_event(demo, "on_upload", [_file_data(chunked.json()[0])])
        status = done["output"]["data"][0]
        assert done["success"] and status.startswith("Added"), done
        added = status.split("<b>", 1)[1].split("</b>", 1)[0]
        assert (app_qa.settings.articles / added).read_bytes() == article  # the article's own copy
        assert _stored(demo, marker) == [Path(binary.json()[0])]  # the added upload is gone from the cache
        done = run_event(demo, "on_upload", [_file_data(binary.json()[0])])
        assert done["success"] and "Not added" in done["output"]["data"][0] and "binary" in done["output"]["data"][0]
        assert _stored(demo, marker) == [] and demo.upload_file_set == noted  # and so is the refused one
        assert not Path(chunked.json()[0]).parent.exists() and not Path(binary.json()[0]).parent.exists()
        assert opened == []  # and no empty temporary file was left beside them
        config = httpx.get(f"{app_server['url']}config", timeout=30).json()  # the page still shows Gradio's box
        assert next(c["type"] for c in config["components"] if c.get("props", {}).get("elem_id") == "upload") == "file"
    finally:
        if added:
            app_qa.remove_article(added)
    assert demo.delete_cache == (chat_app.UPLOAD_SWEEP, chat_app.UPLOAD_KEPT)  # one never added goes within the hour


def test_a_file_not_uploaded_here_is_the_clients_error(app_server, app_qa):
    before = set(app_qa.articles)
    done = run_event(app_server["demo"], "on_upload", [_file_data(str(SEED_FILE))])
    assert not done["success"] and done["output"]["error"] == chat_app.NOT_UPLOADED
    assert chat_app.SERVER_FAULT not in json.dumps(done) and set(app_qa.articles) == before
    assert SEED_FILE.exists()  # and nothing outside the cache is touched


# -- 5. a read-only page takes no files ---------------------------------------------------------------
def test_read_only_page_takes_no_files(read_only):
    name = f"{uuid.uuid4().hex}.txt"
    with httpx.Client(base_url=read_only.local_url, timeout=60) as http:
        for route in ("gradio_api/upload", "gradio_api/upload/", "gradio_api/process_recording",
                      "gradio_api/component_server"):
            r = http.post(route, files={"files": (name, b"a few words", "text/plain")})
            assert r.status_code == 403 and "read-only" in r.json()["error"], (route, r.status_code)
        assert http.get("config").json()["max_file_size"] == 0
    assert not list(Path(read_only.app.uploaded_file_dir).rglob(name))


# -- 6. failed logins slow down -----------------------------------------------------------------------
def test_failed_logins_slow_down_per_client(with_login):
    def login(password: str) -> tuple[int, float]:
        t = time.perf_counter()
        r = httpx.post(f"{with_login.local_url}login", data={"username": "reader", "password": password},
                       timeout=30)
        return r.status_code, time.perf_counter() - t

    status, base = login(USERS["reader"])   # what a login costs here with nothing to wait for
    assert status == 200
    waits = []
    for _ in range(3):
        status, took = login("wrong")
        assert status == 400
        waits.append(took)
    # 0.25, 0.5, 1 s: each failure in a row waits twice as long
    assert waits[0] >= 0.2 and waits[1] >= 0.45 and waits[2] >= 0.95 and waits[2] > waits[0] + 0.5
    assert [count for count, _, _ in with_login.logins.failures.values()] == [3]
    # a success is answered at once and forgets the failures; times are taken against `base`, as a loaded
    # machine (training beside the tests) slows every login alike (1.29 s for one once)
    status, took = login(USERS["reader"])
    assert status == 200 and took < base + 0.75 and not with_login.logins.failures   # waiting would add 1 s
    status, took = login("wrong")
    assert status == 400 and took < base + 1.5    # 0.25 s: the fourth failure in a row would wait 2 s
    assert [count for count, _, _ in with_login.logins.failures.values()] == [1]


def test_login_delay_is_bounded_and_per_client():
    logins = web_edge.Logins(USERS, step=0.01, most=0.04)
    assert [logins.delay(n) for n in (0, 1, 2, 3, 4, 20)] == [0.0, 0.01, 0.02, 0.04, 0.04, 0.04]
    assert web_edge.Logins(USERS).delay(20) == web_edge.LOGIN_MOST <= 3

    async def attempts():
        for client, password in [("10.0.0.1", "x"), ("10.0.0.1", "y"), ("10.0.0.2", "z"), ("10.0.0.2", "correct horse")]:
            web_edge.client_address.set(client)
            await logins.check("reader", password)

    asyncio.run(attempts())
    assert logins.failures["10.0.0.1"][0] == 2 and "10.0.0.2" not in logins.failures
    assert not asyncio.run(logins.check("nobody", "correct horse"))


# -- 7. a long article id stays inside the panel -------------------------------------------------------
def test_long_article_id_is_cut_in_the_panel():
    long_id = "feeds/" + "a-very-long-slug-" * 20 + ".html"

    class Stub:
        articles: ClassVar[dict] = {long_id: {"title": "T", "chunks": 3}}

    panel = chat_app.articles_html(Stub())
    assert f'title="{long_id}"' in panel
    shown = panel.split(f'title="{long_id}">', 1)[1].split(" · ", 1)[0]
    assert len(shown) == chat_app.ID_SHOWN and shown.endswith("…")
    assert "overflow-wrap: anywhere" in chat_app.CSS and "#articles" in chat_app.CSS


# -- no error reaches a client as {"error": null} -----------------------------------------------------
def test_unexpected_errors_are_one_plain_line(read_only, app_qa, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk at /srv/secret/index is on fire")

    monkeypatch.setattr(app_qa, "answer", broken)
    _, event, payload = call(read_only.local_url, "ask", [QUESTION])
    assert event == "error" and payload["error"] == chat_app.SERVER_FAULT
    with pytest.raises(AppError, match="something went wrong on the server"):
        Client(read_only.local_url, verbose=False).predict(QUESTION, api_name="/ask")
    _, event, payload = call(read_only.local_url, "chat", [QUESTION])
    assert event == "complete" and "Sorry, something went wrong on the server" in json.dumps(payload)
    assert "secret" not in json.dumps(payload)

    def refused(*args, **kwargs):
        raise InvalidInput("the history is\nnot acceptable", public="the history is\n  not acceptable")

    monkeypatch.setattr(app_qa, "answer", refused)
    _, event, payload = call(read_only.local_url, "ask", [QUESTION])
    assert event == "error" and payload["error"] == "the history is not acceptable"
    _, event, payload = call(read_only.local_url, "chat", [QUESTION])
    assert "Sorry, I can&#x27;t answer that: the history is not acceptable" in json.dumps(payload) or \
        "Sorry, I can't answer that: the history is not acceptable" in json.dumps(payload)


# -- example questions a reader would ask (qa/web/examples.py), kept when the chat answers them ----------
def test_examples_are_questions_the_chat_answers(app_qa, read_only):
    questions = chat_app.example_questions(app_qa)
    assert questions == ["Who directed the film?", "When did the film open in theaters?", "Who is the lead actor?"]
    config = httpx.get(f"{read_only.local_url}config", timeout=30).json()
    samples = next(c["props"]["samples"] for c in config["components"]
                   if c.get("props", {}).get("elem_id") == "examples")
    assert [s[0] for s in samples] == questions


def test_examples_the_chat_cannot_answer_are_left_out(tmp_path):
    shutil.copy2(SEED_FILE, tmp_path / SEED_ARTICLE)
    asked = []

    class Stub:  # a QA whose reader abstains on "When ...?"
        settings = SimpleNamespace(articles=tmp_path)
        articles: ClassVar[dict] = {SEED_ARTICLE: {"sha256": "1", "title": "t"}}

        def answer(self, question):
            asked.append(question)
            return SimpleNamespace(abstained=question.startswith("When"), article=SEED_ARTICLE, sources=())

    qa = Stub()
    assert chat_app.example_questions(qa) == ["Who directed the film?", "Who is the lead actor?",
                                              "What did South Korea launch?"]
    assert chat_app.example_questions(qa) and len(asked) == 4  # asked once, remembered


def test_a_wrong_port_is_one_line_not_a_traceback():
    env = {**os.environ, "QA_PORT": "abc"}
    run = subprocess.run([sys.executable, "app.py"], cwd=launcher.__file__.rsplit("/", 1)[0], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "--port" in run.stderr, run.stderr[-2000:]


def test_a_taken_port_is_one_line_not_a_traceback(tmp_path):
    import socket

    shutil.copytree(SEEDS, tmp_path / "articles")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "QA_WATCH": "0", "QA_FEED_INTERVAL": "0"}
        run = subprocess.run([sys.executable, "app.py", "--port", str(port), "--articles", str(tmp_path / "articles"),
                              "--index", str(tmp_path / "index")], cwd=launcher.__file__.rsplit("/", 1)[0], env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"cannot serve on 127.0.0.1:{port}" in run.stderr
