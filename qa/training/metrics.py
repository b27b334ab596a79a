"""SQuAD v1.1 scoring: lower-case, drop punctuation and a/an/the, collapse white space; EM and token
F1 against the best-matching gold answer. (The official script's rules; for unanswerable questions
the gold is the empty answer, as in SQuAD 2.0.)"""
from __future__ import annotations

from collections import Counter

from qa.aggregate import normalize  # the one normalisation, shared with the answers' merging

__all__ = ["normalize", "exact_match", "token_f1", "best_score"]


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_score(metric, prediction: str, golds: tuple[str, ...]) -> float:
    """Against several annotators' answers, the best; an unanswerable question's gold is ''."""
    return max(metric(prediction, g) for g in (golds or ("",)))
