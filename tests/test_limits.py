"""The edge (qa/limits.py) through Python and the CLI: every input bounded and normalised, every
refusal a QAError with one line, before any work. Each test names the audit finding it covers."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from qa import InvalidQuestion, QAError
from qa.config import PACKAGE_ROOT
from qa.errors import ArticleRejected, InvalidInput
from qa.limits import MAX_HISTORY_ITEMS, MAX_K

from .conftest import SEEDS


@pytest.mark.parametrize("question", ["\x00\x00", "\u200b\u200b", "\ufeff", " \u200d\t\n ", "\u202e\x7f"])
def test_only_invisible_characters_is_an_empty_question(seed_qa, question):
    # finding 7: such questions were answered (confidence 13 %)
    with pytest.raises(InvalidQuestion, match="the question is empty"):
        seed_qa.answer(question)


def test_invisible_characters_inside_a_question_are_ignored(seed_qa):
    assert seed_qa.answer("Who\u200b directed\x00 the film?\ufeff").text == "Kang Yun-sung"


def test_a_lone_surrogate_is_refused_in_one_line(seed_qa):
    # finding 6: TypeError from Python, {"error": null} over HTTP
    with pytest.raises(InvalidQuestion, match="not valid text"):
        seed_qa.answer("Who directed \udce9 the film?")


@pytest.mark.parametrize("history, message", [
    ([1, 2, 3], "must be text, not int"),
    ("Who directed it?", "must be a list"),
    (["x" * 10_000_000], "the limit is 1000"),
    (["Who?"] * (MAX_HISTORY_ITEMS + 1), f"the limit is {MAX_HISTORY_ITEMS}"),
    (["\udce9"], "not valid text"),
])
def test_history_is_bounded_and_typed(seed_qa, history, message):
    # findings 1 and 6: an unbounded history (10 MB: 11 s of CPU, +700 MB); numbers gave a TypeError
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match=message):
        seed_qa.answer("Who directed the film?", history=history)
    assert time.perf_counter() - started < 1.0  # refused before any work (not a timing claim: a bound)


@pytest.mark.parametrize("k, message", [("3", "whole number, not str"), (True, "whole number, not bool"),
                                        (0, "from 1 to"), (MAX_K + 1, "from 1 to"), (2.5, "not float")])
def test_k_is_a_bounded_whole_number(seed_qa, k, message):
    with pytest.raises(InvalidInput, match=message):
        seed_qa.answer("Who directed the film?", k=k)


def test_a_good_k_and_history_still_answer(seed_qa):
    a = seed_qa.answer("When did it open in theaters?", k=3, history=("Who directed Run to the West?",))
    assert a.text == "Wednesday"


@pytest.mark.parametrize("name, data, message", [
    ("story.txt", "text, not bytes", "must be bytes, not str"),
    (None, b"text", "file name must be non-empty text"),
    ("x" * 5000 + ".txt", b"text", "the limit is 255"),
])
def test_add_article_checks_its_types(make_qa, name, data, message):
    # finding 6: add_article(name, str) gave an untyped error
    qa = make_qa()
    with pytest.raises(ArticleRejected, match=message):
        qa.add_article(name, data)


def test_every_refusal_is_a_qa_error_with_one_line(seed_qa):
    for call in (lambda: seed_qa.answer(""), lambda: seed_qa.answer(42), lambda: seed_qa.answer("x" * 1001),
                 lambda: seed_qa.answer("Who?", history=[None]), lambda: seed_qa.answer("Who?", k=-1)):
        with pytest.raises(QAError) as err:
            call()
        assert str(err.value) and "\n" not in str(err.value)


def _cli(args: list, tmp_path, **env) -> subprocess.CompletedProcess:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(PACKAGE_ROOT), **env)
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], check=False, capture_output=True, timeout=300,
                          cwd=tmp_path, env=e)


def test_cli_question_that_is_not_utf8_fails_in_one_line(tmp_path):
    # finding 6: a Python traceback; the README promises one line and exit code 2
    import shutil

    shutil.copytree(SEEDS, tmp_path / "articles")
    done = _cli(["ask", b"Who directed \xff\xfe the film?", "--articles", "articles", "--index", "idx"], tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    assert err.strip() == "error: the question is not valid text (it holds bytes that are not UTF-8)"
    assert not (tmp_path / "idx").exists()  # refused before the index was built


def test_cli_add_of_a_very_long_url_fails_in_one_line(tmp_path):
    # finding 6: `qa add` with a 70,000-character URL printed a traceback
    (tmp_path / "articles").mkdir()
    done = _cli(["add", "http://example.com/" + "a" * 70_000, "--articles", "articles", "--index", "idx"], tmp_path)
    err = done.stderr.decode().strip()
    assert done.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert err == "not added: the link is 70,019 characters long; the limit is 2,000"
