"""A daemon thread that runs a loop until stopped: the folder watcher's and the feed poller's shape."""
from __future__ import annotations

import threading
from typing import Self


class BackgroundLoop:
    """Subclasses write `_run()`, which returns when `self._stop` is set. start() and stop() may be
    called any number of times; a loop also works as a context manager."""

    thread_name = "background"

    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _enabled(self) -> bool:
        return True

    def _started(self) -> None:
        """Runs in start() once the thread is running (e.g. wait until it is ready)."""

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        if self._thread is None and self._enabled():
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
            self._started()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
