"""Questions asked at the same time share the reader: one pass over all their windows.

No background thread: the first caller to find the reader idle becomes the leader, reads every
question waiting at that moment in one `read_many` call (one tokenizer call, one model loop, one
decoding pass) and hands each caller its reading; once its own question is answered it hands the
lead to the oldest one still waiting. Meanwhile the others wait on their own request. An error
reaches only the caller whose question caused it.

Answers are identical to answering alone: with the ONNX runtime a window's logits depend on that
window only (qa/runtime.py), and windows never mix across questions in decoding. With the torch
runtime, padding would make a window's logits depend on its batch-mates, so there the leader reads
one question per pass (questions still stop queueing behind the index lock).
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class _Request:
    question: str
    contexts: Sequence[str]
    n_best: int
    early: object = None  # reader.EarlyStop or None
    wake: threading.Event = field(default_factory=threading.Event)  # set once: finished, or made leader
    finished: bool = False
    leader: bool = False
    result: object = None
    error: BaseException | None = None


class ReadBatcher:
    def __init__(self, reader, max_questions: int = 32):
        self.reader = reader
        self.max_questions = max_questions   # per pass: bounds a leader's turn and the memory of one pass
        self._lock = threading.Lock()        # guards _pending and _leading only; never held while reading
        self._pending: list[_Request] = []
        self._leading = False
        self.passes = 0                      # read_many calls made, and questions read by them (for tests/bench)
        self.questions = 0

    def read(self, question: str, contexts: Sequence[str], n_best: int = 20, early=None):
        request = _Request(question, list(contexts), n_best, early)
        with self._lock:
            self._pending.append(request)
            if not self._leading:
                self._leading = request.leader = True
        while not request.finished:
            if request.leader:
                self._lead(request)
            else:
                request.wake.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self, me: _Request) -> None:
        """Read the oldest waiting questions, pass after pass, until `me` is answered; then hand the
        lead to the oldest question still waiting, so no caller reads for others indefinitely."""
        while not me.finished:
            limit = self.max_questions if self._shareable() else 1
            with self._lock:
                batch, self._pending = self._pending[:limit], self._pending[limit:]
            self._run(batch)
        with self._lock:
            me.leader = False
            if self._pending:
                successor = self._pending[0]
                successor.leader = True
                successor.wake.set()
            else:
                self._leading = False

    def _alone(self, r: _Request):
        try:
            return self.reader.read_many([r.question], [r.contexts], r.n_best, r.early)[0]
        except Exception as err:  # noqa: BLE001 - this caller's error
            r.error = err
            return None

    def _shareable(self) -> bool:
        try:
            return bool(self.reader.session.row_independent)
        except Exception:  # noqa: BLE001 - a model that fails to load: read_many raises it to the caller
            return False

    def _run(self, batch: list[_Request]) -> None:
        try:
            groups: dict[tuple, list[_Request]] = {}  # read_many takes one n_best and one early stop for all
            for r in batch:
                groups.setdefault((r.n_best, r.early), []).append(r)
            for (n_best, early), group in groups.items():
                try:
                    readings = self.reader.read_many([r.question for r in group], [r.contexts for r in group],
                                                     n_best, early)
                except Exception:
                    if len(group) == 1:
                        raise
                    # one bad request must not fail the others: read each alone, errors go to their own caller
                    readings = [self._alone(r) for r in group]
                for r, reading in zip(group, readings):
                    r.result = reading
                self.passes += 1
                self.questions += len(group)
        except BaseException as err:  # noqa: BLE001 - handed to the callers of this pass, then the leader goes on
            for r in batch:
                if r.result is None and r.error is None:
                    r.error = err
        finally:
            for r in batch:
                r.finished = True
                if not r.leader:
                    r.wake.set()
