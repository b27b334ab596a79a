"""The façade: QA ties articles, index, retrieval and reading together; answer() is the shortcut."""
from __future__ import annotations

import ctypes
import gc
import hashlib
import logging
import math
import os
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from .aggregate import candidates, combined_score, sigmoid
from .articles import parse_article, read_article, safe_name
from .config import Settings, format_size
from .duplicates import DuplicateFinder, Duplicates, collapse
from .embedding import Embedder
from .errors import (
    ArticleRejected,
    IndexCorrupt,
    InvalidQuestion,
    QAError,
    StorageError,
)
from .indexing import WORKERS, refresh_index, refresh_index_in_child
from .metadata import asked_field, fact, metadata_of
from .reader import Calibration, EarlyStop, Reader, Reading
from .retrieval import Passage, Retriever
from .stores.base import UpdateReport
from .stores.embedded import EmbeddedSearch, StoredIndex, load_index, writer_lock
from .stores.postgres import PostgresStore, is_database_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    text: str | None            # None when the articles do not seem to hold the answer
    score: float                # confidence in [0, 1]
    article: str | None         # source article id (file path relative to the articles folder)
    title: str | None
    start: int | None           # character offsets into the article's text
    end: int | None
    context: str                # the passage the answer comes from (for an abstention: the closest one)
    context_start: int | None = None  # where that passage starts in the article
    alternatives: tuple[Answer, ...] = field(default_factory=tuple)
    # every article that carries the answer's story (the same wire copy from several outlets), its own first
    sources: tuple[str, ...] = ()

    @property
    def abstained(self) -> bool:
        return self.text is None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("text", "score", "article", "title", "start", "end", "context", "context_start")}
        out["alternatives"] = [a.to_dict() for a in self.alternatives]
        out["sources"] = list(self.sources)
        return out


