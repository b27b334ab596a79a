"""Our own question set about the seed article (tests/data/seed_questions.json), asked of the
whole system. Floors, not exact figures: bench/seed_eval.py prints the full table."""
from __future__ import annotations

import sys

from .conftest import PACKAGE_ROOT

sys.path.insert(0, str(PACKAGE_ROOT / "bench"))
from seed_eval import run  # noqa: E402


def test_seed_question_set(seed_qa):
    result = run(seed_qa)
    wrong = [(r["question"], r["answer"]) for r in result["rows"] if not r["em"]]
    assert result["exact_match"] >= 75, wrong
    assert result["answer_rate"] >= 0.9, wrong
    assert result["abstain_rate_unanswerable"] >= 0.8, result["unanswerable"]
