"""The web chat: ask questions about the articles, see the answer and its source, add or remove articles.

`python app.py [--host H] [--port P]` (or QA_HOST / QA_PORT); `build_app(qa)` for tests and embedding.
"""
from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path

import gradio as gr

from qa import QA, Answer, ArticleRejected, InvalidQuestion, QAError
from qa.articles import SUFFIXES

EXAMPLES = [
    "Who directed the film?",
    "When did it open in theaters?",
    "Who is the lead actor?",
    "What was the original script called?",
]

# -- answering -------------------------------------------------------------------------------------
def _text(s: str) -> str:
    """Escape text from an article or a question, keeping its line breaks."""
    return html.escape(s).replace("\n", "<br>")


def _passage(a: Answer) -> str:
    """The passage, escaped, with the answer span in <mark> when its offsets fall inside it."""
    ctx = a.context or ""
    if a.text is not None and a.start is not None and a.end is not None and a.context_start is not None:
        lo, hi = a.start - a.context_start, a.end - a.context_start
        if 0 <= lo < hi <= len(ctx):
            return f"{_text(ctx[:lo])}<mark>{_text(ctx[lo:hi])}</mark>{_text(ctx[hi:])}"
    return _text(ctx)


def render_answer(a: Answer) -> str:
    """One chat reply as HTML; every piece of text in it is escaped."""
    title = html.escape(a.title or a.article or "unknown article")
    source = f"<details><summary>Source: {title}</summary><blockquote>{_passage(a)}</blockquote></details>"
    if a.abstained:
        if not a.context:
            return "<p>I could not find the answer in the articles.</p>"
        return ("<p>I could not find the answer in the articles. The closest passage I found is below.</p>"
                + source.replace("Source:", "Closest passage, from", 1))
    return f"<p><strong>{_text(a.text)}</strong></p><p>Confidence: {a.score:.0%}</p>{source}"


def problem(err: QAError) -> str:
    """A bad question is the user's to fix; anything else (a model or index that will not load) is ours."""
    msg = html.escape(str(err))
    if isinstance(err, InvalidQuestion):
        return f"<p>Sorry, I can't answer that: {msg}. Please try another question.</p>"
    return f"<p>Sorry, something went wrong on the server: {msg}</p>"


# -- articles --------------------------------------------------------------------------------------
def add_upload(qa: QA, upload: str | Path) -> str:
    """Add an uploaded file as an article (QA.add_article checks and names it); returns its id."""
    upload = Path(upload)
    limit = qa.settings.max_article_bytes
    if upload.stat().st_size > limit:  # refuse before reading it into memory
        raise ArticleRejected(f"{upload.name}: larger than the limit of {limit:,} bytes")
    return qa.add_article(upload.name, upload.read_bytes())


def articles_html(qa: QA) -> str:
    items = "".join(
        f"<li><b>{html.escape(meta.get('title') or article_id)}</b><br><small>{html.escape(article_id)}"
        f" · {meta.get('chunks', '?')} passages</small></li>"
        for article_id, meta in sorted(qa.articles.items())
    )
    return f"<p>{len(qa.articles)} indexed article(s)</p><ul>{items}</ul>"


# -- the page --------------------------------------------------------------------------------------
def _messages(turn: dict) -> list[dict]:
    q = turn["question"]
    shown = q if len(q) <= 300 else q[:300] + "…"  # an over-long question is cut, not pasted in full
    return [{"role": "user", "content": _text(shown)}, {"role": "assistant", "content": turn["reply"]}]


