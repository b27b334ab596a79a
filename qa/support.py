"""Does the passage say what the question asks about?

The reader picks the best span of the right kind ("Who ...?" -> a name) from the passages it is given,
and on a folder of news it gives one even when no page states the fact: "Who is the mayor of Berlin?"
-> the man who hosted a conference in Berlin. What such an answer's passage lacks is the question's
own words: "mayor". `unstated` is the share of the question's content words (stemmed, function and
question words left out) that the answer's passage does not contain; `qa calibrate` fits how much it
lowers the span's gap before the abstention threshold (Calibration.unstated_weight), on held-out
questions only, so a reader whose questions are often paraphrased can give it little weight.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

# words that ask, not say what about: wh-words are in the list already
QUESTION_WORDS = frozenset({
    "whose", "much", "many", "long", "old", "far", "often", "kind", "type", "name", "named", "called", "also",
    "according", "one", "ones", "would", "could", "may", "might", "must", "shall", "get", "got", "give", "given",
    "make", "made", "take", "took", "use", "used", "say", "said", "says", "tell", "know", "known", "thing",
    "things", "year", "years", "time", "times", "number", "way", "happen", "happened", "us",
})
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_local = threading.local()   # a PyStemmer object is not thread-safe, and the chat answers on many threads


def thread_stemmer() -> Stemmer.Stemmer:
    """This thread's English stemmer (the BM25 lane stems with it too)."""
    if not hasattr(_local, "stemmer"):
        _local.stemmer = Stemmer.Stemmer("english")
    return _local.stemmer


def _stem(words: list[str]) -> list[str]:
    return thread_stemmer().stemWords(words)


@lru_cache(maxsize=4096)
def content_words(text: str) -> dict[str, str]:
    """A text's words that carry its content, lower-cased, each with its stem: "Bors's" -> "bors": "bor"."""
    words = []
    for w in _WORD.findall(text.lower()):
        w = re.sub(r"['’]s$", "", w)
        if w not in STOPWORDS_EN_PLUS and w not in QUESTION_WORDS:
            words.append(w)
    return dict(zip(words, _stem(words)))


@lru_cache(maxsize=4096)
def content_terms(text: str) -> frozenset[str]:
    """The stems of content_words."""
    return frozenset(content_words(text).values())


TYPO_MIN_CHARS = 5   # a word this long also counts as stated when the passage has it one edit away


def unstated(question: str, passage: str) -> float:
    """Share of the question's content words the passage does not contain, by stem ("directed" for
    "director"), or for a long word one typo away ("direced"; never a number: 2015 is not 2011).
    0 = all there, or nothing asked about."""
    asked = content_words(question)
    if not asked:
        return 0.0
    said, stems = content_words(passage), content_terms(passage)
    missing = 0
    for word, stem in asked.items():
        if stem in stems:
            continue
        if len(word) >= TYPO_MIN_CHARS and not any(c.isdigit() for c in word) and process.extractOne(
                word, said.keys(), scorer=Levenshtein.distance, score_cutoff=1) is not None:
            continue
        missing += 1
    return missing / len(asked)
