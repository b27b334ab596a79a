"""The shipped reader on real text: spans, offsets, windows, abstention, load errors."""
from __future__ import annotations

import pytest

from qa.errors import ModelLoadError
from qa.reader import Reader
from qa.windows import make_windows

from .conftest import SEEDS, SEED_ARTICLE

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
