"""The edge: one place that bounds and normalises what comes in, whichever way it comes (Python, the
CLI, the chat, its HTTP API). Every refusal is a QAError with a one-line message, raised before any
work is done, so an oversized or ill-typed request costs nothing."""
from __future__ import annotations

import re
import unicodedata

from .errors import ArticleRejected, InvalidInput, InvalidQuestion

MAX_HISTORY_ITEMS = 20   # earlier questions of a conversation; only the last one is used, the rest is context
MAX_K = 50               # passages read per question
MAX_FILENAME_CHARS = 255

_SPACES = re.compile(r"\s+")


def _invisible(c: str) -> bool:
    """A character a person cannot see or type into a question: a control, or a zero-width or other
    format character (ZWSP, ZWJ, the BOM, bidi marks). Tabs and line breaks are white space."""
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf")


def _text(value, what: str, max_chars: int, error=InvalidQuestion) -> str:
    if not isinstance(value, str):
        raise error(f"{what} must be text, not {type(value).__name__}")
    if len(value) > 4 * max_chars:  # far over the limit: refuse before scanning it
        raise error(f"{what} is {len(value):,} characters long; the limit is {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes that were not UTF-8 (the shell), or a broken client
        raise error(f"{what} is not valid text (it holds bytes that are not UTF-8)") from None
    visible = "".join(c for c in unicodedata.normalize("NFC", value) if not _invisible(c))
    cleaned = _SPACES.sub(" ", visible).strip()
    if len(cleaned) > max_chars:
        raise error(f"{what} is {len(cleaned):,} characters long; the limit is {max_chars}")
    return cleaned


def question(value, max_chars: int) -> str:
    """The question as it will be read: NFC, invisible characters removed, white space collapsed.
    Refused when nothing is left, or when no letter or digit is (any script's: punctuation, symbols
    and emoji alone are not a question the articles can answer)."""
    cleaned = _text(value, "the question", max_chars)
    if not cleaned:
        raise InvalidQuestion("the question is empty")
    if not any(c.isalnum() for c in cleaned):  # "?", "!!!???", emoji: nothing to read or look up
        raise InvalidQuestion("the question has no words (no letter or digit): ask it in words")
    return cleaned


def history(value, max_chars: int) -> tuple[str, ...]:
    """The conversation's earlier questions: a list of at most MAX_HISTORY_ITEMS texts, each within
    the question limit; empty ones are dropped."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise InvalidInput(f"history must be a list of earlier questions, not {type(value).__name__}")
    if len(value) > MAX_HISTORY_ITEMS:
        raise InvalidInput(f"history holds {len(value):,} questions; the limit is {MAX_HISTORY_ITEMS}")
    items = (_text(item, "a question in the history", max_chars, InvalidInput) for item in value)
    return tuple(item for item in items if item)


def top_k(value) -> int | None:
    """How many passages to read: None (the setting) or a whole number from 1 to MAX_K."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"k must be a whole number, not {type(value).__name__}")
    if not 1 <= value <= MAX_K:
        raise InvalidInput(f"k is {value}; it must be from 1 to {MAX_K}")
    return value


def upload(filename, data) -> tuple[str, bytes]:
    """An uploaded article: a file name (text) and its bytes."""
    if not isinstance(filename, str) or not filename.strip():
        raise ArticleRejected(f"an article's file name must be non-empty text, not {type(filename).__name__}")
    if len(filename) > 4 * MAX_FILENAME_CHARS:
        raise ArticleRejected(f"the file name is {len(filename):,} characters long; the limit is {MAX_FILENAME_CHARS}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArticleRejected(f"{filename}: an article's content must be bytes, not {type(data).__name__}")
    return filename, bytes(data)


def url(value, max_chars: int) -> str:
    """A link to fetch: text within `max_chars`, without white space or control characters inside
    (its scheme and address are checked by qa.sources.web when it is fetched)."""
    from .sources.web import FetchError

    if not isinstance(value, str):
        raise FetchError(f"a link must be text, not {type(value).__name__}")
    value = value.strip()
    if len(value) > max_chars:
        raise FetchError(f"the link is {len(value):,} characters long; the limit is {max_chars:,}")
    if not value:
        raise FetchError("the link is empty")
    if any(c.isspace() or _invisible(c) for c in value):
        raise FetchError("the link holds spaces or control characters")
    return value
