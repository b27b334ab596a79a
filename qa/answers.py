"""Answering: the Answer a question gets, decide() from the reader's spans, the early-stop policy,
and answers from an article's own metadata ("When was it published?")."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .aggregate import Candidate, candidates, combined_score, sigmoid
from .bounds import name_bounds
from .chunking import Chunk
from .config import Settings
from .kinds import Asked, asked, fits, traits
from .lists import asks_for_several, items, same_shape
from .metadata import asked_field, fact
from .reader import Calibration, EarlyStop, Reading
from .reasons import why
from .retrieval import Passage
from .support import unstated

# Kind agreement: the best span of the kind the question asks for (qa/kinds.py) is the answer when its
# span gap is at most this far below the best span's; otherwise it abstains. Chosen on Wikinews dev
# reports 1-16 (docs/how-it-works.md).
KIND_MARGIN = 6.0
# A list question whose answer stands in no list: the other spans of the same shape whose gap is at most
# this far below the answer's are its other items ("Which relatives are quoted?": two people quoted in
# different sentences). Wikinews dev reports 1-16 gave the same items from 3 to 6 (2 lost one); the middle.
LIST_MARGIN = 4.0
MAX_ITEMS = 8


@dataclass(frozen=True)
class Item:
    """One item of a list answer, with its character offsets into the article."""

    text: str
    start: int
    end: int


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
    # a question asking for several things ("Who stars in it?") whose answer stands in a list: every item
    # of the list, the answer's own among them; () for any other answer
    items: tuple[Item, ...] = ()
    reason: str | None = None   # with no answer: what was found nearest, and why it was not given

    @property
    def abstained(self) -> bool:
        return self.text is None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("text", "score", "article", "title", "start", "end", "context", "context_start")}
        out["alternatives"] = [a.to_dict() for a in self.alternatives]
        out["sources"] = list(self.sources)
        out["items"] = [{"text": i.text, "start": i.start, "end": i.end} for i in self.items]
        out["reason"] = self.reason
        return out


def passage_unstated(question: str, passage: Passage) -> float:
    """qa/support.py's share of the question's words that the passage (with its headline) lacks."""
    return unstated(question, _passage_text(passage)) if question else 0.0


def top_unstated(question: str, reading: Reading, passages: list[Passage]) -> float:
    """passage_unstated of the passage the best span comes from (0 with no span)."""
    return passage_unstated(question, passages[reading.spans[0].context]) if reading.spans else 0.0


def decide(reading: Reading, passages: list[Passage], calibration: Calibration, threshold: float | None = None,
           aggregate: bool = False, question: str = "") -> Answer:
    """Spans -> one answer per distinct text, best span gap first, with alternatives; or an abstention.

    With the fitted aggregation in the calibration (and `aggregate`), each answer's confidence is
    the fitted probability that it is right, from its span gap, how many places support it and the
    retrieval evidence (qa/aggregate.py), and the top answer is abstained on below the calibrated
    log-odds; otherwise confidence and abstention come from the span gap, lowered by the calibrated
    cost of the question's words its passage lacks (Calibration.judged; needs `question`).
    `threshold` None = the calibrated one.

    With `question`, the answer is the best span of the kind it asks for (qa/kinds.py: a number, a
    sum of money, a time...) when that span's gap is within KIND_MARGIN of the best span's, and an
    abstention otherwise; a question asking for several things gets the items of the list its answer
    stands in (qa/lists.py); an abstention says why in `reason` (qa/reasons.py)."""
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
        # ranked by the gap (already best first), judged with what the passage does not say
        weight = calibration.unstated_weight if question else 0.0
        shares: dict[int, float] = {}   # per passage: many candidates come from the same one
        for c in found if weight else ():
            if c.span.context not in shares:
                shares[c.span.context] = passage_unstated(question, passages[c.span.context])
        scored = [(calibration.judged(c.features[0], shares[c.span.context]) if weight else c.features[0], c)
                  for c in found]
        confidence = calibration.confidence
        threshold = calibration.no_answer_threshold if threshold is None else threshold
        best_score = scored[0][0] if weight and scored else reading.gap
    wanted = asked(question) if question else None
    kinds: dict[int, object] = {}   # the kind of the candidates looked at, no more (it costs a parse each)

    def kind(i: int):
        if i not in kinds:
            kinds[i] = _traits(scored[i][1], passages)
        return kinds[i]

    pick: int | None = 0
    fitting = None
    if wanted is not None and scored:
        # the best span of the asked kind, when its gap is near the best span's
        fitting = next((i for i in range(len(scored)) if fits(wanted, kind(i))), None)
        pick = fitting if fitting is not None and (
            scored[fitting][1].features[0] >= scored[0][1].features[0] - KIND_MARGIN) else None
        if pick is not None and pick > 0:
            best_score = scored[pick][0]
    answers = []
    for score, c in scored:
        chunk = passages[c.span.context].chunk
        answers.append(Answer(
            text=c.span.text, score=confidence(score), article=chunk.article_id, title=passages[c.span.context].title,
            start=chunk.start + c.span.start, end=chunk.start + c.span.end, context=chunk.text, context_start=chunk.start,
        ))
    if not answers or pick is None or best_score < threshold:
        closest = passages[0] if passages else None
        if not answers:
            reason = why(question, None, None, None, None, "", 0.0)
        elif pick is None:   # no span of the asked kind near the best one: say what the best one is
            near = scored[0][1]
            best_score = scored[fitting][0] if fitting is not None else -math.inf
            reason = why(question, wanted, near.span.text, kind(0),
                         scored[fitting][1].span.text if fitting is not None else None,
                         _passage_text(passages[near.span.context]), 0.0, mismatch=True)
        else:                # the best span (of the asked kind) is not sure enough
            near = scored[pick][1]
            reason = why(question, wanted, near.span.text, kind(pick), None,
                         _passage_text(passages[near.span.context]), confidence(best_score))
        return Answer(
            text=None, score=confidence(best_score),
            article=closest.chunk.article_id if closest else None, title=closest.title if closest else None,
            start=None, end=None, context=closest.chunk.text if closest else "",
            context_start=closest.chunk.start if closest else None, alternatives=tuple(answers[:3]), reason=reason,
        )
    chosen = answers[pick]
    if question and asks_for_several(question):
        c = scored[pick][1]
        chunk = passages[c.span.context].chunk
        found = items(chunk.text, c.span.start, c.span.end, question)
        listed = tuple(Item(chunk.text[a:b], chunk.start + a, chunk.start + b) for a, b in found)
        chosen = replace(chosen, items=listed or _separate_items(pick, [c for _, c in scored], answers))
    elif question:
        chosen = _the_name(wanted, chosen)
    return replace(chosen, alternatives=tuple(answers[:pick] + answers[pick + 1 : 4]))


def _the_name(wanted: Asked | None, answer: Answer) -> Answer:
    """The answer cut to the name the question asks for (`wanted`, qa/bounds.py): "opposition Renamo party" -> "Renamo"."""
    a, b = name_bounds(wanted, answer.text)
    if (a, b) == (0, len(answer.text)):
        return answer
    return replace(answer, text=answer.text[a:b], start=answer.start + a, end=answer.start + b)


def _separate_items(pick: int, found: list[Candidate], answers: list[Answer]) -> tuple[Item, ...]:
    """The answer and the other spans of its shape within LIST_MARGIN of its gap, none inside another
    (by place or by words: "Jim Swire" and "UK citizen Jim Swire" are one), the answer first; () when
    there is no other."""
    best = found[pick]
    chosen = [(answers[pick], set(best.key.split()))]   # each item, with its normalised words
    for c, a in zip(found, answers):
        if len(chosen) == MAX_ITEMS or c.features[0] < best.features[0] - LIST_MARGIN:
            break
        if c is best or not same_shape(best.span.text, c.span.text):
            continue
        words = set(c.key.split())
        if any(a.article == b.article and a.start < b.end and b.start < a.end or words <= w or w <= words
               for b, w in chosen):
            continue
        chosen.append((a, words))
    if len(chosen) < 2:
        return ()
    return tuple(Item(a.text, a.start, a.end) for a, _ in chosen)


def _traits(c: Candidate, passages: list[Passage]):
    """The kind of thing a candidate's span is, with a few characters of its passage on either side."""
    text = passages[c.span.context].chunk.text
    return traits(c.span.text, text[max(0, c.span.start - 12) : c.span.start], text[c.span.end : c.span.end + 12])


