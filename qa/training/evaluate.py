"""Evaluation on SQuAD-format files.

reader mode:   the reader alone on each question's gold paragraph.
open mode:     every paragraph of the file is indexed; each question is asked against the whole index
               (retrieval recall@k, EM/F1), and once more with its own article left out, where the
               right behaviour is to abstain.
The Wikinews dev set's own mode is qa/training/wikinews.py; choosing a reader's calibration from these
readings, qa/training/calibrate.py.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from qa.aggregate import candidates
from qa.answers import decide, early_stop, top_unstated
from qa.config import Settings
from qa.embedding import Embedder
from qa.reader import Calibration, EarlyStop, Reader, merge_readings, passages_needed
from qa.retrieval import Retriever
from qa.sources.files import Article
from qa.stores.embedded import EmbeddedSearch, update_index
from qa.stores.postgres import PostgresStore, is_database_url
from qa.support import unstated

from .distractors import paragraph_articles
from .metrics import best_score, exact_match, token_f1
from .squad import Example, read_squad

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


def mean(values) -> float:
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
        "exact_match": 100 * mean(s.em for s in scored), "f1": 100 * mean(s.f1 for s in scored),
        "seconds_per_question": seconds / max(1, len(scored)),
    }
    if squad2:
        has = [s for s in scored if not s.example.is_impossible]
        no = [s for s in scored if s.example.is_impossible]
        result.update({
            "threshold": threshold,
            "has_answer": {"n": len(has), "exact_match": 100 * mean(s.em for s in has), "f1": 100 * mean(s.f1 for s in has)},
            "no_answer": {"n": len(no), "exact_match": 100 * mean(s.em for s in no), "f1": 100 * mean(s.f1 for s in no)},
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

def evaluate_open(path: str, qa_settings: Settings, embedder: Embedder, reader: Reader, limit: int | None = None,
                  progress: bool = True, aggregate: bool = False) -> dict:
    examples = [e for e in read_squad(path) if not e.is_impossible][:limit]
    early = None if aggregate else early_stop(replace(qa_settings, aggregate=False), reader.calibration)
    records, seconds = open_run(examples, qa_settings, embedder, reader, progress, qa_settings.no_answer_threshold,
                                aggregate, early=early)
    em = [best_score(exact_match, r["prediction"], r["example"].answers) for r in records]
    f1 = [best_score(token_f1, r["prediction"], r["example"].answers) for r in records]
    recall = {f"recall@{k}": mean(r["rank"] is not None and r["rank"] <= k for r in records) for k in (1, 5, 10)}
    return {
        "file": Path(path).name, "mode": "open", "n": len(records),
        "exact_match": 100 * mean(em), "f1": 100 * mean(f1), **recall,
        "abstain_rate_without_article": mean(r["abstained_without"] for r in records),
        # its article indexed, the paragraphs that hold the answer left out: the article does not say
        "abstain_rate_unsaid": mean(r["abstained_unsaid"] for r in records if r["abstained_unsaid"] is not None),
        "answer_rate_with_article": mean(not r["abstained"] for r in records),
        "seconds_per_question": seconds, "top_k": qa_settings.top_k,
        # the early stop (qa/reader.py EarlyStop) against reading every passage, on the same readings
        "early_stop": {"first": early.first, "stop_score": early.score} if early else None,
        "passages_read": mean(r["passages_read"] for r in records),
        "read_all": replay(records, reader.calibration, None) if early else None,
        "reliability": reliability(records),
        "other_ranking": {
            "aggregate": not aggregate,
            "exact_match": 100 * mean(best_score(exact_match, r["other"].text or "", r["example"].answers) for r in records),
            "f1": 100 * mean(best_score(token_f1, r["other"].text or "", r["example"].answers) for r in records),
            "abstain_rate_without_article": mean(r["other_without"].abstained for r in records),
            "answer_rate_with_article": mean(not r["other"].abstained for r in records),
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
        mean_conf = mean(c for c, _ in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0))
        table.append({"bin": [lo, hi], "answers": len(inside), "mean_confidence": mean_conf,
                      "accuracy": mean(inside) if inside else None})
    return table
