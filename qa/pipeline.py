"""The façade: QA wires the rooms (limits, the live index, the articles folder, answering) behind one
small API; answer() is the shortcut."""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from . import limits
from .answers import Answer, about_article, decide, early_stop
from .config import Settings
from .duplicates import Duplicates
from .embedding import Embedder
from .indexing import WORKERS
from .library import Library
from .live import LiveIndex
from .reader import EarlyStop, Reader, Reading
from .retrieval import Passage
from .stores.base import UpdateReport
from .stores.postgres import is_database_url

log = logging.getLogger(__name__)

__all__ = ["QA", "Answer", "answer", "decide", "early_stop"]


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
        self.settings = s = replace(
            base,
            articles=Path(articles) if articles is not None else base.articles,
            index=Path(index) if index is not None else base.index,
            auto_update=base.auto_update if auto_update is None else auto_update,
        )
        if s.index_worker not in WORKERS:
            raise ValueError(f"QA_INDEX_WORKER={s.index_worker!r}: use one of {', '.join(WORKERS)}")
        # models are loaded lazily, once; pass them in to share them between QA objects
        self.embedder = embedder or Embedder(s.embedder, s.runtime, s.runtime_cache or None)
        self.reader = reader or Reader(s.reader_path, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size,
                                       s.runtime, s.runtime_cache or None)
        self.live = LiveIndex(s, self.embedder)
        self.library = Library(s, self.live)
        if s.auto_update:
            self.update()
        else:
            self.live.open()

    # -- the index and the articles folder ------------------------------------------------------
    def update(self, full: bool = False, progress: bool = False) -> UpdateReport:
        """Bring the index in line with the articles folder; re-embeds only what changed."""
        report = self.live.refresh(full=full, progress=progress)
        log.info("index: %s", report.summary())
        return report

    rebuild = update

    def add_article(self, filename: str, data: bytes) -> str:
        """Store an uploaded article in the articles folder and index it, both or neither; its id."""
        return self.library.add_article(filename, data)

    def remove_article(self, article_id: str) -> None:
        """Delete an article's file and drop it from the index, both or neither (the last one stays)."""
        self.library.remove_article(article_id)

    def add_url(self, url: str) -> str:
        """Fetch a web page into the articles folder and index it, both or neither; its id."""
        return self.library.add_url(url)

    @property
    def articles(self) -> dict[str, dict]:
        """The indexed articles: id -> title, source, published, sha256, chunks."""
        return self.live.articles

    @property
    def duplicates(self) -> Duplicates:
        """Groups of near-duplicate articles (the same story from several outlets) in the live index."""
        return self.live.duplicates

    @property
    def last_report(self) -> UpdateReport | None:
        return self.live.last_report

    def start_background(self, watch: bool | None = None, feeds: bool | None = None) -> None:
        """While a chat runs: watch the articles folder and poll the feeds (Library.start_background)."""
        self.library.start_background(watch, feeds)

    def stop_background(self) -> None:
        self.library.stop_background()

    # -- answering ------------------------------------------------------------------------------
    def validate(self, question: str) -> str:
        """The question as it will be read (qa/limits.py); InvalidQuestion says why not."""
        return limits.question(question, self.settings.max_question_chars)

    def retrieve(self, question: str, k: int | None = None, history: tuple[str, ...] | list[str] = ()) -> list[Passage]:
        """The passages the reader will read. `history`: earlier questions of the conversation,
        which help find the passage when the question says "it" or "the film"."""
        return self._retrieve(self.validate(question), k, history)

    def _retrieve(self, question: str, k, history) -> list[Passage]:
        """retrieve() for a question already through validate()."""
        history = limits.history(history, self.settings.max_question_chars)
        k = limits.top_k(k) or self.settings.top_k
        return self.live.search(" ".join([*history[-1:], question]), k)

    def answer(self, question: str, k: int | None = None, history: tuple[str, ...] | list[str] = ()) -> Answer:
        """The answer to `question` from the articles; `history`: the conversation's earlier questions."""
        question = self.validate(question)
        # no lock here: the models keep their own tokenizers to one thread, and questions asked at the
        # same moment share the reader's pass (qa/batching.py); an update never blocks them
        passages = self._retrieve(question, k, history)
        live = self.live
        about = about_article(question, passages, live.meta_of, live.chunks_of, live.sources_of)
        if about is not None:  # "When was it published?": from the metadata
            return about
        reading = self.reader.read(question, [p.chunk.text for p in passages], early=self.early_stop)
        answer = self.decide(reading, passages, question)
        if answer.abstained or answer.article is None:
            return answer
        return replace(answer, sources=live.sources_of(answer.article))

    @property
    def early_stop(self) -> EarlyStop | None:
        """The reading policy of the settings and the reader's calibration; None = read every passage."""
        return early_stop(self.settings, self.reader.calibration)

    def decide(self, reading: Reading, passages: list[Passage], question: str = "") -> Answer:
        return decide(reading, passages, self.reader.calibration, self.settings.no_answer_threshold,
                      self.settings.aggregate, question)


_default: QA | None = None
_default_lock = threading.Lock()


def answer(question: str, **kwargs) -> Answer:
    """Answer from the default folders (seeds/ and index/, or QA_ARTICLES / QA_INDEX)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = QA()
    return _default.answer(question, **kwargs)
