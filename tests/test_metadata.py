"""Questions about the article itself, answered from its metadata, on the real seed article."""
from __future__ import annotations

import pytest

from qa.metadata import asked_field

from .conftest import SEED_ARTICLE


@pytest.mark.parametrize("question,field", [
    ("When was the article published?", "published"),
    ("when was it published", "published"),
    ("What is the publication date?", "published"),
    ("When did this story come out?", "published"),
    ("Who wrote it?", "author"),
    ("Who is the author of the article?", "author"),
    ("Who wrote this story?", "author"),
    ("Which outlet published it?", "site"),
    ("What website published the article?", "site"),
    ("Who published this article?", "site"),
    ("What is the URL of the article?", "url"),
    # about the story's content, not the article: the reader's business
    ("Who directed the film?", None),
    ("When did it open in theaters?", None),
    ("Who wrote the original script?", None),
    ("When was the script written?", None),
    ("Which studio released the film?", None),
])
def test_detection(question, field):
    assert asked_field(question) == field


def test_published_date_of_the_seed_article(seed_qa):
    a = seed_qa.answer("When was the article published?")
    assert a.text == "2025-10-13" and a.article == SEED_ARTICLE and a.score == 1.0
    # the dateline is in the text: the answer points at it like any extracted answer
    assert a.context[a.start - a.context_start:a.end - a.context_start] == "2025-10-13"
    assert a.sources == (SEED_ARTICLE,)
    assert a.to_dict()["sources"] == [SEED_ARTICLE]


def test_author_and_outlet_of_the_seed_article(seed_qa):
    assert seed_qa.answer("Which outlet published it?").text == "Sayart"
    # the seed's byline is the outlet's address beside the date: what the article says, no more
    assert seed_qa.answer("Who wrote it?").text == "sayart2022@gmail.com"


def test_follow_up_uses_the_conversation(seed_qa):
    a = seed_qa.answer("When was it published?", history=["Who directed Run to the West?"])
    assert a.text == "2025-10-13" and a.title.startswith("South Korea Launches")


def test_content_questions_still_go_to_the_reader(seed_qa):
    a = seed_qa.answer("Who directed the film?")
    assert a.text == "Kang Yun-sung" and a.score < 1.0
