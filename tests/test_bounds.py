"""A name answer is the name (qa/bounds.py): the lower-case title or description the reader takes in before it,
and the question's own noun after it, are cut; anything that is not plainly a name stays as the reader found it.

Unit cases first (the first two are Wikinews dev reports 1-16's misses, the ones marked SQuAD are held-out
Wikipedia answers an earlier version of the rule broke), then the real models over shipped text."""
from __future__ import annotations

import pytest

from qa.answers import decide
from qa.bounds import name_bounds
from qa.kinds import asked

from .test_answers import passages_of


@pytest.mark.parametrize("question, text, name", [
    ("Which party came second in Mozambique's 2004 elections?", "opposition Renamo party", "Renamo"),
    ("Who switched on the lights at the festival?", "mayor Hau Lung-bin", "Hau Lung-bin"),
    ("Who reopened the footbridge?", "mayor Ruth Okafor", "Ruth Okafor"),
    ("Who is the rowing club's captain?", "the rowing club's captain Ellen Marsh", "Ellen Marsh"),
    ("Which party won?", "Labour party", "Labour"),
    # left as found
    ("Who won the elections in 1992 and 1997?", "Daniel arap Moi", "Daniel arap Moi"),          # SQuAD
    ("Who promoted chemical compounds as medicines?", "Muhammad ibn Zakarīya Rāzi", "Muhammad ibn Zakarīya Rāzi"),  # SQuAD
    ("What church runs some private schools?", "Roman Catholic Church", "Roman Catholic Church"),  # SQuAD
    ("Who was the medical report written for?", "the king of France", "the king of France"),      # SQuAD
    ("Who designed the bridge?", "the Victorian engineer Thomas Hale", "the Victorian engineer Thomas Hale"),
    ("Which universities built it?", "University of Colorado at Boulder", "University of Colorado at Boulder"),
    ("Which team won?", "the Pacers", "the Pacers"),
    ("Who opposed it?", "Democratic senators", "Democratic senators"),
    ("Who won?", "a group of German scientists", "a group of German scientists"),
    ("Who won?", "Frelimo party", "Frelimo party"),                 # "party" is not what "who" asks
    ("Where is it?", "northern Italy", "northern Italy"),          # a place: "northern" is part of the answer
    ("When did it open?", "late Monday", "late Monday"),
    ("Which film won?", 'the film "Mr. Sunshine"', 'the film "Mr. Sunshine"'),   # a title in quotes
])
def test_a_name_answer_is_the_name(question, text, name):
    start, end = name_bounds(asked(question), text)
    assert text[start:end] == name


def test_the_question_noun_is_cut_and_the_offsets_follow(reader):
    """The reader's best span is "Renamo party"; the answer is "Renamo", at its own place in the passage."""
    text = "Frelimo won the election with 63.7 % of the vote, and the opposition Renamo party came second with 29.7 %."
    question = "Which party came second?"
    passages = passages_of([text], starts=[100])
    reading = reader.read(question, [text])
    assert reading.spans[0].text == "Renamo party"
    got = decide(reading, passages, reader.calibration, question=question)
    assert got.text == "Renamo"
    assert text[got.start - 100 : got.end - 100] == "Renamo"
