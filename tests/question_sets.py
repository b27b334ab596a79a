"""One pytest case per question of a question set (tests/data/*_questions.json): a known miss is a
strict xfail with its reason; a question marked "shared" is skipped where ../shared is not beside us."""
from __future__ import annotations

import pytest


def question_cases(items: list[dict], known_misses: dict[str, str], has_shared: bool = True):
    for item in items:
        marks = []
        if item.get("shared") and not has_shared:
            marks.append(pytest.mark.skip(reason="needs the shared news pages (../shared/data/news-html)"))
        if item["q"] in known_misses:
            marks.append(pytest.mark.xfail(strict=True, reason=known_misses[item["q"]]))
        yield pytest.param(item, marks=marks, id=item["q"])
