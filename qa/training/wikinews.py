"""The Wikinews dev set (../shared/data/qa/wikinews-dev.README.md): questions with a `kind` (fact, list,
unanswerable), each report written into a folder of articles as its `file`, beside the shipped article, and
every question asked through qa.QA, the real pipeline and decision layer (evaluate_wikinews)."""
from __future__ import annotations

import math
import re
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from qa.config import Settings
from qa.embedding import Embedder
from qa.reader import Reader
from qa.sources.files import Article, load_articles

from .evaluate import mean
from .metrics import LIST_RULES, best_score, exact_match, list_items, token_f1
from .squad import Example, read_squad, report_number

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


def wikinews_corpus(examples: list[Example]) -> tuple[list[Article], dict[str, str]]:
    """The examples' reports as a folder of them reads (write_reports, then qa/sources/files.py), and
    each question's context -> its report's article id (its file name): open_run's `corpus`."""
    with tempfile.TemporaryDirectory() as tmp:
        write_reports(examples, Path(tmp))
        articles, problems = load_articles(tmp)
    if problems:
        raise ValueError(f"unreadable reports: {problems}")
    return articles, {ex.context: report_file(ex) for ex in examples}


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
        return mean(r["text"] is None and "error" not in r for r in rs) if rs else None

    out = {
        "n": len(records),
        "fact": {"n": len(fact),
                 "exact_match": 100 * mean(best_score(exact_match, r["text"] or "", r["example"].answers) for r in fact),
                 "f1": 100 * mean(best_score(token_f1, r["text"] or "", r["example"].answers) for r in fact),
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
                "seconds_per_question": mean(seconds)})
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
