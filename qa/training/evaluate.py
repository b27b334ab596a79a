"""Evaluation on SQuAD-format files.

reader mode: the reader alone on each question's gold paragraph.
open mode:   every paragraph of the file is indexed; each question is asked against the whole index
             (retrieval recall@k, EM/F1), and once more with its own article left out, where the
             right behaviour is to abstain.
Also the calibration of the abstention threshold and of the confidence (on held-out training articles).
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from qa.aggregate import FEATURES, candidates, combined_score, fit
from qa.answers import decide, early_stop, top_unstated
from qa.config import Settings
from .distractors import paragraph_articles
from qa.embedding import Embedder
from .metrics import best_score, exact_match, token_f1
from qa.reader import Calibration, EarlyStop, Reader, merge_readings, passages_needed
from qa.retrieval import Retriever
from qa.sources.files import Article
from .squad import Example, read_squad
from qa.stores.embedded import EmbeddedSearch, update_index
from qa.stores.postgres import PostgresStore, is_database_url
from qa.support import unstated

BATCH = 16  # questions read together: their windows share forward passes


@dataclass
class Scored:
    example: Example
    prediction: str
    gap: float
    passages_article_ids: list[str] | None = None

    @property
    def em(self) -> float:
        return best_score(exact_match, self.prediction, self.example.answers)

    @property
    def f1(self) -> float:
        return best_score(token_f1, self.prediction, self.example.answers)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def evaluate_reader(path: str, reader: Reader, threshold: float | None = None, limit: int | None = None,
                    progress: bool = True) -> dict:
    """EM/F1 of the reader on gold paragraphs. On files with unanswerable questions (SQuAD 2.0) it
    may abstain, at `threshold` (default: the reader's calibrated one); on SQuAD 1.1 files it always answers."""
    examples = read_squad(path)[:limit]
    squad2 = any(e.is_impossible for e in examples)
    if threshold is None:
        threshold = reader.calibration.no_answer_threshold
    started = time.perf_counter()
    scored = []
    for lo in tqdm(range(0, len(examples), BATCH), desc="reader eval", unit="batch", disable=not progress):
        part = examples[lo : lo + BATCH]
        for ex, reading in zip(part, reader.read_many([e.question for e in part], [[e.context] for e in part])):
            answer = reading.spans[0].text if reading.spans else ""
            if squad2 and reader.calibration.judged(reading.gap, unstated(ex.question, ex.context)) < threshold:
                answer = ""
            scored.append(Scored(ex, answer, reading.gap))
    seconds = time.perf_counter() - started
    result = {
        "file": Path(path).name, "mode": "reader", "n": len(scored),
        "exact_match": 100 * _mean(s.em for s in scored), "f1": 100 * _mean(s.f1 for s in scored),
        "seconds_per_question": seconds / max(1, len(scored)),
    }
    if squad2:
        has = [s for s in scored if not s.example.is_impossible]
        no = [s for s in scored if s.example.is_impossible]
        result.update({
            "threshold": threshold,
            "has_answer": {"n": len(has), "exact_match": 100 * _mean(s.em for s in has), "f1": 100 * _mean(s.f1 for s in has)},
            "no_answer": {"n": len(no), "exact_match": 100 * _mean(s.em for s in no), "f1": 100 * _mean(s.f1 for s in no)},
        })
    return result


def whole_articles_of(examples: list[Example]) -> tuple[list[Article], dict[str, str]]:
    """One article per title, as a news article reads: headline, blank line, paragraphs; also
    returns context -> that article's id."""
    paragraphs: dict[str, list[str]] = {}
    for ex in examples:
        if ex.context not in paragraphs.setdefault(ex.title, []):
            paragraphs[ex.title].append(ex.context)
    articles, ids = [], {}
    for title, texts in paragraphs.items():
        text = title.replace("_", " ") + "\n\n" + "\n\n".join(texts)
        articles.append(Article(title, title.replace("_", " "), text, "", None, hashlib.sha256(text.encode()).hexdigest()))
        ids.update({t: title for t in texts})
    return articles, ids


def open_run(examples: list[Example], qa_settings: Settings, embedder: Embedder, reader: Reader,
             progress: bool = True, threshold: float | None = None, aggregate: bool = False,
             whole_articles: bool = False, early: EarlyStop | None = None) -> tuple[list[dict], float]:
    """Ask every question against an index of all the file's paragraphs, with and without its own
    article, and (paragraph layout only) with its article but without the paragraphs that hold its
    answer: the article is there and does not say, as on a folder of news. Returns per-question
    records (gaps, predictions, recall ranks, the answer candidates and their aggregation features,
    each passage's reading) and seconds per question. `whole_articles`:
    index each article as one text (its title as a headline, then its paragraphs), cut into passages
    as real articles are. `early`: the reading policy replayed (qa/reader.py EarlyStop); every passage
    is read alone, so any other policy can be replayed from the records (`replay`)."""
    articles, paragraph_id = (whole_articles_of if whole_articles else paragraph_articles)(examples)
    by_title: dict[str, set[str]] = {}
    for ex in examples:
        by_title.setdefault(ex.title, set()).add(paragraph_id[ex.context])
    text_of = {pid: ctx for ctx, pid in paragraph_id.items()}

    def saying(ex: Example) -> frozenset[str]:
        """The paragraphs of its article that hold an answer (its own always does)."""
        answers = [a.lower() for a in ex.answers]
        return frozenset({paragraph_id[ex.context]} | {pid for pid in by_title[ex.title]
                                                       if any(a in text_of[pid].lower() for a in answers)})
    s = qa_settings
    if is_database_url(s.store):  # the PostgreSQL store: the database is overwritten with this corpus
        search = PostgresStore(s.store)
        search.update(articles, embedder, s.chunk_chars, s.chunk_overlap, full=True, progress=progress)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            stored, _ = update_index(tmp, articles, embedder, s.chunk_chars, s.chunk_overlap, s.hnsw_above,
                                     progress=progress)
        search = EmbeddedSearch(stored)
    retriever = Retriever(search, embedder)
    k_read = s.top_k
    records = []
    seconds = 0.0

    def read(part, found):
        """Each question's passages, each read alone, then the policy's reading of them."""
        flat = reader.read_many([e.question for e, ps in zip(part, found) for _ in ps],
                                [[p.chunk.text] for ps in found for p in ps])
        out, lo = [], 0
        for ps in found:
            alone = flat[lo : lo + len(ps)]
            lo += len(ps)
            n = passages_needed(alone, early)
            out.append((alone, n, merge_readings(alone[:n])))
        return out

    for lo in tqdm(range(0, len(examples), BATCH), desc="open eval", unit="batch", disable=not progress):
        part = examples[lo : lo + BATCH]
        started = time.perf_counter()
        deeper = retriever.search_many([e.question for e in part], k=max(10, k_read))  # recall@10 too
        ranks = [[p.chunk.article_id for p in ps] for ps in deeper]
        found = [ps[:k_read] for ps in deeper]
        readings = read(part, found)
        answers = [decide(r, ps[:n], reader.calibration, threshold, aggregate, e.question)
                   for e, (_, n, r), ps in zip(part, readings, found)]
        seconds += time.perf_counter() - started
        without = retriever.search_many([e.question for e in part], k=k_read,
                                        exclude=[frozenset(by_title[e.title]) for e in part])
        readings_out = read(part, without)
        answers_out = [decide(r, ps[:n], reader.calibration, threshold, aggregate, e.question)
                       for e, (_, n, r), ps in zip(part, readings_out, without)]
        unsaid = [None] * len(part)   # (reading, passages read, answer) without the saying paragraphs
        if not whole_articles:
            found_unsaid = retriever.search_many([e.question for e in part], k=k_read, exclude=[saying(e) for e in part])
            unsaid = [(r, ps[:n], decide(r, ps[:n], reader.calibration, threshold, aggregate, e.question))
                      for e, (_, n, r), ps in zip(part, read(part, found_unsaid), found_unsaid)]
        for ex, ranked, ps, (alone, n, r), a, (alone_out, n_out, r_out), a_out, ps_out, u in zip(
                part, ranks, found, readings, answers, readings_out, answers_out, without, unsaid):
            gold = paragraph_id[ex.context]
            records.append({
                # its article indexed but not the paragraphs that say it; None in the whole-article layout
                "gap_unsaid": u[0].gap if u else None,
                "unstated_unsaid": top_unstated(ex.question, u[0], u[1]) if u else None,
                "abstained_unsaid": u[2].abstained if u else None,
                "passages_unsaid": u[1] if u else None,
                "example": ex, "rank": ranked.index(gold) + 1 if gold in ranked else None,
                "prediction": a.text or "", "gap": r.gap, "gap_without": r_out.gap,
                # the share of the question's words the best span's passage lacks (qa/support.py)
                "unstated": top_unstated(ex.question, r, ps[:n]),
                "unstated_without": top_unstated(ex.question, r_out, ps_out[:n_out]),
                "abstained": a.abstained, "abstained_without": a_out.abstained,
                "confidence": a.score, "confidence_without": a_out.score, "passages_read": n,
                "candidates": [(c.span.text, c.features) for c in candidates(r, ps[:n])],
                "candidates_without": [(c.span.text, c.features) for c in candidates(r_out, ps_out[:n_out])],
                # the other ranking (aggregation on/off) on the same readings, for the ablation
                "other": decide(r, ps[:n], reader.calibration, threshold, not aggregate, ex.question),
                "other_without": decide(r_out, ps_out[:n_out], reader.calibration, threshold, not aggregate, ex.question),
                "passages": ps, "alone": alone,   # to replay other reading policies
            })
    return records, seconds / max(1, len(examples))


def replay(records: list[dict], calibration: Calibration, early: EarlyStop | None) -> dict:
    """Another reading policy on the same readings (questions with their article): passages read,
    answers equal to reading every passage, EM and F1."""
    read = same = em = f1 = 0
    for r in records:
        ps, alone = r["passages"], r["alone"]
        q = r["example"].question
        full = decide(merge_readings(alone), ps, calibration, question=q).text
        n = passages_needed(alone, early)
        text = full if n == len(ps) else decide(merge_readings(alone[:n]), ps[:n], calibration, question=q).text
        read += n
        same += text == full
        em += best_score(exact_match, text or "", r["example"].answers)
        f1 += best_score(token_f1, text or "", r["example"].answers)
    k = max(1, len(records))
    return {"stop_score": early.score if early else None, "passages_read": read / k, "same_as_all": same / k,
            "exact_match": 100 * em / k, "f1": 100 * f1 / k}


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


def evaluate_open(path: str, qa_settings: Settings, embedder: Embedder, reader: Reader, limit: int | None = None,
                  progress: bool = True, aggregate: bool = False) -> dict:
    examples = [e for e in read_squad(path) if not e.is_impossible][:limit]
    early = None if aggregate else early_stop(replace(qa_settings, aggregate=False), reader.calibration)
    records, seconds = open_run(examples, qa_settings, embedder, reader, progress, qa_settings.no_answer_threshold,
                                aggregate, early=early)
    em = [best_score(exact_match, r["prediction"], r["example"].answers) for r in records]
    f1 = [best_score(token_f1, r["prediction"], r["example"].answers) for r in records]
    recall = {f"recall@{k}": _mean(r["rank"] is not None and r["rank"] <= k for r in records) for k in (1, 5, 10)}
    return {
        "file": Path(path).name, "mode": "open", "n": len(records),
        "exact_match": 100 * _mean(em), "f1": 100 * _mean(f1), **recall,
        "abstain_rate_without_article": _mean(r["abstained_without"] for r in records),
        # its article indexed, the paragraphs that hold the answer left out: the article does not say
        "abstain_rate_unsaid": _mean(r["abstained_unsaid"] for r in records if r["abstained_unsaid"] is not None),
        "answer_rate_with_article": _mean(not r["abstained"] for r in records),
        "seconds_per_question": seconds, "top_k": qa_settings.top_k,
        # the early stop (qa/reader.py EarlyStop) against reading every passage, on the same readings
        "early_stop": {"first": early.first, "stop_score": early.score} if early else None,
        "passages_read": _mean(r["passages_read"] for r in records),
        "read_all": replay(records, reader.calibration, None) if early else None,
        "reliability": reliability(records),
        "other_ranking": {
            "aggregate": not aggregate,
            "exact_match": 100 * _mean(best_score(exact_match, r["other"].text or "", r["example"].answers) for r in records),
            "f1": 100 * _mean(best_score(token_f1, r["other"].text or "", r["example"].answers) for r in records),
            "abstain_rate_without_article": _mean(r["other_without"].abstained for r in records),
            "answer_rate_with_article": _mean(not r["other"].abstained for r in records),
        },
    }


def reliability(records: list[dict], bins: int = 10) -> list[dict]:
    """Confidence against measured accuracy, in equal-width bins: every answer given, with its
    article indexed (right when F1 >= 0.5) and without it (never right)."""
    pairs = [(r["confidence"], best_score(token_f1, r["prediction"], r["example"].answers) >= 0.5)
             for r in records if not r["abstained"]]
    pairs += [(r["confidence_without"], False) for r in records if not r["abstained_without"]]
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [right for c, right in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        mean_conf = _mean(c for c, _ in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0))
        table.append({"bin": [lo, hi], "answers": len(inside), "mean_confidence": mean_conf,
                      "accuracy": _mean(inside) if inside else None})
    return table


UNSTATED_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0)


