"""Evaluation on SQuAD-format files.

reader mode:   the reader alone on each question's gold paragraph.
open mode:     every paragraph of the file is indexed; each question is asked against the whole index
               (retrieval recall@k, EM/F1), and once more with its own article left out, where the
               right behaviour is to abstain.
wikinews mode: the Wikinews dev set (questions with a `kind`: fact, list, unanswerable), each report
               written into a folder of articles as its `file`, beside the shipped article, every
               question asked through qa.QA, the real pipeline and decision layer (evaluate_wikinews).
Also the calibration of the abstention threshold and of the confidence (on held-out training articles,
and the Wikinews dev set's reports 1-16 when given).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from qa.aggregate import FEATURES, candidates, combined_score, fit
from qa.answers import decide, early_stop, top_unstated
from qa.config import Settings
from qa.embedding import Embedder
from qa.reader import Calibration, EarlyStop, Reader, merge_readings, passages_needed
from qa.retrieval import Retriever
from qa.sources.files import Article, load_articles
from qa.stores.embedded import EmbeddedSearch, update_index
from qa.stores.postgres import PostgresStore, is_database_url
from qa.support import unstated

from .distractors import paragraph_articles
from .metrics import LIST_RULES, best_score, exact_match, list_items, token_f1
from .squad import Example, read_squad, report_number

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
             whole_articles: bool = False, early: EarlyStop | None = None,
             corpus: tuple[list[Article], dict[str, str]] | None = None) -> tuple[list[dict], float]:
    """Ask every question against an index of all the file's paragraphs, with and without its own
    article, and (paragraph layout only) with its article but without the paragraphs that hold its
    answer: the article is there and does not say, as on a folder of news. Returns per-question
    records (gaps, predictions, recall ranks, the answer candidates and their aggregation features,
    each passage's reading) and seconds per question. `whole_articles`:
    index each article as one text (its title as a headline, then its paragraphs), cut into passages
    as real articles are. `early`: the reading policy replayed (qa/reader.py EarlyStop); every passage
    is read alone, so any other policy can be replayed from the records (`replay`). `corpus`: the
    articles to index and each question's context -> its article's id, instead of either layout
    (the Wikinews reports as a folder reads them, wikinews_corpus); no unsaid lane then. A question
    without answers (unanswerable) is asked the same way; its record says `answerable` False."""
    if corpus is not None:
        articles, paragraph_id = corpus
        whole_articles = True   # no unsaid lane: it needs paragraphs
    else:
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
                "example": ex, "answerable": not ex.is_impossible,
                "rank": ranked.index(gold) + 1 if gold in ranked else None,
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


def unanswered_cases(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Every reading that should abstain (unanswered_lanes, all lanes together)."""
    lanes = list(unanswered_lanes(records).values())
    return np.concatenate([g for g, _ in lanes]), np.concatenate([s for _, s in lanes])


def choose_unstated_weight(records: list[dict], target_answer_rate: float) -> tuple[float, list[dict]]:
    """The cost of the question's unstated words (Calibration.unstated_weight) that, at the threshold
    answering `target_answer_rate` of the answerable questions with their article, abstains on the most
    of the readings that should (unanswered_cases, every lane counted alike); the smallest such weight
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


def wikinews_corpus(examples: list[Example]) -> tuple[list[Article], dict[str, str]]:
    """The examples' reports as a folder of them reads (write_reports, then qa/sources/files.py), and
    each question's context -> its report's article id (its file name): open_run's `corpus`."""
    with tempfile.TemporaryDirectory() as tmp:
        write_reports(examples, Path(tmp))
        articles, problems = load_articles(tmp)
    if problems:
        raise ValueError(f"unreadable reports: {problems}")
    return articles, {ex.context: report_file(ex) for ex in examples}


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


# -- the Wikinews dev set (../shared/data/qa/wikinews-dev.README.md) --------------------------------
WIKINEWS_FILE = "wikinews-dev.json"
# its usage rule: decide and calibrate on reports 1-16, report results on 17-32, never train on either
CALIBRATION_REPORTS = (1, 16)
REPORTED_REPORTS = (17, 32)
SEED_ARTICLE = Path(__file__).resolve().parents[2] / "seeds" / "run-to-the-west-korea-first-ai-feature-film.txt"


def parse_reports(spec: str) -> tuple[int, int]:
    """'1-16' -> (1, 16); '5' -> (5, 5)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", spec)
    if not match:
        raise ValueError(f"--reports takes FIRST-LAST (e.g. 1-16), not {spec!r}")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if not 1 <= first <= last:
        raise ValueError(f"--reports {spec}: need 1 <= FIRST <= LAST")
    return first, last


def in_reports(example: Example, reports: tuple[int, int] | None) -> bool:
    return reports is None or reports[0] <= report_number(example) <= reports[1]


def wikinews_calibration_examples(path: str | Path) -> list[Example]:
    """The questions `qa calibrate` may use: reports 1-16 only, never the reported half."""
    return [e for e in read_squad(path) if in_reports(e, CALIBRATION_REPORTS)]


def kind_of(example: Example) -> str:
    """fact | list | unanswerable: the file's own, else from the answers (a plain SQuAD file)."""
    return example.kind or ("unanswerable" if example.is_impossible else "fact")


def report_file(example: Example) -> str:
    return example.file or f"report-{report_number(example):03d}.txt"


def write_reports(examples: list[Example], folder: Path, extra: tuple[Path, ...] = ()) -> list[str]:
    """Each report of the examples written into `folder` as its `file` (its paragraphs, blank lines
    between), then the `extra` articles copied in; the file names, in order."""
    texts: dict[str, list[str]] = {}
    for ex in examples:
        if ex.context not in texts.setdefault(report_file(ex), []):
            texts[report_file(ex)].append(ex.context)
    for name, paragraphs in texts.items():
        (folder / name).write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    for path in extra:
        if path.name in texts:
            raise ValueError(f"{path.name}: an extra article with a report's name")
        shutil.copy2(path, folder / path.name)
    return [*texts, *(p.name for p in extra)]


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (bench/peers.py's rule)."""
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else None


def given_items(text: str | None, items=()) -> list[str]:
    """What a list answer gives: its items when it has some (Answer.items), else its single text."""
    texts = [getattr(i, "text", i) for i in items or ()]
    texts = [t for t in texts if t]
    return texts or ([text] if text else [])


def wikinews_rows(records: list[dict], times: list[float] | None = None) -> dict:
    """The Wikinews rows from per-question records {"example", "text" (None: abstained), "items"
    (given_items), "seconds", and "error" when the system raised}; `times` (default each record's
    seconds) give p50/p90.

    - fact: SQuAD EM/F1 against the best of the accepted answers (an abstention scores 0);
    - list: items found = share of all gold items (micro) some given item matches, items wrong = share
      of all given items that match no gold item; a match is SQuAD EM (the headline figures) or,
      alongside, token F1 >= 0.5 (`_f1`) or the gold item standing inside a given item (`_contained`:
      what a single span listing several items holds, metrics.list_items); an abstention gives no items;
    - abstention by kind: the share of the answerable (fact and list) abstained on, the share of the
      unanswerable abstained on. A system that raised has not abstained (it counts under errors).
    """
    by_kind: dict[str, list[dict]] = {"fact": [], "list": [], "unanswerable": []}
    for r in records:
        by_kind[kind_of(r["example"])].append(r)
    fact, lists, unanswerable = by_kind["fact"], by_kind["list"], by_kind["unanswerable"]
    answerable = fact + lists

    def abstained(rs):
        return _mean(r["text"] is None and "error" not in r for r in rs) if rs else None

    out = {
        "n": len(records),
        "fact": {"n": len(fact),
                 "exact_match": 100 * _mean(best_score(exact_match, r["text"] or "", r["example"].answers) for r in fact),
                 "f1": 100 * _mean(best_score(token_f1, r["text"] or "", r["example"].answers) for r in fact),
                 "abstained": abstained(fact)},
        "list": {"n": len(lists), "gold_items": sum(len(r["example"].answers) for r in lists),
                 "given_items": 0, "abstained": abstained(lists)},
        "unanswerable": {"n": len(unanswerable), "abstained": abstained(unanswerable)},
        "abstain_rate_answerable": abstained(answerable),
        "abstain_rate_unanswerable": abstained(unanswerable),
        "errors": sum("error" in r for r in records),
    }
    for rule in LIST_RULES:
        found = given = wrong = 0
        for r in lists:
            f, g, w = list_items(r["items"] if "error" not in r else [], r["example"].answers, rule)
            found, given, wrong = found + f, given + g, wrong + w
        suffix = "" if rule == "em" else f"_{rule}"
        out["list"][f"items_found{suffix}"] = found / out["list"]["gold_items"] if out["list"]["gold_items"] else None
        out["list"][f"items_wrong{suffix}"] = wrong / given if given else None
        out["list"]["given_items"] = given
    seconds = times if times is not None else [r["seconds"] for r in records if "seconds" in r]
    out.update({"p50_s": percentile(seconds, 50), "p90_s": percentile(seconds, 90),
                "seconds_per_question": _mean(seconds)})
    return out


def per_question(r: dict) -> dict:
    """One record as plain JSON: what was asked, what came back, how it scored."""
    ex = r["example"]
    row = {"id": ex.id, "kind": kind_of(ex), "question": ex.question, "gold": list(ex.answers),
           "text": r["text"], "items": r["items"], "abstained": r["text"] is None and "error" not in r}
    row.update({k: r[k] for k in ("score", "article", "seconds", "error") if k in r})
    if kind_of(ex) == "fact":
        row["em"] = best_score(exact_match, r["text"] or "", ex.answers)
        row["f1"] = best_score(token_f1, r["text"] or "", ex.answers)
    elif kind_of(ex) == "list":
        row["found"], row["given"], row["wrong"] = list_items(r["items"], ex.answers, "em")
    return row


def evaluate_wikinews(path: str, qa_settings: Settings, embedder: Embedder, reader: Reader,
                      reports: tuple[int, int] | None = None, limit: int | None = None, progress: bool = True,
                      all_reports: bool = False, extra: tuple[Path, ...] = (SEED_ARTICLE,)) -> dict:
    """The Wikinews dev set in open mode, through qa.QA: a folder of the selected reports (each written
    as its `file`; `all_reports`: every report of the file, whatever is asked) plus the `extra`
    articles (the shipped seed article), indexed, then every selected question asked as a user would
    (retrieval, the reader, the early stop, metadata questions, the decision layer and its calibration),
    one at a time after one untimed warm-up question. Rows: wikinews_rows; "questions": per question."""
    from qa.pipeline import QA

    examples = read_squad(path)
    asked = [e for e in examples if in_reports(e, reports)]
    if not asked:
        raise ValueError(f"{Path(path).name}: no question in reports {reports[0]}-{reports[1]}")
    asked = asked[:limit]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "articles"
        folder.mkdir()
        names = write_reports(examples if all_reports else [e for e in examples if in_reports(e, reports)],
                              folder, tuple(extra))
        s = replace(qa_settings, articles=folder, index=Path(tmp) / "index", store="", auto_update=True)
        qa = QA(settings=s, embedder=embedder, reader=reader)
        qa.answer(asked[0].question)   # warm-up: loads (or exports) the models, fills the caches
        records = []
        for ex in tqdm(asked, desc="wikinews eval", unit="question", disable=not progress):
            started = time.perf_counter()
            a = qa.answer(ex.question)
            seconds = time.perf_counter() - started
            records.append({"example": ex, "text": a.text, "items": given_items(a.text, getattr(a, "items", ())),
                            "seconds": seconds, "score": a.score, "article": a.article})
    c = reader.calibration
    return {
        "file": Path(path).name, "mode": "wikinews",
        "reports": f"{reports[0]}-{reports[1]}" if reports else "all",
        "folder": names, "top_k": qa_settings.top_k, "aggregate": qa_settings.aggregate,
        "calibration": {"no_answer_threshold": c.no_answer_threshold, "unstated_weight": c.unstated_weight,
                        "stop_score": c.stop_score if c.stop_score != math.inf else None},
        **wikinews_rows(records),
        "questions": [per_question(r) for r in records],
    }
