"""Where the two models run: PyTorch, or ONNX Runtime with int8 weights (QA_RUNTIME=onnx|torch).

The ONNX files are never shipped nor downloaded: they are exported from the local weights on first
use into a cache keyed by the weights' SHA-256 (QA_RUNTIME_CACHE, default ~/.cache/article-qa), so
a retrained reader gets a new export by itself. A missing or corrupt file is rebuilt; a build that
fails raises ModelLoadError naming the file.

The recipe: export with the eager attention (which ONNX Runtime's BERT optimiser fuses into one
Attention node per layer), fuse, then quantise MatMul/Attention weights to int8 per channel with
dynamic activations (a few sensitive matrices stay fp32, see _optimise_and_quantise). Activation scales are computed over the whole input tensor, so the runtime
feeds ONE sequence per call, unpadded: a window's logits then depend on that window alone (an answer
is the same whatever else is being read at the time), and on a CPU this is also the faster way:
batching windows mostly adds padding, and each window is already a 200-400 row matrix product.

Several sequences run side by side, one core each (Sessions): splitting one small matrix product over
two cores wastes a quarter of the second one, so two windows on two one-thread calls finish sooner than
one after the other on a two-thread call (2026-11-30, 2-core Xeon: 94 against 73 passages/s). A lone
sequence (a question's embedding, an odd window out) takes the all-cores session. Both give the same
bits (tests/test_runtime.py checks it), so where a window runs never changes an answer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelLoadError

log = logging.getLogger(__name__)

RUNTIMES = ("onnx", "torch")
DEFAULT_RUNTIME = "onnx"
# bump when the export/optimise/quantise recipe changes: old cache entries are then ignored
RECIPE = "4"
_build_lock = threading.Lock()  # one export at a time per process (exports are CPU- and memory-heavy)


def resolve_runtime(runtime: str | None = None) -> str:
    """The runtime named, else QA_RUNTIME, else the default; ValueError for an unknown one."""
    name = (runtime or os.environ.get("QA_RUNTIME") or DEFAULT_RUNTIME).strip().lower()
    if name not in RUNTIMES:
        raise ValueError(f"QA_RUNTIME={name!r}: choose one of {', '.join(RUNTIMES)}")
    return name


def cache_root(cache: str | Path | None = None) -> Path:
    """QA_RUNTIME_CACHE, else $XDG_CACHE_HOME/article-qa, else ~/.cache/article-qa."""
    if cache:
        return Path(cache).expanduser()
    if os.environ.get("QA_RUNTIME_CACHE"):
        return Path(os.environ["QA_RUNTIME_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "article-qa"


def threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_key(folder: Path, kind: str) -> str:
    """SHA-256 over the recipe, the ONNX Runtime version and every file that shapes the exported graph."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ModelLoadError(f"{kind} model folder {folder} has no weights (*.safetensors)")
    import onnxruntime

    h = hashlib.sha256(f"{kind}|{RECIPE}|{onnxruntime.__version__}".encode())
    for f in [folder / "config.json", *files]:
        if not f.exists():
            raise ModelLoadError(f"{kind} model folder {folder} has no {f.name}")
        h.update(f.name.encode())
        h.update(_sha256(f).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Export:
    """One cache entry: model.onnx and, beside it, its SHA-256 (written last: no sidecar = unfinished)."""

    folder: Path

    @property
    def model(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def digest(self) -> Path:
        return self.folder / "model.onnx.sha256"

    def valid(self) -> bool:
        try:
            return self.digest.read_text().strip() == _sha256(self.model)
        except OSError:
            return False


def _export(source: Path, kind: str, target: Path) -> None:
    """Export `source` (a local model folder) to int8 ONNX at target/model.onnx."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForQuestionAnswering

    config = AutoConfig.from_pretrained(source)
    cls = AutoModelForQuestionAnswering if kind == "reader" else AutoModel
    # eager attention exports as plain MatMul/Softmax, the pattern the BERT optimiser fuses
    model = cls.from_pretrained(source, dtype=torch.float32, attn_implementation="eager").eval()
    names = ["start_logits", "end_logits"] if kind == "reader" else ["last_hidden_state"]
    ids = torch.ones((1, 16), dtype=torch.long)
    work = target / "work"
    work.mkdir()
    dynamic = {n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids", *names]}

    class Outputs(torch.nn.Module):  # plain tuple outputs, whatever the model class returns
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return tuple(getattr(out, n) for n in names)

    import warnings

    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
        torch.onnx.export(Outputs(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(work / "fp32.onnx"),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=names,
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    del model
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the optimiser and quantiser log every tensor on the root logger
    try:
        _optimise_and_quantise(work, target, config)
    finally:
        root.setLevel(level)
    shutil.rmtree(work)


def _optimise_and_quantise(work: Path, target: Path, config) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    for name in ("fusion_base", "onnx_model", "onnx_model_bert"):
        logging.getLogger(name).setLevel(logging.WARNING)
    fused = optimize_model(str(work / "fp32.onnx"), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size, opt_level=1)
    fused.save_model_to_file(str(work / "fused.onnx"))
    del fused
    # Kept in fp32: the word embeddings (only looked up) and the feed-forward output projections,
    # whose inputs (after GELU) have the widest range. Measured on the eval part (reader mode, EM/F1
    # vs fp32 65.69/77.03): everything int8 64.61/76.69; fp32 in layers 0-2 only 65.07/76.72;
    # fp32 in all six 65.23/76.78, the only one within half a point.
    import onnx

    graph = onnx.load(str(work / "fused.onnx"), load_external_data=False).graph
    down = [n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul")
            and "/attention/" not in n.name]
    quantize_dynamic(str(work / "fused.onnx"), str(target / "model.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True, op_types_to_quantize=["MatMul", "Attention"],
                     nodes_to_exclude=down,
                     extra_options={"DefaultTensorType": 1})  # 1 = float: the fused ops carry no types


def onnx_model(source: Path, kind: str, cache: str | Path | None = None) -> Path:
    """The int8 ONNX file for the weights in `source`, exported now if missing or corrupt."""
    key = weights_key(source, kind)
    entry = Export(cache_root(cache) / "onnx" / f"{kind}-{key[:24]}")
    if entry.valid():
        return entry.model
    with _build_lock:
        if entry.valid():  # another thread built it while this one waited
            return entry.model
        if entry.model.exists() or entry.digest.exists():
            log.warning("the exported %s model %s is corrupt or incomplete: rebuilding it", kind, entry.model)
        else:
            log.info("exporting the %s model %s to ONNX (once per weights): %s", kind, source, entry.model)
        try:
            entry.folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{entry.folder.name}-", dir=entry.folder.parent))
            try:
                _export(source, kind, tmp)
                (tmp / "model.onnx.sha256").write_text(_sha256(tmp / "model.onnx") + "\n")
                (tmp / "source.json").write_text(json.dumps({"source": str(source.resolve()), "key": key, "recipe": RECIPE}))
                if entry.folder.exists():
                    shutil.rmtree(entry.folder)
                os.replace(tmp, entry.folder)  # whole folder at once: a reader never sees half an export
                _drop_stale(entry.folder, source)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except Exception as err:  # export, optimiser, quantiser and file system all raise their own kinds
            raise ModelLoadError(f"could not build the ONNX {kind} model {entry.model} from {source}: {err}") from err
    return entry.model


def _drop_stale(keep: Path, source: Path) -> None:
    """Exports of earlier weights of the same folder (a retrained reader) are dead weight: remove them."""
    for other in keep.parent.glob(keep.name.split("-")[0] + "-*"):
        if other == keep or other.name.startswith("."):
            continue
        try:
            if json.loads((other / "source.json").read_text()).get("source") == str(source.resolve()):
                shutil.rmtree(other)
        except (OSError, ValueError):
            pass


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
        for i in alone:
            out[i] = self.wide.run(None, feeds[i])
        rest = order[len(alone):]
        shares = [rest[k :: self.cores] for k in range(min(self.cores, len(rest)))]  # longest first, round-robin

        def run_share(share: list[int]) -> None:
            for i in share:
                out[i] = self.narrow.run(None, feeds[i])

        for done in [_side_by_side().submit(run_share, share) for share in shares]:
            done.result()  # re-raises a worker's error here
        return out


def _feed(input_ids: Sequence[int], token_type_ids: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    ids = np.asarray(input_ids, dtype=np.int64)[None, :]
    types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64)[None, :]
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types}


class OnnxReader:
    """Start/end logits, one window per call (see the module's note on why one)."""

    row_independent = True  # a window's result never depends on the others read with it

    def __init__(self, source: Path, cache: str | Path | None = None):
        self.sessions = Sessions(source, "reader", cache)

    def logits(self, windows) -> tuple[list[np.ndarray], list[np.ndarray]]:
        outputs = self.sessions.run_each([_feed(w.input_ids, w.token_type_ids) for w in windows])
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
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(source))
        self.max_length = sentence_max_length(source)
        self.sessions = Sessions(source, "embedder", cache)
        self.dim = int(json.loads((source / "config.json").read_text())["hidden_size"])

    def tokenize(self, texts: list[str]) -> list[tuple[list[int], list[int]]]:
        """Token and type ids per text (the caller keeps two threads off the tokenizer at once)."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_token_type_ids=True)
        return list(zip(enc["input_ids"], enc["token_type_ids"]))

    def run(self, tokens: list[tuple[list[int], list[int]]]) -> np.ndarray:
        out = np.zeros((len(tokens), self.dim), dtype=np.float32)
        hidden = self.sessions.run_each([_feed(ids, types) for ids, types in tokens])
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
