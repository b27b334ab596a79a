"""The JSON API (qa/web/api.py): POST /api/ask over real HTTP on 127.0.0.1, against the session's chat
server (and, for the login, one behind --auth): the chat's answer in one request, every refusal a
JSON message with its status, and the same login as the chat."""
from __future__ import annotations

import json
import socket

import httpx
import pytest
from gradio_client import Client

from qa import IndexBusy, InvalidInput
from qa.web import api
from qa.web import edge as web_edge
from qa.web import page as chat_app

QUESTION = "Who directed the film?"


@pytest.fixture(scope="module")
def http(app_server):
    with httpx.Client(base_url=app_server["url"], timeout=60) as client:
        yield client


def ask(http: httpx.Client, body) -> httpx.Response:
    return http.post("api/ask", json=body)


def test_one_request_one_answer_the_chats_own(http, app_server):
    r = ask(http, {"question": QUESTION})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert answer["text"] == "Kang Yun-sung" and 0 < answer["score"] <= 1
    assert answer["article"] == "run-to-the-west-korea-first-ai-feature-film.txt"
    start = answer["start"] - answer["context_start"]
    assert answer["context"][start:start + len("Kang Yun-sung")] == "Kang Yun-sung"
    # the same answer, field for field, as the chat's ask API (POST /gradio_api/call/ask)
    assert answer == Client(app_server["url"], verbose=False).predict(QUESTION, api_name="/ask")


def test_a_list_answer_carries_its_items(http):
    answer = ask(http, {"question": "Which actors does the cast include?"}).json()
    assert [i["text"] for i in answer["items"]] == ["Byun Yo-han", "Bang Hyo-rin", "Yang Se-jong"]
    assert answer["reason"] is None


def test_follow_up_with_history_and_k(http):
    r = ask(http, {"question": "When did it open in theaters?", "history": [QUESTION], "k": 5})
    assert r.status_code == 200 and r.json()["text"] == "Wednesday"


@pytest.mark.parametrize("body, status, message", [
    ({"question": ""}, 400, "the question is empty"),
    ({"question": "   \u200b "}, 400, "the question is empty"),
    ({"question": "why? " * 250}, 400, "the limit is 1000"),
    ({"question": 42}, 400, "the question must be text, not int"),
    ({"question": QUESTION, "history": QUESTION}, 400, "history must be a list"),
    ({"question": QUESTION, "history": [QUESTION] * 21}, 400, "the limit is 20"),
    ({"question": QUESTION, "k": 0}, 400, "k is 0; it must be from 1 to 50"),
    ({"question": QUESTION, "k": "5"}, 400, "k must be a whole number"),
    ({"question": QUESTION, "history": None, "k": None, "topk": 3}, 400, "unknown field 'topk'"),
    ({"history": [QUESTION]}, 400, 'the body has no "question"'),
    ([QUESTION], 400, 'the body is JSON like {"question": "Who directed the film?"}, not a list'),
])
def test_refusals_are_json_with_a_4xx_and_the_public_message(http, app_qa, monkeypatch, body, status, message):
    def never(*args, **kwargs):  # a refusal costs no retrieval and no reading
        raise AssertionError("reached the reader")

    monkeypatch.setattr(app_qa.live, "search", never)
    r = ask(http, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    payload = r.json()
    assert message in payload["error"] and payload["detail"] == payload["error"] and "\n" not in payload["error"]


def test_bodies_that_are_not_json_or_too_large(http, app_qa):
    r = http.post("api/ask", content=b"question=Who+directed", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "the body is not JSON" in r.json()["error"]
    r = http.post("api/ask", content=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "the body is not JSON" in r.json()["error"]
    # the edge's size limit holds here too, with or without a Content-Length
    limit = chat_app.format_size(web_edge.request_limit(app_qa.settings))
    huge = json.dumps({"question": QUESTION, "history": ["x" * 5_000_000]}).encode()
    r = http.post("api/ask", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and f"larger than the limit of {limit}" in r.json()["error"]
    r = http.post("api/ask", content=(huge[i:i + 65536] for i in range(0, len(huge), 65536)),
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]
    assert http.get("api/ask").status_code == 405


def test_errors_of_ours_are_one_line_without_paths(http, app_qa, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk at /srv/secret/index is on fire")

    monkeypatch.setattr(app_qa, "answer", broken)
    r = ask(http, {"question": QUESTION})
    assert r.status_code == 500 and r.json()["error"] == api.SERVER_FAULT and "secret" not in r.text

    def busy(*args, **kwargs):
        raise IndexBusy("the index at /srv/secret/index is\nbusy")

    monkeypatch.setattr(app_qa, "answer", busy)
    r = ask(http, {"question": QUESTION})
    assert r.status_code == 503 and r.json()["error"] == "the index at index is busy"

    def refused(*args, **kwargs):
        raise InvalidInput("the history at /srv/secret is bad", public="the history is\n  bad")

    monkeypatch.setattr(app_qa, "answer", refused)
    r = ask(http, {"question": QUESTION})
    assert r.status_code == 400 and r.json()["error"] == "the history is bad"


def test_listed_in_the_apps_openapi_schema(http):
    schema = http.get("openapi.json").json()
    operation = schema["paths"]["/api/ask"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["question"] and set(body["properties"]) == {"question", "history", "k"}
    assert {"200", "400", "401", "413"} <= set(operation["responses"])


# -- the same login as the chat ------------------------------------------------------------------------
USERS = {"reader": "correct horse"}


@pytest.fixture(scope="module")
def with_login(app_qa):
    """A read-only chat behind --auth: read-only takes away adding and removing, not asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = chat_app.build_app(app_qa, read_only=True)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                auth=web_edge.login_check(USERS), **chat_app.launch_options(app_qa))
    yield demo
    demo.close()


def test_behind_auth_a_request_must_log_in(with_login):
    with httpx.Client(base_url=with_login.local_url, timeout=60) as http:
        refused = ask(http, {"question": QUESTION})
        assert refused.status_code == 401 and "log in first" in refused.json()["error"]
        assert http.post("login", data={"username": "reader", "password": "wrong"}).status_code == 400
        assert ask(http, {"question": QUESTION}).status_code == 401
        assert http.post("login", data={"username": "reader", "password": USERS["reader"]}).status_code == 200
        r = ask(http, {"question": QUESTION})  # the login's cookie, kept by the client
        assert r.status_code == 200 and r.json()["text"] == "Kang Yun-sung"
        assert http.get("gradio_api/user").json() == "reader"  # Gradio sees the same login
        http.get("logout")
        assert ask(http, {"question": QUESTION}).status_code == 401
    # a cookie of another server's login is no login here
    assert httpx.post(f"{with_login.local_url}api/ask", json={"question": QUESTION},
                      cookies={"access-token-x": "forged"}, timeout=60).status_code == 401
