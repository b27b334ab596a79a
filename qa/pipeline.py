"""The façade: QA ties articles, index, retrieval and reading together; answer() is the shortcut."""
from __future__ import annotations

import hashlib
import logging
import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from .aggregate import candidates, combined_score, sigmoid
from .articles import load_articles, parse_article, safe_name
from .config import Settings
from .embedding import Embedder
from .errors import ArticleRejected, IndexCorrupt, InvalidQuestion, NoArticles, QAError
from .reader import Calibration, Reader, Reading
from .retrieval import Passage, Retriever
from .store import StoredIndex, UpdateReport, load_index, update_index

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
    alternatives: tuple["Answer", ...] = field(default_factory=tuple)

    @property
    def abstained(self) -> bool:
        return self.text is None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("text", "score", "article", "title", "start", "end", "context", "context_start")}
        out["alternatives"] = [a.to_dict() for a in self.alternatives]
        return out


def refresh_index(settings: Settings, embedder: Embedder, full: bool = False,
                  progress: bool = False) -> tuple[StoredIndex, UpdateReport]:
    """Read the articles folder and update the index under settings.index to match it."""
    articles, problems = load_articles(settings.articles)
    if not articles:
        detail = f" ({len(problems)} unreadable file(s): {', '.join(p.source for p in problems)})" if problems else ""
        raise NoArticles(f"no readable .txt, .md or .html article in {settings.articles}{detail}")
    return update_index(
        settings.index, articles, embedder, settings.chunk_chars, settings.chunk_overlap, settings.hnsw_above,
        full=full, skipped=[p.source for p in problems], progress=progress, batch_size=settings.batch_size,
    )


class QA:
    """Question answering over a folder of articles.

    >>> qa = QA(articles="seeds", index="index")
    >>> qa.answer("Who directed the film?").text
    'Kang Yun-sung'
    """

    def __init__(self, articles: str | Path | None = None, index: str | Path | None = None,
                 settings: Settings | None = None, auto_update: bool | None = None,
                 embedder: Embedder | None = None, reader: Reader | None = None):
        base = settings or Settings.from_env()
        self.settings = replace(
            base,
            articles=Path(articles) if articles is not None else base.articles,
            index=Path(index) if index is not None else base.index,
            auto_update=base.auto_update if auto_update is None else auto_update,
        )
        s = self.settings
        # models are loaded lazily, once; pass them in to share them between QA objects
        self.embedder = embedder or Embedder(s.embedder)
        self.reader = reader or Reader(s.reader_path, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size)
        self._lock = threading.RLock()
        self._stored: StoredIndex | None = None
        self._retriever: Retriever | None = None
        self.last_report: UpdateReport | None = None
        if s.auto_update:
            self.update()
        else:
            self._load_existing()

    # -- index -------------------------------------------------------------------------------
    def update(self, full: bool = False, progress: bool = False) -> UpdateReport:
        """Bring the index in line with the articles folder; re-embeds only what changed."""
        with self._lock:
            stored, report = refresh_index(self.settings, self.embedder, full=full, progress=progress)
            if report.modified or self._stored is None:
                self._use(stored)
            self.last_report = report
        log.info("index: %s", report.summary())
        return report

    rebuild = update

    def add_article(self, filename: str, data: bytes) -> str:
        """Store an article in the articles folder under a safe new name (never overwriting a file)
        and index it. Returns its id. ArticleRejected says why a file is refused."""
        if len(data) > self.settings.max_article_bytes:
            raise ArticleRejected(f"{filename}: larger than the limit of {self.settings.max_article_bytes:,} bytes")
        try:
            name = safe_name(filename)
            parse_article(data, Path(name).suffix, name, filename)  # the checks the index applies
        except ValueError as err:
            raise ArticleRejected(f"{filename}: {err}") from None
        folder = self.settings.articles.resolve()
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            for article_id, meta in self.articles.items():
                if meta["sha256"] == digest:
                    raise ArticleRejected(f"{filename}: already indexed as {article_id}")
            stem, suffix = Path(name).stem, Path(name).suffix
            for n in range(1, 1000):
                target = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
                try:
                    with open(target, "xb") as out:  # "x": fails rather than overwrite
                        out.write(data)
                    break
                except FileExistsError:
                    continue
            else:
                raise ArticleRejected(f"{filename}: too many articles named {name}")
            try:
                self.update()
            except QAError:
                target.unlink(missing_ok=True)
                raise
        return target.relative_to(folder).as_posix()

    def remove_article(self, article_id: str) -> None:
        """Delete an indexed article's file and drop it from the index. The last article stays:
        an index needs at least one."""
        folder = self.settings.articles.resolve()
        with self._lock:
            if article_id not in self.articles:
                raise ArticleRejected(f"no indexed article {article_id!r}")
            path = (folder / article_id).resolve()
            if folder not in path.parents:  # ids come from the index, but never trust a path blindly
                raise ArticleRejected(f"{article_id!r} is not inside the articles folder")
            if len(self.articles) <= 1:
                raise ArticleRejected("the last article cannot be removed: the index needs at least one")
            path.unlink(missing_ok=True)
            self.update()

    def _load_existing(self) -> None:
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

    def _use(self, stored: StoredIndex) -> None:
        self._stored = stored
        self._retriever = Retriever(stored, self.embedder)

    @property
    def articles(self) -> dict[str, dict]:
        """The indexed articles: id -> title, source, published, sha256, chunks."""
        return dict(self._stored.manifest["articles"])

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
        with self._lock:
            retriever = self._retriever
        return retriever.search(query, k or self.settings.top_k)

    def answer(self, question: str, k: int | None = None, history: tuple[str, ...] | list[str] = ()) -> Answer:
        """The answer to `question` from the articles; `history`: the conversation's earlier questions."""
        question = self.validate(question)
        # one question at a time: the fast tokenizers must not be shared between threads, and on a
        # small CPU parallel inference would not be faster anyway
        with self._lock:
            passages = self.retrieve(question, k, tuple(history))
            reading = self.reader.read(question, [p.chunk.text for p in passages])
        return self.decide(reading, passages)

    def decide(self, reading: Reading, passages: list[Passage]) -> Answer:
        return decide(reading, passages, self.reader.calibration, self.settings.no_answer_threshold)


def decide(reading: Reading, passages: list[Passage], calibration: Calibration, threshold: float | None = None,
           aggregate: bool = True) -> Answer:
    """Spans -> one answer per distinct text, ranked, with alternatives; or an abstention.

    With the fitted aggregation in the calibration (and `aggregate`), a candidate's score is the
    log-odds that it is right from its span gap, how many places support it and the retrieval
    evidence (qa/aggregate.py); otherwise the span gap alone. `threshold` None = the calibrated one."""
    weights = calibration.combine if aggregate else ()
    found = candidates(reading, passages)
    if weights:
        scored = sorted(((combined_score(c.features, weights), c) for c in found), key=lambda x: -x[0])
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


_default: QA | None = None
_default_lock = threading.Lock()


def answer(question: str, **kwargs) -> Answer:
    """Answer from the default folders (seeds/ and index/, or QA_ARTICLES / QA_INDEX)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = QA()
    return _default.answer(question, **kwargs)
