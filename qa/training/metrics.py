"""SQuAD v1.1 scoring: lower-case, drop punctuation and a/an/the, collapse white space; EM and token
F1 against the best-matching gold answer. (The official script's rules; for unanswerable questions
the gold is the empty answer, as in SQuAD 2.0.)"""
from __future__ import annotations

from collections import Counter

from qa.aggregate import normalize  # the one normalisation, shared with the answers' merging

__all__ = ["LIST_RULES", "best_score", "exact_match", "list_items", "normalize", "token_f1"]


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


LIST_RULES = ("em", "f1", "contained")


def list_items(given: list[str] | tuple[str, ...], gold: tuple[str, ...], rule: str = "em") -> tuple[int, int, int]:
    """A list answer against the gold items: (gold items found, given items, given items wrong).

    A gold item is found when some given item matches it; a given item is wrong when it matches no
    gold item. `rule` "em": a match is SQuAD exact match (after normalize); "f1": token F1 >= 0.5;
    "contained": the gold item's normalised words stand, in order, inside the given item (a single
    span "Kenmore and Lands' End" holds two items; the rule for answers that give one text).
    Given items that normalise alike count once (the same item twice is neither two finds nor two
    wrongs); empty ones are dropped."""
    if rule not in LIST_RULES:
        raise ValueError(f"rule must be one of {', '.join(LIST_RULES)}, not {rule!r}")

    def match(a: str, g: str) -> bool:
        if rule == "em":
            return exact_match(a, g) == 1.0
        if rule == "f1":
            return token_f1(a, g) >= 0.5
        return bool(normalize(g)) and f" {normalize(g)} " in f" {normalize(a)} "

    unique: dict[str, str] = {}
    for item in given:
        if item and normalize(item):
            unique.setdefault(normalize(item), item)
    items = list(unique.values())
    found = sum(any(match(a, g) for a in items) for g in gold)
    wrong = sum(not any(match(a, g) for g in gold) for a in items)
    return found, len(items), wrong
