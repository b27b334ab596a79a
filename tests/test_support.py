"""What the passage does not say (qa/support.py) and what it costs an answer (Calibration.judged,
decide(), `qa calibrate`'s choice of the cost). Real reader, real text."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import numpy as np

from qa.answers import decide
from qa.config import SHIPPED_READER
from qa.training.calibrate import choose_unstated_weight
from qa.reader import Reader
from qa.support import content_terms, content_words, unstated

from .test_answers import passages_of

BERLIN = "Chancellor Otto von Bismarck hosted the Berlin Conference in 1884, where Europe's powers divided Africa."


def test_content_terms_leave_out_function_and_question_words():
    assert content_terms("Who is the mayor of Berlin?") == {"mayor", "berlin"}
    assert content_terms("How many hectares does Stodden's winery own?") == {"hectar", "stodden", "wineri"}  # "own" is a function word there
    assert content_terms("What is it?") == frozenset()


def test_unstated_share_of_the_question():
    assert unstated("Who hosted the Berlin Conference?", BERLIN) == 0.0
    assert unstated("Who is the mayor of Berlin?", BERLIN) == 0.5          # "mayor" is not there
    assert unstated("Who got the 2015 award?", "The 2011 award went to Ludwig Kreuzberg.") == 0.5
    assert unstated("Who got the 20150 award?", "The 20151 award went to Ludwig Kreuzberg.") == 0.5  # numbers exact
    assert unstated("What is it?", BERLIN) == 0.0                          # nothing asked about: no cost


def test_a_typo_in_a_long_word_is_still_stated_a_short_word_is_not():
    assert unstated("Who direced the film?", "The film was directed by Kang Yun-sung.") == 0.0
    assert unstated("Who hosted the Berlin Conferense?", BERLIN) == 0.0
    assert unstated("Who lifted the cup?", "He lifted the cap.") == 0.5    # "cup" is too short to guess


def test_decide_lowers_the_gap_by_the_unstated_share(reader):
    passages = passages_of([BERLIN])
    asked = "Who is the mayor of Berlin?"
    reading = reader.read(asked, [BERLIN])
    assert reading.spans and "Bismarck" in reading.spans[0].text
    # a threshold this reading clears by 1: by the gap alone it answers, with the cost it does not
    plain = replace(reader.calibration, no_answer_threshold=reading.gap - 1.0, unstated_weight=0.0)
    costly = replace(plain, unstated_weight=10.0)                          # half the words: -5
    assert decide(reading, passages, plain, question=asked).text
    judged = decide(reading, passages, costly, question=asked)
    assert judged.abstained and judged.score < decide(reading, passages, plain, question=asked).score
    assert decide(reading, passages, costly).text                          # no question given: no cost
    # the question whose words are all there keeps its answer at the same threshold and cost
    hosted = "Who hosted the Berlin Conference?"
    kept = reader.read(hosted, [BERLIN])
    assert kept.gap >= reading.gap - 1.0
    assert "Bismarck" in decide(kept, passages, costly, question=hosted).text


def test_calibration_chooses_a_cost_only_when_it_separates():
    rng = np.random.default_rng(0)
    n = 400
    gaps = rng.normal(8, 3, n)
    gaps_without = rng.normal(5, 3, n)

    def records(unstated_with, unstated_without):
        return [{"gap": g, "gap_without": h, "unstated": u, "unstated_without": v}
                for g, h, u, v in zip(gaps, gaps_without, unstated_with, unstated_without)]

    telling = records(rng.uniform(0, 0.3, n), rng.uniform(0.5, 1.0, n))   # the missing article lacks the words
    weight, table = choose_unstated_weight(telling, 0.96)
    assert weight > 0 and table[0]["weight"] == 0.0
    assert max(row["abstain_rate_unanswered"] for row in table) > table[0]["abstain_rate_unanswered"]
    even = records(np.full(n, 0.5), np.full(n, 0.5))   # every answer lacks as much: a cost moves all alike
    assert choose_unstated_weight(even, 0.96)[0] == 0.0


def test_the_cost_is_read_from_calibration_json_and_absent_means_none(tmp_path):
    folder = tmp_path / "reader"
    shutil.copytree(SHIPPED_READER, folder)
    path = folder / "calibration.json"
    fields = json.loads(path.read_text())
    fields["unstated_weight"] = 7.5
    path.write_text(json.dumps(fields))
    assert Reader(str(folder)).calibration.unstated_weight == 7.5
    del fields["unstated_weight"]
    path.write_text(json.dumps(fields))
    calibration = Reader(str(folder)).calibration
    assert calibration.unstated_weight == 0.0 and calibration.judged(3.0, 1.0) == 3.0
    assert calibration.judged(-math.inf, 0.0) == -math.inf


def test_unstated_is_the_same_from_many_threads_at_once():
    """The chat decides on many threads; each has its own stemmer (a PyStemmer object is not thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = [(f"Who hosted conference number {i} in Berlin?", f"{BERLIN} Meeting {i + i % 2} was hosted there.")
             for i in range(300)]   # odd i: the passage gives another number
    alone = [unstated(q, p) for q, p in pairs]
    content_words.cache_clear()
    content_terms.cache_clear()
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda qp: unstated(*qp), pairs))
    assert together == alone == [0.25 * (i % 2) for i in range(300)]   # of host, confer, berlin, the number
