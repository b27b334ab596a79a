"""The watched articles folder: a file added, changed or removed while a QA is live is answered from
(or no longer) within seconds, without a restart; a burst of changes is one update."""
from __future__ import annotations

import time

import pytest

from qa import Settings

from .conftest import SEED_ARTICLE

STORY = """Harbour ferry returns to Setúbal

Loopback Daily | 2026-04-08

The harbour ferry between Setúbal and Tróia returned to service on Tuesday after a winter refit.
The captain of the ferry, Joana Ferreira, said the crossing now takes twenty minutes.
"""


def wait_for(check, timeout=15.0):
    """Poll `check` until it is true; the seconds it took."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture
def live(make_qa):
    qa = make_qa(feed_interval=0, watch_debounce_ms=300)
    qa.start_background()
    yield qa
    qa.stop_background()


def answer_text(qa, question):
    a = qa.answer(question)
    return a.text or ""


def test_added_changed_removed_while_live(live):
    folder = live.settings.articles
    question = "Who is the captain of the Setúbal ferry?"
    (folder / "ferry.txt").write_text(STORY, encoding="utf-8")
    took = wait_for(lambda: "ferry.txt" in live.articles)
    assert took < 5 and answer_text(live, question) == "Joana Ferreira"

    (folder / "ferry.txt").write_text(STORY.replace("Joana Ferreira", "Rui Tavares"), encoding="utf-8")
    wait_for(lambda: answer_text(live, question) == "Rui Tavares", timeout=5)

    (folder / "ferry.txt").unlink()
    took = wait_for(lambda: "ferry.txt" not in live.articles, timeout=5)
    assert live.answer(question).article == SEED_ARTICLE  # nothing left to quote the ferry from


def test_a_burst_is_one_update(live):
    watcher = live.library._background[0]
    bursts = watcher.bursts
    folder = live.settings.articles
    for i in range(8):  # eight files written in quick succession: one burst
        (folder / f"note-{i}.txt").write_text(STORY.replace("Tuesday", f"day {i}"), encoding="utf-8")
        time.sleep(0.02)
    wait_for(lambda: all(f"note-{i}.txt" in live.articles for i in range(8)))
    assert watcher.bursts - bursts == 1


def test_hidden_and_other_files_are_ignored(live):
    watcher = live.library._background[0]
    bursts = watcher.bursts
    folder = live.settings.articles
    (folder / ".draft.txt.part").write_text("half a page")
    (folder / "notes.json").write_text("{}")
    time.sleep(1.0)
    assert watcher.bursts == bursts and set(live.articles) == {SEED_ARTICLE}


def test_watch_setting_off(make_qa):
    qa = make_qa(watch=False, feed_interval=0)
    qa.start_background()
    assert qa.library._background == []
    assert Settings.from_env(watch=False).watch is False
