"""The ONNX files the fast runtime (qa/runtime.py) runs: exported from the local weights, fused,
split and quantised to int8, cached.

They are never shipped nor downloaded: they are exported from the local weights on first use into a
cache keyed by the weights' SHA-256 (QA_RUNTIME_CACHE, default ~/.cache/article-qa), so a retrained
reader gets a new export by itself. A missing or corrupt file is rebuilt; a build that fails raises
ModelLoadError naming the file.

The recipe (_export):
1. export with the eager attention, which ONNX Runtime's BERT optimiser fuses into one Attention
   node per layer (_export_fused);
2. rewrite the fused graph into one that computes the same in fp32 but quantises better and runs
   faster (_prepare_for_int8): layer norms as plain ops, each feed-forward block's outlier units on
   an fp32 side path, each layer norm's outlier columns spread over several copies;
3. quantise the MatMul/Attention weights to int8 per channel, activations dynamically (one scale
   per tensor, computed per call: hence one sequence per call, see qa/runtime.py) (_quantise).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelLoadError

log = logging.getLogger(__name__)

# bump when the export/split/quantise recipe changes: old cache entries are then ignored
RECIPE = "6"
_build_lock = threading.Lock()  # one export at a time per process (exports are CPU- and memory-heavy)


def cache_root(cache: str | Path | None = None) -> Path:
    """QA_RUNTIME_CACHE, else $XDG_CACHE_HOME/article-qa, else ~/.cache/article-qa."""
    if cache:
        return Path(cache).expanduser()
    if os.environ.get("QA_RUNTIME_CACHE"):
        return Path(os.environ["QA_RUNTIME_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "article-qa"


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
    work = target / "work"
    work.mkdir()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the optimiser and quantiser log every tensor on the root logger
    try:
        _export_fused(source, kind, work / "fused.onnx")
        keep_fp32 = _prepare_for_int8(work / "fused.onnx", work / "ready.onnx", _samples(source, kind))
        _quantise(work / "ready.onnx", target / "model.onnx", keep_fp32)
    finally:
        root.setLevel(level)
    shutil.rmtree(work)


def _export_fused(source: Path, kind: str, target: Path) -> None:
    """fp32 ONNX of the model in `source`, with ONNX Runtime's BERT fusions (one Attention node per layer)."""
    import warnings

    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel, AutoModelForQuestionAnswering

    config = AutoConfig.from_pretrained(source)
    cls = AutoModelForQuestionAnswering if kind == "reader" else AutoModel
    # eager attention exports as plain MatMul/Softmax, the pattern the BERT optimiser fuses
    model = cls.from_pretrained(source, dtype=torch.float32, attn_implementation="eager").eval()
    names = ["start_logits", "end_logits"] if kind == "reader" else ["last_hidden_state"]
    ids = torch.ones((1, 16), dtype=torch.long)
    dynamic = {n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids", *names]}

    class Outputs(torch.nn.Module):  # plain tuple outputs, whatever the model class returns
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return tuple(getattr(out, n) for n in names)

    plain = target.with_name(target.stem + "-plain.onnx")
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
        torch.onnx.export(Outputs(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(plain),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=names,
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    del model
    for name in ("fusion_base", "onnx_model", "onnx_model_bert"):
        logging.getLogger(name).setLevel(logging.WARNING)
    fused = optimize_model(str(plain), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size, opt_level=1)
    fused.save_model_to_file(str(target))
    plain.unlink()


# What the exporter runs through the model to find its outlier channels (_prepare_for_int8):
# they belong to the weights (they fire on [CLS], [SEP] and punctuation whatever the text), so a few
# sentences of plain news prose find them; fixed here so that an export is reproducible offline.
_SAMPLE_QUESTIONS = ("Who directed the film?", "When did the council approve the budget, and by how much?",
                     "What did the company say about its profits?")
_SAMPLE_TEXTS = (
    "The film, which premiered in Seoul on Friday, was directed by a first-time film-maker. It cost less than "
    "$200,000 to make, according to its producers, and every shot was generated by software. Critics were divided; "
    "some called it \"a landmark\", others a curiosity.",
    "After a four-hour debate, the city council voted 7-2 on Tuesday night to approve a $1.2bn budget for 2027, "
    "3.5% more than this year. The mayor, who had threatened a veto, said she would sign it. Opponents argued "
    "that the rise in property taxes (the first since 2019) would hurt renters most.",
    "Shares in the company fell 12% in early trading in London after it said profits for the third quarter would "
    "be \"significantly below\" expectations. Its chief executive blamed higher energy costs and weak demand in "
    "China, and announced 1,500 job cuts by March.",
)


def _samples(source: Path, kind: str) -> list[dict[str, np.ndarray]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    feeds = []
    for q, text in zip(_SAMPLE_QUESTIONS, _SAMPLE_TEXTS):
        enc = tokenizer(q, text) if kind == "reader" else tokenizer(text)
        feeds.append(model_inputs(enc["input_ids"], enc.get("token_type_ids")))
    return feeds


def _quantise(source: Path, target: Path, keep_fp32: list[str]) -> None:
    """int8 weights per output channel for every MatMul and Attention but `keep_fp32`; activations
    quantised per call (dynamic), one scale per tensor. The word embeddings are only looked up: fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                     per_channel=True, op_types_to_quantize=["MatMul", "Attention"],
                     nodes_to_exclude=keep_fp32,
                     extra_options={"DefaultTensorType": 1})  # 1 = float: the fused ops carry no types


def _prepare_for_int8(source: Path, target: Path, samples: list[dict[str, np.ndarray]]) -> list[str]:
    """The fused fp32 graph rewritten into an equal one that quantises better and runs faster. Dynamic
    int8 gives a whole tensor one scale, and a few columns of two kinds of tensors are 5-15x larger than
    the rest (on `samples`, the same few in every text: they belong to the weights), which leaves every
    other value a few steps of resolution. So: layer norms as plain ops (_plain_layer_norms); the outlier
    units of each feed-forward block split off into an fp32 path (_split_outlier_units); each layer
    norm's outlier columns spread over several smaller copies (_spread_outlier_columns). Returns the
    MatMuls that must stay fp32."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    _plain_layer_norms(graph)
    _sort_topologically(graph)
    producer = {o: n for n in graph.node for o in n.output}
    downs = [n for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul")
             and "/attention/" not in n.name]
    norms = [n.output[0] for n in graph.node if n.name.endswith("/plain/Shift")]
    blocks = [n for n in downs if producer[n.input[0]].op_type == "BiasGelu"
              and producer[producer[n.input[0]].input[0]].op_type == "MatMul"]
    peaks = _peaks(model, [n.input[0] for n in blocks] + norms, samples)
    if blocks and len(blocks) == len(downs):
        keep_fp32 = [_split_outlier_units(graph, producer, down, peaks[down.input[0]]) for down in downs]
    else:  # another activation or layout: its output projections stay fp32 whole, as recipe 4 kept them
        log.warning("%s: %d of %d feed-forward blocks have the MatMul -> BiasGelu -> MatMul form; their output "
                    "projections stay fp32", source, len(blocks), len(downs))
        keep_fp32 = [n.name for n in downs]
    for name in norms:
        _spread_outlier_columns(graph, name, peaks[name])
    _sort_topologically(graph)
    onnx.save(model, str(target))
    return keep_fp32


def _peaks(model, tensors: list[str], samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each tensor's largest absolute value per column (last axis) over the samples."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    peaks: dict[str, np.ndarray] = {}
    for feed in samples:
        for name, out in zip(tensors, session.run(tensors, feed)):
            m = np.abs(out).reshape(-1, out.shape[-1]).max(0)
            peaks[name] = np.maximum(peaks[name], m) if name in peaks else m
    return peaks


OUTLIER_UNITS = 128  # hidden units per feed-forward block split off and kept in fp32 (of 1,536)


def _weight(graph, name: str) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(next(t for t in graph.initializer if t.name == name))


def _add_weight(graph, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
    return name


def _drop_weight(graph, name: str) -> None:
    if not any(name in n.input for n in graph.node):
        graph.initializer.remove(next(t for t in graph.initializer if t.name == name))


def _split_outlier_units(graph, producer: dict, down, peak: np.ndarray) -> str:
    """Split a feed-forward block (up MatMul -> BiasGelu -> `down` MatMul) in two by its hidden units:
    the OUTLIER_UNITS whose GELU output peaks highest (a handful reach 15-25 where the rest stay under 6)
    and the rest. The halves sum to the same function (the units are independent until the output
    projection). The outliers' output projection stays fp32 (LLM.int8(), Dettmers et al. 2022, done
    statically): its name is returned. `producer`: each tensor's node, from before any block was split
    (a split renames only its own block's output)."""
    from onnx import helper

    gelu = producer[down.input[0]]
    up = producer[gelu.input[0]]
    out = np.sort(np.argsort(-peak)[:OUTLIER_UNITS])
    keep = np.setdiff1d(np.arange(peak.size), out)
    base = down.name.rsplit("/", 3)[0]  # .../layer.N
    old = [up.input[1], gelu.input[1], down.input[1]]
    w_up, bias, w_down = (_weight(graph, n) for n in old)
    hidden, result = up.input[0], down.output[0]
    up.input[1] = _add_weight(graph, f"{base}/ffn_inliers/up", w_up[:, keep])
    gelu.input[1] = _add_weight(graph, f"{base}/ffn_inliers/bias", bias[keep])
    down.input[1] = _add_weight(graph, f"{base}/ffn_inliers/down", w_down[keep])
    down.output[0] = f"{base}/ffn_inliers/output"
    p = f"{base}/ffn_outliers"
    graph.node.extend([
        helper.make_node("MatMul", [hidden, _add_weight(graph, f"{p}/up", w_up[:, out])], [f"{p}/up_output"],
                         name=f"{p}/UpMatMul"),
        helper.make_node("BiasGelu", [f"{p}/up_output", _add_weight(graph, f"{p}/bias", bias[out])], [f"{p}/gelu"],
                         name=f"{p}/BiasGelu", domain="com.microsoft"),
        helper.make_node("MatMul", [f"{p}/gelu", _add_weight(graph, f"{p}/down", w_down[out])], [f"{p}/output"],
                         name=f"{p}/DownMatMul"),
        helper.make_node("Add", [f"{base}/ffn_inliers/output", f"{p}/output"], [result], name=f"{base}/ffn/JoinUnits")])
    for name in old:
        _drop_weight(graph, name)
    return f"{p}/DownMatMul"


SPREAD_ABOVE = 2.5  # a layer norm's column is an outlier above this many times the median column peak


def _spread_outlier_columns(graph, tensor: str, peak: np.ndarray) -> None:
    """Outlier channel splitting (Zhao et al. 2019), for a layer norm's output x and the MatMul and
    Attention nodes that read it: a column c that peaks at n times the limit becomes n columns of x_c / n,
    and its weight row is repeated n times, so x W is unchanged while the largest value the quantiser
    sees drops from ~30 (one hidden dimension of this model) to the limit. The residual path keeps x."""
    from onnx import helper

    limit = SPREAD_ABOVE * float(np.median(peak))
    copies = np.maximum(1, np.ceil(peak / limit)).astype(np.int64)
    wide = np.flatnonzero(copies > 1)
    readers = [n for n in graph.node if n.op_type in ("MatMul", "Attention") and n.input[0] == tensor]
    if not wide.size or not readers:
        return
    repeat = np.repeat(wide, copies[wide] - 1)          # the extra copies' source columns
    scale = (1.0 / copies).astype(np.float32)            # every copy, the original included, carries x_c / n
    p = f"{tensor}/spread"
    graph.node.extend([
        helper.make_node("Mul", [tensor, _add_weight(graph, f"{p}/scale", scale)], [f"{p}/scaled"], name=f"{p}/Scale"),
        helper.make_node("Gather", [f"{p}/scaled", _add_weight(graph, f"{p}/repeat", repeat)], [f"{p}/copies"],
                         axis=-1, name=f"{p}/Copies"),
        helper.make_node("Concat", [f"{p}/scaled", f"{p}/copies"], [p], axis=-1, name=f"{p}/Concat")])
    for n in readers:
        w = _weight(graph, n.input[1])
        old, n.input[0] = n.input[1], p
        n.input[1] = _add_weight(graph, f"{n.name}/spread_weight", np.concatenate([w, w[repeat]]))
        _drop_weight(graph, old)


def _plain_layer_norms(graph) -> None:
    """Replace each fused SkipLayerNormalization (residual + bias + layer norm) by its plain ops.
    ONNX Runtime's CPU kernel for it (and for LayerNormalization) takes 0.52 ms on a 220 x 384
    tensor on this 2-core Xeon, the plain ops 0.15-0.19 ms: 21 % of a window's time down to 6 %
    (bench, 2026-11-30). Mul(d, d) rather than Pow keeps the session's optimiser from fusing it back."""
    from onnx import helper, numpy_helper

    epsilon_of = {}
    for n in list(graph.node):
        if n.op_type != "SkipLayerNormalization" or len([o for o in n.output if o]) != 1:
            continue
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-12)
        if eps not in epsilon_of:
            epsilon_of[eps] = f"layer_norm/epsilon_{len(epsilon_of)}"
            graph.initializer.append(numpy_helper.from_array(np.array(eps, dtype=np.float32), epsilon_of[eps]))
        x, skip, gamma, beta = n.input[:4]
        bias = n.input[4] if len(n.input) > 4 and n.input[4] else None
        p = f"{n.name}/plain"
        ops = []
        if bias:
            ops.append(helper.make_node("Add", [x, bias], [f"{p}/biased"], name=f"{p}/AddBias"))
            x = f"{p}/biased"
        ops += [
            helper.make_node("Add", [x, skip], [f"{p}/sum"], name=f"{p}/AddSkip"),
            helper.make_node("ReduceMean", [f"{p}/sum"], [f"{p}/mean"], name=f"{p}/Mean", axes=[-1], keepdims=1),
            helper.make_node("Sub", [f"{p}/sum", f"{p}/mean"], [f"{p}/centred"], name=f"{p}/Centre"),
            helper.make_node("Mul", [f"{p}/centred", f"{p}/centred"], [f"{p}/square"], name=f"{p}/Square"),
            helper.make_node("ReduceMean", [f"{p}/square"], [f"{p}/variance"], name=f"{p}/Variance", axes=[-1], keepdims=1),
            helper.make_node("Add", [f"{p}/variance", epsilon_of[eps]], [f"{p}/variance_eps"], name=f"{p}/AddEpsilon"),
            helper.make_node("Sqrt", [f"{p}/variance_eps"], [f"{p}/deviation"], name=f"{p}/Deviation"),
            helper.make_node("Div", [f"{p}/centred", f"{p}/deviation"], [f"{p}/normal"], name=f"{p}/Normalise"),
            helper.make_node("Mul", [f"{p}/normal", gamma], [f"{p}/scaled"], name=f"{p}/Scale"),
            helper.make_node("Add", [f"{p}/scaled", beta], [n.output[0]], name=f"{p}/Shift"),
        ]
        graph.node.remove(n)
        graph.node.extend(ops)


def _sort_topologically(graph) -> None:
    """Nodes appended at the end go back before their consumers (ONNX wants a topological order)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError("the rewritten graph has a cycle or a dangling input")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


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


def model_inputs(input_ids, token_type_ids=None) -> dict[str, np.ndarray]:
    """One unpadded sequence as ONNX Runtime inputs."""
    ids = np.asarray(input_ids, dtype=np.int64)[None, :]
    types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64)[None, :]
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types}
