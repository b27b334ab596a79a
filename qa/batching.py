"""Questions asked at the same time share the reader: one pass over all their windows.

No background thread: the first caller to find the reader idle becomes the leader, reads every
question waiting at that moment in one `read_many` call (one tokenizer call, one model loop, one
decoding pass), hands each caller its reading, and goes on while more arrive. Meanwhile the others
wait on their own request. A leader is never holding anything a follower needs to make progress,
and an error reaches exactly the callers whose batch it broke.

Answers are identical to answering alone: with the ONNX runtime a window's logits depend on that
window only (qa/runtime.py), and windows never mix across questions in decoding. With the torch
runtime, padding would make a window's logits depend on its batch-mates, so there the leader reads
one question per pass (questions still stop queueing behind the index lock).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class _Request:
    question: str
    contexts: Sequence[str]
    n_best: int
    done: threading.Event = field(default_factory=threading.Event)
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

    def read(self, question: str, contexts: Sequence[str], n_best: int = 20):
        request = _Request(question, list(contexts), n_best)
        with self._lock:
            self._pending.append(request)
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self) -> None:
        while True:
            limit = self.max_questions if self._shareable() else 1
            with self._lock:
                if not self._pending:
                    self._leading = False
                    return
                batch, self._pending = self._pending[:limit], self._pending[limit:]
            self._run(batch)

    def _alone(self, r: _Request):
        try:
            return self.reader.read_many([r.question], [r.contexts], r.n_best)[0]
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
            groups: dict[int, list[_Request]] = {}  # read_many takes one n_best for all
            for r in batch:
                groups.setdefault(r.n_best, []).append(r)
            for n_best, group in groups.items():
                try:
                    readings = self.reader.read_many([r.question for r in group], [r.contexts for r in group], n_best)
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
                r.done.set()
