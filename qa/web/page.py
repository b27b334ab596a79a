"""The chat page: ask questions about the articles, see the answer and its source, add or remove articles.

`build_app(qa)` and `launch_options(qa)` for app.py, tests and embedding. The server's edge (request size,
uploads, slower failed logins) is qa/web/edge.py's: its `Guard` is installed by every launch of a
`build_app` page, and `login_check` is the page's login. Every launch also serves the JSON API
(qa/web/api.py: POST /api/ask) on the same server.
"""
from __future__ import annotations

import functools
import html
import inspect
import ipaddress
import sys
import threading
import traceback
import weakref
from pathlib import Path

import gradio as gr
from gradio.exceptions import InvalidPathError
from gradio.utils import NamedString
from gradio_client import utils as client_utils
from starlette.middleware import Middleware

from qa import QA, Answer, ArticleRejected, InvalidInput, QAError
from qa.config import format_size
from qa.web import api
from qa.web.api import SERVER_FAULT, one_line
from qa.web.examples import interleave, questions_for
from qa.limits import MAX_HISTORY_ITEMS
from qa.sources.files import SUFFIXES, read_article
from qa.web.edge import Guard, request_limit

# Gradio's own face, with the bold weight it ships but does not declare: without it, bold headings
# fall back to a thinner synthetic bold
THEME = gr.themes.Default(font=[gr.themes.LocalFont("Source Sans Pro", weights=(400, 600, 700)),
                                "ui-sans-serif", "system-ui", "sans-serif"])
CSS = ("h1, h2, h3 { font-weight: 700; } button { font-family: var(--font); } "
       "#confirm-box { border: 1px solid var(--error-border-color, #f87171); } "
       # a long article id or title wraps inside the panel instead of running out of it
       "#articles li, #articles li small { overflow-wrap: anywhere; word-break: break-word; }")
