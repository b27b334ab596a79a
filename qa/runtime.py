"""Where the two models run: PyTorch, or ONNX Runtime with int8 weights (QA_RUNTIME=onnx|torch).

The int8 files come from qa/export.py (exported from the local weights on first use, cached by their
hash). Activation scales are computed over the whole input tensor, so the runtime feeds ONE sequence
per call, unpadded: a window's logits then depend on that window alone (an answer is the same
whatever else is being read at the time), and on a CPU this is also the faster way: batching windows
mostly adds padding, and each window is already a 200-400 row matrix product.

Several sequences run side by side, one core each (Sessions): splitting one small matrix product over
two cores wastes a quarter of the second one, so two windows on two one-thread calls finish sooner than
one after the other on a two-thread call (2026-11-30, 2-core Xeon: 94 against 73 passages/s). A lone
long sequence (an odd window out) takes the all-cores session; a lone short one (a question's
embedding) the one-core session, where it is faster (below 48 tokens). Both give the same bits
(tests/test_runtime.py checks it), so where a window runs never changes an answer.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import ModelLoadError
from .export import model_inputs, onnx_model
from .windows import load_tokenizer, sentence_tokens

log = logging.getLogger(__name__)

RUNTIMES = ("onnx", "torch")
DEFAULT_RUNTIME = "onnx"
# below this many tokens a lone sequence runs faster on one core than on two (2-core Xeon, 2026-11-30:
# 16 tokens 1.6 against 2.0 ms, 48 tokens 4.3 against 4.2, 220 tokens 21.6 against 15.3)
SHORT_SEQUENCE = 48


def resolve_runtime(runtime: str | None = None) -> str:
    """The runtime named, else QA_RUNTIME, else the default; ValueError for an unknown one."""
    name = (runtime or os.environ.get("QA_RUNTIME") or DEFAULT_RUNTIME).strip().lower()
    if name not in RUNTIMES:
        raise ValueError(f"QA_RUNTIME={name!r}: choose one of {', '.join(RUNTIMES)}")
    return name


def threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _session(path: Path, kind: str, cores: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cores
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle workers sleep instead of spinning: on a busy 2-core machine a spinning pool steals the
    # core its own next run (or the tokenizer) needs; measured 2x faster per question under load
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_session(source: Path, kind: str, cache: str | Path | None = None, cores: Sequence[int] = (0,)) -> list:
    """ONNX Runtime sessions for the model in `source`, one per entry of `cores` (threads each; 0 = every
    core); a file that will not load is rebuilt once."""
    counts = [c or threads() for c in cores]
    path = onnx_model(source, kind, cache)
    try:
        return [_session(path, kind, c) for c in counts]
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf kinds
        log.warning("the exported %s model %s does not load (%s): rebuilding it", kind, path, err)
        path.with_name("model.onnx.sha256").unlink(missing_ok=True)
        path = onnx_model(source, kind, cache)
        try:
            return [_session(path, kind, c) for c in counts]
        except Exception as err2:
            raise ModelLoadError(f"the exported {kind} model {path} does not load: {err2}") from err2


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _side_by_side() -> ThreadPoolExecutor:
    """One worker per core, shared by every model of the process (they take turns per sequence)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(threads(), thread_name_prefix="qa-onnx")
        return _pool


