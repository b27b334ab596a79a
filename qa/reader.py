"""Extractive reading: windows -> start/end logits -> n-best spans with character offsets.

Scores are raw logit sums (start + end), never a softmax inside one window, so spans from
different windows and passages compare directly; the no-answer score is the CLS position's.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from .batching import ReadBatcher
from .errors import ModelLoadError
from .modelref import check_folder, hub_kwargs, looks_like_path
from .runtime import OnnxReader, TorchReader, resolve_runtime
from .windows import Window, load_tokenizer, make_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Span:
    context: int        # which of the contexts given to `read` it lies in
    start: int          # character offsets into that context
    end: int
    text: str
    score: float        # start logit + end logit
    null_score: float   # no-answer score (CLS start + end logits) of the window it was found in


@dataclass(frozen=True)
class Reading:
    spans: list[Span]   # n-best over all windows, best first, one per distinct (context, start, end)
    null_score: float   # the lowest no-answer score over all windows: the best window's doubt

    @property
    def gap(self) -> float:
        """How much the best span beats "no answer"; abstain when it is below the threshold."""
        return self.spans[0].score - self.null_score if self.spans else -math.inf


@dataclass(frozen=True)
class Calibration:
    """Stored beside the weights (calibration.json): it belongs to the model that produced the scores."""

    no_answer_threshold: float = 0.0
    platt_a: float = 1.0   # confidence = sigmoid(a * gap + b)
    platt_b: float = 0.0
    # answer aggregation (qa/aggregate.py): fitted weights of its features then the intercept, and
    # the abstention threshold on that combined log-odds; () = rank by the span gap alone
    combine: tuple[float, ...] = ()
    combine_threshold: float = 0.0
    # early stop (EarlyStop): the span score above which the first passages' answer is final; inf = read all
    stop_score: float = math.inf
    # how much a question word the answer's passage lacks costs (qa/support.py): the gap is judged as
    # gap - unstated_weight * unstated share; 0 = by the gap alone (calibrations before 2026-12-02)
    unstated_weight: float = 0.0

    def judged(self, gap: float, unstated: float) -> float:
        """The score the threshold and the confidence apply to."""
        return gap - self.unstated_weight * unstated

    def confidence(self, gap: float) -> float:
        if gap == -math.inf:
            return 0.0
        return 1.0 / (1.0 + math.exp(-(self.platt_a * gap + self.platt_b)))


@dataclass(frozen=True)
class EarlyStop:
    """Read the first `first` passages; the others only when the best span found there scores below
    `score` (start + end logit) or beats "no answer" by less than `min_gap` (the abstention threshold).
    Reading more can only raise the best span and lower the no-answer score, so a stop never changes
    whether the gap clears the threshold, only (rarely) which answer; with the cost of unstated
    question words (Calibration.judged) a later passage's better span could still have been judged
    differently, as rarely. The span's own score, not its gap, says
    whether a later passage could beat it: a distractor's gap is often high only because its no-answer
    score is low (bench/read_policy.py)."""

    first: int
    score: float
    min_gap: float

    def done(self, reading: Reading) -> bool:
        return bool(reading.spans) and reading.spans[0].score >= self.score and reading.gap >= self.min_gap


class _Found:
    """Spans and no-answer scores gathered per question while its passages are read."""

    def __init__(self, n: int):
        self.spans: list[list[Span]] = [[] for _ in range(n)]
        self.nulls = [math.inf] * n

    def reading(self, qi: int, n_best: int) -> Reading:
        best: dict[tuple[int, int, int], Span] = {}
        for sp in sorted(self.spans[qi], key=lambda x: -x.score):
            best.setdefault((sp.context, sp.start, sp.end), sp)  # same span seen in two windows: keep once
        null = self.nulls[qi]
        return Reading(list(best.values())[:n_best], null if null < math.inf else 0.0)


def merge_readings(readings: Sequence[Reading], n_best: int = 20) -> Reading:
    """What reading these contexts together gives, from each read alone (context i <- readings[i]).
    Exact where a window's logits depend on that window only (the ONNX runtime)."""
    spans = sorted((replace(sp, context=i) for i, r in enumerate(readings) for sp in r.spans), key=lambda x: -x.score)
    return Reading(spans[:n_best], min((r.null_score for r in readings), default=0.0))


