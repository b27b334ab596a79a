"""Calibration: the abstention threshold, the cost of the question's unstated words, the confidence (Platt
scaling), the fitted answer aggregation and the early stop of a reader, chosen on questions held out of its
training (qa calibrate): held-out Wikipedia articles, and the Wikinews dev set's reports 1-16 when given."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from qa.aggregate import FEATURES, combined_score, fit
from qa.config import Settings
from qa.embedding import Embedder
from qa.reader import Calibration, EarlyStop, Reader

from .evaluate import open_run, replay
from .metrics import best_score, token_f1
from .squad import Example, report_number
from .wikinews import CALIBRATION_REPORTS, wikinews_corpus


STOP_SCORES = tuple(range(21))  # span scores (start + end logits) tried as the early stop
STOP_MAX_F1_LOSS = 0.3          # F1 points the chosen early stop may lose against reading all
STOP_MIN_SAME_ANSWERS = 0.96    # share of questions it must answer as reading all does


def choose_stop_score(records: list[dict], calibration: Calibration, first: int, max_f1_loss: float = STOP_MAX_F1_LOSS,
                      min_same: float = STOP_MIN_SAME_ANSWERS) -> tuple[float, list[dict]]:
    """The early stop that reads fewest passages while, on these (held-out) records, it loses at most
    `max_f1_loss` F1 against reading all and gives the same answer as reading all to at least
    `min_same` of the questions; inf when none qualifies (read every passage). The second condition
    matters: on F1 alone the lowest stop qualifies on SQuAD paragraphs (more right answers lost and
    won at random) and flipped one of our seed questions to a wrong name (bench/read_policy.py)."""
    table = [replay(records, calibration, None)]
    table += [replay(records, calibration, EarlyStop(first, score, calibration.no_answer_threshold))
              for score in STOP_SCORES]
    allowed = [row for row in table[1:] if row["f1"] >= table[0]["f1"] - max_f1_loss and row["same_as_all"] >= min_same]
    best = min(allowed, key=lambda row: (row["passages_read"], -row["f1"]), default=None)
    return (best["stop_score"] if best else math.inf), table


UNSTATED_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0)


def unanswered_lanes(records: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(gaps, unstated shares) of every reading that should abstain, by lane: each question without its
    article; where measured, with its article but not the paragraphs that say it (unsaid); and an
    unanswerable question with its article (the Wikinews dev set: the report names a decoy of the same
    type but does not say)."""
    def arrays(pairs):
        gaps, shares = zip(*pairs) if pairs else ((), ())
        return np.array(gaps, dtype=float), np.array(shares, dtype=float)

    return {
        "without_article": arrays([(r["gap_without"], r["unstated_without"]) for r in records]),
        "unsaid": arrays([(r["gap_unsaid"], r["unstated_unsaid"]) for r in records if r.get("gap_unsaid") is not None]),
        "unanswerable": arrays([(r["gap"], r["unstated"]) for r in records if not r.get("answerable", True)]),
    }


def choose_unstated_weight(records: list[dict], target_answer_rate: float) -> tuple[float, list[dict]]:
    """The cost of the question's unstated words (Calibration.unstated_weight) that, at the threshold
    answering `target_answer_rate` of the answerable questions with their article, abstains on the most
    of the readings that should (unanswered_lanes, every lane counted alike); the smallest such weight
    (0 when the words do not help), and the table tried."""
    lanes = unanswered_lanes(records)
    answerable = [r for r in records if r.get("answerable", True)]
    table = []
    for w in UNSTATED_WEIGHTS:
        with_article = np.array([r["gap"] - w * r["unstated"] for r in answerable])
        threshold = float(np.quantile(with_article, 1.0 - target_answer_rate))
        abstains = {name: gaps - w * shares < threshold for name, (gaps, shares) in lanes.items()}
        row = {"weight": w, "threshold": threshold,
               "abstain_rate_unanswered": float(np.mean(np.concatenate(list(abstains.values())))),
               "abstain_rate_without_article": float(np.mean(abstains["without_article"])),
               "abstain_rate_unsaid": float(np.mean(abstains["unsaid"])) if len(abstains["unsaid"]) else None}
        if len(abstains["unanswerable"]):
            row["abstain_rate_unanswerable"] = float(np.mean(abstains["unanswerable"]))
        table.append(row)
    best = max(table, key=lambda row: (row["abstain_rate_unanswered"], -row["weight"]))
    return best["weight"], table


