"""Training groups (qa/training/train.py) on a few real questions, with the shipped reader's tokenizer: a
question read with its paragraph learns the span; read without it (absent_rate), it learns "no answer"."""
from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from qa.config import SHIPPED_READER
from qa.training.squad import Example
from qa.training.train import TrainConfig, absent_share, build_groups, sample_examples

CONTEXT = "The Port Ellis lighthouse was designed by the architect Odile Brandt in 1911."
OTHER = ["The ferry Mira carries up to 180 passengers across Kestrel Bay.",
         "Tomasz Wren chairs the harbour board, which paid 6.2 million pounds for the ferry."]
EXAMPLES = [Example(f"q{i}", "Port Ellis", CONTEXT, q, (a,), (CONTEXT.index(a),))
            for i, (q, a) in enumerate([("Who designed the lighthouse?", "Odile Brandt"),
                                        ("When was the lighthouse designed?", "1911")])]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(SHIPPED_READER)


def test_with_the_paragraph_the_span_is_learned(tokenizer):
    groups = build_groups(tokenizer, EXAMPLES, [OTHER, OTHER], TrainConfig(headline_rate=0.0, absent_rate=0.0))
    assert [len(g.windows) for g in groups] == [3, 3]
    for g, ex in zip(groups, EXAMPLES):
        ((k, start),) = g.starts
        w = g.windows[k]
        begin, _ = w.offsets[start]
        assert k == 0 and CONTEXT[begin:].startswith(ex.answers[0])


def test_without_the_paragraph_no_answer_is_learned(tokenizer):
    groups = build_groups(tokenizer, EXAMPLES, [OTHER, OTHER], TrainConfig(headline_rate=0.0, absent_rate=1.0))
    assert [len(g.windows) for g in groups] == [2, 2]   # the distractors only
    assert all(g.starts == () and g.ends == () for g in groups)


def test_without_distractors_the_paragraph_always_stays(tokenizer):
    groups = build_groups(tokenizer, EXAMPLES, [[], []], TrainConfig(headline_rate=0.0, absent_rate=1.0))
    assert [len(g.windows) for g in groups] == [1, 1] and all(g.starts for g in groups)


def test_a_sample_is_seeded_distinct_and_in_order():
    many = [Example(f"q{i}", "Port Ellis", CONTEXT, f"Question {i}?", ("1911",), (CONTEXT.index("1911"),))
            for i in range(50)]
    picked = sample_examples(many, 10, seed=7)
    assert picked == sample_examples(many, 10, seed=7) != sample_examples(many, 10, seed=8)
    ids = [int(e.id[1:]) for e in picked]
    assert len(set(ids)) == 10 and ids == sorted(ids)
    assert sample_examples(many, 0, seed=7) == many == sample_examples(many, 99, seed=7)


def test_a_sample_can_keep_every_unanswerable_question():
    many = [Example(f"q{i}", "Port Ellis", CONTEXT, f"Question {i}?", () if i % 10 == 0 else ("1911",),
                    () if i % 10 == 0 else (CONTEXT.index("1911"),)) for i in range(50)]
    picked = sample_examples(many, 12, seed=7, keep_unanswerable=True)
    ids = [int(e.id[1:]) for e in picked]
    assert len(set(ids)) == 12 and ids == sorted(ids)
    assert {i for i in ids if i % 10 == 0} == {0, 10, 20, 30, 40}   # all five, and seven others
    assert picked == sample_examples(many, 12, seed=7, keep_unanswerable=True)
    # without it the draw is the one earlier runs made (a run's data order must not move)
    assert sample_examples(many, 12, seed=7) == [many[i] for i in sorted(random.Random(7).sample(range(50), 12))]
    with pytest.raises(ValueError, match="5 unanswerable questions to keep, more than the 4"):
        sample_examples(many, 4, seed=7, keep_unanswerable=True)


def test_gold_alone_reads_the_paragraph_by_itself_and_the_absent_share_without_it(tokenizer):
    cfg = TrainConfig(headline_rate=0.0, gold_alone=True, absent_rate=0.5)
    groups = build_groups(tokenizer, EXAMPLES, [[], OTHER], cfg)   # distractors only for the absent one
    assert [len(g.windows) for g in groups] == [1, 2]
    assert groups[0].starts and groups[1].starts == ()


def test_the_absent_share_is_seeded_and_never_an_unanswerable_question():
    many = [Example(f"q{i}", "Port Ellis", CONTEXT, f"Question {i}?", ("1911",), (CONTEXT.index("1911"),))
            for i in range(200)]
    many[3] = Example("q3", "Port Ellis", CONTEXT, "Question 3?", (), ())
    cfg = TrainConfig(gold_alone=True, absent_rate=0.3)
    share = absent_share(many, cfg)
    assert share == absent_share(many, cfg) and 40 <= len(share) <= 80 and 3 not in share
    assert absent_share(many, TrainConfig(absent_rate=0.3)) is None


