"""The articles folder, the one source of truth, and its changes: add an upload, remove an article,
add a web page. Each change and the index's update happen both or neither, one writer at a time; a
file the indexer would skip is refused before it is written, so "added" means answerable; and a
missing folder is an error for every writer, never the start of a new, smaller index."""
from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

from . import limits
from .config import Settings
from .errors import ArticleRejected, ArticlesNotFound, QAError, StorageError
from .live import LiveIndex
from .sources.files import check_article, safe_name

log = logging.getLogger(__name__)


def require_folder(settings: Settings, live: LiveIndex | None = None) -> Path:
    """The articles folder, resolved; ArticlesNotFound when it is gone (deleted while the chat runs).
    With `live`: first, that its index may be written at all (not a read-only replica)."""
    if live is not None:
        live.check_writable()
    folder = Path(settings.articles)
    if not folder.is_dir():
        raise ArticlesNotFound(f"articles folder not found: {folder}; nothing was changed",
                               public="the server's articles folder is missing; nothing was changed")
    return folder.resolve()


class Library:
    """Changes to the articles folder, each indexed before it counts."""

    def __init__(self, settings: Settings, live: LiveIndex):
        self.settings = settings
        self.live = live
        self._background: list = []   # the folder watcher and the feed poller

    def add_article(self, filename: str, data: bytes) -> str:
        """Store an article in the uploads folder under a safe new name (never overwriting a file)
        and index it, both or neither. Returns its id. ArticleRejected says why a file is refused;
        StorageError that the folder or the index could not be written (then nothing changed)."""
        filename, data = limits.upload(filename, data)
        s = self.settings
        try:
            name = safe_name(filename)
            check_article(data, name, filename, s.max_article_bytes)  # the checks the index applies
        except ValueError as err:
            raise ArticleRejected(f"{filename}: {err}") from None
        root = require_folder(s, self.live)
        folder = (root / s.uploads).resolve()
        if folder != root and root not in folder.parents:
            raise StorageError(f"QA_UPLOADS={s.uploads!r} is not inside the articles folder {root}",
                               public="the server's uploads folder is misconfigured")
        digest = hashlib.sha256(data).hexdigest()
        with self.live.writer():  # the file and the index change together, one writer at a time
            require_folder(s)
            for article_id, meta in self.live.articles.items():
                if meta["sha256"] == digest:
                    raise ArticleRejected(f"{filename}: already indexed as {article_id}")
            stem, suffix = Path(name).stem, Path(name).suffix
            created = False
            try:
                folder.mkdir(exist_ok=True)   # the uploads subfolder only: never the articles folder itself
                for n in range(1, 1000):
                    target = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
                    try:
                        with open(target, "xb") as out:  # "x": fails rather than overwrite
                            created = True
                            out.write(data)
                        break
                    except FileExistsError:
                        if target.is_file() and target.read_bytes() == data:
                            break  # the same file, left by an add that was interrupted: index it, no copy
                else:
                    raise ArticleRejected(f"{filename}: too many articles named {name}")
            except OSError as err:
                if created:
                    target.unlink(missing_ok=True)
                raise StorageError(f"cannot write {filename!r} to the articles folder {folder}: {err.strerror or err}",
                                   public="the article could not be stored on the server; nothing was changed") from None

            def undo():  # the folder goes back to what the index says
                if created:
                    target.unlink(missing_ok=True)

            self._reindex(undo)
        return target.relative_to(root).as_posix()

    def remove_article(self, article_id: str) -> None:
        """Delete an indexed article's file and drop it from the index, both or neither. The last
        article stays: an index needs at least one."""
        if not isinstance(article_id, str):
            raise ArticleRejected(f"an article id must be text, not {type(article_id).__name__}")
        folder = require_folder(self.settings, self.live)
        with self.live.writer():
            require_folder(self.settings)
            articles = self.live.articles
            if article_id not in articles:
                raise ArticleRejected(f"no indexed article {article_id!r}")
            path = (folder / article_id).resolve()
            if folder not in path.parents:  # ids come from the index, but never trust a path blindly
                raise ArticleRejected(f"{article_id!r} is not inside the articles folder")
            if len(articles) <= 1:
                raise ArticleRejected("the last article cannot be removed: the index needs at least one")
            # set the file aside (a hidden name the loader skips), update, and only then delete it
            aside = path.with_name(f".{path.name}.removing-{uuid.uuid4().hex[:8]}")
            try:
                if path.exists():
                    os.rename(path, aside)
            except OSError as err:
                raise StorageError(f"cannot remove {article_id!r} from {folder}: {err.strerror or err}",
                                   public="the article could not be removed on the server; nothing was changed") from None

            def undo():
                if aside.exists():
                    os.rename(aside, path)

            self._reindex(undo)
            try:
                aside.unlink(missing_ok=True)
            except OSError as err:  # hidden and not an article: harmless, but say so
                log.warning("could not delete %s: %s", aside, err)

    def add_url(self, url: str) -> str:
        """Fetch a web page, store it in the articles folder and index it; returns its article id.
        The same URL again replaces that page (no twin). FetchError subclasses (qa.sources.web) say
        why a page is refused: unreachable, an HTTP error, not HTML, too large, no main text; then
        nothing is written."""
        from .sources.web import download, save

        s = self.settings
        url = limits.url(url, s.max_url_chars)
        root = require_folder(s, self.live)
        page = download(url, s)   # the network part, before taking the writer lock
        with self.live.writer():
            require_folder(s)
            path, before = save(root, page, self.live.articles, s.uploads)

            def undo():
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(before)

            self._reindex(undo)
        return path.relative_to(root).as_posix()

    def _reindex(self, undo) -> None:
        """Under the writer lock, after a change to the folder: index the folder as it now is and go
        live with it; if that fails, `undo()` puts the folder back to what the index says (both or neither)."""
        try:
            self.live.refresh(locked=True)
        except BaseException:
            undo()
            raise

    # -- while a chat runs: the folder watched, the feeds polled ---------------------------------
    def start_background(self, watch: bool | None = None, feeds: bool | None = None) -> None:
        """Watch the articles folder (a change is indexed within seconds, a burst of them in one
        update) and poll the feeds every `feed_interval` seconds. Defaults: the `watch` setting, and
        feeds when `feed_interval` > 0."""
        from .sources.feeds import FeedPoller
        from .sources.watch import FolderWatcher

        s = self.settings
        if self._background:
            return
        if s.watch if watch is None else watch:
            self._background.append(FolderWatcher(s.articles, lambda _paths: self._update_quietly(),
                                                  quiet_ms=s.watch_debounce_ms).start())
            self._update_quietly()  # what changed before the watcher started
        if (s.feed_interval > 0) if feeds is None else feeds:
            self._background.append(FeedPoller(s, lambda _report: self._update_quietly(),
                                               known=lambda: self.live.articles).start())

    def stop_background(self) -> None:
        while self._background:
            self._background.pop().stop()

    def _update_quietly(self) -> None:
        try:
            report = self.live.refresh()
            log.info("index: %s", report.summary())
        except QAError as err:  # e.g. the folder deleted, the last article removed: keep answering from what we have
            log.warning("index not updated: %s", err)
