"""The server's edge, in front of the web chat's routes (qa/web/page.py installs it on every launch of a
`build_app` page): plain ASGI middleware and Gradio's login check, with no page code.

`Guard`: a request body larger than the largest valid question (`request_limit`) is refused before it
is read into memory (413), a read-only page takes no files at all, an upload is one file within the
article limit (counted as it arrives, whatever the request's shape) before Gradio stores any of it,
and a one-shot HTTP call's result, once read, leaves no queue entries behind.
`login_check`: a failed login waits longer each time (`Logins`), per client (`client_address`, set by
`Guard` for each request). Bounds on the question itself (its length, the history's items and count,
types) are qa/limits.py's, inside QA.answer.
"""
from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import re
import time
from collections import OrderedDict

from qa.config import Settings, format_size
from qa.limits import MAX_HISTORY_ITEMS

LOGIN_STEP, LOGIN_MOST = 0.25, 2.5  # a failed login waits 0.25 s, doubling per failure in a row, at most 2.5 s


def request_limit(settings: Settings) -> int:
    """The largest request body any page or API call needs: a question and MAX_HISTORY_ITEMS earlier
    ones at the question limit, every character escaped as JSON's longest (12 bytes), and the envelope."""
    return (MAX_HISTORY_ITEMS + 1) * settings.max_question_chars * 12 + 16 * 1024


client_address: contextvars.ContextVar[str] = contextvars.ContextVar("client", default="unknown")
DRAIN_MOST = 32 * 1024 * 1024  # a refused body up to this size is read and dropped, so the client gets the answer
UPLOAD_FILES = 1               # files in one upload request (the page's upload box takes one)
UPLOAD_ROUTE = "/upload"       # Gradio's upload route: the only one that takes files


class Guard:
    """ASGI middleware in front of Gradio's routes (installed by qa/web/page.py's `_Blocks.launch`).

    - A body larger than `body_limit` (Content-Length, or counted as it arrives) is refused with 413
      before any of it is kept, so a 10 MB history costs neither the JSON parse nor its memory.
    - Uploads (multipart bodies, Gradio's /upload) are refused outright (403) on a read-only page, and
      taken only at /upload otherwise. An upload's body is counted as it arrives and held here, up to
      the article limit and its framing, whatever its shape (Content-Length or chunked): past the
      limit it is refused (413, our message) and Gradio sees none of it. Gradio gets it whole only
      when it is one file (UPLOAD_FILES) in the "files" field, with a file name Gradio can store and a
      closing boundary: the shapes Gradio would otherwise leave on disk (a file in another field, a
      name it refuses after writing the file, a body cut short) never reach it. Gradio's own
      `max_file_size` then checks the file itself, and its refusal gets our message too.
    - Each request's client address is known to `login_check`, for its per-client slowing.
    """

    def __init__(self, app, *, body_limit: int, article_limit: int, read_only: bool, max_chars: int, blocks=None):
        self.app, self.body_limit, self.article_limit, self.read_only = app, body_limit, article_limit, read_only
        self.blocks = blocks
        self.upload_limit = article_limit + 64 * 1024  # the file and its multipart framing
        self.too_large = (f"larger than the limit of {format_size(body_limit)} (a question of up to "
                          f"{max_chars:,} characters, with up to {MAX_HISTORY_ITEMS} earlier ones)")
        self.file_too_large = f"the file is larger than the limit of {format_size(article_limit)}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = client_address.set((scope.get("client") or ("unknown",))[0])
        try:
            await self._http(scope, receive, send)
        finally:
            client_address.reset(token)

    async def _http(self, scope, receive, send):
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            one_shot = ONE_SHOT_RESULT.search(scope.get("path", "")) if scope["method"] == "GET" else None
            if one_shot and self.blocks is not None:
                _forget_queue_entries(self.blocks, one_shot.group(1))
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        try:
            declared = int(headers[b"content-length"])
        except (KeyError, ValueError):
            declared = None
        path = scope.get("path", "").rstrip("/")
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if (kind == b"multipart/form-data" or path.endswith((UPLOAD_ROUTE, "/process_recording"))) and not path.endswith("/login"):
            if self.read_only:
                return await _refuse(receive, send, 403, "this chat is read-only: it accepts no files", declared)
            if not path.endswith(UPLOAD_ROUTE):
                return await _refuse(receive, send, 403, "this chat takes files only through its upload box "
                                     "(POST /gradio_api/upload)", declared)
            return await self._upload(scope, receive, send, declared, headers.get(b"content-type", b""))
        if declared is not None:
            if declared > self.body_limit:
                return await _refuse(receive, send, 413, f"the request is {format_size(declared)}, {self.too_large}",
                                     declared)
            return await self.app(scope, receive, send)
        # no Content-Length (chunked): read the body here, up to the limit, and hand it on
        body, more = await _read_body(receive, self.body_limit)
        if body is None:
            return
        if len(body) > self.body_limit:
            return await _refuse(receive if more else None, send, 413, f"the request is {self.too_large}", None)
        return await self.app(scope, _replay(body, receive), send)

    async def _upload(self, scope, receive, send, declared: int | None, content_type: bytes):
        """An upload, held here until it is known to be one storable file within the limit (see the class)."""
        if declared is not None and declared > self.upload_limit:
            return await _refuse(receive, send, 413, self.file_too_large, declared)
        body, more = await _read_body(receive, self.upload_limit)
        if body is None:  # the client left: nothing was stored
            return
        if len(body) > self.upload_limit:
            return await _refuse(receive if more else None, send, 413, self.file_too_large, None)
        body = bytes(body)
        problem = upload_problem(body, content_type)
        if problem is not None:
            return await _refuse(None, send, 400, problem, None)
        return await self.app(scope, _replay(body, receive), _reworded(send, 413, self.file_too_large))


