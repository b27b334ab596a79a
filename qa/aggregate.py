"""Answer aggregation: the reader's spans -> one candidate per distinct answer text, scored with
the evidence around it.

The same text found at several places of the articles gains (not just deduplicated), and the
retrieval evidence joins the span score. The weights are not set by hand: `qa calibrate` fits them by
logistic regression on questions held out of training (`fit`), so a candidate's score is the
log-odds that it is right, and its confidence is the sigmoid of that.
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .reader import Reading, Span
from .retrieval import Passage

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """SQuAD's answer normalisation (lower-case, no punctuation, no a/an/the): two spans that read the same
    under it are one answer (and qa.training.metrics scores with it)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


FEATURES = (
    "gap",       # best span score of this text minus the no-answer score
    "support",   # log-sum-exp of the gaps of its distinct places, minus the best: 0 for one place, ln 2 for two equal ones
    "dense",     # cosine similarity of the question and the passage of the best place
    "bm25",      # that passage's BM25 score over the best BM25 score among the passages read
    "rank",      # 1 / (1 + that passage's fused retrieval rank)
)


@dataclass(frozen=True)
class Candidate:
    key: str                       # normalised text: what "the same answer" means
    span: Span                     # its best place
    places: int                    # distinct places in the articles where the reader found it
    features: tuple[float, ...]    # in FEATURES order


def answer_key(text: str) -> str:
    """'Kang Yun-sung,' and 'Kang Yun-sung' are one answer: SQuAD's normalisation (case, punctuation,
    a/an/the, white space)."""
    return normalize(text)


def candidates(reading: Reading, passages: Sequence[Passage]) -> list[Candidate]:
    """Distinct answer texts, best span score first. A span seen twice at the same place of an
    article (overlapping passages) counts once; the same text at another place counts again."""
    by_place: dict[tuple[str, int, int], Span] = {}
    for span in reading.spans:
        chunk = passages[span.context].chunk
        place = (chunk.article_id, chunk.start + span.start, chunk.start + span.end)
        if place not in by_place or span.score > by_place[place].score:
            by_place[place] = span
    by_text: dict[str, list[Span]] = {}
    for span in sorted(by_place.values(), key=lambda s: -s.score):
        key = answer_key(span.text)
        if key:
            by_text.setdefault(key, []).append(span)
    top_bm25 = max((p.bm25_score for p in passages), default=0.0) or 1.0
    found = []
    for key, spans in by_text.items():
        best = spans[0]
        gaps = np.array([s.score - reading.null_score for s in spans])
        support = float(np.log(np.exp(gaps - gaps[0]).sum()))
        p = passages[best.context]
        features = (float(gaps[0]), support, p.dense_score, p.bm25_score / top_bm25, 1.0 / (1 + best.context))
        found.append(Candidate(key, best, len(spans), features))
    return found


def combined_score(features: Sequence[float], weights: Sequence[float]) -> float:
    """The fitted log-odds that the candidate is right: weights are FEATURES' then the intercept."""
    return float(np.dot(features, weights[:-1]) + weights[-1])


def sigmoid(x: float) -> float:
    if x == -math.inf:
        return 0.0
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def fit(features: np.ndarray, right: np.ndarray) -> tuple[float, ...]:
    """Logistic regression of "this candidate is right" on its features; weights then intercept."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0, max_iter=1000).fit(np.clip(features, -50, 50), right)
    return (*map(float, model.coef_[0]), float(model.intercept_[0]))
