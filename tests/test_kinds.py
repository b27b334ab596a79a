"""The answer's kind agrees with the question's (qa/kinds.py), and an abstention says why (qa/reasons.py).

Unit checks of what a question asks for and what a span is; then the real models over a small shipped
page in two versions: tests/data/millbrook-bridge.txt states each fact asked about, and
tests/data/millbrook-bridge-unsaid.txt leaves it out, so that the page's only span of the asked kind (if
any) answers another question: no answer there, the answer here. Last, the kinds of miss of issue 38 over
the shipped article, each a strict xfail with its answer and score where the shipped reader cannot yet.
"""
from __future__ import annotations

import re
import shutil

import pytest

from qa import QA, Settings
from qa.config import PACKAGE_ROOT
from qa.kinds import AMOUNT, COUNT, DURATION, LENGTH, MONEY, ORG, PERSON, PLACE, SHARE, TIME, asked, fits, traits
from qa.training.metrics import normalize

from .conftest import INT8_VNNI

DATA = PACKAGE_ROOT / "tests" / "data"
ACTORS = {"Byun Yo-han", "Bang Hyo-rin", "Yang Se-jong"}


@pytest.mark.parametrize("question, kind", [
    ("How many teams took part?", COUNT),
    ("How much is Kmart paying to buy Sears?", MONEY),
    ("How much did the film cost to make?", MONEY),
    ("What annual revenue will the business have?", MONEY),
    ("How much can the rocket carry into orbit?", AMOUNT),
    ("What percentage of the vote did he win?", SHARE),
    ("What share of the browser market did it have?", SHARE),
    ("When did the film open in theaters?", TIME),
    ("In what year did Bacar seize control?", TIME),
    ("How long ago did Kang write the script?", TIME),
    ("How long is the film?", DURATION),
    ("How many years was he held?", DURATION),
    ("How tall is the rocket?", LENGTH),
    ("Who directed the film?", PERSON),
    ("Where was the film shot?", PLACE),
    ("In which city do the characters run?", PLACE),
    ("Which company proposed the film?", ORG),
    ("What is the name of the movie?", None),
    ("What did the director say AI is for creators?", None),
    # held-out Wikipedia questions the kind check once refused the right answer of
    ("What does the time element in construction mean?", None),        # the verb's object, not a time
    ("What causes the population of ctenophora to grow?", None),       # nor a count
    ("When do cash flow problems exist?", None),                        # a condition as often as a time
    ("What is the population of Anjouan?", COUNT),
])
def test_what_a_question_asks_for(question, kind):
    got = asked(question)
    assert (got.kind if got else None) == kind


@pytest.mark.parametrize("question, span, ok", [
    ("How many people attended?", "3,500", True),
    ("How many people attended?", "About 3,000 people", True),
    ("How many people attended?", "Monday", False),         # a weekday is no number
    ("How many people attended?", "twice", False),          # nor a number of times
    ("How many people attended?", "ten days", False),
    ("How many Victorians are Catholic?", "26.7%", True),     # a percentage of a group counts it
    ("How many pregnant women took part?", "half", False),    # a bare half does not (Wikinews report 8)
    ("How much do ctenophores eat in a day?", "ten times their own weight", True),   # a multiple is an amount
    ("How many times did he vote?", "twice", True),
    ("How many times did he vote?", "25 years ago", False),
    ("How much did it cost?", "$11.5bn", True),
    ("How much did it cost?", "6.2 million pounds", True),
    ("How much did it cost?", "trillions of dollars", True),
    ("How much did it cost?", "180", False),                # a count is no sum of money
    ("How much did it cost?", "production costs", False),
    ("What percentage voted?", "63.7%", True),
    ("What percentage voted?", "88", False),
    ("When did it open?", "Wednesday", True),
    ("When did it open?", "March 8, 2011", True),
    ("When did it open?", "the middle of the century", True),
    ("When did it open?", "2026-03-02", True),
    ("When did it open?", "60 minutes", False),
    ("How long is the film?", "60-minute", True),
    ("How long is the film?", "5-10 minutes", True),
    ("How long is the film?", "500 miles", True),           # "how long": a time, or a length
    ("How long is the film?", "Kang Yun-sung", False),
    ("How tall is the rocket?", "13,100 kg", False),
    ("How tall is the rocket?", "15 meter high", True),
    ("Who commands the force?", "Comoros", False),           # a country is no person
    ("Who commands the force?", "Lieutenant Ibrahim Moussa", True),
    ("Who chases the trio?", "AI-generated grim reapers", True),
    ("Who commands the force?", "450", False),
    ("Where are the people trapped?", "limbo", True),
    ("Where are the people trapped?", "Monday", False),
    ("Which company sponsored it?", "Malaysia", False),
    ("Which company sponsored it?", "Malaysia Tourism board", True),
])
def test_whether_a_span_is_of_the_kind_asked(question, span, ok):
    assert fits(asked(question), traits(span)) is ok


