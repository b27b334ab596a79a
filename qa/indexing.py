"""Bringing the index in line with the articles folder, in this process or in a child process.

The child process exists for the chat: embedding a large article takes tens of seconds of CPU, and
in the serving process it would compete, thread against thread and for the GIL, with every question
being answered. A child at a lower CPU priority gets what the questions leave, writes the new
version, and exits (its memory goes with it); the chat then loads that version and swaps it in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

from . import errors
from .config import Settings
from .embedding import Embedder
from .sources.files import load_articles
from .stores.embedded import (
    StoredIndex,
    UpdateReport,
    check_current,
    forget_holder,
    update_index,
    wait_quietly_for,
    writer_lock,
)
from .stores.postgres import PostgresStore, is_database_url

WORKERS = ("thread", "process")
# the child's niceness: at 10 it gets about a tenth of a CPU that questions keep busy, and all of an idle one
CHILD_NICE = 10


def refresh_index(settings: Settings, embedder: Embedder, full: bool = False, progress: bool = False,
                  locked: bool = False, db: PostgresStore | None = None,
                  ) -> tuple[StoredIndex | PostgresStore, UpdateReport]:
    """Read the articles folder and update the index under settings.index to match it.
    `locked`: the caller holds the index's writer lock; `db`: the PostgreSQL store when settings.store names one (else one is opened).
    A writer reads the folder again once it holds the lock: what it saw while waiting may be stale.
    The report's seconds are the whole of it: reading the folder (parsing its pages) included."""
    started = time.perf_counter()

    def timed(report: UpdateReport) -> UpdateReport:
        return replace(report, seconds=time.perf_counter() - started)

    def read():
        articles, problems = load_articles(settings.articles, settings.max_article_bytes)
        if not articles:
            detail = f" ({len(problems)} unreadable file(s): {', '.join(p.source for p in problems)})" if problems else ""
            raise errors.NoArticles(f"no readable .txt, .md or .html article in {settings.articles}{detail}",
                                    public="there is no readable article to answer from")
        return articles, [p.source for p in problems], {p.source: p.reason for p in problems}

    if is_database_url(settings.store):
        db = db or PostgresStore(settings.store)
        with nullcontext() if locked else db.writer_lock(settings.lock_timeout):
            articles, skipped, reasons = read()
            return db, timed(db.update(articles, embedder, settings.chunk_chars, settings.chunk_overlap, full=full,
                                       progress=progress, batch_size=settings.batch_size, locked=True,
                                       skipped=skipped, reasons=reasons))
    if not locked and not full:
        articles, skipped, reasons = read()
        live, report = check_current(settings.index, articles, embedder, settings.chunk_chars, settings.chunk_overlap,
                                     skipped, reasons)
        if report is not None:
            return live, timed(report)  # up to date: no lock, nothing written (a read-only index folder is fine)
    with nullcontext() if locked else writer_lock(settings.index, settings.lock_timeout):
        articles, skipped, reasons = read()
        stored, report = update_index(
            settings.index, articles, embedder, settings.chunk_chars, settings.chunk_overlap, settings.hnsw_above,
            full=full, skipped=skipped, progress=progress, batch_size=settings.batch_size, reasons=reasons,
            locked=True,
        )
        return stored, timed(report)


def refresh_index_in_child(settings: Settings, full: bool = False, locked: bool = False) -> UpdateReport:
    """refresh_index() run by a fresh Python process at niceness CHILD_NICE; the caller then loads
    the version it wrote. A QAError raised in the child is raised here as the same class and message.
    `locked`: this process holds the writer lock, and the child writes under it.
    (A plain subprocess rather than multiprocessing: spawn would re-import the caller's main script.)"""
    job = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
           "full": full, "locked": locked}
    command = [sys.executable, "-c", "from qa.indexing import _child; _child()"]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parent.parent,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    wait_quietly_for(child.pid)  # an add in the chat waiting for its own child's lock is routine, not news
    stdout, stderr = child.communicate(json.dumps(job))
    forget_holder(child.pid)
    done = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    sys.stderr.write(done.stderr)  # the child's warnings, as if they were ours
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):  # killed, or out of memory: the index is as it was (it switches atomically)
        raise errors.StorageError(f"the indexing process ended with code {done.returncode} and no result"
                                  f"{': ' + done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}",
                                  public="the index could not be updated on the server; nothing was changed") from None
    if "error" in result:
        kind = getattr(errors, result["error"], None)
        if not (isinstance(kind, type) and issubclass(kind, errors.QAError)):
            raise errors.StorageError(f"the indexing process failed: {result['message']}",
                                      public="the index could not be updated on the server; nothing was changed")
        raise kind(result["message"], public=result["public"])
    return UpdateReport(**result["report"])


def _child() -> None:
    try:
        os.nice(CHILD_NICE)
    except OSError:  # not allowed here: it still runs, only at the parent's priority
        pass
    wait_quietly_for(os.getppid())  # the chat that started this child may hold the lock: not news
    job = json.loads(sys.stdin.read())
    values = job["settings"]
    settings = Settings(**{k: Path(v) if k in ("articles", "index") else v for k, v in values.items()})
    try:
        embedder = Embedder(settings.embedder, settings.runtime, settings.runtime_cache or None)
        _, report = refresh_index(settings, embedder, full=job["full"], locked=job["locked"])
        result = {"report": report.to_dict()}
    except errors.QAError as err:
        result = {"error": type(err).__name__, "message": str(err), "public": err.public}
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
        result = {"error": type(err).__name__, "message": " ".join(f"{type(err).__name__}: {err}".split())}
    print(json.dumps(result), flush=True)