TWO = ("The Port Ellis lighthouse was designed by the architect Odile Brandt. "
       "It was lit for the first time in 1911, by the harbour master Tomasz Wren.")
UNSAID = [Example(f"u{i}", "Port Ellis", TWO, q, (a,), (TWO.index(a),))
          for i, (q, a) in enumerate([("Who designed the lighthouse?", "Odile Brandt"),
                                      ("When was the lighthouse first lit?", "1911")])]


def test_unsaid_cuts_the_answers_sentence_and_teaches_no_answer(tokenizer):
    from qa.training.train import without_answer

    assert without_answer(UNSAID[0]) == "It was lit for the first time in 1911, by the harbour master Tomasz Wren."
    assert without_answer(UNSAID[1]) == "The Port Ellis lighthouse was designed by the architect Odile Brandt."
    groups = build_groups(tokenizer, UNSAID, [[], []], TrainConfig(headline_rate=0.0, unsaid_rate=1.0))
    assert [len(g.windows) for g in groups] == [1, 1] and all(g.starts == () == g.ends for g in groups)
    read = [tokenizer.decode(g.windows[0].input_ids) for g in groups]
    assert "brandt" not in read[0] and "1911" in read[0] and "1911" not in read[1] and "brandt" in read[1]
    # rate 0: every question keeps its paragraph and its span
    assert all(g.starts for g in build_groups(tokenizer, UNSAID, [[], []], TrainConfig(headline_rate=0.0)))


def test_unsaid_keeps_the_paragraph_when_cutting_would_leave_nothing_or_the_answer(tokenizer):
    from qa.training.train import without_answer

    one = EXAMPLES[0]   # a single sentence: nothing would be left
    twice = Example("t", "Port Ellis", TWO + " Brandt also designed its keeper's house.", "Who designed the lighthouse?",
                    ("Brandt",), (TWO.index("Brandt"),))   # the answer stands again in a sentence that stays
    assert without_answer(one) is None and without_answer(twice) is None
    groups = build_groups(tokenizer, [one, twice], [[], []], TrainConfig(headline_rate=0.0, unsaid_rate=1.0))
    assert all(g.starts for g in groups)   # read as usual, their span learned


# -- runs live under QA_RUNS, resume from their checkpoint there, start from the shipped weights ----
def _tiny_squad(folder):
    import json

    paragraphs = [{"context": CONTEXT, "qas": [{"id": ex.id, "question": ex.question,
                                                "answers": [{"text": ex.answers[0], "answer_start": ex.answer_starts[0]}]}
                                               for ex in EXAMPLES]}]
    folder.mkdir()
    (folder / "tiny.json").write_text(json.dumps({"version": "1.1", "data": [{"title": "Port_Ellis", "paragraphs": paragraphs}]}))
    return folder


def test_a_run_under_qa_runs_starts_from_the_shipped_weights_then_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from qa.cli import app

    monkeypatch.setenv("QA_RUNS", str(tmp_path / "runs"))
    data = _tiny_squad(tmp_path / "data")
    common = ["train", "--data", str(data), "--work", "tiny", "--distractors", "0", "--batch-size", "1",
              "--checkpoint-every", "1", "--threads", "1", "--max-length", "64", "--stride", "16", "--lr", "1e-5"]
    first = CliRunner().invoke(app, [*common, "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    run = tmp_path / "runs" / "tiny"
    info = json.loads((run / "final" / "training.json").read_text())
    assert info["started_from"] == f"base {SHIPPED_READER}"       # no checkpoint yet: the shipped reader
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 2
    assert info["slices"][-1] == {"kind": "plain", "data": ["tiny.json"], "seed": 13, "batches": [0, 2], "steps": 2,
                                  "lr": 1e-5, "max_questions": 0}
    # the shipped reader's own history comes first
    shipped = json.loads((SHIPPED_READER / "training.json").read_text())
    assert info["slices"][:-1] == shipped["slices"] and len(info["slices"]) == len(shipped["slices"]) + 1

    again = CliRunner().invoke(app, [*common, "--max-steps", "3"])
    assert again.exit_code == 0, again.output
    assert "resuming from" in again.output and "at step 2/3" in again.output
    info = json.loads((run / "final" / "training.json").read_text())
    assert info["started_from"] == f"checkpoint {run / 'checkpoint'} at step 2"
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 3


def test_the_held_out_files_are_never_training_files(tmp_path):
    from qa.training.train import load_examples, training_files

    for name in ("squad-v1.1-dev-part-eval.json", "wikinews-dev.json", "squad-v1.1-train.json"):
        (tmp_path / name).write_text('{"data": []}')
    assert [p.rsplit("/", 1)[1] for p in training_files(tmp_path)] == ["squad-v1.1-train.json"]
    with pytest.raises(ValueError, match="held out"):
        load_examples([str(tmp_path / "wikinews-dev.json")])
