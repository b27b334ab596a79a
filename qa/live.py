"""The live index: the version questions are answered from, whichever store holds it (a folder with
FAISS + BM25, or PostgreSQL + pgvector). It opens the store, brings it up to date, builds the search
side, the retriever and the near-duplicate groups of a new version, and swaps them in while
questions go on being answered from the old one. Nothing above this room looks at the store's type.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import threading
from pathlib import Path

from .config import Settings
from .duplicates import DuplicateFinder, Duplicates, collapse
from .embedding import Embedder
from .errors import DatabaseError, IndexCorrupt
from .indexing import refresh_index, refresh_index_in_child
from .metadata import metadata_of
from .retrieval import Passage, Retriever
from .sources.files import read_article
from .stores.base import UpdateReport
from .stores.embedded import EmbeddedSearch, StoredIndex, load_index, writer_lock
from .stores.postgres import PostgresStore, describe_url, is_database_url

log = logging.getLogger(__name__)


def _give_memory_back() -> None:
    """Freed index data stays in the C allocator's free lists unless it is trimmed; without this the
    process keeps the memory of a large article long after it is removed."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc only; elsewhere there is nothing to do
    except (OSError, AttributeError):
        pass


class LiveIndex:
    """One index, kept live. `refresh()` indexes the articles folder as it is now and goes live with
    the result; `search()` answers from whatever version is live at that moment."""

    def __init__(self, settings: Settings, embedder: Embedder):
        self.settings = settings
        self.embedder = embedder
        # a postgresql:// store: the database holds the index; read-only unless this process keeps it up to date
        self._db = PostgresStore(settings.store, read_only=not settings.auto_update) if is_database_url(settings.store) else None
        # _swap: held only to read or replace the live references. Updates build the new version
        # without it, so questions go on being answered from the old one meanwhile.
        self._swap = threading.Lock()
        self._search: EmbeddedSearch | PostgresStore | None = None
        self._retriever: Retriever | None = None
        self._finder = DuplicateFinder(settings.duplicate_threshold)   # near-duplicate groups, per live version
        self._dup_lock, self._duplicates = threading.Lock(), Duplicates({})
        self.last_report: UpdateReport | None = None

    # -- writing -------------------------------------------------------------------------------
    def refresh(self, full: bool = False, progress: bool = False, locked: bool = False) -> UpdateReport:
        """Bring the index in line with the articles folder (re-embedding only what changed) and go
        live with it. `locked`: the caller holds the writer lock."""
        s = self.settings
        if s.index_worker == "process" and not progress:
            report = refresh_index_in_child(s, full=full, locked=locked)
            stored = self._db or load_index(s.index)
        else:
            stored, report = refresh_index(s, self.embedder, full=full, progress=progress, locked=locked, db=self._db)
        self._use(stored)
        self.last_report = report
        return report

    def open(self) -> None:
        """Go live with the index as it is (no update), building it only when there is none."""
        if self._db is not None:
            self._use(self._db)
            return
        try:
            stored = load_index(self.settings.index)
        except IndexCorrupt as err:
            log.warning("%s; rebuilding it", err)
            stored = None
        if stored is None:
            log.warning("no usable index at %s: building it", self.settings.index)
            self.refresh()
        else:
            self._use(stored)

    def check_writable(self) -> None:
        """DatabaseError when this index may not be written (a read-only replica): before anything else."""
        if self._db is not None and self._db.read_only:
            raise DatabaseError(f"this store ({describe_url(self.settings.store)}) is read-only")

    def writer(self):
        """The index's writer lock: a file lock beside the embedded index, an advisory lock in PostgreSQL."""
        if self._db is not None:
            return self._db.writer_lock(self.settings.lock_timeout)
        return writer_lock(self.settings.index, self.settings.lock_timeout)

    def _use(self, stored: StoredIndex | PostgresStore) -> None:
        """Make `stored` live: its search side is built first, then swapped in under a short lock,
        unless a newer version has gone live meanwhile (another writer's). A database is always live."""
        current = self._search
        if isinstance(stored, StoredIndex):
            if isinstance(current, EmbeddedSearch) and (current.stored is stored or
                                                        (stored.path is not None and stored.path == current.path)):
                return  # the version already live: nothing to rebuild
            search = EmbeddedSearch(stored)
        else:
            search = stored
        retriever = Retriever(search, self.embedder)
        with self._dup_lock:  # here, not at the next question: MinHashing a large article takes seconds
            duplicates = self._finder.find(search.article_texts())
        with self._swap:
            live_path, new_path = getattr(self._search, "path", None), getattr(search, "path", None)
            if live_path is not None and new_path is not None and new_path != live_path:
                try:
                    live = (self.settings.index / "CURRENT").read_text().strip()
                except OSError:
                    live = new_path.name
                if live != new_path.name:
                    return  # another writer's newer version went live: keep the one we have
            self._search, self._retriever, self._duplicates = search, retriever, duplicates
        del current, retriever
        _give_memory_back()

    # -- reading -------------------------------------------------------------------------------
    @property
    def articles(self) -> dict[str, dict]:
        """The indexed articles: id -> title, source, published, sha256, chunks."""
        with self._swap:
            search = self._search
        return dict(search.articles)

    @property
    def duplicates(self) -> Duplicates:
        """Groups of near-duplicate articles (the same story from several outlets) in the live index."""
        with self._swap:
            return self._duplicates

    def search(self, query: str, k: int) -> list[Passage]:
        """The k best passages of the live version; the same story from several outlets is read once
        (a deeper search, copies left out)."""
        with self._swap:
            retriever, duplicates = self._retriever, self._duplicates
        if not duplicates.any:
            return retriever.search(query, k)
        return collapse(retriever.search(query, 2 * k), duplicates, k)

    def chunks_of(self, article_id: str):
        with self._swap:
            search = self._search
        return search.chunks_of(article_id)

    def sources_of(self, article_id: str) -> tuple[str, ...]:
        return self.duplicates.of(article_id)

    def meta_of(self, article_id: str) -> dict:
        """An article's own metadata (date, author, outlet, URL) from the index; an index written
        before these fields existed has them read from the file."""
        with self._swap:
            search = self._search
        entry = search.articles.get(article_id, {})   # one entry, not a copy of the whole manifest
        if "site" in entry:
            return metadata_of(entry)
        try:
            a = read_article(Path(self.settings.articles) / article_id, article_id)
            return {"published": a.published, "author": a.author, "site": a.site, "url": a.url}
        except (OSError, ValueError):
            return metadata_of(entry)
