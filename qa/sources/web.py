"""A URL -> a web page saved in the articles folder (the folder stays the one source of truth).

The page is fetched with a timeout, a size limit and a content-type check, its main text is checked
(trafilatura, as the folder loader reads it) before anything is written, and it is saved with the
browsers' own "saved from url=" comment on top, so the file itself remembers its URL. Its file name is
derived from the URL, so fetching the same URL again replaces that file instead of adding a twin.

Safe to point at any link a user pastes:
- only http(s) links within Settings.max_url_chars, without spaces or control characters;
- a user:password@ part is dropped before anything else: never sent, stored, named in a file or shown
  (a page behind HTTP authentication cannot be added by link);
- loopback, private, link-local, multicast, reserved and unspecified addresses (IPv4 and IPv6, an IPv4
  address inside an IPv6 one included) are refused unless Settings.fetch_private: every host name is
  resolved when a connection is opened, every address it resolves to is checked, and the connection
  goes to the address checked (a name cannot resolve one way for the check and another for the
  connection). Redirects (at most 5) are followed here, each hop checked the same way, and the refusal
  says the same whatever is listening there, so the link box cannot scan ports;
- the page's source is the URL it was read from, after redirects.
Proxies from the environment (HTTP_PROXY...) are not used: the addresses checked are those connected to.

Safe against a hostile server too (security audit, issue 40):
- the whole fetch, redirects included, ends within four times the timeout: every connect, TLS
  handshake, read and write is given no more than the time left, so a server trickling its headers
  or its body a byte at a time is cut off at that deadline (name resolution is the system's);
- a compressed page (gzip, deflate, br when the brotli package can bound its output) is decoded
  here, a bounded piece at a time, and refused as soon as it grows past the size limit: a few
  kilobytes that would expand to gigabytes cost no more memory than the limit. Other encodings are
  not asked for, and refused if sent.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re
import socket
import time
import unicodedata
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

from ..config import Settings, format_size
from ..errors import ArticleRejected, ArticlesNotFound, StorageError
from .files import SAVED_FROM, ArticleTooLarge, check_article, is_article_path

USER_AGENT = "article-qa/0.1 (+https://github.com/; fetches pages a user asked for)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
MIN_TEXT_CHARS = 200   # less main text than this is a front page, a login wall or an error page, not an article
MAX_REDIRECTS = 5
MAX_URL_CHARS = 2000   # Settings.max_url_chars
REFUSED = "refused: the address is private or local (set QA_FETCH_PRIVATE=1 to allow)"


class FetchError(ArticleRejected):
    """A URL whose page could not be made into an article; the message says why."""


class URLUnreachable(FetchError):
    """No answer from the server: bad host, refused connection, timeout, TLS failure."""


class PrivateAddress(FetchError):
    """The link leads to a loopback, private, link-local or otherwise non-public address (itself or
    after a redirect), and Settings.fetch_private is off. Nothing was sent there."""


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
    url: str            # as asked for, normalized: no #fragment, no user:password@
    final_url: str      # the URL the data was read from, after redirects (normalized the same way)
    content_type: str
    data: bytes


_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_NEXT_HOP = object()  # what _read_response returns for a redirect


def strip_credentials(url: str) -> str:
    """`url` without its user:password@ part, if it has one (any text; nothing else changes)."""
    return _CREDENTIALS.sub(r"\1", url, count=1)


def _shown(url: str, limit: int = 120) -> str:
    """A link as an error message may name it: without credentials, cut short, one line."""
    url = strip_credentials(url)
    url = url if len(url) <= limit else url[:limit] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in url)


def _unsafe_char(c: str) -> bool:
    return c.isspace() or unicodedata.category(c) in ("Cc", "Cf")


def normalize_url(url: str, max_chars: int = MAX_URL_CHARS) -> str:
    """The link as it is fetched, stored and shown: stripped of surrounding white space, its
    #fragment and its user:password@ part (dropped, not sent: credentials must not end up in file
    names, in the articles folder or in answers). Refused with a one-line FetchError: longer than
    `max_chars`, white space or control characters inside, not http(s), no host, a bad port."""
    url = url.strip() if isinstance(url, str) else ""
    if len(url) > max_chars:
        raise FetchError(f"the link is {len(url):,} characters long; the limit is {max_chars:,}")
    if any(_unsafe_char(c) for c in url):
        raise FetchError(f"{_shown(url)!r} is not a link: it holds spaces or control characters")
    try:
        url = urldefrag(strip_credentials(url))[0]
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as err:
        raise FetchError(f"{_shown(url)!r} is not a valid link ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{_shown(url)!r} is not an http(s) URL")
    # these would be percent-encoded when sent anyway; encoded here, the link cannot close the
    # "saved from" comment it is stored in
    return url.replace('"', "%22").replace("<", "%3C").replace(">", "%3E")


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bool:
    """Whether a fetch may connect to `ip`: False for loopback, private, link-local, multicast,
    reserved, unspecified and other non-global addresses, IPv4 and IPv6 (site-local too). An IPv6
    address that carries an IPv4 one (IPv4-mapped, 6to4, NAT64, Teredo) is refused when that one is."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:  # what a DNS64 resolver gives for an IPv4-only host: judged by that host
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        inside = [ip.sixtofour, *(ip.teredo or ())]
        if any(v4 is not None and not is_public_address(v4) for v4 in inside):
            return False
        if ip.is_site_local:
            return False
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


