"""RSS and Atom feeds (feedparser): subscribe, list, poll. New items' pages are saved in the articles
folder like any page added by URL (web.py); the pipeline indexes them.

What has been seen is remembered in a JSON file (Settings.feeds_path, beside the articles folder):
an item is skipped when its GUID or its link was seen before, or when its content hash was (the same
item republished under a new GUID). A feed that fails (unreachable, not XML) is reported and the others
go on; an item whose page fails is retried at the next poll. A poll takes at most Settings.feed_max_items
new items of a feed, the newest; the older ones are remembered as seen and never fetched. Every item still
in its feed stays remembered, however many; of those gone from it, the newest MAX_SEEN.

The file is changed by one process at a time (edit_lock: a file lock beside it), each change a
read-modify-write of the file as it is then; a poll holds the lock only to read the file and, after its
fetches, to merge what it learnt, so `qa feed add` or `remove` in another process is never undone.

Feeds and their items' pages are fetched as links are (web.py): the same URL checks, no private
addresses, no user:password@ part (dropped: never sent, and never written into the feeds file).
"""
from __future__ import annotations

import calendar
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from ..config import Settings
from ..errors import QAError, StorageError
from ..shapes import field_problem
from .background import BackgroundLoop
from .web import FetchError, download, fetch, normalize_url, save, strip_credentials

log = logging.getLogger(__name__)

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml",
              "application/feed+xml", "text/rss+xml", "text/atom+xml")
STATE_VERSION = 1
MAX_SEEN = 5000   # remembered keys of items no longer in their feed (those still in it are all kept)
_state_lock = threading.Lock()  # with the file lock (edit_lock): one edit of a feeds file at a time


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
    capped: int = 0                                     # older new items over Settings.feed_max_items, not fetched

    def summary(self) -> str:
        text = f"{len(self.saved)} new article(s), {self.skipped} item(s) already seen"
        if self.capped:
            text += f", {self.capped} older item(s) over the per-poll cap (QA_FEED_MAX_ITEMS) left out"
        return text + (f"; {len(self.errors)} problem(s): " + "; ".join(self.errors) if self.errors else "")


# -- the state file --------------------------------------------------------------------------------
_FEED_FIELDS = {"url": str, "title": str, "added": str, "last_poll": (str, type(None)), "last_error": (str, type(None)),
                "seen": list, "hashes": list, "articles": int}


