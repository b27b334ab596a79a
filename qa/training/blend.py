"""Blend two readers in weight space: (1 - share) x first + share x second, tensor by tensor.

Two fine-tunes of one starting point lie in one basin, so their average is a reader too; WiSE-FT
(Wortsman et al., 2022) found that the average of a model and its further fine-tune keeps most of
the fine-tune's gain on the new data and loses less of what the first knew of other text. Here the
first is the shipped reader (round 5, which read news-like SQuADShifts text) and the second a round
that read more Wikipedia: `qa blend` makes the candidates, `qa calibrate` and the folders decide.

The output folder looks like `qa train`'s: fp16 safetensors, the first reader's config and tokenizer,
training.json saying what was blended; it has no calibration.json until `qa calibrate --reader` runs.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
# the files a reader folder needs besides its weights (a calibration belongs to the weights it was made on)
CARRIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def blend(first: str | Path, second: str | Path, share: float, out: str | Path) -> Path:
    """Write the reader (1 - share) x first + share x second to out; ValueError if the two readers do
    not share one architecture and one tokenizer, or share is outside [0, 1]."""
    first, second, out = Path(first), Path(second), Path(out)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    if out.resolve() in (first.resolve(), second.resolve()):
        raise ValueError(f"{out} is one of the readers blended: write the blend to a new folder")
    for folder in (first, second):
        if not (folder / WEIGHTS).is_file():
            raise ValueError(f"{folder} has no {WEIGHTS}: not a reader folder")
    if (first / "tokenizer.json").read_bytes() != (second / "tokenizer.json").read_bytes():
        raise ValueError(f"{first} and {second} have different tokenizers: they cannot be blended")
    a, b = load_file(first / WEIGHTS), load_file(second / WEIGHTS)
    if a.keys() != b.keys():
        raise ValueError(f"{first} and {second} have different tensors: {sorted(a.keys() ^ b.keys())[:5]}")
    mixed: dict[str, torch.Tensor] = {}
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape:
            raise ValueError(f"{name} is {tuple(x.shape)} in {first} but {tuple(y.shape)} in {second}")
        # mix in fp32: fp16 products of weights near 1e-4 would lose digits
        mixed[name] = torch.lerp(x.float(), y.float(), share).to(x.dtype) if x.is_floating_point() else x.clone()

    out.mkdir(parents=True, exist_ok=True)
    save_file(mixed, out / WEIGHTS, metadata={"format": "pt"})
    for name in CARRIED:
        if (first / name).is_file():
            shutil.copyfile(first / name, out / name)
    stale = out / "calibration.json"
    if stale.exists():  # an earlier blend's calibration does not belong to these weights
        stale.unlink()
    info = {"blend": {"first": str(first), "second": str(second), "share_of_second": share},
            "first": _training(first), "second": _training(second)}
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def _training(folder: Path) -> dict:
    path = folder / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}