def build_app(qa: QA) -> gr.Blocks:
    def chat(message: str, turns: list[dict]):
        """The state keeps each turn's raw question (the history for follow-ups) and its rendered reply."""
        message = message or ""
        history = [t["question"] for t in turns if t["valid"]]
        try:
            answer_html, valid = render_answer(qa.answer(message, history=history)), True
        except QAError as err:  # e.g. empty or over-long: say so in the chat, keep it out of the history
            answer_html, valid = problem(err), False
        turns = turns + [{"question": message, "valid": valid, "reply": answer_html}]
        return "", [m for t in turns for m in _messages(t)], turns

    def panel():
        return articles_html(qa), gr.Dropdown(choices=sorted(qa.articles), value=None)

    def on_upload(path: str | None):
        if not path:
            return "Choose a file first.", *panel()
        try:
            article_id = add_upload(qa, path)
            status = f"Added <b>{html.escape(article_id)}</b>; the index is up to date."
        except (QAError, OSError) as err:
            status = f"Not added: {html.escape(str(err))}"
        return status, *panel()

    def on_remove(article_id: str | None):
        if not article_id:
            return "Choose an article first.", *panel()
        try:
            qa.remove_article(article_id)
            status = f"Removed <b>{html.escape(article_id)}</b>; the index is up to date."
        except (QAError, OSError) as err:
            status = f"Not removed: {html.escape(str(err))}"
        return status, *panel()

    def ask_api(question: str, history: list[str] | None = None) -> dict:
        """Answer a question from the articles; `history`: earlier questions of the conversation."""
        try:
            return qa.answer(question, history=history or []).to_dict()
        except QAError as err:
            raise gr.Error(str(err), print_exception=False) from None  # the client sees the message

    with gr.Blocks(title="Ask the articles", analytics_enabled=False) as demo:
        gr.Markdown("# Ask the articles\nAnswers are quoted from the indexed news articles; "
                    "follow-up questions use the conversation.")
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                # render_markdown=False: replies are HTML built here with every text escaped, so
                # markdown syntax in an article or a question cannot turn into links or markup
                chatbot = gr.Chatbot(elem_id="chat", label="Chat", height=520, render_markdown=False,
                                     sanitize_html=True, feedback_options=None)
                with gr.Row():
                    question = gr.Textbox(elem_id="question", label="Question", show_label=False, scale=5, max_lines=4,
                                          placeholder="Ask a question about the articles…", autofocus=True)
                    send = gr.Button("Send", elem_id="send", variant="primary", scale=1)
                gr.Examples(EXAMPLES, inputs=[question], label="Example questions")
            with gr.Column(scale=1):
                gr.Markdown("### Articles")
                listing = gr.HTML(articles_html(qa), elem_id="articles")
                upload = gr.File(label=f"Add an article (.txt, .md, .html; up to {qa.settings.max_article_bytes // 1024:,} KB)",
                                 file_types=list(SUFFIXES), type="filepath")
                add_btn = gr.Button("Add article", size="sm")
                chosen = gr.Dropdown(choices=sorted(qa.articles), label="Remove an article", value=None, elem_id="remove-choice")
                remove_btn = gr.Button("Remove article", size="sm", variant="stop")
                status = gr.HTML(elem_id="article-status")

        chat_io = dict(fn=chat, inputs=[question, turns], outputs=[question, chatbot, turns])
        question.submit(**chat_io, api_name="chat")
        send.click(**chat_io, api_visibility="private")
        chatbot.clear(lambda: [], outputs=[turns], api_visibility="private")  # the trash icon: a new conversation
        add_btn.click(on_upload, inputs=[upload], outputs=[status, listing, chosen], api_visibility="private")
        remove_btn.click(on_remove, inputs=[chosen], outputs=[status, listing, chosen], api_visibility="private")
        demo.load(panel, outputs=[listing, chosen], api_visibility="private")  # another tab may have changed it
        gr.api(ask_api, api_name="ask")
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the web chat over the articles.")
    parser.add_argument("--host", default=os.environ.get("QA_HOST", "127.0.0.1"), help="[default: 127.0.0.1, or QA_HOST]")
    parser.add_argument("--port", type=int, default=int(os.environ.get("QA_PORT", "7860")), help="[default: 7860, or QA_PORT]")
    parser.add_argument("--articles", help="articles folder [default: seeds, or QA_ARTICLES]")
    parser.add_argument("--index", help="index folder [default: index, or QA_INDEX]")
    args = parser.parse_args(argv)

    print("Loading the models and the index…", flush=True)
    try:
        qa = QA(articles=args.articles, index=args.index)
        if qa.last_report is not None:
            print(f"Index {qa.settings.index}: {qa.last_report.summary()}", flush=True)
        else:
            print(f"Index {qa.settings.index}: loaded as it is (QA_AUTO_UPDATE is off)", flush=True)
        qa.reader.model  # load the reader now: a missing model fails here, not at the first question
    except QAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(qa.articles)} article(s) from {qa.settings.articles}", flush=True)
    demo = build_app(qa)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=qa.settings.max_article_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