def _shape_problem(raw) -> str | None:
    """What makes a feeds file (valid JSON) other than what save_state writes, or None."""
    if not isinstance(raw, dict):
        return f"it holds {'null' if raw is None else type(raw).__name__}, not an object with a list of feeds"
    feeds = raw.get("feeds", [])
    if not isinstance(feeds, list):
        return f"its 'feeds' is {type(feeds).__name__}, not a list"
    for n, f in enumerate(feeds, 1):
        if not isinstance(f, dict):
            return f"feed {n} is {type(f).__name__}, not an object"
        if not isinstance(f.get("url"), str):
            return f"feed {n} has no URL"
        problem = field_problem(f, _FEED_FIELDS, f"feed {f['url']}", non_negative="articles", show=_short)
        if problem:
            return problem
        for key, value in f.items():
            if _FEED_FIELDS[key] is list and not all(isinstance(k, str) for k in value):
                return f"feed {f['url']} has {key!r} that is not a list of text"
    return None


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_state(path: str | Path) -> dict[str, Feed]:
    """The feeds in the file (none when there is no file); FeedError, in one line, when it is not JSON or
    not of the shape save_state writes."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FeedError(f"the feeds file {path} is unreadable ({' '.join(str(err).split())}); fix or delete it") from None
    problem = _shape_problem(raw)
    if problem:
        raise FeedError(f"the feeds file {path} is unreadable ({problem}); fix or delete it")
    return {f["url"]: Feed(**f) for f in raw.get("feeds", [])}


def save_state(path: str | Path, feeds: dict[str, Feed]) -> None:
    """Written to a temporary file and renamed: a crash never leaves half a feeds file. The caller holds
    edit_lock(path)."""
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


@contextmanager
def edit_lock(path: str | Path, timeout: float = 600.0):
    """One read-modify-write of the feeds file at a time: across processes (`qa feed add` while a chat
    polls) a file lock beside it (<file>.lock), across this process's threads a plain lock. Held for
    reading and writing the file only, never while a feed or page is fetched."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    if not _state_lock.acquire(timeout=timeout):
        raise FeedError(f"the feeds file {path} was being changed for over {timeout:.0f} s (QA_LOCK_TIMEOUT); "
                        "try again later")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(path.with_name(path.name + ".lock"), thread_local=False)
            lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        except Timeout:
            raise FeedError(f"the feeds file {path} was being changed by another process for over {timeout:.0f} s "
                            "(QA_LOCK_TIMEOUT); try again later") from None
        except OSError as err:
            raise StorageError(f"cannot lock the feeds file {path}: {err.strerror or err}") from None
        try:
            yield
        finally:
            lock.release()
    finally:
        _state_lock.release()


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
    parsed = read_feed(url, settings)   # the network first, then the file: the lock is held for moments
    with edit_lock(settings.feeds_path, settings.lock_timeout):
        feeds = load_state(settings.feeds_path)
        feed = feeds.get(url) or Feed(url=url, added=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        feed.title = parsed.feed.get("title", "") or feed.title
        feeds[url] = feed
        save_state(settings.feeds_path, feeds)
    return feed


def remove_feed(url: str, settings: Settings) -> None:
    with edit_lock(settings.feeds_path, settings.lock_timeout):
        feeds = load_state(settings.feeds_path)
        if feeds.pop(url, None) is None and feeds.pop(strip_credentials(url), None) is None:
            raise FeedError(f"not subscribed to {strip_credentials(url)}")
        save_state(settings.feeds_path, feeds)


def list_feeds(settings: Settings) -> list[Feed]:
    return list(load_state(settings.feeds_path).values())   # no lock: the file is replaced whole


@dataclass
class _Outcome:
    """What one poll learnt about one feed, merged into the feeds file as it is when the poll ends."""
    polled: str
    title: str = ""
    error: str | None = None
    seen: list[str] = field(default_factory=list)      # keys and hashes of the items taken or given up on
    hashes: list[str] = field(default_factory=list)
    present: set[str] | None = None                     # every key and hash in the feed now (None: not read)
    taken: list[list[str]] = field(default_factory=list)  # the keys of each item saved as an article


def _published(entry) -> float | None:
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    try:
        return calendar.timegm(when) if when else None
    except (TypeError, ValueError, OverflowError):
        return None


def _newest_first(items: list) -> list:
    """Items (entry, keys, digest) newest first: by their dates when every one has one, else in the feed's
    own order (which lists the newest first)."""
    dates = [_published(entry) for entry, _, _ in items]
    if all(d is not None for d in dates):
        return [item for _, item in sorted(zip(dates, items), key=lambda pair: -pair[0])]
    return items


def _prune(keys: list[str], present: set[str]) -> list[str]:
    """Every key of an item still in the feed (however many), and of the others the MAX_SEEN newest."""
    gone = [k for k in keys if k not in present]
    keep = set(gone[-MAX_SEEN:])
    return [k for k in keys if k in present or k in keep]


def _poll_feed(feed: Feed, settings: Settings, known, folder: Path, subfolder: str,
               saved: list[str], errors: list[str]) -> tuple[_Outcome, int, int]:
    """Fetch one feed and the pages of its new items (no lock held). Returns what was learnt, the items
    skipped as seen and those left out over the per-poll cap."""
    out = _Outcome(polled=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    try:
        parsed = read_feed(feed.url, settings)
    except QAError as err:
        out.error = str(err)
        errors.append(str(err))
        log.warning("%s", err)
        return out, 0, 0
    out.title = parsed.feed.get("title", "") or ""
    seen, hashes = set(feed.seen), set(feed.hashes)
    present, fresh, skipped = set(), [], 0
    for entry in parsed.entries:
        keys, digest = item_keys(entry)
        present.update(keys)
        present.add(digest)
        if any(k in seen for k in keys) or digest in hashes:
            skipped += 1
        else:
            fresh.append((entry, keys, digest))
    out.present = present
    cap = settings.feed_max_items
    fresh = _newest_first(fresh)
    taken, over = (fresh[:cap], fresh[cap:]) if cap else (fresh, [])

    def done(keys: list[str], digest: str) -> None:   # never fetched again
        out.seen.extend(k for k in keys if k not in seen)
        seen.update(keys)
        if digest not in hashes:
            out.hashes.append(digest)
            hashes.add(digest)

    for entry, keys, digest in over:
        done(keys, digest)
    for entry, keys, digest in taken:
        if any(k in seen for k in keys) or digest in hashes:   # a copy of an item taken above
            skipped += 1
            continue
        link = entry.get("link")
        if not link:
            errors.append(f"{feed.url}: an item without a link ({entry.get('title', 'untitled')!r})")
            done(keys, digest)
            continue
        try:
            link = normalize_url(link, settings.max_url_chars)
        except FetchError as err:  # a link that will never do: not retried
            errors.append(f"{feed.url}: an item with a link that is refused ({err})")
            done(keys, digest)
            continue
        try:
            path, _ = save(folder, download(link, settings), known, subfolder)
        except QAError as err:  # retried at the next poll: a page may be up later
            errors.append(f"item {link}: {err}")
            log.warning("feed %s: %s", feed.url, err)
            continue
        saved.append(path.relative_to(folder).as_posix())
        out.taken.append(keys)
        done(keys, digest)
    return out, skipped, len(over)


def _merge(feed: Feed, out: _Outcome) -> None:
    """A poll's outcome into the feed as the file holds it now (another poll may have added to it)."""
    feed.last_poll, feed.last_error = out.polled, out.error
    feed.title = out.title or feed.title
    already = set(feed.seen)   # saved by another poll at the same time: the same file, counted once
    feed.articles += sum(1 for keys in out.taken if not any(k in already for k in keys))
    seen, hashes = list(dict.fromkeys(feed.seen + out.seen)), list(dict.fromkeys(feed.hashes + out.hashes))
    if out.present is not None:
        seen, hashes = _prune(seen, out.present), _prune(hashes, out.present)
    feed.seen, feed.hashes = seen, hashes


def poll(settings: Settings, known: dict[str, dict] | None = None, only: str | None = None) -> PollReport:
    """Fetch every feed (or `only` one) and save the pages of its new items into the articles folder.
    Never raises for a bad feed or item: they are in the report (and in the feed's last_error).

    The feeds file is read, the feeds fetched with no lock held (minutes, for many feeds), and what was
    learnt merged into the file as it is then: a feed added or removed meanwhile (`qa feed add` in
    another process) stays added or removed."""
    folder = Path(settings.articles)
    subfolder = getattr(settings, "uploads", "") or ""
    path = settings.feeds_path
    saved, errors, skipped, capped = [], [], 0, 0
    with edit_lock(path, settings.lock_timeout):
        feeds = load_state(path)
    outcomes: dict[str, _Outcome] = {}
    for feed in feeds.values():
        if only and feed.url != only:
            continue
        outcomes[feed.url], n_skipped, n_capped = _poll_feed(feed, settings, known, folder, subfolder, saved, errors)
        skipped, capped = skipped + n_skipped, capped + n_capped
    if outcomes:
        with edit_lock(path, settings.lock_timeout):
            now = load_state(path)
            for url, out in outcomes.items():
                if url in now:   # not if it was unsubscribed while we polled
                    _merge(now[url], out)
            save_state(path, now)
    return PollReport(saved, skipped, errors, capped)


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