def test_a_currency_just_outside_the_span_makes_it_money():
    assert traits("11.5bn", before="to cost $").money
    assert traits("22", after=" percent of the vote").share
    assert not traits("22", after=" people").money


# -- one question of each kind over the shipped page, with and without its answer ----------------------
# (question, the answer where the page states it, where it does not: a known miss or None)
KIND_CASES = [
    ("How many engineers worked on the repairs?", "14",
     "reader round 8 answers '3,000' (0.17), the people crossing each day: a number, and the cost of the unstated "
     "'engineers' leaves it above the threshold (round 5's best was 'twice', refused as no number)"
     if INT8_VNNI else None),   # AVX2 int8 (AMD EPYC, 2026-12-07): it falls under the threshold and abstains
    ("How much did the repairs cost?", "450,000 pounds", None),
    ("How long did the repairs take?", "eleven months", None),          # unsaid: a count of people
    ("In what year was the footbridge built?", "1868", None),           # unsaid: 'Victorian'
    ("Who will give the speeches at the party?", "Ellen Marsh",
     "reader round 8 answers 'Walkers from Lower Millbrook, Hawes End and Kirkby Lune' (0.31; round 7 'reopening "
     "party' 0.40): a person is known only by what it is not (a figure, a date, a country)"),
    ("Where will the reopening party be held?", "Lune Rowing Club",
     "reader round 7 answers 'Millbrook Gazette' (0.22): an organisation, and a place is known only by what it is not"),
]


def _bridge(tmp_path_factory, embedder, reader, name: str) -> QA:
    root = tmp_path_factory.mktemp(name.split(".")[0])
    (root / "articles").mkdir()
    shutil.copy2(DATA / name, root / "articles" / "millbrook-bridge.txt")
    return QA(settings=Settings.from_env(articles=root / "articles", index=root / "index"), embedder=embedder,
              reader=reader)


@pytest.fixture(scope="module")
def said_qa(tmp_path_factory, embedder, reader) -> QA:
    return _bridge(tmp_path_factory, embedder, reader, "millbrook-bridge.txt")


@pytest.fixture(scope="module")
def unsaid_qa(tmp_path_factory, embedder, reader) -> QA:
    return _bridge(tmp_path_factory, embedder, reader, "millbrook-bridge-unsaid.txt")


@pytest.mark.parametrize("question, expected", [pytest.param(q, a, id=q) for q, a, _ in KIND_CASES])
def test_with_the_right_span_present_it_answers(said_qa, question, expected):
    a = said_qa.answer(question)
    assert a.text is not None and normalize(expected) in normalize(a.text), (a.text, a.score)
    assert a.reason is None


@pytest.mark.parametrize("question, reader_span, name", [
    ("Who reopened the footbridge?", "mayor Ruth Okafor", "Ruth Okafor"),
    ("Who will give the speeches?", "captain Ellen Marsh", "Ellen Marsh"),
])
def test_who_is_answered_with_the_name_not_the_title(said_qa, reader, question, reader_span, name):
    """qa/bounds.py: the reader takes in the title before the name; the answer is the name, at its place."""
    article = (DATA / "millbrook-bridge.txt").read_text(encoding="utf-8")
    assert reader.read(question, [article]).spans[0].text == reader_span
    got = said_qa.answer(question)
    assert got.text == name
    assert article[got.start : got.end] == name


