"""qa/training/blend.py on the shipped reader's real weights: the arithmetic of the blend, a blend that still
reads the seed article, and clear errors for readers that cannot be blended."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from qa.training.blend import WEIGHTS, blend
from qa.config import SHIPPED_READER

CONTEXT = ('Directed by acclaimed filmmaker Kang Yun-sung, known for Disney\'s "Big Bet" and "Low Life," this '
           "groundbreaking 60-minute fantasy project represents a pioneering step in Korean cinema.")
PROBE = "bert.encoder.layer.0.attention.self.query.weight"


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """A copy of the shipped reader with one tensor moved by +0.5: a second reader to blend with."""
    folder = tmp_path_factory.mktemp("shifted")
    for f in SHIPPED_READER.iterdir():
        if f.is_file() and f.name != WEIGHTS:
            shutil.copyfile(f, folder / f.name)
    tensors = load_file(SHIPPED_READER / WEIGHTS)
    tensors[PROBE] = (tensors[PROBE].float() + 0.5).to(tensors[PROBE].dtype)
    save_file(tensors, folder / WEIGHTS, metadata={"format": "pt"})
    return folder


def test_a_blend_lies_between_its_readers(shifted, tmp_path):
    shipped = load_file(SHIPPED_READER / WEIGHTS)
    out = blend(SHIPPED_READER, shifted, 0.25, tmp_path / "blend")
    mixed = load_file(out / WEIGHTS)
    assert mixed.keys() == shipped.keys()
    assert all(torch.equal(mixed[k], shipped[k]) for k in shipped if k != PROBE)
    moved = mixed[PROBE].float() - shipped[PROBE].float()
    assert torch.allclose(moved, torch.full_like(moved, 0.125), atol=2e-3)   # fp16 rounding
    assert not (out / "calibration.json").exists()   # the shipped calibration belongs to other weights
    assert (out / "tokenizer.json").read_bytes() == (SHIPPED_READER / "tokenizer.json").read_bytes()


def test_the_blend_of_a_reader_with_itself_still_reads_the_seed_article(tmp_path):
    out = blend(SHIPPED_READER, SHIPPED_READER, 0.5, tmp_path / "self")
    assert all(torch.equal(x, load_file(SHIPPED_READER / WEIGHTS)[k]) for k, x in load_file(out / WEIGHTS).items())
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForQuestionAnswering.from_pretrained(out, dtype=torch.float32).eval()
    inputs = tokenizer("Who directed the film?", CONTEXT, return_tensors="pt", return_offsets_mapping=True)
    offsets = inputs.pop("offset_mapping")[0]
    with torch.no_grad():
        logits = model(**inputs)
    in_context = torch.tensor([i == 1 for i in inputs.sequence_ids(0)])
    start = int(torch.where(in_context, logits.start_logits[0], -1e9).argmax())
    end = int(torch.where(in_context, logits.end_logits[0], -1e9).argmax())
    assert CONTEXT[int(offsets[start][0]):int(offsets[end][1])] == "Kang Yun-sung"


def test_readers_that_cannot_be_blended_are_refused(shifted, tmp_path):
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend(SHIPPED_READER, shifted, 1.5, tmp_path / "x")
    with pytest.raises(ValueError, match="new folder"):
        blend(SHIPPED_READER, shifted, 0.5, shifted)
    with pytest.raises(ValueError, match="not a reader folder"):
        blend(SHIPPED_READER, tmp_path, 0.5, tmp_path / "x")
    other = tmp_path / "other"
    shutil.copytree(shifted, other)
    tensors = load_file(other / WEIGHTS)
    tensors.pop(PROBE)
    save_file(tensors, other / WEIGHTS, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="different tensors"):
        blend(SHIPPED_READER, other, 0.5, tmp_path / "x")
    (other / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="different tokenizers"):
        blend(SHIPPED_READER, other, 0.5, tmp_path / "x")


def test_the_command_writes_a_blend_or_says_why_not(shifted, tmp_path):
    from typer.testing import CliRunner

    from qa.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["blend", str(SHIPPED_READER), str(shifted), "--out", str(tmp_path / "b"), "--share", "0.5"])
    assert done.exit_code == 0, done.output
    assert "qa calibrate --reader" in done.output and (tmp_path / "b" / WEIGHTS).is_file()
    refused = runner.invoke(app, ["blend", str(SHIPPED_READER), str(tmp_path / "missing"), "--out", str(tmp_path / "c")])
    assert refused.exit_code == 2 and "not a reader folder" in refused.output
