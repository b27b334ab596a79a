"""Questions from many threads at once share the reader's passes and get exactly the answers they
get alone."""
from __future__ import annotations

import json
import threading

from qa.config import PACKAGE_ROOT

SEEDS = json.loads((PACKAGE_ROOT / "tests" / "data" / "seed_questions.json").read_text())
QUESTIONS = [q["question"] for q in SEEDS["answerable"]] + SEEDS["unanswerable"]


def _ask_all_at_once(qa, questions: list[str]) -> list:
    results: list = [None] * len(questions)
    start = threading.Barrier(len(questions))

    def ask(i: int) -> None:
        start.wait()
        try:
            results[i] = qa.answer(questions[i])
        except Exception as err:  # noqa: BLE001 - compared below, never swallowed
            results[i] = err

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a question never came back"
    return results


def test_concurrent_questions_get_exactly_their_answers_alone(seed_qa):
    questions = (QUESTIONS * 2)[:48]
    alone = {q: seed_qa.answer(q) for q in set(questions)}
    queue = seed_qa.reader.queue
    passes, asked = queue.passes, queue.questions
    together = _ask_all_at_once(seed_qa, questions)
    for q, got in zip(questions, together):
        assert got == alone[q], q  # text, score, offsets, alternatives: all of it
    read = queue.questions - asked  # all but the questions about an article's metadata, which need no reading
    assert len(questions) - 4 <= read <= len(questions)
    assert queue.passes - passes < read  # some questions did share a pass


def test_one_bad_request_fails_only_its_own_caller(seed_qa):
    reader = seed_qa.reader
    contexts = [p.chunk.text for p in seed_qa.retrieve("Who directed the film?")]
    results: dict[str, object] = {}
    start = threading.Barrier(8)

    def read(name: str, question, ctx) -> None:
        start.wait()
        try:
            results[name] = reader.read(question, ctx)
        except Exception as err:  # noqa: BLE001
            results[name] = err

    threads = [threading.Thread(target=read, args=(f"good{i}", "Who directed the film?", contexts)) for i in range(7)]
    threads.append(threading.Thread(target=read, args=("bad", "Who directed the film?", [None])))  # not a text
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    alone = reader.read("Who directed the film?", contexts)
    assert isinstance(results["bad"], Exception)
    assert all(results[f"good{i}"] == alone for i in range(7))
    assert reader.read("Who directed the film?", contexts) == alone  # and the queue still works