class Sessions:
    """One model loaded twice: `wide` spreads one sequence over every core, `narrow` runs on one core
    and is called from several threads at once (see the module's note)."""

    def __init__(self, source: Path, kind: str, cache: str | Path | None = None):
        self.cores = threads()
        if self.cores > 1:
            self.wide, self.narrow = load_session(source, kind, cache, (0, 1))
        else:
            self.wide = self.narrow = load_session(source, kind, cache)[0]

    def run_each(self, feeds: Sequence[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        """The outputs of every feed, in order. Odd one out first on all cores (the longest, so the
        side-by-side rounds that follow are even), then the rest `cores` at a time."""
        if self.cores == 1:
            return [self.wide.run(None, f) for f in feeds]
        out: list = [None] * len(feeds)
        order = sorted(range(len(feeds)), key=lambda i: -feeds[i]["input_ids"].shape[1])
        alone = order[: len(feeds) % self.cores]
        for i in alone:  # a short one runs faster on one core: the second would mostly wait for it
            short = feeds[i]["input_ids"].shape[1] < SHORT_SEQUENCE
            out[i] = (self.narrow if short else self.wide).run(None, feeds[i])
        rest = order[len(alone):]
        shares = [rest[k :: self.cores] for k in range(min(self.cores, len(rest)))]  # longest first, round-robin

        def run_share(share: list[int]) -> None:
            for i in share:
                out[i] = self.narrow.run(None, feeds[i])

        for done in [_side_by_side().submit(run_share, share) for share in shares]:
            done.result()  # re-raises a worker's error here
        return out


class OnnxReader:
    """Start/end logits, one window per call (see the module's note on why one)."""

    row_independent = True  # a window's result never depends on the others read with it

    def __init__(self, source: Path, cache: str | Path | None = None):
        self.sessions = Sessions(source, "reader", cache)

    def logits(self, windows) -> tuple[list[np.ndarray], list[np.ndarray]]:
        outputs = self.sessions.run_each([model_inputs(w.input_ids, w.token_type_ids) for w in windows])
        return [s[0] for s, _ in outputs], [e[0] for _, e in outputs]


class TorchReader:
    """The reference: fp32 PyTorch, windows batched by length (padding makes results batch-dependent)."""

    row_independent = False

    def __init__(self, model, pad_id: int, batch_size: int):
        self.model, self.pad_id, self.batch_size = model, pad_id, batch_size

    def logits(self, windows) -> tuple[list[np.ndarray], list[np.ndarray]]:
        import torch

        from .windows import collate

        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        starts: list = [None] * len(windows)
        ends: list = [None] * len(windows)
        with torch.inference_mode():
            for lo in range(0, len(order), self.batch_size):
                batch = order[lo : lo + self.batch_size]
                out = self.model(**collate([windows[i] for i in batch], self.pad_id))
                s, e = out.start_logits.float().numpy(), out.end_logits.float().numpy()
                for row, i in enumerate(batch):
                    n = len(windows[i])
                    starts[i], ends[i] = s[row, :n], e[row, :n]
        return starts, ends


class OnnxEncoder:
    """Sentence embeddings (mean pooling + L2 norm, as sentence-transformers' all-MiniLM-L6-v2 does),
    one text per call for the same reason as the reader."""

    def __init__(self, source: Path, cache: str | Path | None = None):
        self.tokenizer = load_tokenizer(source)
        self.max_length = sentence_max_length(source)
        self.sessions = Sessions(source, "embedder", cache)
        self.dim = int(json.loads((source / "config.json").read_text())["hidden_size"])

    def tokenize(self, texts: list[str]) -> list[tuple[list[int], list[int]]]:
        """Token and type ids per text (the caller keeps two threads off the tokenizer at once)."""
        return sentence_tokens(self.tokenizer, texts, self.max_length)

    def run(self, tokens: list[tuple[list[int], list[int]]]) -> np.ndarray:
        out = np.zeros((len(tokens), self.dim), dtype=np.float32)
        hidden = self.sessions.run_each([model_inputs(ids, types) for ids, types in tokens])
        for i, (states,) in enumerate(hidden):
            v = states[0].mean(axis=0)  # no padding: a plain mean
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out


def sentence_max_length(folder: Path) -> int:
    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


def onnx_embedder_supported(folder: Path) -> bool:
    """The ONNX path reimplements one sentence-transformers layout: Transformer -> mean pooling -> Normalize."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, KeyError, ValueError):
        return False
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode") and k != "pooling_mode_mean_tokens")
    return modules == ["Transformer", "Pooling", "Normalize"] and bool(mean_only)
