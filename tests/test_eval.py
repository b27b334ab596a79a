"""`qa eval` on a small SQuAD-format file made from the seed article and our question set."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from .conftest import PACKAGE_ROOT, SEED_ARTICLE, SEEDS

QUESTIONS = json.loads((PACKAGE_ROOT / "tests" / "data" / "seed_questions.json").read_text())


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
    """Each paragraph of the seed article is a SQuAD paragraph; a question goes to the paragraph
    holding its first gold answer. Plus, SQuAD 2.0 style, the unanswerable questions."""
    text = (SEEDS / SEED_ARTICLE).read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if len(p) > 200]
    qas = {i: [] for i in range(len(paragraphs))}
    for n, item in enumerate(QUESTIONS["answerable"]):
        for i, p in enumerate(paragraphs):
            answers = [{"text": a, "answer_start": p.find(a)} for a in item["answers"] if a in p]
            if answers:
                qas[i].append({"id": f"a{n}", "question": item["question"], "answers": answers})
                break
    for n, q in enumerate(QUESTIONS["unanswerable"]):
        qas[0].append({"id": f"u{n}", "question": q, "answers": [], "is_impossible": True})
    data = {"version": "test", "data": [{"title": "Run_to_the_West", "paragraphs": [
        {"context": p, "qas": qas[i]} for i, p in enumerate(paragraphs)]}]}
    path = tmp_path_factory.mktemp("squad") / "seed-squad.json"
    path.write_text(json.dumps(data))
    return path


def qa_eval(*args):
    done = subprocess.run([sys.executable, "-m", "qa.cli", "eval", *map(str, args), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_reader_mode(squad_file):
    result = qa_eval(squad_file)   # reader mode is the default for a file whose questions have no `kind`
    assert result["mode"] == "reader" and result["n"] > 30
    assert result["f1"] >= 70 and 0 <= result["exact_match"] <= result["f1"] <= 100
    assert result["has_answer"]["n"] + result["no_answer"]["n"] == result["n"]
    assert result["no_answer"]["n"] == len(QUESTIONS["unanswerable"])


def test_open_mode(squad_file):
    result = qa_eval(squad_file, "--mode", "open")
    for key in ("n", "exact_match", "f1", "recall@1", "recall@5", "recall@10", "abstain_rate_without_article",
                "answer_rate_with_article", "seconds_per_question", "abstain_rate_unsaid"):
        assert key in result
    assert 0.0 <= result["abstain_rate_unsaid"] <= 1.0
    assert result["recall@5"] >= 0.9
    assert result["f1"] >= 60
    # the file has one article: left out, nothing remains to be retrieved, so it must abstain
    assert result["abstain_rate_without_article"] == 1.0


def test_bad_mode_and_missing_file(squad_file, tmp_path):
    for args in ([squad_file, "--mode", "nonsense"], [tmp_path / "absent.json", "--mode", "reader"]):
        done = subprocess.run([sys.executable, "-m", "qa.cli", "eval", *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 2 and "error:" in done.stderr


def test_the_unsaid_lane_keeps_the_article_but_no_paragraph_that_holds_the_answer(squad_file, settings, embedder, reader):
    """Open mode's third reading of each question: its article stays in the index, every paragraph of
    it that holds a gold answer is left out; the passages read are other paragraphs of the same article."""
    from qa.training.evaluate import open_run
    from qa.training.squad import read_squad

    examples = [e for e in read_squad(str(squad_file)) if not e.is_impossible]
    records, _ = open_run(examples, settings, embedder, reader, progress=False, threshold=-math.inf)
    read_some = 0
    for r in records:
        answers = [a.lower() for a in r["example"].answers]
        for p in r["passages_unsaid"]:
            assert not any(a in p.chunk.text.lower() for a in answers), (r["example"].question, p.chunk.text[:80])
            assert p.chunk.article_id.startswith("Run_to_the_West#")
        read_some += bool(r["passages_unsaid"])
        assert 0.0 <= r["unstated_unsaid"] <= 1.0
    assert read_some >= len(records) // 2   # an answer that every paragraph holds leaves nothing to read