def unanswered_cases(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(gaps, unstated shares) of every reading that should abstain: each question without its article,
    and, where measured, with its article but not the paragraphs that say it."""
    pairs = [(r["gap_without"], r["unstated_without"]) for r in records]
    pairs += [(r["gap_unsaid"], r["unstated_unsaid"]) for r in records if r.get("gap_unsaid") is not None]
    gaps, shares = zip(*pairs) if pairs else ((), ())
    return np.array(gaps, dtype=float), np.array(shares, dtype=float)


def choose_unstated_weight(records: list[dict], target_answer_rate: float) -> tuple[float, list[dict]]:
    """The cost of the question's unstated words (Calibration.unstated_weight) that, at the threshold
    answering `target_answer_rate` of the questions with their article, abstains on the most of the
    readings that should (unanswered_cases); the smallest such weight (0 when the words do not help),
    and the table tried."""
    gaps_out, shares_out = unanswered_cases(records)
    n_without = len(records)   # unanswered_cases lists the without-article readings first
    table = []
    for w in UNSTATED_WEIGHTS:
        with_article = np.array([r["gap"] - w * r["unstated"] for r in records])
        threshold = float(np.quantile(with_article, 1.0 - target_answer_rate))
        abstains = gaps_out - w * shares_out < threshold
        table.append({"weight": w, "threshold": threshold, "abstain_rate_unanswered": float(np.mean(abstains)),
                      "abstain_rate_without_article": float(np.mean(abstains[:n_without])),
                      "abstain_rate_unsaid": float(np.mean(abstains[n_without:])) if len(abstains) > n_without else None})
    best = max(table, key=lambda row: (row["abstain_rate_unanswered"], -row["weight"]))
    return best["weight"], table


def calibrate(examples: list[Example], qa_settings: Settings, embedder: Embedder, reader: Reader,
              target_answer_rate: float = 0.96, progress: bool = True, max_stop_loss: float = STOP_MAX_F1_LOSS) -> tuple[Calibration, dict]:
    """Choose the abstention thresholds and fit the confidence on held-out questions, in open mode.

    Two scorings are fitted, so either can be used (and compared):
    - the span gap alone: Platt scaling of "the answer is right" (F1 >= 0.5 with its article; never
      without it) on the gap;
    - answer aggregation: a logistic regression of "this candidate is right" on every candidate's
      features (qa/aggregate.py), from the questions with and without their article.
    Each threshold is the highest that still answers `target_answer_rate` of the questions whose
    article is in the index (so it abstains as often as it can where the article is missing). The gap
    is first lowered by the chosen cost of the question's words its passage lacks (qa/support.py).
    Statistics count each question twice: once per corpus layout.
    """
    from sklearn.linear_model import LogisticRegression

    # Both ways a corpus can look: every paragraph its own article (as `qa eval --mode open`), and
    # whole articles with headlines cut into passages (as a folder of news), so that the fitted
    # weights do not lean on what only one of them has.
    records = []
    for whole in (False, True):
        part, _ = open_run(examples, qa_settings, embedder, reader, progress, threshold=-math.inf, aggregate=False,
                           whole_articles=whole)
        records += part
    weight, weight_table = choose_unstated_weight(records, target_answer_rate)
    chosen = next(row for row in weight_table if row["weight"] == weight)
    with_gaps = np.array([r["gap"] - weight * r["unstated"] for r in records])      # judged scores
    without_gaps = np.array([r["gap_without"] - weight * r["unstated_without"] for r in records])
    threshold = chosen["threshold"]
    right = [best_score(token_f1, r["prediction"], r["example"].answers) >= 0.5 for r in records]
    x = np.concatenate([with_gaps, without_gaps]).reshape(-1, 1)
    y = np.concatenate([right, [False] * len(records)])
    platt = LogisticRegression(C=100.0).fit(np.clip(x, -50, 50), y)

    features, labels = [], []
    for r in records:
        for text, f in r["candidates"]:
            features.append(f)
            labels.append(best_score(token_f1, text, r["example"].answers) >= 0.5)
        for _, f in r["candidates_without"]:
            features.append(f)
            labels.append(False)
    weights = fit(np.array(features), np.array(labels))

    def top(cands):  # decide() answers with the best span gap; the combination judges it
        return combined_score(cands[0][1], weights) if cands else -math.inf

    with_top = np.array([top(r["candidates"]) for r in records])
    without_top = np.array([top(r["candidates_without"]) for r in records])
    combine_threshold = float(np.quantile(with_top, 1.0 - target_answer_rate))
    calibration = Calibration(threshold, float(platt.coef_[0][0]), float(platt.intercept_[0]),
                              weights, combine_threshold, unstated_weight=weight)
    # the early stop: how sure the first passages' answer must be for the others to go unread
    first = qa_settings.read_first or 2  # QA_READ_FIRST=0 (read all) still calibrates the default stop
    stop_score, stop_table = choose_stop_score(records, calibration, first, max_stop_loss)
    calibration = replace(calibration, stop_score=stop_score)
    stats = {
        "questions": len(records),
        "answer_rate_with_article": float(np.mean(with_gaps >= threshold)),
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
    return calibration, stats


def save_calibration(folder: str | Path, calibration: Calibration, stats: dict, source: str) -> Path:
    path = Path(folder) / "calibration.json"
    payload = {**calibration.__dict__, "calibrated_on": source, **stats}
    if payload["stop_score"] == math.inf:
        payload["stop_score"] = None  # no early stop qualified: read every passage
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
