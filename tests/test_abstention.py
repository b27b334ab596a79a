"""A folder of several articles (the seed article, the shipped harbour page and, where ../shared is
beside the project, three real news pages): questions each article answers come from that article;
questions about facts none of them state get no answer (tests/data/multi_article_questions.json,
also measured as a whole by bench/absent_facts.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qa import QA, Settings
from qa.config import PACKAGE_ROOT

from .question_sets import question_cases

sys.path.insert(0, str(PACKAGE_ROOT / "bench"))
from absent_facts import QUESTIONS, build_folder

SPEC = json.loads(QUESTIONS.read_text())
HAS_SHARED = all((PACKAGE_ROOT.parent / "shared" / "data" / "news-html" / p).is_file() for p in SPEC["shared_pages"])
# what the shipped reader gets wrong here today, with its answer and confidence: listed, not hidden
KNOWN_MISSES = {
    "Where was the Mira built?": "answers 'lighthouse keeper' (60 %): the sentence naming the boatyard is the reader's near-tie",
    "How many streets were renamed in Munich?": "reader round 7: answers 'three' (43 %); round 5 abstained",
    "What is the name of Byun Yo-han's wife?": "answers his earlier series (47 %)",
    "Which journal rejected the Neanderthal birch tar paper?": "answers the journal that published it (20 %)",
    "Who led the team of Dutch researchers?": "answers 'Neanderthal complex' (28 %)",
    "What is the population of Skerrin?": "reader round 8: answers '180' (16 %), the ferry's passengers; round 7 abstained",
    "How many people attended the annual decolonial festival?": "reader round 8: answers 'three' (21 %); round 7 abstained",
}


@pytest.fixture(scope="module")
def folder_qa(tmp_path_factory, embedder, reader) -> QA:
    root = tmp_path_factory.mktemp("multi")
    build_folder(root / "articles", SPEC)
    return QA(settings=Settings.from_env(articles=root / "articles", index=root / "index", watch=False),
              embedder=embedder, reader=reader)


def test_the_folder_holds_what_the_questions_expect(folder_qa):
    expected = {"run-to-the-west-korea-first-ai-feature-film.txt", "harbour-news.html"}
    if HAS_SHARED:
        expected |= set(SPEC["shared_pages"])
    assert set(folder_qa.articles) == expected


@pytest.mark.parametrize("item", question_cases(SPEC["answerable"], KNOWN_MISSES, HAS_SHARED))
def test_each_article_answers_its_own_questions(folder_qa, item):
    a = folder_qa.answer(item["q"])
    assert a.text is not None and item["a"] in a.text, (a.text, a.score)
    assert a.article == item["article"]
    assert Path(folder_qa.settings.articles / a.article).is_file()


@pytest.mark.parametrize("item", question_cases(SPEC["unanswerable"], KNOWN_MISSES, HAS_SHARED))
def test_facts_no_article_states_get_no_answer(folder_qa, item):
    a = folder_qa.answer(item["q"])
    assert a.abstained, (a.text, a.article, round(a.score, 3))
