"""Watch the articles folder (watchfiles) and call back once per burst of changes.

The callback is QA.update in practice: a file added, changed or removed is answered from (or no
longer) within about a second plus the update's own time. Changes that come closer together than
`quiet_ms` are one burst and cause one update; a burst that goes on is cut after `max_wait_ms`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .background import BackgroundLoop
from .files import is_article_path

log = logging.getLogger(__name__)


class FolderWatcher(BackgroundLoop):
    def __init__(self, folder: str | Path, on_change: Callable[[set[str]], None], quiet_ms: int = 500,
                 max_wait_ms: int = 3000):
        super().__init__()
        self.folder = Path(folder).resolve()
        self.thread_name = f"watch {self.folder.name}"
        self.on_change = on_change
        self.quiet_ms = quiet_ms
        self.max_wait_ms = max(max_wait_ms, quiet_ms)
        self.bursts = 0              # how many times on_change ran (tests and the benchmark read it)
        self._ready = threading.Event()

    def _relevant(self, change, path: str) -> bool:
        try:
            return is_article_path(Path(path), self.folder)
        except ValueError:  # not under the folder
            return False

    def _started(self) -> None:
        self._ready.wait(5)  # watching before start() returns: a file written next is seen

    def _run(self) -> None:
        from watchfiles import watch

        while not self._stop.is_set():
            try:
                self._ready.set()
                for changes in watch(self.folder, watch_filter=self._relevant, step=self.quiet_ms,
                                     debounce=self.max_wait_ms, stop_event=self._stop, raise_interrupt=False):
                    paths = {p for _, p in changes}
                    log.info("articles folder changed: %d file(s); updating the index", len(paths))
                    self.bursts += 1
                    try:
                        self.on_change(paths)
                    except Exception:  # the watcher must outlive any one bad update
                        log.exception("updating after a change in %s failed", self.folder)
            except Exception as err:  # the folder vanished, too many watches...: say so, try again
                if self._stop.is_set():
                    break
                log.warning("watching %s failed (%s); retrying in 2 s", self.folder, err)
                time.sleep(2)
