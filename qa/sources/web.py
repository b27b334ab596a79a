"""A URL -> a web page saved in the articles folder (the folder stays the one source of truth).

The page is fetched with a timeout, a size limit and a content-type check, its main text is checked
(trafilatura, as the folder loader reads it) before anything is written, and it is saved with the
browsers' own "saved from url=" comment on top, so the file itself remembers its URL. Its file name is
derived from the URL, so fetching the same URL again replaces that file instead of adding a twin.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

from ..config import Settings, format_size
from ..errors import ArticleRejected, StorageError
from .files import SAVED_FROM, is_article_path, parse_article

USER_AGENT = "article-qa/0.1 (+https://github.com/; fetches pages a user asked for)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
MIN_TEXT_CHARS = 200   # less main text than this is a front page, a login wall or an error page, not an article


class FetchError(ArticleRejected):
    """A URL whose page could not be made into an article; the message says why."""


class URLUnreachable(FetchError):
    """No answer from the server: bad host, refused connection, timeout, TLS failure."""


class HTTPStatusError(FetchError):
    """The server answered with an error status (404, 500...)."""


class NotHTML(FetchError):
    """The URL is not a web page (a PDF, an image, JSON...)."""


class TooLarge(FetchError):
    """The page is larger than the fetch size limit."""


class NoMainText(FetchError):
    """The page has no article text to index (a front page, a login wall, a script-only page)."""


@dataclass(frozen=True)
class Fetched:
    url: str            # as asked for, without its #fragment
    final_url: str      # after redirects
    content_type: str
    data: bytes


def normalize_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"{url!r} is not an http(s) URL")
    return urldefrag(url)[0]


def fetch(url: str, timeout: float = 15.0, max_bytes: int = 5 * 1024 * 1024,
          accept: tuple[str, ...] = HTML_TYPES, what: str = "a web page") -> Fetched:
    """GET `url` within `timeout` seconds (to connect, and between bytes; the whole download within
    four times that) and `max_bytes`; only the content types in `accept` (all when empty). Raises a
    FetchError subclass that says what went wrong."""
    import httpx  # only needed when fetching

    deadline = time.monotonic() + 4 * timeout  # a server trickling bytes cannot hold us forever

    url = normalize_url(url)
    headers = {"User-Agent": USER_AGENT, "Accept": ", ".join(accept) + ", */*;q=0.1"}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5, headers=headers) as client:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise HTTPStatusError(f"{url}: the server answered {response.status_code} "
                                          f"{response.reason_phrase or ''}".rstrip())
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if accept and content_type not in accept:
                    raise NotHTML(f"{url}: not {what} (content type {content_type or 'missing'})")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise TooLarge(f"{url}: {format_size(int(declared))}, larger than the limit of {format_size(max_bytes)}")
                body = bytearray()
                for piece in response.iter_bytes():
                    body += piece
                    if len(body) > max_bytes:  # a server may lie about, or omit, the length
                        raise TooLarge(f"{url}: larger than the limit of {format_size(max_bytes)}")
                    if time.monotonic() > deadline:
                        raise URLUnreachable(f"{url}: still downloading after {4 * timeout:g} s")
                return Fetched(url, str(response.url), content_type, bytes(body))
    except httpx.TooManyRedirects:
        raise URLUnreachable(f"{url}: too many redirects") from None
    except httpx.TimeoutException:
        raise URLUnreachable(f"{url}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as err:  # DNS, refused connection, TLS, broken transfer
        raise URLUnreachable(f"{url}: cannot be reached ({type(err).__name__}: {err})") from None


def file_name(url: str) -> str:
    """A stable file name for a URL: readable host and path, plus a hash that makes it unique."""
    parts = urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9]+", "-", f"{parts.netloc}{parts.path}".removeprefix("www.")).strip("-")[:70]
    return f"{readable or 'page'}-{hashlib.sha256(url.encode()).hexdigest()[:10]}.html"


def with_url(data: bytes, url: str) -> bytes:
    """The page with the browsers' "saved from url=(length)URL" comment (after a doctype, if any);
    an older such comment is replaced."""
    data = SAVED_FROM.sub("", data[:4096].decode("latin-1"), count=1).encode("latin-1") + data[4096:]
    comment = f"<!-- saved from url=({len(url):04d}){url} -->\n".encode("ascii", "backslashreplace")
    doctype = re.match(rb"\s*(?:\xef\xbb\xbf)?\s*<!doctype[^>]*>\s*", data, re.IGNORECASE)
    cut = doctype.end() if doctype else 0
    return data[:cut] + comment + data[cut:]


def target_for(folder: Path, url: str, known: dict[str, dict] | None = None, subfolder: str = "") -> Path:
    """Where the page of `url` goes: the file an article from that URL already has (found in the
    index's manifest, or by its URL-derived name), else the URL-derived name under `subfolder`."""
    for article_id, entry in (known or {}).items():
        if entry.get("url") == url and (folder / article_id).is_file():
            return folder / article_id
    for place in (folder / subfolder, folder):
        if (place / file_name(url)).is_file():
            return place / file_name(url)
    return folder / subfolder / file_name(url)


@dataclass(frozen=True)
class Page:
    url: str       # where it was fetched from, after redirects: the article's source
    data: bytes    # the page as it will be saved, "saved from url=" comment included
    title: str


def download(url: str, settings: Settings | None = None) -> Page:
    """Fetch `url` and check that its page has article text; writes nothing."""
    s = settings or Settings.from_env()
    got = fetch(url, s.fetch_timeout, s.fetch_max_bytes)
    data = with_url(got.data, got.url)
    try:
        article = parse_article(data, ".html", file_name(got.url), got.url)
    except ValueError as err:
        raise NoMainText(f"{got.url}: {err}") from None
    if len(article.text) < MIN_TEXT_CHARS:
        raise NoMainText(f"{got.url}: no article text in the page (only {len(article.text)} characters of main text)")
    return Page(got.url, data, article.title)


def save(folder: str | Path, page: Page, known: dict[str, dict] | None = None, subfolder: str = "") -> tuple[Path, bytes | None]:
    """Write `page` into the articles folder: over the earlier copy of the same URL if there is one.
    Returns (path, the earlier copy's bytes or None), so a caller can put things back."""
    target = target_for(Path(folder), page.url, known, subfolder)
    before = target.read_bytes() if target.is_file() else None
    write_atomically(target, page.data)
    return target, before


def save_page(folder: str | Path, url: str, settings: Settings | None = None,
              known: dict[str, dict] | None = None, subfolder: str = "") -> tuple[Path, bool]:
    """download() then save(); returns (path, True when an earlier copy of the same URL was replaced)."""
    path, before = save(folder, download(url, settings), known, subfolder)
    return path, before is not None


def write_atomically(target: Path, data: bytes) -> None:
    """Write beside the target under a hidden name (the loader and the watcher skip it), then rename:
    the folder never holds half a page."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {target}: {err.strerror or err}",
                           public="the page could not be stored on the server; nothing was changed") from None


__all__ = [
    "FetchError",
    "Fetched",
    "HTTPStatusError",
    "NoMainText",
    "NotHTML",
    "Page",
    "TooLarge",
    "URLUnreachable",
    "download",
    "fetch",
    "file_name",
    "is_article_path",
    "normalize_url",
    "save",
    "save_page",
    "target_for",
    "with_url",
]