def _give_memory_back() -> None:
    """Freed index data stays in the C allocator's free lists unless it is trimmed; without this the
    process keeps the memory of a large article long after it is removed."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc only; elsewhere there is nothing to do
    except (OSError, AttributeError):
        pass


class QA:
    """Question answering over a folder of articles.

    >>> qa = QA(articles="seeds", index="index")
    >>> qa.answer("Who directed the film?").text
    'Kang Yun-sung'
    """

    def __init__(self, articles: str | Path | None = None, index: str | Path | None = None,
                 settings: Settings | None = None, auto_update: bool | None = None,
                 embedder: Embedder | None = None, reader: Reader | None = None, store: str | Path | None = None):
        base = settings or Settings.from_env()
        spec = str(store) if store is not None else base.store  # a folder (what `index` means) or a URL
        if is_database_url(spec):
            base = replace(base, store=spec)
        elif spec:
            base, index = replace(base, store=""), index if index is not None else spec
        self.settings = replace(
            base,
            articles=Path(articles) if articles is not None else base.articles,
            index=Path(index) if index is not None else base.index,
            auto_update=base.auto_update if auto_update is None else auto_update,
        )
        s = self.settings
        if s.index_worker not in WORKERS:
            raise ValueError(f"QA_INDEX_WORKER={s.index_worker!r}: use one of {', '.join(WORKERS)}")
        # a postgresql:// store: the database holds the index; read-only unless this QA keeps it up to date
        self._db = PostgresStore(s.store, read_only=not s.auto_update) if is_database_url(s.store) else None
        # models are loaded lazily, once; pass them in to share them between QA objects
        self.embedder = embedder or Embedder(s.embedder, s.runtime, s.runtime_cache or None)
        self.reader = reader or Reader(s.reader_path, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size,
                                       s.runtime, s.runtime_cache or None)
        # _swap: the live index's reference, held only to read or replace it. Updates build the new
        # index without it, so questions go on being answered from the old one meanwhile.
        self._swap = threading.Lock()
        self._search: EmbeddedSearch | PostgresStore | None = None   # the live index's search side
        self._retriever: Retriever | None = None
        self.last_report: UpdateReport | None = None
        self._duplicates = DuplicateFinder(s.duplicate_threshold)   # near-duplicate groups, per live version
        self._dup_lock, self._dup = threading.Lock(), Duplicates({})
        self._background: list = []                                 # the folder watcher and the feed poller
        if s.auto_update:
            self.update()
        else:
            self._load_existing()

    # -- index -------------------------------------------------------------------------------
    def update(self, full: bool = False, progress: bool = False) -> UpdateReport:
        """Bring the index in line with the articles folder; re-embeds only what changed."""
        stored, report = self._refresh(full=full, progress=progress)
        self._use(stored)
        self.last_report = report
        log.info("index: %s", report.summary())
        return report

    rebuild = update

    def add_article(self, filename: str, data: bytes) -> str:
        """Store an article in the uploads folder under a safe new name (never overwriting a file)
        and index it, both or neither. Returns its id. ArticleRejected says why a file is refused;
        StorageError that the folder or the index could not be written (then nothing changed)."""
        s = self.settings
        if len(data) > s.max_article_bytes:
            raise ArticleRejected(f"{filename}: {format_size(len(data))}, larger than the limit of "
                                  f"{format_size(s.max_article_bytes)}")
        try:
            name = safe_name(filename)
            parse_article(data, Path(name).suffix, name, filename)  # the checks the index applies
        except ValueError as err:
            raise ArticleRejected(f"{filename}: {err}") from None
        root = s.articles.resolve()
        folder = (root / s.uploads).resolve()
        if folder != root and root not in folder.parents:
            raise StorageError(f"QA_UPLOADS={s.uploads!r} is not inside the articles folder {root}",
                               public="the server's uploads folder is misconfigured")
        digest = hashlib.sha256(data).hexdigest()
        with self._writer():  # the file and the index change together, one writer at a time
            for article_id, meta in self.articles.items():
                if meta["sha256"] == digest:
                    raise ArticleRejected(f"{filename}: already indexed as {article_id}")
            stem, suffix = Path(name).stem, Path(name).suffix
            created = False
            try:
                folder.mkdir(parents=True, exist_ok=True)
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
        s = self.settings
        folder = s.articles.resolve()
        with self._writer():
            if article_id not in self.articles:
                raise ArticleRejected(f"no indexed article {article_id!r}")
            path = (folder / article_id).resolve()
            if folder not in path.parents:  # ids come from the index, but never trust a path blindly
                raise ArticleRejected(f"{article_id!r} is not inside the articles folder")
            if len(self.articles) <= 1:
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
        page = download(url, s)   # the network part, before taking the writer lock
        root = s.articles.resolve()
        with self._writer():
            path, before = save(root, page, self.articles, s.uploads)

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
            stored, report = self._refresh(locked=True)
        except BaseException:
            undo()
            raise
        self._use(stored)
        self.last_report = report

    def _refresh(self, full: bool = False, progress: bool = False, locked: bool = False):
        if self.settings.index_worker == "process" and not progress:
            report = refresh_index_in_child(self.settings, full=full, locked=locked)
            return self._db or load_index(self.settings.index), report
        return refresh_index(self.settings, self.embedder, full=full, progress=progress, locked=locked, db=self._db)

    def start_background(self, watch: bool | None = None, feeds: bool | None = None) -> None:
        """While a chat runs: watch the articles folder (a change is indexed within seconds, a burst
        of them in one update) and poll the feeds every `feed_interval` seconds. Defaults: the
        `watch` setting, and feeds when `feed_interval` > 0."""
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
                                               known=lambda: self.articles).start())

    def stop_background(self) -> None:
        while self._background:
            self._background.pop().stop()

    def _update_quietly(self) -> None:
        try:
            self.update()
        except QAError as err:  # e.g. the last article removed: keep answering from what we have
            log.warning("index not updated: %s", err)

    @property
    def duplicates(self) -> Duplicates:
        """Groups of near-duplicate articles (the same story from several outlets) in the live index."""
        with self._swap:
            return self._dup

    def _about_article(self, question: str, passages: list[Passage]) -> Answer | None:
        """A question about the article itself (its date, author, outlet, URL), answered from its
        metadata; None for any other question, or when the article does not say."""
        asked = asked_field(question)
        if asked is None or not passages:
            return None
        article_id, title = passages[0].chunk.article_id, passages[0].title
        entry = self.articles.get(article_id, {})
        meta = metadata_of(entry)
        if "site" not in entry:  # an index written before these fields existed: read the file
            try:
                a = read_article(self.settings.articles / article_id, article_id)
                meta = {"published": a.published, "author": a.author, "site": a.site, "url": a.url}
            except (OSError, ValueError):
                pass
        chunks = [(c.start, c.text) for c in self._search.chunks_of(article_id)]
        found = fact(asked, article_id, title, meta, chunks)
        if found is None:
            return None
        return Answer(text=found.value, score=1.0, article=article_id, title=title, start=found.start, end=found.end,
                      context=found.context, context_start=found.context_start,
                      sources=self.duplicates.of(article_id))

    def _with_sources(self, a: Answer) -> Answer:
        if a.abstained or a.article is None:
            return a
        return replace(a, sources=self.duplicates.of(a.article))

    def _load_existing(self) -> None:
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
            self.update()
        else:
            self._use(stored)

    def _writer(self):
        """The index's writer lock: a file lock beside the embedded index, an advisory lock in PostgreSQL."""
        if self._db is not None:
            return self._db.writer_lock(self.settings.lock_timeout)
        return writer_lock(self.settings.index, self.settings.lock_timeout)

    def _use(self, stored: StoredIndex | PostgresStore) -> None:
        """Make `stored` the live index: its search side is built first, then swapped in under a short
        lock, unless a newer version has gone live meanwhile (another writer's). A database is always live."""
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
            duplicates = self._duplicates.find(search.article_texts())
        with self._swap:
            live_path, new_path = getattr(self._search, "path", None), getattr(search, "path", None)
            if live_path is not None and new_path is not None and new_path != live_path:
                try:
                    live = (self.settings.index / "CURRENT").read_text().strip()
                except OSError:
                    live = new_path.name
                if live != new_path.name:
                    return  # another writer's newer version went live: keep the one we have
            self._search, self._retriever, self._dup = search, retriever, duplicates
        del current, retriever
        _give_memory_back()

    @property
    def articles(self) -> dict[str, dict]:
        """The indexed articles: id -> title, source, published, sha256, chunks."""
        return dict(self._search.articles)

    # -- answering ------------------------------------------------------------------------------
    def validate(self, question: str) -> str:
        if not isinstance(question, str):
            raise InvalidQuestion(f"a question must be a string, not {type(question).__name__}")
        question = question.strip()
        if not question:
            raise InvalidQuestion("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise InvalidQuestion(f"the question is {len(question)} characters long; "
                                  f"the limit is {self.settings.max_question_chars}")
        return question

    def retrieve(self, question: str, k: int | None = None, history: tuple[str, ...] = ()) -> list[Passage]:
        """The passages the reader will read. `history`: earlier questions of the conversation,
        which help find the passage when the question says "it" or "the film"."""
        question = self.validate(question)
        query = " ".join([*history[-1:], question])
        with self._swap:
            retriever = self._retriever
        k = k or self.settings.top_k
        duplicates = self.duplicates
        if not duplicates.any:
            return retriever.search(query, k)
        # the same story from several outlets is read once: deeper search, copies left out
        return collapse(retriever.search(query, 2 * k), duplicates, k)

    def answer(self, question: str, k: int | None = None, history: tuple[str, ...] | list[str] = ()) -> Answer:
        """The answer to `question` from the articles; `history`: the conversation's earlier questions."""
        question = self.validate(question)
        # no lock here: the models keep their own tokenizers to one thread, and questions asked at the
        # same moment share the reader's pass (qa/batching.py); an update never blocks them
        passages = self.retrieve(question, k, tuple(history))
        about = self._about_article(question, passages)  # "When was it published?": from the metadata
        if about is not None:
            return about
        reading = self.reader.read(question, [p.chunk.text for p in passages], early=self.early_stop)
        return self._with_sources(self.decide(reading, passages))

    @property
    def early_stop(self) -> EarlyStop | None:
        """The reading policy of the settings and the reader's calibration; None = read every passage.
        Off with the aggregation: its support and rank evidence need every passage read."""
        return early_stop(self.settings, self.reader.calibration)

    def decide(self, reading: Reading, passages: list[Passage]) -> Answer:
        return decide(reading, passages, self.reader.calibration, self.settings.no_answer_threshold,
                      self.settings.aggregate)