class _Refused(Exception):
    """Raised inside the connection pool (not an httpcore error, so it passes through unmapped)."""


def checked_addresses(host: str, port: int, allow_private: bool = False) -> list[str]:
    """The addresses `host` resolves to (socket.getaddrinfo), in order, when every one of them may
    be connected to; raises _Refused when one may not (a name that also resolves to a private
    address is refused: which one a connection gets is not ours to choose)."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private and not all(is_public_address(ipaddress.ip_address(a)) for a in addresses):
        raise _Refused(host)
    return addresses


@functools.cache
def _transport_class():
    """httpx's own transport over a connection pool whose every new connection goes to an address
    checked by checked_addresses() (defined on first use: httpx is imported only to fetch)."""
    import httpcore
    import httpx

    def time_left(deadline: float, timeout: float | None, error: type[Exception]) -> float:
        """The timeout for one network operation: its own, but never past the fetch's deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise error("past the deadline of the whole fetch")
        return left if timeout is None else min(timeout, left)

    class DeadlineStream(httpcore.NetworkStream):
        """A connection whose every operation ends by the deadline (a TLS handshake, a read and a
        write are each bounded as a whole by their timeout), however slowly the server answers."""

        def __init__(self, stream, deadline: float):
            self.stream, self.deadline = stream, deadline

        def read(self, max_bytes, timeout=None):
            return self.stream.read(max_bytes, time_left(self.deadline, timeout, httpcore.ReadTimeout))

        def write(self, buffer, timeout=None):
            return self.stream.write(buffer, time_left(self.deadline, timeout, httpcore.WriteTimeout))

        def close(self):
            self.stream.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            timeout = time_left(self.deadline, timeout, httpcore.ConnectTimeout)
            return DeadlineStream(self.stream.start_tls(ssl_context, server_hostname, timeout), self.deadline)

        def get_extra_info(self, info):
            return self.stream.get_extra_info(info)

    class CheckedBackend(httpcore.SyncBackend):
        def __init__(self, allow_private: bool, deadline: float):
            self.allow_private, self.deadline = allow_private, deadline

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            try:
                addresses = checked_addresses(host, port, self.allow_private)
            except OSError as err:  # the name does not resolve
                raise httpcore.ConnectError(str(err)) from None
            failure = httpcore.ConnectError(f"{host} has no address")
            for address in addresses:  # an IP address: connecting resolves nothing more
                try:
                    left = time_left(self.deadline, timeout, httpcore.ConnectTimeout)
                    stream = super().connect_tcp(address, port, left, local_address, socket_options)
                    return DeadlineStream(stream, self.deadline)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                    failure = err
            raise failure

    class CheckedTransport(httpx.HTTPTransport):
        def __init__(self, allow_private: bool, deadline: float):
            super().__init__()
            # the pool HTTPTransport.handle_request sends through; TLS still checks the host's name
            self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                                 network_backend=CheckedBackend(allow_private, deadline))

    return CheckedTransport


