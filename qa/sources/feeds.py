"""RSS and Atom feeds (feedparser): subscribe, list, poll. New items' pages are saved in the articles
folder like any page added by URL (web.py); the pipeline indexes them.

What has been seen is remembered in a JSON file (Settings.feeds_path, beside the articles folder):
an item is skipped when its GUID or its link was seen before, or when its content hash was (the same
item republished under a new GUID). A feed that fails (unreachable, not XML) is reported and the others
go on; an item whose page fails is retried at the next poll.

Feeds and their items' pages are fetched as links are (web.py): the same URL checks, no private
addresses, no user:password@ part (dropped: never sent, and never written into the feeds file).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import Settings
from ..errors import QAError, StorageError
from .background import BackgroundLoop
from .web import FetchError, download, fetch, normalize_url, save, strip_credentials

log = logging.getLogger(__name__)

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml",
              "application/feed+xml", "text/rss+xml", "text/atom+xml")
STATE_VERSION = 1
MAX_SEEN = 5000   # remembered items per feed
_state_lock = threading.Lock()  # one poll or edit of a feeds file at a time within the process


class FeedError(QAError):
    """A feed that cannot be read: not RSS/Atom XML, or not reachable."""


@dataclass
class Feed:
    url: str
    title: str = ""
    added: str = ""
    last_poll: str | None = None
    last_error: str | None = None
    seen: list[str] = field(default_factory=list)      # GUIDs and links of the items taken (or skipped as known)
    hashes: list[str] = field(default_factory=list)    # content hashes of those items
    articles: int = 0                                   # pages saved from this feed


@dataclass(frozen=True)
class PollReport:
    saved: list[str] = field(default_factory=list)     # article files written (paths relative to the folder)
    skipped: int = 0                                    # items already seen
    errors: list[str] = field(default_factory=list)    # one line per feed or item that failed

    def summary(self) -> str:
        text = f"{len(self.saved)} new article(s), {self.skipped} item(s) already seen"
        return text + (f"; {len(self.errors)} problem(s): " + "; ".join(self.errors) if self.errors else "")


# -- the state file --------------------------------------------------------------------------------
def load_state(path: str | Path) -> dict[str, Feed]:
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {f["url"]: Feed(**f) for f in raw.get("feeds", [])}
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise FeedError(f"the feeds file {path} is unreadable ({err}); fix or delete it") from None


def save_state(path: str | Path, feeds: dict[str, Feed]) -> None:
    """Written to a temporary file and renamed: a crash never leaves half a feeds file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"version": STATE_VERSION, "feeds": [asdict(f) for f in feeds.values()]},
                                  indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write the feeds file {path}: {err.strerror or err}") from None


# -- reading a feed --------------------------------------------------------------------------------
def read_feed(url: str, settings: Settings):
    """Fetch and parse a feed; FeedError if it is not RSS/Atom."""
    import feedparser

    try:
        got = fetch(url, settings.fetch_timeout, settings.fetch_max_bytes, accept=(), what="a feed",
                    allow_private=settings.fetch_private, max_url_chars=settings.max_url_chars)
    except FetchError as err:
        raise FeedError(f"feed {err}") from None
    parsed = feedparser.parse(got.data, response_headers={"content-location": got.final_url})
    looks_like_xml = got.data.lstrip()[:1] == b"<" and got.content_type not in ("text/html", "application/xhtml+xml")
    if not parsed.version or not looks_like_xml:
        why = parsed.get("bozo_exception") or f"content type {got.content_type or 'missing'}"
        raise FeedError(f"{url}: not an RSS or Atom feed ({why})")
    return parsed


def item_keys(entry) -> tuple[list[str], str]:
    """The identities of a feed item (its GUID and link, without a user:password@ part: they are
    stored in the feeds file) and a hash of its content."""
    keys = [strip_credentials(str(k)) for k in (entry.get("id"), entry.get("link")) if k]
    body = " ".join(str(entry.get(k) or "") for k in ("title", "summary"))
    for content in entry.get("content") or []:
        body += " " + str(content.get("value") or "")
    digest = hashlib.sha256(" ".join(body.lower().split()).encode()).hexdigest()
    return keys, digest