async def _read_body(receive, limit: int) -> tuple[bytearray | None, bool]:
    """The request body as it arrives, until it ends or passes `limit` bytes: (body, more to come);
    (None, False) when the client left."""
    body, more = bytearray(), True
    while more and len(body) <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return None, False
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body, more


def _replay(body: bytes | bytearray, receive):
    """`receive` for the app: the body read here, in one message, then the client's own messages."""
    replay = [{"type": "http.request", "body": bytes(body), "more_body": False}]

    async def replayed():
        return replay.pop() if replay else await receive()

    return replayed


def upload_problem(body: bytes, content_type: bytes) -> str | None:
    """Why Gradio must not see this multipart upload (None: it may). Gradio's parser writes every part
    with a file name to disk as it arrives, but keeps (and later deletes) only files in the "files"
    field with a file name it can store, and only from a body that ends with its closing boundary;
    anything else it would leave in its cache for good. Not multipart, or no boundary: Gradio refuses
    it before storing anything."""
    kind, params = _options(content_type)
    boundary = params.get("boundary", "").encode("latin-1")
    if kind != "multipart/form-data" or not boundary:
        return None
    pieces = body.split(b"--" + boundary)
    if len(pieces) < 3 or pieces[0] or not pieces[-1].startswith(b"--"):
        return "the upload is not a complete multipart body"
    parts = pieces[1:-1]
    if len(parts) > UPLOAD_FILES:
        return f"an upload holds one file at a time, not {len(parts)}"
    for part in parts:
        if not (part.startswith(b"\r\n") and part.endswith(b"\r\n")) or b"\r\n\r\n" not in part:
            return "the upload is not a well-formed multipart body"
        head = part[2:].split(b"\r\n\r\n", 1)[0]
        dispositions = [line.split(b":", 1)[1] for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-disposition:")]
        _, options = _options(dispositions[-1] if dispositions else b"")  # the last one, as Gradio reads it
        if options.get("name") != "files" or "filename" not in options:
            return 'an upload is a file in the "files" field'
        if not _storable(options["filename"], params.get("charset", "utf-8")):
            return "the file name needs a letter or a digit"
    return None


def _options(value: bytes) -> tuple[str, dict[str, str]]:
    """A header's value and its parameters, read as Gradio's multipart parser reads them
    (python_multipart's parse_options_header): `;` inside quotes kept, `key*=` ignored, quotes removed,
    a Windows path in `filename` cut to its last part; text as latin-1, as the bytes came."""
    text = value.decode("latin-1")
    if ";" not in text:
        return text.lower().strip(" \t"), {}
    kind, *segments = _segments(text)
    options = {}
    for segment in segments:
        key, _, val = segment.partition("=")
        if "*" in key:
            continue
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        if key == "filename" and (val[1:3] == ":\\" or val[:2] == "\\\\"):
            val = val.split("\\")[-1]
        options[key] = val
    return kind.lower(), options


def _segments(s: str) -> list[str]:
    """`s` split at each `;` outside double quotes, keys lower-cased (the standard library's
    email.message._parseparam, as python_multipart keeps it)."""
    s, plist, start = ";" + s, [], 0
    while s.find(";", start) == start:
        start += 1
        end = s.find(";", start)
        ind, diff = start, 0
        while end > 0:
            diff += s.count('"', ind, end) - s.count('\\"', ind, end)
            if diff % 2 == 0:
                break
            end, ind = ind, s.find(";", end + 1)
        if end < 0:
            end = len(s)
        i = s.find("=", start, end)
        f = s[start:end] if i == -1 else s[start:i].rstrip(" \t").lower() + "=" + s[i + 1:end].lstrip(" \t")
        plist.append(f.strip(" \t"))
        start = end
    return plist


def _storable(filename: str, charset: str) -> bool:
    """Gradio stores the file under this name rather than refusing it after it was written: it keeps
    the name's last part, drops the characters it forbids (separators, controls, shell characters;
    never a letter or a digit) and refuses what is left when it reads "..". An empty name is its own
    to choose; any other needs a letter or a digit."""
    raw = filename.encode("latin-1")
    try:
        name = raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        name = raw.decode("latin-1")
    return not name or any(c.isalnum() for c in name.rsplit("/", 1)[-1])


ONE_SHOT_RESULT = re.compile(r"/call/(?:v2/)?[^/]+/([0-9a-f]{32})/?$")  # GET /gradio_api/call/ask/<event id>


def _forget_queue_entries(blocks, event_id: str) -> None:
    """After a one-shot call's result was read (its session is named after its event): Gradio's queue
    keeps an empty id set (never dropped) and a message queue (2,000 of them) for that session."""
    queue = getattr(blocks, "_queue", None)
    if queue is None:
        return
    ids = queue.pending_event_ids_session.get(event_id)
    if ids is not None and not ids:
        queue.pending_event_ids_session.pop(event_id, None)
        messages = queue.pending_messages_per_session.get(event_id)
        if messages is not None and messages.empty():
            queue.pending_messages_per_session.pop(event_id, None)


async def _refuse(receive, send, status: int, message: str, declared: int | None) -> None:
    """Answer `status` with `message` (JSON: {"error": ..., "detail": ...}) without keeping the body:
    up to DRAIN_MOST of it is read and dropped first, so that the client, still sending, reads the answer."""
    drained, more = 0, receive is not None and (declared is None or 0 < declared <= DRAIN_MOST)
    while more and drained <= DRAIN_MOST:
        chunk = await receive()
        if chunk["type"] != "http.request":
            return
        drained += len(chunk.get("body", b""))
        more = chunk.get("more_body", False)
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _reworded(send, status: int, message: str):
    """`send`, with a `status` answer's text replaced by `message` (Gradio's upload refusal, in our words)."""
    hit = False

    async def wrapped(event):
        nonlocal hit
        if event["type"] == "http.response.start" and event["status"] == status:
            hit = True
            body = message.encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        elif not hit:
            await send(event)

    return wrapped


class Logins:
    """Usernames and passwords for Gradio's login, checked one attempt at a time per client: each
    failure in a row waits longer before it is answered (LOGIN_STEP, doubling, at most LOGIN_MOST);
    a success forgets the client's failures, and so do 15 quiet minutes."""

    def __init__(self, users: dict[str, str], step: float = LOGIN_STEP, most: float = LOGIN_MOST,
                 clients: int = 10_000, forget_after: float = 900.0):
        self.users, self.step, self.most, self.clients, self.forget_after = dict(users), step, most, clients, forget_after
        self.failures: OrderedDict[str, tuple[int, float, asyncio.Lock]] = OrderedDict()  # client -> (count, last, lock)

    def delay(self, failures: int) -> float:
        return 0.0 if failures <= 0 else min(self.step * 2 ** (failures - 1), self.most)

    def valid(self, username: str, password: str) -> bool:
        expected = self.users.get(username)
        ok = hmac.compare_digest(password.encode(), (expected or "").encode())  # same time for a known name or not
        return expected is not None and ok

    async def check(self, username: str, password: str) -> bool:
        client = client_address.get()
        count, last, lock = self.failures.get(client, (0, 0.0, None))
        if lock is None:
            lock = asyncio.Lock()
            self.failures[client] = (0, 0.0, lock)
        async with lock:  # a client's attempts are answered one after the other
            count, last, _ = self.failures.get(client, (0, 0.0, lock))
            if time.monotonic() - last > self.forget_after:
                count = 0
            if self.valid(username, password):
                self.failures.pop(client, None)
                return True
            count += 1
            self.failures[client] = (count, time.monotonic(), lock)
            self.failures.move_to_end(client)
            while len(self.failures) > self.clients:
                self.failures.popitem(last=False)
            await asyncio.sleep(self.delay(count))
            return False


def login_check(users: dict[str, str], **options):
    """Gradio's `auth` callable for `users` (name -> password), slowing repeated failures per client."""
    logins = Logins(users, **options)

    async def check(username: str, password: str) -> bool:  # a coroutine function: Gradio awaits it
        return await logins.check(username, password)

    check.logins = logins
    return check
