"""The Wikinews dev set's evaluation (`qa eval` wikinews mode) and its part in `qa calibrate` (reports
1-16 only), on tests/data/wikinews_mini.json: two short made-up reports in the set's format, so that a
clone without ../shared tests them. Real QA, real models."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from dataclasses import dataclass

import pytest

from qa.config import SHIPPED_READER
from qa.training.calibrate import calibrate
from qa.training.wikinews import (
    SEED_ARTICLE,
    evaluate_wikinews,
    given_items,
    parse_reports,
    wikinews_calibration_examples,
    wikinews_rows,
)
from qa.training.metrics import list_items
from qa.training.squad import Example, has_kinds, read_squad, report_number

from .conftest import PACKAGE_ROOT, SEEDS

MINI = PACKAGE_ROOT / "tests" / "data" / "wikinews_mini.json"
QUESTIONS = json.loads((PACKAGE_ROOT / "tests" / "data" / "seed_questions.json").read_text())


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "qa.cli", *map(str, args)], capture_output=True, text=True, check=False,
                          timeout=timeout, cwd=PACKAGE_ROOT)


@pytest.fixture
def with_report_17(tmp_path):
    """The mini file plus a third report numbered 17 (the second report again, under wn-017 ids and its
    own file name): a report of the half that is reported, never calibrated on."""
    data = json.loads(MINI.read_text())
    again = json.loads(json.dumps(data["data"][1]))
    again["file"] = "wikinews-lenne-17.txt"
    for q in again["paragraphs"][0]["qas"]:
        q["id"] = q["id"].replace("wn-002-", "wn-017-")
    data["data"].append(again)
    path = tmp_path / "wikinews-dev.json"
    path.write_text(json.dumps(data))
    return path


def test_the_mini_file_reads_as_the_dev_set():
    examples = read_squad(MINI)
    assert has_kinds(examples)
    assert not has_kinds([Example("q1", "Title", "A context.", "What?", ("context",), (2,))])   # plain SQuAD
    assert [e.kind for e in examples].count("fact") == 6
    assert [e.kind for e in examples].count("list") == 2 and [e.kind for e in examples].count("unanswerable") == 2
    assert {e.file for e in examples} == {"wikinews-portellis.txt", "wikinews-lenne.txt"}
    assert [report_number(e) for e in examples] == [1] * 5 + [2] * 5
    for e in examples:
        assert e.is_impossible == (e.kind == "unanswerable")
        for text, start in zip(e.answers, e.answer_starts):
            assert e.context[start:start + len(text)] == text
    assert next(e for e in examples if e.kind == "list").answers == (
        "three ship models", "a brass fog bell", "the lighthouse's original lens")


def test_list_items_by_exact_match_by_f1_and_inside_one_span():
    gold = ("Craftsman Tools", "Kenmore", "Lands' End")
    assert list_items(["Kenmore", "Lands End"], gold) == (2, 2, 0)          # SQuAD normalisation: punctuation goes
    assert list_items(["Kenmore", "Sears"], gold) == (1, 2, 1)
    assert list_items(["Kenmore", "kenmore."], gold) == (1, 1, 0)           # the same item twice counts once
    assert list_items([], gold) == (0, 0, 0)
    one_span = ["Craftsman Tools, Kenmore, and Lands' End"]
    assert list_items(one_span, gold, "em") == (0, 1, 1)
    # F1 against the six words of the span: a two-word item reaches 0.5 exactly, "Kenmore" 2/7
    assert list_items(one_span, gold, "f1") == (2, 1, 0)
    assert list_items(one_span, gold, "contained") == (3, 1, 0)
    assert list_items(["Craftsman"], gold, "f1") == (1, 1, 0)               # F1 2/3 >= 0.5
    assert list_items(["Kenmores"], gold, "contained") == (0, 1, 1)         # whole words only
    with pytest.raises(ValueError):
        list_items(["x"], gold, "fuzzy")


def test_given_items_are_the_answers_items_else_its_one_text():
    @dataclass
    class Item:
        text: str

    assert given_items("Kenmore and Lands' End", (Item("Kenmore"), Item("Lands' End"))) == ["Kenmore", "Lands' End"]
    assert given_items("Kenmore and Lands' End", ()) == ["Kenmore and Lands' End"]
    assert given_items(None, ()) == []


def test_rows_score_each_kind_as_documented():
    examples = read_squad(MINI)
    by_id = {e.id: e for e in examples}
    answers = {   # id -> (text, items)
        "wn-001-01": ("Margit Brandt", None), "wn-001-02": ("in 1911", None), "wn-001-03": (None, None),
        "wn-001-04": ("three ship models", ["three ship models", "a brass fog bell", "a rowing boat"]),
        "wn-001-05": (None, None),
        "wn-002-01": ("85 metres", None), "wn-002-02": ("Van Aalst Bruggen", None), "wn-002-03": ("four", None),
        "wn-002-04": ("The Green Party and Velo Riverside", None),
        "wn-002-05": ("85 metres", None),
    }
    records = [{"example": by_id[i], "text": t, "items": items if items is not None else given_items(t), "seconds": s}
               for s, (i, (t, items)) in enumerate(answers.items(), 1)]
    rows = wikinews_rows(records)
    assert rows["n"] == 10 and rows["errors"] == 0
    assert rows["fact"]["n"] == 6
    assert rows["fact"]["exact_match"] == pytest.approx(100 * 4 / 6)       # "in 1911" and an abstention miss
    assert rows["fact"]["f1"] == pytest.approx(100 * (4 + 2 / 3) / 6)      # "in 1911": F1 2/3
    assert rows["fact"]["abstained"] == pytest.approx(1 / 6)
    assert rows["abstain_rate_answerable"] == pytest.approx(1 / 8)
    assert rows["abstain_rate_unanswerable"] == pytest.approx(1 / 2)
    lists = rows["list"]
    assert (lists["n"], lists["gold_items"], lists["given_items"]) == (2, 5, 4)
    assert lists["items_found"] == pytest.approx(2 / 5) and lists["items_wrong"] == pytest.approx(2 / 4)
    assert lists["items_found_contained"] == pytest.approx(4 / 5) and lists["items_wrong_contained"] == pytest.approx(1 / 4)
    assert rows["p50_s"] == 5 and rows["p90_s"] == 9                      # nearest rank (bench/peers.py) over 1..10 s
    # a system that raised did not abstain; it counts under errors
    records[4] = {**records[4], "error": "RuntimeError: boom"}
    assert wikinews_rows(records)["abstain_rate_unanswerable"] == 0.0 and wikinews_rows(records)["errors"] == 1


def test_report_ranges():
    assert parse_reports("1-16") == (1, 16) and parse_reports("5") == (5, 5)
    for bad in ("x", "16-1", "0-3", "1-"):
        with pytest.raises(ValueError):
            parse_reports(bad)


def test_wikinews_eval_asks_every_question_through_qa(settings, embedder, reader):
    result = evaluate_wikinews(str(MINI), settings, embedder, reader, progress=False)
    assert result["mode"] == "wikinews" and result["reports"] == "all"
    assert result["folder"] == ["wikinews-portellis.txt", "wikinews-lenne.txt", SEED_ARTICLE.name]
    assert (result["n"], result["fact"]["n"], result["list"]["n"], result["unanswerable"]["n"]) == (10, 6, 2, 2)
    assert result["list"]["gold_items"] == 5
    rows = {q["id"]: q for q in result["questions"]}
    designer = rows["wn-001-01"]
    assert designer["text"] == "Margit Brandt" and designer["em"] == 1.0
    assert designer["article"] == "wikinews-portellis.txt"                 # read from the report's own file
    assert result["fact"]["exact_match"] >= 50
    # a list answer gives its items (Answer.items), else its one text; an abstention gives none
    lists = [q for q in rows.values() if q["kind"] == "list"]
    assert all(bool(q["items"]) == (q["text"] is not None) for q in lists)
    assert result["list"]["given_items"] == sum(len({i.lower() for i in q["items"]}) for q in lists)
    for share in (result["abstain_rate_answerable"], result["abstain_rate_unanswerable"], result["list"]["items_found"]):
        assert 0.0 <= share <= 1.0
    assert 0 < result["p50_s"] <= result["p90_s"]
    assert result["calibration"]["no_answer_threshold"] == reader.calibration.no_answer_threshold


def test_qa_eval_knows_the_file_by_its_kinds_and_selects_reports():
    done = run_cli("eval", MINI, "--reports", "2-2", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "wikinews" and result["reports"] == "2-2" and result["n"] == 5
    assert result["folder"] == ["wikinews-lenne.txt", SEED_ARTICLE.name]   # only the selected report, and the seed
    assert {q["id"][:6] for q in result["questions"]} == {"wn-002"}
    for args in (["--reports", "17-32"], ["--mode", "reader", "--reports", "1-2"]):
        done = run_cli("eval", MINI, *args)
        assert done.returncode == 2 and "error:" in done.stderr, (args, done.stderr)


def test_calibration_takes_reports_1_to_16_and_never_the_reported_half(with_report_17, settings, embedder, reader):
    news = wikinews_calibration_examples(with_report_17)
    assert {report_number(e) for e in news} == {1, 2} and len(news) == 10
    assert all(not e.id.startswith("wn-017") for e in news)
    reported = [e for e in read_squad(with_report_17) if report_number(e) == 17]
    with pytest.raises(ValueError, match="never"):
        calibrate([], settings, embedder, reader, wikinews=reported, progress=False)
    squad = [e for e in read_squad(seed_squad_file(with_report_17.parent)) if not e.is_impossible]
    calibration, stats = calibrate(squad, settings, embedder, reader, progress=False, wikinews=news)
    assert stats["questions"] == 2 * len(squad) + len(news)
    assert stats["wikinews"]["questions"] == 10 and stats["wikinews"]["reports"] == [1, 2]
    assert 0.0 <= stats["wikinews"]["abstain_rate_unanswerable"] <= 1.0
    # the unanswerable questions with their report are a lane of readings that should abstain
    assert all("abstain_rate_unanswerable" in row for row in stats["unstated_table"])
    assert math.isfinite(calibration.no_answer_threshold)


def seed_squad_file(folder):
    """The seed article's paragraphs as a SQuAD file under a calibration article's title (Pharmacy),
    the name `qa calibrate` reads, with the seed questions each on the paragraph holding its answer."""
    from qa.training.train import CALIBRATION_FILE

    text = (SEEDS / SEED_ARTICLE.name).read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if len(p) > 200]
    qas = {i: [] for i in range(len(paragraphs))}
    for n, item in enumerate(QUESTIONS["answerable"][:8]):
        for i, p in enumerate(paragraphs):
            answers = [{"text": a, "answer_start": p.find(a)} for a in item["answers"] if a in p]
            if answers:
                qas[i].append({"id": f"a{n}", "question": item["question"], "answers": answers})
                break
    data = {"version": "test", "data": [{"title": "Pharmacy", "paragraphs": [
        {"context": p, "qas": qas[i]} for i, p in enumerate(paragraphs) if qas[i]]}]}
    path = folder / CALIBRATION_FILE
    path.write_text(json.dumps(data))
    return path


def test_qa_calibrate_without_the_wikinews_file_works_as_before_and_writes_to_out(tmp_path):
    """No wikinews-dev.json in the data folder (a clone without ../shared's copy): the held-out SQuAD
    questions only; --out leaves the reader's own calibration.json as it was."""
    seed_squad_file(tmp_path)
    shipped = SHIPPED_READER / "calibration.json"
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    out = tmp_path / "cal" / "calibration-test.json"
    done = run_cli("calibrate", "--data", tmp_path, "--out", out)
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
    written, ours = json.loads(out.read_text()), json.loads(shipped.read_text())
    assert set(ours) - {"wikinews"} <= set(written)                         # the shipped format, every key
    assert "wikinews" not in written and "wikinews" not in written["calibrated_on"]
    assert written["calibrated_on"].endswith("held-out questions")
    done = run_cli("calibrate", "--data", tmp_path, "--wikinews", tmp_path / "absent.json", "--out", out)
    assert done.returncode == 2 and "no such file" in done.stderr
