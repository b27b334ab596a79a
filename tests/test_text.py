"""Articles, chunking, windows and metrics: the text plumbing, on real text."""
from __future__ import annotations

import pytest

from qa.chunking import chunk_article, sentences
from qa.config import Settings
from qa.errors import ArticlesNotFound
from qa.training.metrics import best_score, exact_match, normalize, token_f1
from qa.sources.files import load_articles, read_article
from qa.windows import answer_tokens, make_windows

from .conftest import SEED_ARTICLE, SEEDS


@pytest.fixture(scope="module")
def seed():
    articles, problems = load_articles(SEEDS)
    assert not problems
    return articles[0]


def test_seed_article_title_date_and_id(seed):
    assert seed.id == SEED_ARTICLE
    assert seed.title == "South Korea Launches First AI-Enhanced Feature Film 'Run to the West'"
    assert seed.published == "2025-10-13"
    assert len(seed.sha256) == 64


def test_html_article(tmp_path):
    page = tmp_path / "story.html"
    page.write_text(
        "<html><head><title>Site | Story</title><meta property='article:published_time' content='2026-01-05T08:00:00Z'>"
        "<script>var x = '<p>not text</p>';</script></head><body><h1>Rivers &amp; Roads</h1>"
        "<p>The bridge opened on <b>Friday</b>.</p><p>It cost 4 million euros.</p></body></html>", encoding="utf-8")
    a = read_article(page, "story.html")
    assert a.title == "Rivers & Roads" and a.published == "2026-01-05"
    assert "The bridge opened on Friday." in a.text and "not text" not in a.text and "var x" not in a.text


def test_markdown_title(tmp_path):
    (tmp_path / "a.md").write_text("Some intro line.\n\n# Not first\n")
    (tmp_path / "b.md").write_text("# The Headline\n\nBody text here.\n")
    articles, _ = load_articles(tmp_path)
    assert [a.title for a in articles] == ["a", "The Headline"]


def test_missing_folder(tmp_path):
    with pytest.raises(ArticlesNotFound):
        load_articles(tmp_path / "absent")


def test_sentences_keep_quotes_and_abbreviations():
    text = 'Mr. Kang met Dr. Lee in the U.S. on Monday. He said "Yes." Then 3 people left!\n\nNew paragraph'
    got = [text[s:e] for s, e in sentences(text)]
    assert got == ["Mr. Kang met Dr. Lee in the U.S. on Monday.", 'He said "Yes."', "Then 3 people left!", "New paragraph"]


def test_chunks_keep_offsets_and_overlap(seed):
    chunks = chunk_article(seed, size=900, overlap=200)
    assert len(chunks) > 3
    for c in chunks:
        assert seed.text[c.start:c.end] == c.text and len(c.text) <= 900
    spans = sentences(seed.text)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start > prev.start  # always forward
        last_sentence = next((s, e) for s, e in reversed(spans) if e <= prev.end)
        if last_sentence[1] - last_sentence[0] <= 200:
            assert nxt.start < prev.end  # a sentence that fits in the overlap is repeated
        else:
            assert nxt.start >= prev.end  # a longer one is not cut, so nothing is lost either
    assert any(nxt.start < prev.end for prev, nxt in zip(chunks, chunks[1:]))
    assert chunks[0].start == 0 and chunks[-1].end == len(seed.text.rstrip())


def test_windows_round_trip_answers(reader, seed):
    question, answer = "Who directed the film?", "Kang Yun-sung"
    windows = make_windows(reader.tokenizer, [question], [seed.text], max_length=128, stride=48)
    assert len(windows) > 5 and all(len(w) <= 128 for w in windows)
    start = seed.text.index(answer)
    hits = [answer_tokens(w, start, start + len(answer)) for w in windows]
    found = [(w, h) for w, h in zip(windows, hits) if h != (0, 0)]
    assert found
    for w, (s, e) in found:
        assert seed.text[w.offsets[s][0]:w.offsets[e][1]] == answer


def test_squad_normalisation():
    assert normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Kang Yun-sung", "Kang Yun-sung") == 1.0
    assert token_f1("director Kang Yun-sung", "Kang Yun-sung") == pytest.approx(0.8)  # P 2/3, R 1
    assert best_score(token_f1, "", ()) == 1.0 and best_score(token_f1, "x", ()) == 0.0


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "7")
    monkeypatch.setenv("QA_AUTO_UPDATE", "false")
    monkeypatch.setenv("QA_NO_ANSWER_THRESHOLD", "1.5")
    s = Settings.from_env(index="elsewhere")
    assert (s.top_k, s.auto_update, s.no_answer_threshold, str(s.index)) == (7, False, 1.5, "elsewhere")
    monkeypatch.setenv("QA_TOP_K", "many")
    with pytest.raises(ValueError, match="QA_TOP_K"):
        Settings.from_env()
