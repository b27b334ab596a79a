"""Example questions (qa/web/examples.py): short questions a reader would ask, drawn from the articles'
first paragraphs and headlines; the seed article's are asked through the real QA and answered."""
from __future__ import annotations

import pytest

from qa.config import PACKAGE_ROOT
from qa.web.examples import example_questions, interleave, questions_for
from qa.sources.files import read_article

from .conftest import SEED_ARTICLE, SEED_FILE

TARTU = ("Tartu Opens Solar-Powered Footbridge", """Tartu Opens Solar-Powered Footbridge

Tartu, 2025-11-02. The city of Tartu opened a solar-powered footbridge over the Emajogi river on Friday.
The bridge was designed by the engineer Mirela Quantrell and cost 4.2 million euros.
""")
LISBON = ("Lisbon opens its Tagus footbridge", """\
The new Tagus footbridge in Lisbon opened to walkers on Saturday after four years of work.

The bridge is 740 metres long and was designed by the engineer Marta Quintela, who also drew the city's tram depot.

It cost 31 million euros, paid for by the city and a European regional fund, the mayor said at the opening.
""")
EVORA = ("Évora reopens its Roman temple", """\
The Roman temple of Évora reopened to visitors on Sunday after restoration work on its granite columns.

The work was led by the conservator Inês Valério and took fourteen months, the regional office said.

Entry to the temple site remains free of charge, and guided tours start again in June, the office added.
""")


def seed() -> tuple[str, str]:
    article = read_article(SEED_FILE, SEED_ARTICLE)
    return article.title, article.text


def test_seed_examples_are_short_questions_the_chat_answers(seed_qa):
    title, text = seed()
    questions = example_questions([(title, text)])
    assert questions == ["Who directed the film?", "When did the film open in theaters?", "Who is the lead actor?"]
    for q in questions:
        assert q.endswith("?") and len(q) <= 80 and "Launches" not in q  # not the headline pasted in
        a = seed_qa.answer(q)
        assert not a.abstained, q
        assert a.article == SEED_ARTICLE


@pytest.mark.parametrize("article, expected", [
    (TARTU, ["Who designed the bridge?", "When did the city of Tartu open the footbridge?",
             "How much did the bridge cost?", "What did Tartu open?"]),
    (LISBON, ["Who designed the bridge?", "When did the footbridge open to walkers?",
              "How much did the footbridge cost?", "What did Lisbon open?"]),
    (EVORA, ["Who led the work?", "When did the temple of Évora reopen to visitors?", "What did Évora reopen?"]),
])
def test_questions_from_names_dates_and_the_headline(article, expected):
    assert questions_for(*article) == expected


def test_a_web_page_gives_who_how_many_how_much_and_where():
    page = read_article(PACKAGE_ROOT / "tests" / "data" / "harbour-news.html", "harbour-news.html")
    questions = questions_for(page.title, page.text)
    for q in ("Who is the board chair?", "How many passengers does the vessel carry?",
              "How much did the harbour board pay for the ferry?", "Where was the ferry built?"):
        assert q in questions


def test_each_article_gives_its_best_question_first():
    assert example_questions([TARTU, EVORA, LISBON], n=4) == [
        "Who designed the bridge?", "Who led the work?", "When did the footbridge open to walkers?",
        "When did the city of Tartu open the footbridge?"]  # Lisbon's first is Tartu's: its next one comes in
    assert interleave([["a", "b"], ["a", "c"], []], 3) == ["a", "c", "b"]
    assert interleave([["a"], ["a"]], 3) == ["a"]
    assert example_questions([], n=3) == []


def test_nothing_to_ask_about_gives_no_question():
    assert questions_for("", "") == []
    assert questions_for("notes", "a few words without names or dates, nothing a reader would ask about here.") == []