def fetch(url: str, timeout: float = 15.0, max_bytes: int = 5 * 1024 * 1024,
          accept: tuple[str, ...] = HTML_TYPES, what: str = "a web page", *,
          allow_private: bool | None = None, max_url_chars: int = MAX_URL_CHARS) -> Fetched:
    """GET `url` within `timeout` seconds (to connect, and between bytes; the whole fetch, headers,
    redirects and body, within four times that) and `max_bytes` (decoded: a compressed page is
    refused once it expands past it); only the content types in `accept` (all when empty). Follows
    at most 5 redirects, each hop's address checked: a private or local one is refused unless
    `allow_private` (None: QA_FETCH_PRIVATE, off by default). Raises a FetchError subclass that says
    what went wrong, in one line."""
    import httpx  # only needed when fetching

    if allow_private is None:
        allow_private = Settings.from_env().fetch_private
    deadline = time.monotonic() + 4 * timeout  # a server trickling bytes cannot hold us forever

    url = current = normalize_url(url, max_url_chars)
    headers = {"User-Agent": USER_AGENT, "Accept": ", ".join(accept) + ", */*;q=0.1",
               "Accept-Encoding": ", ".join(e for e in ("gzip", "deflate", "br") if e in _decoders())}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers,
                          transport=_transport_class()(allow_private, deadline)) as client:
            for hop in range(MAX_REDIRECTS + 1):
                try:
                    with client.stream("GET", current) as response:
                        got = _read_response(url, current, response, max_bytes, accept, what, timeout, deadline)
                        if got is not _NEXT_HOP:
                            return got
                        location = response.headers["location"]
                except _Refused:
                    where = url if current == url else f"{url}: redirected to {current}"
                    raise PrivateAddress(f"{where}: {REFUSED}") from None
                if hop == MAX_REDIRECTS:
                    raise URLUnreachable(f"{url}: too many redirects (more than {MAX_REDIRECTS})")
                try:
                    current = normalize_url(urljoin(current, location), max_url_chars)
                except FetchError as err:
                    raise FetchError(f"{url}: redirected to a link that is refused: {err}") from None
    except FetchError:
        raise
    except httpx.TimeoutException:
        if time.monotonic() >= deadline:
            raise URLUnreachable(f"{url}: still downloading after {4 * timeout:g} s") from None
        raise URLUnreachable(f"{url}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as err:  # DNS, refused connection, TLS, broken transfer
        raise URLUnreachable(f"{url}: cannot be reached ({type(err).__name__}: {_shown(str(err), 200)})") from None
    except (httpx.InvalidURL, ValueError, UnicodeError) as err:  # a link httpx cannot send (too long, a bad host)
        why = f"{type(err).__name__}: {_shown(str(err), 200)}"
        raise FetchError(f"{_shown(current)}: not a valid link ({why})") from None
    raise AssertionError("unreachable")  # the loop returns or raises


def _read_response(url: str, current: str, response, max_bytes: int, accept: tuple[str, ...], what: str,
                   timeout: float, deadline: float):
    """The page of one response, or _NEXT_HOP when it is a redirect to follow."""
    if response.is_redirect:
        return _NEXT_HOP
    if response.status_code >= 400:
        raise HTTPStatusError(f"{url}: the server answered {response.status_code} "
                              f"{response.reason_phrase or ''}".rstrip())
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if accept and content_type not in accept:
        raise NotHTML(f"{url}: not {what} (content type {content_type or 'missing'})")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"{url}: {format_size(int(declared))}, larger than the limit of {format_size(max_bytes)}")
    encodings = [e.strip().lower() for e in response.headers.get("content-encoding", "").split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    known = _decoders()
    unknown = [e for e in encodings if e not in known]
    if unknown:
        raise FetchError(f"{url}: the server sent it encoded as {_shown(unknown[0], 40)!r}, which cannot be read")

    def received():
        size = 0
        for piece in response.iter_raw():
            size += len(piece)
            if size > max_bytes:  # compressed or not, over the limit anyway
                raise TooLarge(f"{url}: larger than the limit of {format_size(max_bytes)}")
            yield piece

    pieces = received()
    for name in reversed(encodings):  # the last encoding applied is the first undone
        pieces = _decoded(pieces, known[name]())
    body = bytearray()
    try:
        for piece in pieces:
            body += piece
            if len(body) > max_bytes:  # a server may lie about, or omit, the length; a small
                # compressed body may expand a thousandfold or more: decoded a piece at a time
                raise TooLarge(f"{url}: larger than the limit of {format_size(max_bytes)}")
            if time.monotonic() > deadline:
                raise URLUnreachable(f"{url}: still downloading after {4 * timeout:g} s")
    except _Corrupt as err:
        raise FetchError(f"{url}: the page's compressed data is broken ({_shown(str(err), 120)})") from None
    return Fetched(url, current, content_type, bytes(body))


_PIECE = 64 * 1024   # the most a decoder gives at once


def _held_back(step, more) -> Iterator[bytes]:
    """The output a bounded decoder still holds back after its last call's limit, piece by piece."""
    while more():
        out = step(b"")
        if not out:
            break
        yield out


class _Corrupt(Exception):
    """Compressed data that cannot be decoded."""


def _decoded(pieces, decoder):
    """`pieces` (bytes) through `decoder`: a lazy stream of pieces of at most _PIECE bytes each."""
    for piece in pieces:
        yield from decoder.feed(piece)
    yield from decoder.end()


class _Zlib:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), never more than _PIECE bytes
    of output from one call, however much a piece of input expands."""

    def __init__(self, wbits: int, raw_fallback: bool = False):
        self.inflate = zlib.decompressobj(wbits)
        self.raw_fallback = raw_fallback   # deflate: a first piece that is not zlib-wrapped is raw deflate

    def feed(self, data: bytes):
        while data and not self.inflate.eof:
            out = self._inflate(data)
            data = self.inflate.unconsumed_tail
            if out:
                yield out
        yield from _held_back(self._inflate, lambda: not self.inflate.eof)

    def _inflate(self, data: bytes) -> bytes:
        try:
            try:
                return self.inflate.decompress(data, _PIECE)
            except zlib.error:
                if not self.raw_fallback:
                    raise
                self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.inflate.decompress(data, _PIECE)
            finally:
                self.raw_fallback = False
        except zlib.error as err:
            raise _Corrupt(str(err)) from None

    def end(self):
        try:
            out = self.inflate.flush()  # what is left after all input was taken in: a few bytes
        except zlib.error as err:
            raise _Corrupt(str(err)) from None
        if out:
            yield out


class _Brotli:
    """br, with the output of each call bounded (brotli >= 1.2: output_buffer_limit)."""

    def __init__(self):
        import brotli

        self.error = brotli.error
        self.brotli = brotli.Decompressor()

    def feed(self, data: bytes):
        out = self._process(data)
        if out:
            yield out
        yield from _held_back(self._process, lambda: not self.brotli.can_accept_more_data())  # only b"" may go in

    def _process(self, data: bytes) -> bytes:
        try:
            return self.brotli.process(data, output_buffer_limit=_PIECE)
        except self.error as err:
            raise _Corrupt(str(err)) from None

    def end(self):
        return iter(())


@functools.cache
def _decoders() -> dict:
    """Content-Encoding -> a decoder with bounded output: what fetch() asks for, and all it reads;
    br only where the installed brotli package can bound its output."""
    found = {"gzip": lambda: _Zlib(16 + zlib.MAX_WBITS), "x-gzip": lambda: _Zlib(16 + zlib.MAX_WBITS),
             "deflate": lambda: _Zlib(zlib.MAX_WBITS, raw_fallback=True)}
    try:
        import brotli
    except ImportError:
        return found
    if hasattr(brotli.Decompressor(), "can_accept_more_data"):
        found["br"] = _Brotli
    return found


def file_name(url: str) -> str:
    """A stable file name for a URL: readable host and path, plus a hash that makes it unique (never
    a user:password@ part)."""
    url = strip_credentials(url)
    parts = urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9]+", "-", f"{parts.netloc}{parts.path}".removeprefix("www.")).strip("-")[:70]
    return f"{readable or 'page'}-{hashlib.sha256(url.encode()).hexdigest()[:10]}.html"


def with_url(data: bytes, url: str) -> bytes:
    """The page with the browsers' "saved from url=(length)URL" comment (after a doctype, if any);
    an older such comment is replaced. A user:password@ part of the URL is not written."""
    url = strip_credentials(url)
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
    """Fetch `url` and check that its page has article text; writes nothing. The page's URL (its
    source, its file name, its "saved from" comment) is the one it was read from, after redirects."""
    s = settings or Settings.from_env()
    got = fetch(url, s.fetch_timeout, s.fetch_max_bytes, allow_private=s.fetch_private, max_url_chars=s.max_url_chars)
    source = got.final_url
    data = with_url(got.data, source)
    try:  # what the indexer would skip is refused before it is written
        article = check_article(data, file_name(source), source, s.max_article_bytes)
    except ArticleTooLarge as err:
        raise TooLarge(f"{source}: {err}") from None
    except ValueError as err:
        raise NoMainText(f"{source}: {err}") from None
    if len(article.text) < MIN_TEXT_CHARS:
        raise NoMainText(f"{source}: no article text in the page (only {len(article.text)} characters of main text)")
    return Page(source, data, article.title)


def save(folder: str | Path, page: Page, known: dict[str, dict] | None = None, subfolder: str = "") -> tuple[Path, bytes | None]:
    """Write `page` into the articles folder: over the earlier copy of the same URL if there is one.
    Returns (path, the earlier copy's bytes or None), so a caller can put things back."""
    if not Path(folder).is_dir():  # deleted meanwhile: never start a new, smaller folder
        raise ArticlesNotFound(f"articles folder not found: {folder}; nothing was changed",
                               public="the server's articles folder is missing; nothing was changed")
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
    the folder never holds half a page. Only a missing uploads subfolder is created, never the
    articles folder itself."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        target.parent.mkdir(exist_ok=True)
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
    "PrivateAddress",
    "TooLarge",
    "URLUnreachable",
    "download",
    "fetch",
    "file_name",
    "is_article_path",
    "is_public_address",
    "normalize_url",
    "save",
    "save_page",
    "strip_credentials",
    "target_for",
    "with_url",
]