# -- the commands ----------------------------------------------------------------------------------
def add_feed(url: str, settings: Settings) -> Feed:
    """Subscribe to a feed after checking that it is one. Adding it again changes nothing."""
    url = normalize_url(url, settings.max_url_chars)
    parsed = read_feed(url, settings)
    with _state_lock:
        feeds = load_state(settings.feeds_path)
        feed = feeds.get(url) or Feed(url=url, added=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        feed.title = parsed.feed.get("title", "") or feed.title
        feeds[url] = feed
        save_state(settings.feeds_path, feeds)
    return feed


def remove_feed(url: str, settings: Settings) -> None:
    with _state_lock:
        feeds = load_state(settings.feeds_path)
        if feeds.pop(url, None) is None and feeds.pop(strip_credentials(url), None) is None:
            raise FeedError(f"not subscribed to {strip_credentials(url)}")
        save_state(settings.feeds_path, feeds)


def list_feeds(settings: Settings) -> list[Feed]:
    return list(load_state(settings.feeds_path).values())


def poll(settings: Settings, known: dict[str, dict] | None = None, only: str | None = None) -> PollReport:
    """Fetch every feed (or `only` one) and save the pages of its new items into the articles folder.
    Never raises for a bad feed or item: they are in the report (and in the feed's last_error)."""
    folder = Path(settings.articles)
    subfolder = getattr(settings, "uploads", "") or ""
    saved, skipped, errors = [], 0, []
    with _state_lock:
        feeds = load_state(settings.feeds_path)
        for feed in feeds.values():
            if only and feed.url != only:
                continue
            feed.last_poll = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            try:
                parsed = read_feed(feed.url, settings)
            except (FeedError, QAError) as err:
                feed.last_error = str(err)
                errors.append(str(err))
                log.warning("%s", err)
                continue
            feed.title = parsed.feed.get("title", "") or feed.title
            feed.last_error = None
            seen, hashes = dict.fromkeys(feed.seen), dict.fromkeys(feed.hashes)  # ordered sets, oldest first
            for entry in parsed.entries:
                keys, digest = item_keys(entry)
                if any(k in seen for k in keys) or digest in hashes:
                    skipped += 1
                    continue
                link = entry.get("link")
                if not link:
                    errors.append(f"{feed.url}: an item without a link ({entry.get('title', 'untitled')!r})")
                    seen.update(dict.fromkeys(keys))
                    hashes[digest] = None
                    continue
                try:
                    link = normalize_url(link, settings.max_url_chars)
                except FetchError as err:  # a link that will never do: not retried
                    errors.append(f"{feed.url}: an item with a link that is refused ({err})")
                    seen.update(dict.fromkeys(keys))
                    hashes[digest] = None
                    continue
                try:
                    path, _ = save(folder, download(link, settings), known, subfolder)
                except QAError as err:  # retried at the next poll: a page may be up later
                    errors.append(f"item {link}: {err}")
                    log.warning("feed %s: %s", feed.url, err)
                    continue
                saved.append(path.relative_to(folder).as_posix())
                feed.articles += 1
                seen.update(dict.fromkeys(keys))
                hashes[digest] = None
            # the newest MAX_SEEN are kept: enough for any feed's window, and the file stays small
            feed.seen, feed.hashes = list(seen)[-MAX_SEEN:], list(hashes)[-MAX_SEEN:]
        save_state(settings.feeds_path, feeds)
    return PollReport(saved, skipped, errors)


class FeedPoller(BackgroundLoop):
    """Polls the feeds every `interval` seconds in a background thread; `on_new` runs after a poll
    that saved something (QA.update). A failing poll is logged and the next one still happens."""

    def __init__(self, settings: Settings, on_new: Callable[[PollReport], None], interval: float | None = None,
                 known: Callable[[], dict[str, dict]] | None = None):
        super().__init__()
        self.settings = settings
        self.on_new = on_new
        self.interval = settings.feed_interval if interval is None else interval
        self.known = known or (dict)
        self.polls = 0
        self.last_report: PollReport | None = None

    thread_name = "feed poller"

    def _enabled(self) -> bool:
        return self.interval > 0

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.settings.feeds_path.exists():
                try:
                    report = poll(self.settings, self.known())
                    self.last_report = report
                    if report.errors:
                        log.warning("feeds: %s", report.summary())
                    if report.saved:
                        self.on_new(report)
                except Exception:  # keep polling whatever one poll did
                    log.exception("polling the feeds failed")
            self.polls += 1
            self._stop.wait(self.interval)