ANSWERING_AT_ONCE = 64  # questions in flight at once (they wait in the reader's queue, not in Gradio's)
TURNS_KEPT = 50         # turns of a conversation kept (and shown); the history passed is the last MAX_HISTORY_ITEMS questions
SESSIONS_KEPT = 1000    # browser sessions whose state Gradio keeps (its default, 10,000, is ~40 KB each)
ID_SHOWN = 60           # characters of an article id shown in the panel (all of it in the title attribute)
EXAMPLES = 3            # example questions under the chat
EXAMPLE_ARTICLES = 8    # the newest articles they are drawn from
# an upload never added (the box filled, then left) is deleted by Gradio's `delete_cache` this long
# after it arrived, looked for every UPLOAD_SWEEP seconds; one that was added or refused goes at once
UPLOAD_KEPT, UPLOAD_SWEEP = 3600, 600
NOT_UPLOADED = "that file was not uploaded to this chat; please upload it again"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host`: "localhost", or an address in 127.0.0.0/8 or ::1 (not a
    name that merely starts with "127.", like 127.0.0.1.nip.io)."""
    host = host.strip()
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _log_unexpected(action: str, err: BaseException) -> None:
    """An error that is nobody's fault but ours: the whole traceback to the operator's stderr."""
    print(f"{action} failed unexpectedly:", file=sys.stderr, flush=True)
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)


# -- answering -------------------------------------------------------------------------------------
def _text(s: str) -> str:
    """Escape text from an article or a question, keeping its line breaks."""
    return html.escape(s).replace("\n", "<br>")


def _passage(a: Answer) -> str:
    """The passage, escaped, with the answer span (or each list item) in <mark> where its offsets fall inside it."""
    ctx = a.context or ""
    if a.text is None or a.context_start is None:
        return _text(ctx)
    spans = [(i.start, i.end) for i in a.items] or [(a.start, a.end)]
    marks = sorted((lo - a.context_start, hi - a.context_start) for lo, hi in spans if lo is not None and hi is not None)
    out, at = [], 0
    for lo, hi in marks:
        if at <= lo < hi <= len(ctx):
            out.append(f"{_text(ctx[at:lo])}<mark>{_text(ctx[lo:hi])}</mark>")
            at = hi
    return "".join(out) + _text(ctx[at:])


def _outlets(a: Answer, articles: dict[str, dict] | None) -> str:
    """The other articles carrying the same story (wire copy), by outlet or title."""
    others = [s for s in a.sources if s != a.article]
    if not others:
        return ""
    meta = articles or {}
    names = [html.escape(meta.get(s, {}).get("site") or meta.get(s, {}).get("title") or s) for s in others]
    return f"<p><small>The same story is also in: {', '.join(names)}</small></p>"


def render_answer(a: Answer, articles: dict[str, dict] | None = None) -> str:
    """One chat reply as HTML; every piece of text in it is escaped. `articles` (QA.articles) names
    the other outlets of a story carried by several."""
    title = html.escape(a.title or a.article or "unknown article")
    source = (f"<details><summary>Source: {title}</summary><blockquote>{_passage(a)}</blockquote></details>"
              + _outlets(a, articles))
    if a.abstained:
        why = f" {_text(a.reason)}" if a.reason else ""
        if not a.context:
            return f"<p>I could not find the answer in the articles.{why}</p>"
        return (f"<p>I could not find the answer in the articles.{why} The closest passage I found is below.</p>"
                + source.replace("Source:", "Closest passage, from", 1))
    if a.items:  # a list answer: one line per item
        lines = "".join(f"<li><strong>{_text(i.text)}</strong></li>" for i in a.items)
        return f"<ul>{lines}</ul><p>Confidence: {a.score:.0%}</p>{source}"
    return f"<p><strong>{_text(a.text)}</strong></p><p>Confidence: {a.score:.0%}</p>{source}"


def problem(err: QAError) -> str:
    """A bad question (or history) is the user's to fix; anything else (a model or index that will not
    load) is ours. `err.public`: the message without server paths, shown on one line."""
    msg = html.escape(one_line(err.public))
    if isinstance(err, InvalidInput):
        return f"<p>Sorry, I can't answer that: {msg}. Please try another question.</p>"
    return f"<p>Sorry, something went wrong on the server: {msg}</p>"


# -- articles --------------------------------------------------------------------------------------
def add_upload(qa: QA, upload: str | Path) -> str:
    """Add an uploaded file as an article (QA.add_article checks and names it); returns its id."""
    upload = Path(upload)
    limit = qa.settings.max_article_bytes
    size = upload.stat().st_size
    if size > limit:  # refuse before reading it into memory
        raise ArticleRejected(f"{upload.name}: {format_size(size)}, larger than the limit of {format_size(limit)}")
    return qa.add_article(upload.name, upload.read_bytes())


def discard_upload(blocks: gr.Blocks, upload: str | Path) -> None:
    """Delete an upload from Gradio's upload cache once the add has read or refused it: the file, its
    folder (named after its hash) when that is empty, and Gradio's note of it. Nothing outside the cache."""
    cache = Path(blocks.GRADIO_CACHE).resolve()
    path = Path(upload).resolve()
    if cache not in path.parents:
        return
    for files in blocks.temp_file_sets:  # the upload route's set and the upload box's own
        files.discard(str(upload))
        files.discard(str(path))
    path.unlink(missing_ok=True)
    if path.parent != cache:
        try:
            path.parent.rmdir()
        except OSError:  # another file of the same content is still there
            pass


def _path_only(box: gr.File, f) -> NamedString:
    """The upload box's preprocessing of one file: its path (`type="filepath"`), checked against the
    box's file types. Gradio's own (6.x, components/file.py) also opens an empty temporary file in the
    upload cache for every file it hands on and never deletes it. (Set on the box itself: a subclass
    of a Gradio component makes Gradio write a .pyi stub beside this module.)"""
    if box.file_types and not client_utils.is_valid_file(f.path, box.file_types):
        raise gr.Error(f"Invalid file type. Please upload a file that is one of these formats: {box.file_types}")
    return NamedString(f.path)


def _shortened(text: str, most: int = ID_SHOWN) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def articles_html(qa: QA) -> str:
    """The articles panel; a long id is cut (the whole of it in the title attribute) and long words wrap."""
    items = "".join(
        f"<li><b>{html.escape(meta.get('title') or _shortened(article_id, 200))}</b><br>"
        f"<small title=\"{html.escape(article_id, quote=True)}\">{html.escape(_shortened(article_id))}"
        + "".join(f" · {html.escape(meta[k])}" for k in ("site", "published") if meta.get(k))
        + f" · {plural(meta.get('chunks', 0), 'passage')}</small></li>"
        for article_id, meta in sorted(qa.articles.items())
    )
    return f"<p>{plural(len(qa.articles), 'indexed article')}</p><ul>{items}</ul>"


class _Examples:
    """One QA's example questions: each article's candidates (qa/web/examples.py), asked in turn and kept
    when the chat answers them from that article; remembered per version of the article (its sha256)."""

    def __init__(self, qa: QA):
        self.qa = qa
        self.lock = threading.Lock()
        self.per_article: dict[tuple[str, str | None], tuple[list[str], list[str]]] = {}  # -> (answered, untried)

    def questions(self, n: int = EXAMPLES) -> list[str]:
        qa = self.qa
        newest = sorted(qa.articles.items(), key=lambda kv: (kv[1].get("published") or "", kv[0]),
                        reverse=True)[:EXAMPLE_ARTICLES]
        with self.lock:
            live = {(article_id, meta.get("sha256")) for article_id, meta in newest}
            for key in [k for k in self.per_article if k not in live]:
                del self.per_article[key]
            lists = [self._answered(article_id, meta, n) for article_id, meta in newest]
        return interleave(lists, n)

    def _answered(self, article_id: str, meta: dict, n: int) -> list[str]:
        key = (article_id, meta.get("sha256"))
        if key not in self.per_article:
            try:
                article = read_article(Path(self.qa.settings.articles) / article_id, article_id)
                untried = questions_for(article.title, article.text)
            except (OSError, ValueError):
                untried = []
            self.per_article[key] = ([], untried)
        answered, untried = self.per_article[key]
        while len(answered) < n and untried:
            question = untried.pop(0)
            try:
                a = self.qa.answer(question)
            except QAError:
                continue
            if not a.abstained and (a.article == article_id or article_id in a.sources):
                answered.append(question)
        return answered


_examples: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_examples_lock = threading.Lock()


def example_questions(qa: QA, n: int = EXAMPLES) -> list[str]:
    """Short questions a reader would ask about the newest articles ("Who directed the film?"), each
    one the chat answers; drawn by qa/web/examples.py from the articles' first paragraphs and headlines."""
    with _examples_lock:
        examples = _examples.get(qa)
        if examples is None:
            examples = _examples[qa] = _Examples(qa)
    return examples.questions(n)


def launch_options(qa: QA) -> dict:
    """What demo.launch() needs besides the address: the theme, and Gradio's own upload guard at the
    article limit (the page's guard, `Guard`, gives the refusal our words: "larger than the limit of 2 MB")."""
    return {"theme": THEME, "css": CSS, "max_file_size": qa.settings.max_article_bytes}


def _log_for_operator(action: str, err: QAError) -> None:
    """The whole message, server paths included, goes to the server's stderr; the page shows err.public."""
    if not isinstance(err, ArticleRejected):
        print(f"{action} failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)


# -- the page --------------------------------------------------------------------------------------
class _Blocks(gr.Blocks):
    """The chat's Blocks: Gradio's, with the page's edge (`Guard`) installed at launch, one-shot HTTP
    calls leaving no session behind, and no unexpected error reaching a client as Gradio's bare
    {"error": null}.

    Gradio requires every input of an API route, even one with a default; a plain HTTP client
    (`POST /gradio_api/call/ask` with `{"data": ["Who directed the film?"]}`) may leave out the
    trailing optional ones (`history`), which get their Python defaults."""

    guard: dict | None = None  # Guard's options, set by build_app
    read_only: bool = False
    json_routes: tuple = ()    # qa/web/api.py's routes, set by build_app

    def validate_inputs(self, block_fn, inputs: list) -> None:
        missing = len(block_fn.inputs) - len(inputs)
        if missing > 0 and callable(block_fn.fn):
            try:
                params = list(inspect.signature(block_fn.fn).parameters.values())[len(inputs):]
            except (TypeError, ValueError):
                params = []
            if len(params) == missing and all(p.default is not inspect.Parameter.empty for p in params):
                inputs.extend(p.default for p in params)  # in place: Gradio goes on with this list
        super().validate_inputs(block_fn, inputs)

    def launch(self, *args, **kwargs):
        """Gradio's launch, with `Guard` in front of its routes, the JSON API beside them, its upload
        limit at the article limit (none at all on a read-only page) and at most SESSIONS_KEPT
        sessions' state kept."""
        if self.guard is not None:
            app_kwargs = dict(kwargs.get("app_kwargs") or {})
            app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(Guard, **self.guard, blocks=self)]
            kwargs["app_kwargs"] = app_kwargs
            kwargs["max_file_size"] = 0 if self.read_only else kwargs.get("max_file_size") or self.guard["article_limit"]
        if self.json_routes:  # the JSON API (qa/web/api.py), first among the app's routes
            app_kwargs = dict(kwargs.get("app_kwargs") or {})
            app_kwargs["routes"] = [*self.json_routes, *app_kwargs.get("routes", [])]
            kwargs["app_kwargs"] = app_kwargs
        kwargs.setdefault("state_session_capacity", SESSIONS_KEPT)
        return super().launch(*args, **kwargs)

    async def process_api(self, *args, **kwargs):
        session, event = kwargs.get("session_hash"), kwargs.get("event_id")
        fn = kwargs.get("block_fn", args[0] if args else None)
        try:
            return await super().process_api(*args, **kwargs)
        except gr.Error:
            raise
        except InvalidPathError:  # a file a client names but did not upload here (the page returns no files)
            raise gr.Error(NOT_UPLOADED, print_exception=False) from None
        except Exception as err:  # noqa: BLE001 - a bug or an outage of ours: logged whole, shown as one line
            _log_unexpected(getattr(fn, "name", None) or "a request", err)
            raise gr.Error(SERVER_FAULT, print_exception=False) from None
        finally:
            if session is not None and session == event:
                self._forget_session(session)

    def _forget_session(self, session: str) -> None:
        """A call made without a session of its own (`POST /gradio_api/call/ask`) gets one named after its
        event, which nobody can come back to: Gradio would keep its state (~40 KB: a copy of every
        component's config) until SESSIONS_KEPT newer sessions push it out."""
        holder = getattr(self, "state_holder", None)
        if holder is None:
            return
        with holder.lock:
            holder.session_data.pop(session, None)
            holder.time_last_used.pop(session, None)


def _messages(turn: dict) -> list[dict]:
    q = turn["question"] if isinstance(turn["question"], str) else repr(turn["question"])
    shown = q if len(q) <= 300 else q[:300] + "…"  # an over-long question is cut, not pasted in full
    return [{"role": "user", "content": _text(shown)}, {"role": "assistant", "content": turn["reply"]}]


def build_app(qa: QA, read_only: bool = False) -> gr.Blocks:
    """The chat page. `read_only`: no add or remove controls, and no such events for any client to call."""

    def chat(message: str, turns: list[dict] | None = None):
        """The state keeps each turn's raw question (the history for follow-ups) and its rendered reply:
        the last TURNS_KEPT turns; the history asked with is the last MAX_HISTORY_ITEMS valid questions."""
        message = "" if message is None else message
        turns = turns or []
        history = [t["question"] for t in turns if t["valid"]][-MAX_HISTORY_ITEMS:]
        try:
            answer_html, valid = render_answer(qa.answer(message, history=history), qa.articles), True
        except QAError as err:  # e.g. empty or over-long: say so in the chat, keep it out of the history
            answer_html, valid = problem(err), False
        except Exception as err:  # noqa: BLE001 - ours, not the user's: the conversation goes on
            _log_unexpected("a chat question", err)
            answer_html, valid = f"<p>Sorry, {SERVER_FAULT}.</p>", False
        turns = (turns + [{"question": message, "valid": valid, "reply": answer_html}])[-TURNS_KEPT:]
        return "", [m for t in turns for m in _messages(t)], turns

    def examples_update():
        return gr.Dataset(samples=[[q] for q in example_questions(qa)])

    def panel(keep: str | None = None):
        """The articles list, the remove choice (`keep` stays chosen if it is still indexed) and the examples."""
        ids = sorted(qa.articles)
        return articles_html(qa), gr.Dropdown(choices=ids, value=keep if keep in ids else None), examples_update()

    def on_upload(path: str | None):
        if not path:
            return "Choose a file first.", gr.update(), *panel()
        try:
            article_id = add_upload(qa, path)
            status = f"Added <b>{html.escape(article_id)}</b>; the index is up to date."
        except QAError as err:
            status = f"Not added: {html.escape(one_line(err.public))}"
            _log_for_operator("add", err)
        except OSError:
            status = "Not added: the upload could not be read on the server; please upload it again."
        finally:  # read or refused: the articles folder has its own copy, the upload cache keeps none
            discard_upload(demo, path)
        return status, None, *panel()  # None empties the upload box

    def on_url(url: str | None):
        if not (url or "").strip():
            return "Paste a link first.", gr.update(), *panel()
        try:
            article_id = qa.add_url(url.strip())
            status = f"Added <b>{html.escape(article_id)}</b> from the link; the index is up to date."
        except QAError as err:  # unreachable, 404, not a web page, too large, no article text
            return f"Not added: {html.escape(one_line(err.public))}", gr.update(), *panel()
        return status, "", *panel()

    def signature():
        return sorted((k, v.get("sha256")) for k, v in qa.articles.items())

    def follow(seen, chosen=None):
        """Every few seconds: redraw the articles panel if the folder watcher or the feed poller changed it,
        keeping the article chosen for removal (a redraw between "Remove" and "Yes" must not lose it)."""
        now = signature()
        if now == seen:
            return gr.skip(), *(gr.skip() for _ in follow_outputs)
        return now, *(panel(chosen) if not read_only else (articles_html(qa), examples_update()))

    def ask_remove(article_id: str | None):
        if not article_id:
            return "Choose an article first.", gr.update(visible=False), ""
        return "", gr.update(visible=True), (f"Remove <b>{html.escape(article_id)}</b>? Its file is deleted "
                                             "and its passages leave the index.")

    def on_remove(article_id: str | None):
        if not article_id:
            return "Choose an article first.", gr.update(visible=False), *panel()
        try:
            qa.remove_article(article_id)
            status = f"Removed <b>{html.escape(article_id)}</b>; the index is up to date."
        except QAError as err:
            status = f"Not removed: {html.escape(one_line(err.public))}"
            _log_for_operator("remove", err)
        return status, gr.update(visible=False), *panel()

    def ask_api(question: str, history: list[str] | None = None) -> dict:
        """Answer a question from the articles; `history` (optional): earlier questions of the conversation."""
        try:  # the history as given: qa/limits.py bounds its items, their count and their type
            return qa.answer(question, history=() if history is None else history).to_dict()
        except QAError as err:
            raise gr.Error(one_line(err.public), print_exception=False) from None  # the client sees the message

    with _Blocks(title="Ask the articles", analytics_enabled=False, delete_cache=(UPLOAD_SWEEP, UPLOAD_KEPT)) as demo:
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
                examples = gr.Dataset(components=[question], samples=[[q] for q in example_questions(qa)],
                                      label="Example questions", elem_id="examples")
            with gr.Column(scale=1):
                gr.Markdown("### Articles")
                listing = gr.HTML(articles_html(qa), elem_id="articles")
                if not read_only:
                    upload = gr.File(label=f"Add an article (.txt, .md, .html; up to {format_size(qa.settings.max_article_bytes)})",
                                     file_types=list(SUFFIXES), type="filepath", elem_id="upload")
                    upload._process_single_file = functools.partial(_path_only, upload)
                    add_btn = gr.Button("Add article", size="sm", elem_id="add")
                    link = gr.Textbox(label="Add an article from a link", placeholder="https://…", max_lines=1,
                                      elem_id="url")
                    link_btn = gr.Button("Fetch and add", size="sm", elem_id="add-url")
                    chosen = gr.Dropdown(choices=sorted(qa.articles), label="Remove an article", value=None,
                                         elem_id="remove-choice")
                    remove_btn = gr.Button("Remove article…", size="sm", variant="stop", elem_id="remove")
                    with gr.Column(visible=False, elem_id="confirm-box") as confirm_box:
                        confirm_text = gr.HTML(elem_id="confirm-text")
                        with gr.Row():
                            yes_btn = gr.Button("Yes, remove it", size="sm", variant="stop", elem_id="confirm-remove")
                            no_btn = gr.Button("Cancel", size="sm", elem_id="cancel-remove")
                    status = gr.HTML(elem_id="article-status")
                else:
                    gr.Markdown("<small>Read-only: articles are managed on the server.</small>", elem_id="read-only")

        chat_io = dict(fn=chat, inputs=[question, turns], outputs=[question, chatbot, turns])
        # questions run side by side (Gradio's default is one at a time per event): the reader's
        # queue (qa/batching.py) gives them shared passes; ANSWERING_AT_ONCE bounds the threads
        answering = dict(concurrency_limit=ANSWERING_AT_ONCE, concurrency_id="answer")
        question.submit(**chat_io, api_name="chat", **answering)
        send.click(**chat_io, api_visibility="private", **answering)
        examples.click(lambda sample: sample[0], inputs=[examples], outputs=[question], api_visibility="private")
        chatbot.clear(lambda: [], outputs=[turns], api_visibility="private")  # the trash icon: a new conversation
        follow_outputs = [listing, examples] if read_only else [listing, chosen, examples]
        seen = gr.State(signature())
        gr.Timer(3).tick(follow, inputs=[seen] if read_only else [seen, chosen], outputs=[seen, *follow_outputs],
                         api_visibility="private",
                         show_progress="hidden")
        if read_only:
            demo.load(lambda: (articles_html(qa), examples_update()), outputs=[listing, examples], api_visibility="private")
        else:
            link_io = dict(fn=on_url, inputs=[link], outputs=[status, link, listing, chosen, examples], api_visibility="private")
            link_btn.click(**link_io)
            link.submit(**link_io)
            lists = [listing, chosen, examples]
            add_btn.click(on_upload, inputs=[upload], outputs=[status, upload, *lists], api_visibility="private")
            remove_btn.click(ask_remove, inputs=[chosen], outputs=[status, confirm_box, confirm_text],
                             api_visibility="private")
            yes_btn.click(on_remove, inputs=[chosen], outputs=[status, confirm_box, *lists], api_visibility="private")
            no_btn.click(lambda: ("Not removed.", gr.update(visible=False)), outputs=[status, confirm_box],
                         api_visibility="private")
            demo.load(panel, outputs=lists, api_visibility="private")  # another tab may have changed it
        gr.api(ask_api, api_name="ask", **answering)
    demo.read_only = read_only
    demo.json_routes = tuple(api.routes(qa, ANSWERING_AT_ONCE))
    demo.guard = {"body_limit": request_limit(qa.settings), "article_limit": qa.settings.max_article_bytes,
                  "read_only": read_only, "max_chars": qa.settings.max_question_chars}
    return demo