def _passage_text(passage: Passage) -> str:
    return f"{passage.title or ''}\n{passage.chunk.text}"


def early_stop(settings: Settings, calibration: Calibration) -> EarlyStop | None:
    """The reading policy of the settings and the reader's calibration; None = read every passage.
    Off with the aggregation: its support and rank evidence need every passage read."""
    score = calibration.stop_score if settings.stop_score is None else settings.stop_score
    if settings.read_first <= 0 or settings.aggregate or score == math.inf:
        return None
    threshold = calibration.no_answer_threshold if settings.no_answer_threshold is None else settings.no_answer_threshold
    return EarlyStop(settings.read_first, score, threshold)


def about_article(question: str, passages: list[Passage], meta_of: Callable[[str], dict],
                  chunks_of: Callable[[str], list[Chunk]], sources_of: Callable[[str], tuple[str, ...]]) -> Answer | None:
    """A question about the article itself (its date, author, outlet, URL), answered from the metadata
    of the article the best passage comes from; None for any other question, or when it does not say.

    When the passages come from several articles the question does not say which one it means
    ("When was the article published?" over five articles): the answer is that article's date, but
    its confidence is the share of the retrieved passages that come from it, not 1.0."""
    asked = asked_field(question)
    if asked is None or not passages:
        return None
    article_id, title = passages[0].chunk.article_id, passages[0].title
    found = fact(asked, article_id, title, meta_of(article_id), [(c.start, c.text) for c in chunks_of(article_id)])
    if found is None:
        return None
    articles_read = {p.chunk.article_id for p in passages}
    score = 1.0 if len(articles_read) == 1 else sum(p.chunk.article_id == article_id for p in passages) / len(passages)
    return Answer(text=found.value, score=score, article=article_id, title=title, start=found.start, end=found.end,
                  context=found.context, context_start=found.context_start, sources=sources_of(article_id))