def decide(reading: Reading, passages: list[Passage], calibration: Calibration, threshold: float | None = None,
           aggregate: bool = False) -> Answer:
    """Spans -> one answer per distinct text, best span gap first, with alternatives; or an abstention.

    With the fitted aggregation in the calibration (and `aggregate`), each answer's confidence is
    the fitted probability that it is right, from its span gap, how many places support it and the
    retrieval evidence (qa/aggregate.py), and the top answer is abstained on below the calibrated
    log-odds; otherwise confidence and abstention come from the span gap alone.
    `threshold` None = the calibrated one."""
    weights = calibration.combine if aggregate else ()
    found = candidates(reading, passages)  # best span gap first
    if weights:
        # Ranked by the reader's gap, judged by the fitted combination: ranking by the combination
        # itself let passage-level evidence (BM25, rank) pick the wrong name inside one article
        # (seed question set: EM 68.8 against 81.2), while for abstaining and for the confidence the
        # retrieval evidence is what tells a missing article apart (abstains 93.5% against 80.0%).
        scored = [(combined_score(c.features, weights), c) for c in found]
        confidence = sigmoid
        threshold = calibration.combine_threshold if threshold is None else threshold
        best_score = scored[0][0] if scored else -math.inf
    else:
        scored = [(c.features[0], c) for c in found]   # already best gap first
        confidence = calibration.confidence
        threshold = calibration.no_answer_threshold if threshold is None else threshold
        best_score = reading.gap
    answers = []
    for score, c in scored:
        chunk = passages[c.span.context].chunk
        answers.append(Answer(
            text=c.span.text, score=confidence(score), article=chunk.article_id, title=passages[c.span.context].title,
            start=chunk.start + c.span.start, end=chunk.start + c.span.end, context=chunk.text, context_start=chunk.start,
        ))
    if not answers or best_score < threshold:
        closest = passages[0] if passages else None
        return Answer(
            text=None, score=confidence(best_score),
            article=closest.chunk.article_id if closest else None, title=closest.title if closest else None,
            start=None, end=None, context=closest.chunk.text if closest else "",
            context_start=closest.chunk.start if closest else None, alternatives=tuple(answers[:3]),
        )
    return replace(answers[0], alternatives=tuple(answers[1:4]))


def early_stop(settings: Settings, calibration: Calibration) -> EarlyStop | None:
    score = calibration.stop_score if settings.stop_score is None else settings.stop_score
    if settings.read_first <= 0 or settings.aggregate or score == math.inf:
        return None
    threshold = calibration.no_answer_threshold if settings.no_answer_threshold is None else settings.no_answer_threshold
    return EarlyStop(settings.read_first, score, threshold)


_default: QA | None = None
_default_lock = threading.Lock()


def answer(question: str, **kwargs) -> Answer:
    """Answer from the default folders (seeds/ and index/, or QA_ARTICLES / QA_INDEX)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = QA()
    return _default.answer(question, **kwargs)