def passages_needed(readings: Sequence[Reading], early: EarlyStop | None) -> int:
    """How many of these passages (each read alone, in retrieval order) `early` has the reader read:
    the rule of Reader.read_many, replayed (evaluation, calibration)."""
    if early is None or early.first <= 0 or early.first >= len(readings):
        return len(readings)
    return early.first if early.done(merge_readings(readings[: early.first])) else len(readings)


def _inside_word(text: str, boundary: int) -> bool:
    """True when the character boundary falls between two letters or digits of one word."""
    return text[boundary - 1].isalnum() and text[boundary].isalnum()


class Reader:
    def __init__(self, model: str, max_length: int = 384, stride: int = 128, max_answer_tokens: int = 30,
                 batch_size: int = 32, runtime: str | None = None, cache: str | None = None):
        self.ref = model
        # onnx (int8, the default) or torch (fp32); a hub id always runs on torch: the export needs local weights
        self.runtime = resolve_runtime(runtime) if looks_like_path(model) else "torch"
        self.cache = cache  # where exported ONNX files live (None: QA_RUNTIME_CACHE or ~/.cache/article-qa)
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.batch_size = batch_size
        self._busy = threading.RLock()
        self.queue = ReadBatcher(self)  # read(): questions asked at the same moment share one pass

    @cached_property
    def _loaded(self):
        import torch  # here, not at the top: the default ONNX runtime never needs it
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        ref = self.ref
        options = {}
        if looks_like_path(ref):
            path = check_folder(ref, "reader model")
            if not (path / "config.json").exists():
                raise ModelLoadError(f"reader model folder {path} has no config.json")
            if not any(path.glob("*.safetensors")) and not (path / "pytorch_model.bin").exists():
                raise ModelLoadError(f"reader model folder {path} has no weights (*.safetensors)")
        else:
            options = hub_kwargs(ref, "reader model")  # offline: fails in seconds, not after minutes of retries
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref, **options)
            model = AutoModelForQuestionAnswering.from_pretrained(ref, dtype=torch.float32, **options)
        except Exception as err:  # transformers raises OSError, ValueError, safetensors errors...
            raise ModelLoadError(f"could not load the reader model {ref!r}: {err}") from err
        model.eval()
        return tokenizer, model

    @property
    def tokenizer(self):
        return self._tokenizer if self.runtime == "onnx" else self._loaded[0]

    @cached_property
    def _tokenizer(self):
        """The tokenizer alone (the `tokenizers` library, not transformers): the ONNX runtime never needs
        the PyTorch model in memory, nor torch imported."""
        path = check_folder(self.ref, "reader model")
        try:
            return load_tokenizer(path)
        except Exception as err:  # OSError, ValueError, JSON errors...
            raise ModelLoadError(f"could not load the reader tokenizer from {path}: {err}") from err

    @cached_property
    def session(self):
        """What turns windows into start/end logits (qa/runtime.py)."""
        if self.runtime == "onnx":
            return OnnxReader(Path(self.ref).expanduser(), self.cache)
        return TorchReader(self.model, self.tokenizer.pad_token_id, self.batch_size)

    def load(self) -> Reader:
        """Load (and on first use export) the model now rather than at the first question."""
        _ = self.tokenizer, self.session
        return self

    @property
    def model(self):
        return self._loaded[1]

    @cached_property
    def calibration(self) -> Calibration:
        path = Path(self.ref).expanduser() / "calibration.json"
        if path.exists():
            fields = json.loads(path.read_text())
            known = {k: fields[k] for k in ("no_answer_threshold", "platt_a", "platt_b", "combine_threshold", "stop_score",
                                                "unstated_weight")
                     if k in fields and fields[k] is not None}
            return Calibration(**known, combine=tuple(fields.get("combine", ())))
        return Calibration()

    def read(self, question: str, contexts: Sequence[str], n_best: int = 20, early: EarlyStop | None = None) -> Reading:
        """One question; callers on other threads at the same moment share the pass (qa/batching.py)."""
        return self.queue.read(question, contexts, n_best, early)

    def read_many(self, questions: Sequence[str], contexts: Sequence[Sequence[str]], n_best: int = 20,
                  early: EarlyStop | None = None) -> list[Reading]:
        """Read each question against its contexts in one pass (one thread at a time: the fast
        tokenizer must not be shared between threads). `early`: read the first contexts, the rest only
        for the questions still in doubt."""
        with self._busy:
            found = _Found(len(questions))
            first = early.first if early is not None and early.first > 0 else None
            self._read_pairs(questions, contexts, found, n_best,
                             [(qi, ci) for qi, ctxs in enumerate(contexts) for ci in range(len(ctxs))
                              if first is None or ci < first])
            if first is not None:
                doubtful = [qi for qi, ctxs in enumerate(contexts)
                            if len(ctxs) > first and not early.done(found.reading(qi, n_best))]
                self._read_pairs(questions, contexts, found, n_best,
                                 [(qi, ci) for qi in doubtful for ci in range(first, len(contexts[qi]))])
            return [found.reading(qi, n_best) for qi in range(len(questions))]

    def _read_pairs(self, questions: Sequence[str], contexts: Sequence[Sequence[str]], found: _Found, n_best: int,
                    pairs: list[tuple[int, int]]) -> None:
        """Read the (question, context) pairs given, all windows in one call, into `found`."""
        if not pairs:
            return
        windows = make_windows(self.tokenizer, [questions[qi] for qi, _ in pairs],
                               [contexts[qi][ci] for qi, ci in pairs], self.max_length, self.stride)
        starts, ends = self._logits(windows)
        for w, s, e in zip(windows, starts, ends):
            qi, ci = pairs[w.example]
            null = float(s[0] + e[0])
            found.nulls[qi] = min(found.nulls[qi], null)
            found.spans[qi] += self._best_spans(w, s, e, ci, contexts[qi][ci], null, n_best)

    def _logits(self, windows: list[Window]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Start and end logits per window, from the runtime's session."""
        if not windows:
            return [], []
        return self.session.logits(windows)

    def _best_spans(self, w: Window, s: np.ndarray, e: np.ndarray, context_index: int, context: str,
                    null: float, n_best: int) -> list[Span]:
        first, last = w.context_range
        # A span touching a window edge where the context goes on may be an answer cut in two; the
        # stride overlap puts the whole of it inside the neighbouring window, so take it from there.
        cut_left = w.offsets[first][0] > 0
        cut_right = context[w.offsets[last][1]:].strip() != ""
        cs, ce = s[first : last + 1], e[first : last + 1]
        edge = last - first
        top = 20
        # a word piece ("##ve" of "Sve Lindahl") can neither start nor end an answer: whole words only
        starts = np.array([a for a in np.argsort(-cs)[:top] if not (
            w.offsets[first + a][0] > 0 and _inside_word(context, w.offsets[first + a][0]))], dtype=np.int64)
        ends = np.array([b for b in np.argsort(-ce)[:top] if not (
            w.offsets[first + b][1] < len(context) and _inside_word(context, w.offsets[first + b][1]))], dtype=np.int64)
        if not starts.size or not ends.size:
            return []
        a, b = starts[:, None], ends[None, :]
        valid = (b >= a) & (b - a + 1 <= self.max_answer_tokens)
        if cut_left:
            valid &= a != 0
        if cut_right:
            valid &= b != edge
        scores = (cs[starts][:, None] + ce[ends][None, :]).astype(np.float64)
        flat = np.flatnonzero(valid.ravel())  # start-major, as candidates were always listed
        best = flat[np.argsort(-scores.ravel()[flat], kind="stable")[:n_best]]
        found = []
        for i in best:
            a_, b_ = int(starts[i // ends.size]), int(ends[i % ends.size])
            char_start, char_end = w.offsets[first + a_][0], w.offsets[first + b_][1]
            found.append(Span(context_index, char_start, char_end, context[char_start:char_end],
                              float(cs[a_] + ce[b_]), null))
        return found
