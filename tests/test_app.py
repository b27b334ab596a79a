"""The web chat, end to end: a real app on loopback, real models, asked through gradio_client."""
from __future__ import annotations

from dataclasses import replace

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from qa.web import page as chat_app
from qa import ArticleRejected
from qa.sources.files import safe_name

TITLE = "South Korea Launches First AI-Enhanced Feature Film &#x27;Run to the West&#x27;"  # as escaped in HTML
ABSTAINS = "could not find the answer in the articles"


@pytest.fixture
def client(app_server):
    """A fresh client: a new session, so a new conversation."""
    return Client(app_server["url"], verbose=False)


def text_of(message: dict) -> str:
    """A chatbot message's text, whether its content comes back as a string or as content blocks."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def chat(client: Client, question: str) -> list[str]:
    """Ask in the chat; returns every message's text so far (user, assistant, user, ...)."""
    cleared, messages = client.predict(question, api_name="/chat")
    assert cleared == ""  # the textbox is emptied for the next question
    return [text_of(m) for m in messages]


def test_answer_in_bold_with_confidence_and_source(client):
    messages = chat(client, "Who directed the film?")
    assert messages[0] == "Who directed the film?"
    reply = messages[-1]
    assert "<strong>Kang Yun-sung</strong>" in reply
    assert "Confidence:" in reply and "%" in reply
    assert "<details>" in reply and TITLE in reply
    assert "<mark>Kang Yun-sung</mark>" in reply  # highlighted inside the source passage


def test_follow_up_uses_the_conversation(client):
    chat(client, "Who directed the film?")
    messages = chat(client, "When did it open in theaters?")
    assert len(messages) == 4
    assert "<strong>Wednesday</strong>" in messages[-1]


def test_ask_endpoint_returns_json(client):
    result = client.predict("Who directed the film?", api_name="/ask")
    assert result["text"] == "Kang Yun-sung"
    assert result["article"] == "run-to-the-west-korea-first-ai-feature-film.txt"
    assert 0 < result["score"] <= 1
    assert result["context"][result["start"] - result["context_start"]:result["end"] - result["context_start"]] == "Kang Yun-sung"


def test_ask_endpoint_rejects_bad_input(client):
    with pytest.raises(AppError, match="empty"):
        client.predict("   ", api_name="/ask")


def test_unanswerable_question_abstains_with_closest_passage(client):
    reply = chat(client, "What is the boiling point of mercury?")[-1]
    assert ABSTAINS in reply
    assert "<strong>" not in reply
    assert "Closest passage" in reply and "<details>" in reply


def test_a_list_answer_is_one_line_per_item_each_marked_in_its_passage(client):
    reply = chat(client, "Which actors does the cast include?")[-1]
    leads = ["Byun Yo-han", "Bang Hyo-rin", "Yang Se-jong"]  # the shipped article's three leads
    assert reply.count("<li>") == 3 and all(f"<li><strong>{name}</strong></li>" in reply for name in leads), reply
    assert all(f"<mark>{name}</mark>" in reply for name in leads)


def test_an_abstention_says_why(app_qa, client):
    question = "How much did the film cost to make?"  # the article names costs, but no sum of money
    a = app_qa.answer(question)
    assert a.abstained and a.reason, (a.text, a.reason)
    reply = chat(client, question)[-1]
    assert ABSTAINS in reply and chat_app._text(a.reason) in reply


def test_question_markup_is_escaped(client):
    messages = chat(client, "Who directed the film? <script>alert(1)</script><img src=x onerror=alert(2)>")
    assert not any("<script" in m or "<img" in m for m in messages)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in messages[0]


@pytest.mark.parametrize("question, expected", [("", "the question is empty"), ("why? " * 250, "the limit is 1000")])
def test_bad_input_gets_a_friendly_message(client, question, expected):
    messages = chat(client, question)
    assert "Sorry, I can't answer that" in messages[-1] and expected in messages[-1]
    assert len(messages[0]) < 400  # an over-long question is shown cut


def test_article_markup_is_escaped(app_qa):
    a = app_qa.answer("Who directed the film?")
    evil = replace(a, title="<b onmouseover=x>T</b>", context="<script>x</script> " + a.context,
                   context_start=a.context_start - len("<script>x</script> "))
    html = chat_app.render_answer(evil)
    assert "<script>" not in html and "<b onmouseover" not in html
    assert "<mark>Kang Yun-sung</mark>" in html


def test_safe_name():
    assert safe_name("../../etc/evil name!.TXT") == "evil-name.txt"
    assert safe_name("..\\..\\.hidden.md") == "hidden.md"
    assert safe_name("Café Über.html") == "Café-Über.html"  # letters of any script are kept (qa/sources/files.py)
    with pytest.raises(ValueError):
        safe_name("payload.exe")


ARTICLE = """Tartu Opens Solar-Powered Footbridge

Tartu, 2025-11-02. The city of Tartu opened a solar-powered footbridge over the Emajogi river on Friday.
The bridge was designed by the engineer Mirela Quantrell and cost 4.2 million euros.
"""
NEW_FACT = "How much did the footbridge in Tartu cost?"


def test_add_and_remove_article_updates_the_index(app_qa, tmp_path):
    folder = app_qa.settings.articles
    before = set(app_qa.articles)
    upload = tmp_path / "Tartu news!.txt"
    upload.write_text(ARTICLE, encoding="utf-8")
    added = [chat_app.add_upload(app_qa, upload)]
    article_id = added[0]
    try:
        assert article_id == "Tartu-news.txt" and (folder / article_id).is_file()
        assert set(app_qa.articles) == before | {article_id}
        a = app_qa.answer(NEW_FACT)
        assert a.text == "4.2 million euros" and a.article == article_id

        with pytest.raises(ArticleRejected, match="already indexed"):
            chat_app.add_upload(app_qa, upload)  # the same file twice
        upload.write_text(ARTICLE.replace("Friday", "Monday"), encoding="utf-8")
        added.append(chat_app.add_upload(app_qa, upload))  # same name, new text: stored beside, not over it
        assert added[1] == "Tartu-news-2.txt"
        assert (folder / article_id).read_text(encoding="utf-8") == ARTICLE
    finally:
        for added_id in reversed(added):
            app_qa.remove_article(added_id)
    assert set(app_qa.articles) == before and not (folder / article_id).exists()
    a = app_qa.answer(NEW_FACT)
    assert a.article != article_id and "4.2 million" not in (a.text or "")


def test_bad_uploads_are_refused(app_qa, tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * (app_qa.settings.max_article_bytes // 5 + 1))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    for path, why in [(big, "larger than"), (binary, "binary file")]:
        with pytest.raises(ArticleRejected, match=why):
            chat_app.add_upload(app_qa, path)
    with pytest.raises(ArticleRejected, match="no indexed article"):
        app_qa.remove_article("../app.py")
    assert sorted(p.name for p in app_qa.settings.articles.iterdir()) == sorted(app_qa.articles)


def test_last_article_cannot_be_removed(app_qa):
    (only,) = app_qa.articles
    with pytest.raises(ArticleRejected, match="last article"):
        app_qa.remove_article(only)
