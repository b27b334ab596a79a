"""The shipped reader on real text: spans, offsets, windows, abstention, load errors."""
from __future__ import annotations

import pytest

from qa.errors import ModelLoadError
from qa.reader import EarlyStop, Reader, merge_readings, passages_needed
from qa.windows import make_windows

from .conftest import SEED_ARTICLE, SEEDS

ARTICLE = (SEEDS / SEED_ARTICLE).read_text(encoding="utf-8")
FIRST_PARAGRAPHS = ARTICLE[ARTICLE.index("South Korea has made"):ARTICLE.index("The movie features")]


def test_directed_by_kang_with_exact_offsets(reader):
    reading = reader.read("Who directed the film?", [FIRST_PARAGRAPHS])
    best = reading.spans[0]
    assert best.text == "Kang Yun-sung"
    assert FIRST_PARAGRAPHS[best.start:best.end] == best.text
    assert reading.gap >= reader.calibration.no_answer_threshold


def test_scores_compare_across_passages(reader):
    """With an irrelevant passage beside the right one, the right one wins."""
    distractor = ARTICLE[ARTICLE.index("However, lead actor"):ARTICLE.index("Byun further")]
    reading = reader.read("Who directed the film?", [distractor, FIRST_PARAGRAPHS])
    assert reading.spans[0].context == 1
    assert reading.spans[0].text == "Kang Yun-sung"


def test_answer_across_a_window_boundary_is_found(reader):
    """A long context cut so that the first window ends in the middle of the answer: the stride
    overlap puts the whole answer in the next window, and the reader finds it there."""
    small = Reader(reader.ref, max_length=96, stride=48)
    small.__dict__["_loaded"] = reader._loaded  # same weights, smaller windows
    question = "Which areas of Seoul does the trio run through?"
    answer = "Anguk and Gwanghwamun"
    fact = f"In the film the trio runs through the {answer} areas of central Seoul."
    filler = ARTICLE[ARTICLE.index("The AI-created creatures"):ARTICLE.index("Monday's press")]
    filler += " " + ARTICLE[ARTICLE.index("As artificial intelligence"):ARTICLE.index('"In the early')]
    for cut in range(len(filler) - 1, 0, -1):
        if filler[cut] != " ":
            continue
        context = filler[:cut] + " " + fact + filler[cut:]
        a_start = context.index(answer)
        windows = make_windows(small.tokenizer, [question], [context], small.max_length, small.stride)
        first_end = windows[0].offsets[windows[0].context_range[1]][1]
        if a_start < first_end < a_start + len(answer):
            break
    else:
        pytest.fail("could not place the answer across the first window's edge")
    assert len(windows) >= 2
    reading = small.read(question, [context])
    best = reading.spans[0]
    assert best.text == answer
    assert (best.start, best.end) == (a_start, a_start + len(answer))


def test_question_the_context_does_not_answer_gets_no_answer(reader):
    reading = reader.read("What is the boiling point of mercury?", [FIRST_PARAGRAPHS])
    assert reading.gap < reader.calibration.no_answer_threshold


def test_missing_model_folder_names_the_path(tmp_path):
    missing = tmp_path / "no-such-reader"
    with pytest.raises(ModelLoadError, match="no-such-reader"):
        Reader(str(missing)).model


def test_broken_model_folder_names_the_path(tmp_path):
    broken = tmp_path / "broken-reader"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="broken-reader"):
        Reader(str(broken)).model


def test_folder_without_weights_is_reported(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="no weights"):
        Reader(str(tmp_path)).model


def test_passages_read_alone_merge_to_reading_them_together(reader):
    """The replay used to choose the early stop (qa/training/evaluate.py) is exact: reading passages one by one
    and merging gives what reading them together gives (int8 ONNX: one window per call)."""
    if not reader.session.row_independent:
        pytest.skip("the torch runtime pads windows together: results depend on their batch-mates")
    distractor = ARTICLE[ARTICLE.index("However, lead actor"):ARTICLE.index("Byun further")]
    contexts = [distractor, FIRST_PARAGRAPHS, ARTICLE[ARTICLE.index("The movie features"):]]
    question = "Who directed the film?"
    together = reader.read(question, contexts)
    alone = [reader.read(question, [c]) for c in contexts]
    assert merge_readings(alone) == together


def test_early_stop_reads_the_rest_only_in_doubt(reader):
    question = "Who directed the film?"
    distractor = ARTICLE[ARTICLE.index("However, lead actor"):ARTICLE.index("Byun further")]
    threshold = reader.calibration.no_answer_threshold
    sure = [FIRST_PARAGRAPHS, distractor, distractor + " More."]
    first = reader.read(question, sure[:1])
    best = first.spans[0].score
    assert first.gap > threshold
    # confident after the first passage: the others are not read, so no span comes from them
    stopped = reader.read(question, sure, early=EarlyStop(1, best - 0.01, threshold))
    assert stopped == first
    assert passages_needed([reader.read(question, [c]) for c in sure], EarlyStop(1, best - 0.01, threshold)) == 1
    # a span scoring below the stop score leaves doubt: every passage is read, as without the early stop
    everything = reader.read(question, sure)
    assert reader.read(question, sure, early=EarlyStop(1, best + 0.01, threshold)) == everything
    # the distractor first: its best span ("Byun Yo-han", an actor) scores well below the director's
    # name, so the rest is read and the answer still comes from the right passage
    alone = reader.read(question, [distractor])
    assert alone.spans[0].score < best - 1
    late = reader.read(question, [distractor, FIRST_PARAGRAPHS], early=EarlyStop(1, best - 1, threshold))
    assert late.spans[0].text == "Kang Yun-sung" and late.spans[0].context == 1
