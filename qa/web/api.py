"""The chat's JSON API: one request, one answer.

    POST /api/ask   {"question": "Who directed the film?", "history": [...], "k": 5}
    200             {"text": "Kang Yun-sung", "score": 0.92, "article": "...", "title": "...", "start": ...,
                     "end": ..., "context": "...", "context_start": ..., "alternatives": [...], "sources": [...]}
    4xx / 5xx       {"error": "the question is empty", "detail": "the question is empty"}

The answer's fields are the chat's own ask API's (`Answer.to_dict`). The route is one of the FastAPI
app Gradio runs (qa/web/page.py's launch hands `routes(qa)` to it), so it is listed in that app's
OpenAPI schema (/openapi.json) and sits behind the same edge (qa/web/edge.py's `Guard`: the request
size), the same login (`--auth`: Gradio's own check of its login cookie) and the same rules as the
chat: it only asks, which a read-only chat allows too. The question, the history and k are bounded
by qa/limits.py inside QA.answer; a refusal is its QAError's `.public` message on one line.
"""
from __future__ import annotations

import inspect
import json
import sys
import traceback

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from qa import QA, InvalidInput, QAError

ASK_PATH = "/api/ask"
FIELDS = ("question", "history", "k")
SERVER_FAULT = "something went wrong on the server; please try again"
HOW = 'the body is JSON like {"question": "Who directed the film?"}'


def one_line(text: str) -> str:
    """A message on one line (the chat and the API show a QAError's `.public` this way)."""
    return " ".join(str(text).split())


class AskRequest(BaseModel):
    """The body of POST /api/ask (its schema: the fields are checked by qa/limits.py, which words every refusal)."""

    question: str = Field(description="the question, up to 1,000 characters", examples=["Who directed the film?"])
    history: list[str] | None = Field(None, description="earlier questions of the conversation, oldest first "
                                                        "(at most 20); a follow-up like \"When did it open?\" needs them")
    k: int | None = Field(None, ge=1, le=50, description="how many passages to read [default: the server's setting]")


class ItemOut(BaseModel):
    """One item of a list answer."""

    text: str
    start: int = Field(description="character offsets of the item in the article's text")
    end: int


class AnswerOut(BaseModel):
    """An answer, as QA.answer gives it (`Answer.to_dict`); `text` is null when the articles do not seem to hold it."""

    text: str | None
    score: float = Field(description="confidence in [0, 1]")
    article: str | None = Field(description="the source article's id (its file name)")
    title: str | None
    start: int | None = Field(description="character offsets of the answer in the article's text")
    end: int | None
    context: str = Field(description="the passage it was read from (for a null text: the closest one)")
    context_start: int | None = Field(description="where that passage starts in the article")
    alternatives: list[AnswerOut] = Field(description="the next best answers, same shape")
    sources: list[str] = Field(description="every article carrying this story, its own first")
    items: list[ItemOut] = Field(default_factory=list, description="a list answer's items, each with its offsets; empty for a single answer")
    reason: str | None = Field(default=None, description="with a null text: what was found nearest, and why it was not given")


class Problem(BaseModel):
    error: str
    detail: str


def problem(status: int, message: str) -> JSONResponse:
    """A refusal as the edge words its own (qa/web/edge.py): {"error": ..., "detail": ...}."""
    message = one_line(message)
    return JSONResponse({"error": message, "detail": message}, status_code=status)


async def _logged_in(request: Request) -> bool:
    """Gradio's own login rule (gradio/routes.py: login_check and get_current_user): open without
    `auth`; else the user its `auth_dependency` names, or else the one its login cookie names."""
    app = request.app
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return True
    if app.auth_dependency is not None:
        user = app.auth_dependency(request)
        return (await user if inspect.isawaitable(user) else user) is not None
    token = (request.cookies.get(f"access-token-{app.cookie_id}")
             or request.cookies.get(f"access-token-unsecure-{app.cookie_id}"))
    return app.tokens.get(token) is not None


def routes(qa: QA, at_once: int) -> list[APIRoute]:
    """The API's routes over `qa`; `at_once`: questions answered side by side (the chat's own bound)."""
    limiter: list[anyio.CapacityLimiter] = []  # made in the server's event loop, on the first question

    def answer(question, history, k) -> dict:
        return qa.answer(question, k=k, history=() if history is None else history).to_dict()

    async def ask(request: Request) -> JSONResponse:
        if not await _logged_in(request):
            return problem(401, "log in first: POST /login with username and password (form fields), "
                                "then send its cookie")
        try:
            body = json.loads(await request.body())
        except ValueError:  # not JSON, or not UTF-8
            return problem(400, f"the body is not JSON: {HOW}")
        if not isinstance(body, dict):
            return problem(400, f"{HOW}, not a {type(body).__name__}")
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            return problem(400, f"unknown field {', '.join(repr(f) for f in unknown)}; the fields are "
                                "question, history (optional) and k (optional)")
        if "question" not in body:
            return problem(400, f'the body has no "question": {HOW}')
        if not limiter:
            limiter.append(anyio.CapacityLimiter(at_once))
        try:
            result = await anyio.to_thread.run_sync(answer, body["question"], body.get("history"), body.get("k"),
                                                    limiter=limiter[0])
        except InvalidInput as err:  # the request's to fix: empty, too long, wrong type
            return problem(400, err.public)
        except QAError as err:  # ours: a model or an index that cannot be used now
            print(f"{ASK_PATH} failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            return problem(503, err.public)
        except Exception as err:  # noqa: BLE001 - a bug of ours: logged whole, answered in one line
            print(f"{ASK_PATH} failed unexpectedly:", file=sys.stderr, flush=True)
            traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
            return problem(500, SERVER_FAULT)
        return JSONResponse(result)

    errors = {"model": Problem}
    return [APIRoute(
        ASK_PATH, ask, methods=["POST"], name="ask", summary="Ask the articles a question",
        description="One request, one answer: the answer's exact words, its confidence, the article and "
                    "passage it was read from. Behind `--auth`, log in first (POST /login, form fields "
                    "username and password) and send the cookie it sets.",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": AskRequest.model_json_schema()}}}},
        responses={200: {"model": AnswerOut, "description": "the answer"},
                   400: {**errors, "description": "a question, history or k outside the limits"},
                   401: {**errors, "description": "not logged in (behind --auth)"},
                   413: {**errors, "description": "a request body larger than the largest valid question"},
                   503: {**errors, "description": "the models or the index cannot be used now"}},
    )]
