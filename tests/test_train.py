"""Training groups (qa/train.py) on a few real questions, with the shipped reader's tokenizer: a
question read with its paragraph learns the span; read without it (absent_rate), it learns "no answer"."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from qa.config import SHIPPED_READER
from qa.squad import Example
from qa.train import TrainConfig, absent_share, build_groups, sample_examples

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