def calibrate(examples: list[Example], qa_settings: Settings, embedder: Embedder, reader: Reader,
              target_answer_rate: float = 0.96, progress: bool = True, max_stop_loss: float = STOP_MAX_F1_LOSS,
              wikinews: list[Example] | tuple[Example, ...] = ()) -> tuple[Calibration, dict]:
    """Choose the abstention thresholds and fit the confidence on held-out questions, in open mode.

    Two scorings are fitted, so either can be used (and compared):
    - the span gap alone: Platt scaling of "the answer is right" (F1 >= 0.5 with its article; never
      without it, never for an unanswerable question) on the gap;
    - answer aggregation: a logistic regression of "this candidate is right" on every candidate's
      features (qa/aggregate.py), from the questions with and without their article.
    Each threshold is the highest that still answers `target_answer_rate` of the answerable questions
    whose article is in the index (so it abstains as often as it can where the article is missing, or
    does not say). The gap is first lowered by the chosen cost of the question's words its passage
    lacks (qa/support.py). Statistics count each SQuAD question twice: once per corpus layout.
    `wikinews`: questions of the Wikinews dev set (wikinews_calibration_examples: reports 1-16 only),
    asked once over a folder of their reports; their unanswerable questions are readings that should
    abstain, their list questions answerable (right when the answer matches an item).
    """
    from sklearn.linear_model import LogisticRegression

    if any(not 1 <= report_number(e) <= CALIBRATION_REPORTS[1] for e in wikinews):
        raise ValueError(f"calibrating on Wikinews reports 1-{CALIBRATION_REPORTS[1]} only; never on the reported half")
    # Both ways a corpus can look: every paragraph its own article (as `qa eval --mode open`), and
    # whole articles with headlines cut into passages (as a folder of news), so that the fitted
    # weights do not lean on what only one of them has.
    records = []
    for whole in (False, True):
        part, _ = open_run(examples, qa_settings, embedder, reader, progress, threshold=-math.inf, aggregate=False,
                           whole_articles=whole)
        records += part
    news = []
    if wikinews:
        news, _ = open_run(list(wikinews), qa_settings, embedder, reader, progress, threshold=-math.inf,
                           aggregate=False, corpus=wikinews_corpus(list(wikinews)))
        records += news
    answerable = [r for r in records if r["answerable"]]
    weight, weight_table = choose_unstated_weight(records, target_answer_rate)
    chosen = next(row for row in weight_table if row["weight"] == weight)

    def judged(rows, lane=""):
        return np.array([r[f"gap{lane}"] - weight * r[f"unstated{lane}"] for r in rows])

    with_gaps, without_gaps = judged(records), judged(records, "_without")     # judged scores
    threshold = chosen["threshold"]
    right = [r["answerable"] and best_score(token_f1, r["prediction"], r["example"].answers) >= 0.5 for r in records]
    x = np.concatenate([with_gaps, without_gaps]).reshape(-1, 1)
    y = np.concatenate([right, [False] * len(records)])
    platt = LogisticRegression(C=100.0).fit(np.clip(x, -50, 50), y)

    features, labels = [], []
    for r in records:
        for text, f in r["candidates"]:
            features.append(f)
            labels.append(r["answerable"] and best_score(token_f1, text, r["example"].answers) >= 0.5)
        for _, f in r["candidates_without"]:
            features.append(f)
            labels.append(False)
    weights = fit(np.array(features), np.array(labels))

    def top(cands):  # decide() answers with the best span gap; the combination judges it
        return combined_score(cands[0][1], weights) if cands else -math.inf

    with_top = np.array([top(r["candidates"]) for r in answerable])
    without_top = np.array([top(r["candidates_without"]) for r in records])
    combine_threshold = float(np.quantile(with_top, 1.0 - target_answer_rate))
    calibration = Calibration(threshold, float(platt.coef_[0][0]), float(platt.intercept_[0]),
                              weights, combine_threshold, unstated_weight=weight)
    # the early stop: how sure the first passages' answer must be for the others to go unread
    first = qa_settings.read_first or 2  # QA_READ_FIRST=0 (read all) still calibrates the default stop
    stop_score, stop_table = choose_stop_score(answerable, calibration, first, max_stop_loss)
    calibration = replace(calibration, stop_score=stop_score)
    stats = {
        "questions": len(records),
        "answer_rate_with_article": float(np.mean(judged(answerable) >= threshold)),
        "abstain_rate_without_article": chosen["abstain_rate_without_article"],
        "abstain_rate_unsaid": chosen["abstain_rate_unsaid"],
        "combine_features": list(FEATURES),
        "combine_answer_rate_with_article": float(np.mean(with_top >= combine_threshold)),
        "combine_abstain_rate_without_article": float(np.mean(without_top < combine_threshold)),
        "target_answer_rate": target_answer_rate,
        "unstated_table": weight_table,
        "stop_first": first,
        "stop_max_f1_loss": max_stop_loss,
        "stop_min_same_answers": STOP_MIN_SAME_ANSWERS,
        "stop_table": stop_table,
    }
    if news:   # how the chosen calibration does on the Wikinews part alone (the reading, not the full pipeline)
        has, unanswerable = [r for r in news if r["answerable"]], [r for r in news if not r["answerable"]]
        stats["wikinews"] = {
            "questions": len(news), "reports": sorted({report_number(r["example"]) for r in news}),
            "answer_rate_answerable": float(np.mean(judged(has) >= threshold)) if has else None,
            "abstain_rate_unanswerable": float(np.mean(judged(unanswerable) < threshold)) if unanswerable else None,
            "abstain_rate_without_article": float(np.mean(judged(news, "_without") < threshold)),
        }
    return calibration, stats


def save_calibration(folder: str | Path, calibration: Calibration, stats: dict, source: str) -> Path:
    """Write calibration.json into `folder` (beside a reader's weights), or to `folder` itself when it
    names a .json file (a calibration to compare, leaving the reader's own untouched)."""
    path = Path(folder) if str(folder).endswith(".json") else Path(folder) / "calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**calibration.__dict__, "calibrated_on": source, **stats}
    if payload["stop_score"] == math.inf:
        payload["stop_score"] = None  # no early stop qualified: read every passage
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