@pytest.mark.parametrize("question", [
    pytest.param(q, id=q, marks=[pytest.mark.xfail(strict=True, reason=miss)] if miss else [])
    for q, _, miss in KIND_CASES])
def test_without_it_no_answer_and_a_reason(unsaid_qa, question):
    a = unsaid_qa.answer(question)
    assert a.text is None, (a.text, a.score)
    assert a.reason and a.reason.endswith(".")
    assert ". " not in re.sub(r"'[^']*'", "", a.reason)   # one sentence (what it quotes aside)
    assert a.to_dict()["reason"] == a.reason


def test_the_reason_names_what_was_found_and_why_not(unsaid_qa):
    a = unsaid_qa.answer("How long did the repairs take?")
    # the nearest span, quoted, and why it was not given (rounds 5 and 7 were asked how many engineers;
    # round 8 answers that one, a known miss above)
    assert a.text is None and a.reason.startswith("The nearest answer found, '") and "not a length of time" in a.reason
    b = unsaid_qa.answer("How much did the repairs cost?")
    assert b.text is None and "not a sum of money" in b.reason


# -- the kinds of miss of issue 38, over the shipped article ----------------------------------------------
def test_how_much_did_it_cost_is_not_answered_with_something_else(seed_qa):
    # before the kinds: 'production costs' (0.26); the article gives no cost
    a = seed_qa.answer("How much did the film cost to make?")
    assert a.text is None and "sum of money" in a.reason


def test_how_many_is_not_answered_with_a_weekday(seed_qa):
    # before the kinds: 'Wednesday' (0.37)
    a = seed_qa.answer("How many days did the film run in theaters?")
    assert a.text is None or not traits(a.text).time


@pytest.mark.xfail(strict=True, reason="answers '5-10 minutes' (0.30), a length of time from the sentence about "
                                       "KT's short film: of the kind asked, but not said of the run")
def test_how_many_days_it_ran_is_not_said(seed_qa):
    assert seed_qa.answer("How many days did the film run in theaters?").text is None


@pytest.mark.xfail(strict=True, reason="answers '5-10 minutes' (0.78), the short film KT proposed, from another "
                                       "sentence; '60-minute' is in the first paragraph")
def test_how_long_is_the_film(seed_qa):
    assert seed_qa.answer("How long is the film?").text in ("60-minute", "60 minutes", "60")


@pytest.mark.xfail(strict=True, reason="answers '5-10 minutes' (0.59), a length of time from another sentence; "
                                       "the article does not say how long the press conference lasted")
def test_how_long_the_press_conference_lasted_is_not_said(seed_qa):
    assert seed_qa.answer("How long did the press conference last?").text is None


def test_who_made_the_film_is_not_an_actor(seed_qa):
    a = seed_qa.answer("Who made the film?")
    assert a.text is not None and a.text not in ACTORS, (a.text, a.score)


@pytest.mark.xfail(strict=True, reason="no answer (0.06): 'movie' is the only word it asks about and the passage "
                                       "that names the film says 'film'; its unstated-words cost (qa/support.py) "
                                       "outweighs the reader's 'Run to the West'")
def test_whats_the_name_of_the_movie(seed_qa):
    assert seed_qa.answer("What's the name of the movie?").text == "Run to the West"


def test_a_question_in_capitals_scores_as_in_normal_case(seed_qa):
    plain = seed_qa.answer("Which actor was in Mr. Sunshine?")
    loud = seed_qa.answer("WHICH ACTOR WAS IN MR. SUNSHINE?")
    assert plain.text == loud.text == "Byun Yo-han"
    assert abs(plain.score - loud.score) < 0.02, (plain.score, loud.score)


@pytest.mark.parametrize("text", ["one-eighth", "two thirds", "a fifth", "3/4", "22 percent"])
def test_a_fraction_is_a_share(text):
    # 'What was the proportion of Huguenots to Catholics?' -> 'one-eighth' was refused as "a number, not a share"
    assert traits(text).share
