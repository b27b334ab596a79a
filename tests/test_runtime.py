"""The int8 ONNX runtime against the fp32 torch reference, and its cache of exported files."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa import QA, ModelLoadError, Settings
from qa.config import PACKAGE_ROOT, SHIPPED_READER
from qa.export import model_inputs, onnx_model, weights_key
from qa.reader import Reader
from qa.runtime import OnnxReader, resolve_runtime
from .conftest import INT8_VNNI
from qa.windows import Window, make_windows

SEED_QUESTIONS = json.loads((PACKAGE_ROOT / "tests" / "data" / "seed_questions.json").read_text())
# Questions on which int8 and fp32 may give different answer text, each with the reason.
ALLOWED_DIFFERENCES: dict[str, str] = {
    # Reader round 7 (phase G), 2026-12-06: int8 answers "Kang" (0.78; "Director Kang" 0.67 next), fp32
    # here "Kang Yun-sung": the name's end is a near-tie of the end logits (the seed set's half-name miss)
    "Who is the director of Run to the West?": "near-tie of the answer's end: 'Kang' against 'Kang Yun-sung'",
    # Near-ties that int8's error tips over. Reader round 5, export recipe 6, measured 2026-11-30; span
    # scores (start + end logit) as "fp32 / int8" over the five passages the fp32 pipeline retrieves:
    # the int8 embedder ranks the passage holding "running time" (fp32's answer, 6.38 / 5.85) sixth
    # instead of third, so int8 answers "5-10 minutes" (5.26 / 5.13); neither is gold ("60-minute",
    # 5.18 / 5.07)
    "How long is the film?": "near-tie in retrieval: a passage ranked sixth instead of third",
    # int8 "Yang Se-jong" 8.37 / 8.62, fp32 'Bang Hyo-rin from "Aema," and Yang Se-jong' 8.38 / 8.12
    # (neither is gold; a 0.01 margin in fp32)
    "Which actress appeared in Aema?": "near-tie between two spans of one sentence",
}
if not INT8_VNNI:
    # AVX2 int8 (AMD EPYC, 2026-12-07, reader round 8): abstains (best 'Seoul' 0.13, 'central Seoul' 0.12,
    # under the threshold), fp32 answers 'central Seoul': the kernels without VNNI round the other way
    ALLOWED_DIFFERENCES["In which city do the characters run?"] = "near the threshold with AVX2 int8 kernels"


@pytest.fixture(scope="module")
def torch_qa(tmp_path_factory, settings):
    """The reference: the whole pipeline on fp32 torch (embedder and reader) reading every retrieved
    passage (no early stop), over its own copy of seeds/."""
    root = tmp_path_factory.mktemp("torch")
    shutil.copytree(PACKAGE_ROOT / "seeds", root / "articles")
    s = Settings.from_env(articles=root / "articles", index=root / "index", runtime="torch", read_first=0)
    return QA(settings=s)


def test_runtime_setting():
    assert resolve_runtime("torch") == "torch" and resolve_runtime("ONNX") == "onnx"
    with pytest.raises(ValueError, match="QA_RUNTIME"):
        resolve_runtime("tensorflow")
    assert Reader("someone/some-hub-model", runtime="onnx").runtime == "torch"  # the export needs local weights


def test_onnx_and_torch_give_the_same_answers_on_the_seed_questions(seed_qa, torch_qa):
    assert seed_qa.reader.runtime == "onnx" and seed_qa.embedder.runtime == "onnx"
    assert torch_qa.reader.runtime == "torch" and torch_qa.embedder.runtime == "torch"
    asks = [q["question"] for q in SEED_QUESTIONS["answerable"]] + SEED_QUESTIONS["unanswerable"]
    differ = {}
    for q in asks:
        fast, ref = seed_qa.answer(q), torch_qa.answer(q)
        if fast.text != ref.text:
            differ[q] = (fast.text, ref.text)
        elif fast.text is not None and (fast.article, fast.start) != (ref.article, ref.start):
            # the same words found at two places (the film's name in the headline and in the body):
            # both places must hold exactly that text
            text = (seed_qa.settings.articles / fast.article).read_text(encoding="utf-8")
            ref_text = (torch_qa.settings.articles / ref.article).read_text(encoding="utf-8")
            assert text[fast.start:fast.end] == ref_text[ref.start:ref.end] == fast.text, q
    assert set(differ) <= set(ALLOWED_DIFFERENCES), differ


def test_int8_logits_stay_close_to_fp32(reader, torch_qa):
    """The cheap check behind the quality figures (EM/F1 within 0.5 of fp32 on the eval part)."""
    ref = torch_qa.reader
    windows = make_windows(reader.tokenizer, ["Who directed the film?"], [torch_qa.retrieve("Who directed the film?")[0].chunk.text])
    fast_s, fast_e = reader.session.logits(windows)
    ref_s, ref_e = ref.session.logits(windows)
    assert int(np.argmax(fast_s[0])) == int(np.argmax(ref_s[0])) and int(np.argmax(fast_e[0])) == int(np.argmax(ref_e[0]))
    assert np.abs(fast_s[0] - ref_s[0]).mean() < 0.5


def test_one_core_and_all_cores_give_the_same_bits(reader, seed_qa):
    """Windows run side by side on one-core sessions or alone on the all-cores one (qa/runtime.py,
    Sessions): the answers are only independent of that choice if the logits are identical."""
    sessions = reader.session.sessions
    if sessions.narrow is sessions.wide:
        pytest.skip("one core: a single session")
    passages = [p.chunk.text for p in seed_qa.retrieve("Who plays the aspiring actor?")]
    windows = make_windows(reader.tokenizer, ["Who plays the aspiring actor?"] * len(passages), passages)
    for w in windows:
        feed = model_inputs(w.input_ids, w.token_type_ids)
        for narrow, wide in zip(sessions.narrow.run(None, feed), sessions.wide.run(None, feed)):
            np.testing.assert_array_equal(narrow, wide)
    side_by_side = reader.session.logits(windows)  # several windows: the one-core path
    for w, s in zip(windows, side_by_side[0]):
        np.testing.assert_array_equal(s, reader.session.logits([w])[0][0])  # one window: all cores


def test_the_rewrite_before_quantising_changes_no_logit(tmp_path, reader):
    """qa/export.py writes the layer norms as plain ops, splits each feed-forward block's outlier units
    off and spreads each layer norm's outlier columns before quantising: in fp32 the rewritten graph
    must compute what the fused one does."""
    import onnx
    import onnxruntime as ort

    from qa.export import OUTLIER_UNITS, _export_fused, _prepare_for_int8, _samples

    fused, ready = tmp_path / "fused.onnx", tmp_path / "ready.onnx"
    _export_fused(SHIPPED_READER, "reader", fused)
    keep_fp32 = _prepare_for_int8(fused, ready, _samples(SHIPPED_READER, "reader"))
    assert len(keep_fp32) == 6 and all(name.endswith("/ffn_outliers/DownMatMul") for name in keep_fp32)
    graph = onnx.load(str(ready)).graph
    assert not [n for n in graph.node if n.op_type in ("SkipLayerNormalization", "LayerNormalization")]
    outlier_down = {t.name: t.dims for t in graph.initializer if t.name.endswith("/ffn_outliers/down")}
    assert len(outlier_down) == 6 and all(list(d) == [OUTLIER_UNITS, 384] for d in outlier_down.values())
    passage = "The film was directed by Kang Yun-sung, who also wrote it. It premiered in Seoul on Friday."
    window = make_windows(reader.tokenizer, ["Who directed the film?"], [passage])[0]
    inputs = model_inputs(window.input_ids, window.token_type_ids)
    before = ort.InferenceSession(str(fused), providers=["CPUExecutionProvider"]).run(None, inputs)
    after = ort.InferenceSession(str(ready), providers=["CPUExecutionProvider"]).run(None, inputs)
    for b, a in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-3)
        assert int(np.argmax(a)) == int(np.argmax(b))


def _copy_entry(tmp_path: Path) -> tuple[Path, Path]:
    """The reader's export, copied from the real cache into a private one (no second export)."""
    source = onnx_model(SHIPPED_READER, "reader")
    cache = tmp_path / "cache"
    target = cache / "onnx" / source.parent.name
    shutil.copytree(source.parent, target)
    return cache, target / "model.onnx"


def test_cache_is_keyed_by_the_weights(tmp_path):
    key = weights_key(SHIPPED_READER, "reader")
    assert onnx_model(SHIPPED_READER, "reader").parent.name == f"reader-{key[:24]}"
    changed = tmp_path / "reader"
    shutil.copytree(SHIPPED_READER, changed)
    data = bytearray((changed / "model.safetensors").read_bytes())
    data[-1] ^= 1  # retrained weights: another key, so another export
    (changed / "model.safetensors").write_bytes(bytes(data))
    assert weights_key(changed, "reader") != key


def test_a_corrupt_export_is_rebuilt_during_a_question(tmp_path, make_qa, caplog):
    """A half-written or damaged file is noticed by its checksum and rebuilt; the question still gets
    its answer. (A missing file takes the same path as the first use: an export.)"""
    cache, path = _copy_entry(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    qa = make_qa()
    qa.reader = Reader(str(SHIPPED_READER), cache=str(cache))
    with caplog.at_level(logging.WARNING, logger="qa.export"):
        assert qa.answer("Who directed the film?").text == "Kang Yun-sung"
    assert str(path) in caplog.text and "rebuilding" in caplog.text
    assert (path.parent / "model.onnx.sha256").exists()
    windows = make_windows(qa.reader.tokenizer, ["Who directed the film?"], ["It was directed by Kang Yun-sung."])
    np.testing.assert_array_equal(qa.reader.session.logits(windows)[0][0], OnnxReader(SHIPPED_READER).logits(windows)[0][0])


def test_an_export_that_cannot_be_built_names_the_file(tmp_path):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(ModelLoadError, match=r"could not build the ONNX reader model .*cache/onnx/reader-.*model\.onnx"):
        OnnxReader(SHIPPED_READER, blocked)


def heavy_modules_after(statements: str) -> str:
    """Run `statements` in a fresh interpreter and return what it prints, followed by which of torch and
    transformers it imported (a fresh process: this test session has imported both long ago)."""
    import subprocess
    import sys

    probe = f"import sys; {statements}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PACKAGE_ROOT,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_the_cli_and_the_onnx_path_do_not_import_torch_until_a_model_loads():
    """torch takes seconds to import: `qa` answering a bad question, or its help, must not pay for it
    (only loading a tokenizer through transformers does, and training or QA_RUNTIME=torch)."""
    imported = heavy_modules_after("import qa, qa.cli, qa.reader, qa.windows, qa.runtime, qa.pipeline")
    assert imported == "[]", imported


def transformers_windows(tokenizer, questions, contexts, max_length, stride) -> list[Window]:
    """The windows as transformers' own tokenizer call cuts them (how every shipped reader was trained),
    long questions cut to their first MAX_QUESTION_TOKENS tokens by transformers too, not by our code."""
    from qa.windows import MAX_QUESTION_TOKENS

    def cut(question: str) -> str:
        offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return question if len(offsets) <= MAX_QUESTION_TOKENS else question[: offsets[MAX_QUESTION_TOKENS - 1][1]]

    enc = tokenizer([cut(q) for q in questions], list(contexts), truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, return_token_type_ids=True)
    return [Window(example=enc["overflow_to_sample_mapping"][i], input_ids=tuple(ids),
                   token_type_ids=tuple(enc["token_type_ids"][i]),
                   offsets=tuple(tuple(o) if s == 1 else None
                                 for o, s in zip(enc["offset_mapping"][i], enc.sequence_ids(i))))
            for i, ids in enumerate(enc["input_ids"])]


def test_tokenizer_json_read_directly_cuts_the_same_windows_as_transformers(reader):
    """Inference reads tokenizer.json with `tokenizers` (no torch import); the shipped reader was trained on
    windows cut by transformers' tokenizer call: ids, types, offsets and overflow windows must be the same,
    or the reader would be asked about inputs it was never trained on."""
    from transformers import AutoTokenizer

    from qa.embedding import shipped_embedder_path
    from qa.windows import load_tokenizer, sentence_tokens

    seed = (PACKAGE_ROOT / "seeds" / "run-to-the-west-korea-first-ai-feature-film.txt").read_text()
    questions = ["Who directed the film?", "What? " * 80,                         # a question cut to 64 tokens
                 "¿Quién dirigió la película «Run to the West»? 監督は誰ですか", "x"]
    contexts = [seed * 2, seed, "Kang Yun-sung (강윤성) dirigió la película; 監督はカン・ユンソン。", ""]
    hub = AutoTokenizer.from_pretrained(str(SHIPPED_READER))
    for tokenizer in (reader.tokenizer, load_tokenizer(SHIPPED_READER), hub):  # training passes transformers'
        for max_length, stride in ((384, 128), (128, 48)):
            expected = transformers_windows(hub, questions, contexts, max_length, stride)
            assert len(expected) > len(questions) + 1  # the seed article overflows: several windows each
            assert make_windows(tokenizer, questions, contexts, max_length, stride) == expected

    folder = shipped_embedder_path()
    texts = [seed, "Who directed the film?", "监督 강윤성", ""]
    encoded = AutoTokenizer.from_pretrained(str(folder))(texts, truncation=True, max_length=256,
                                                         return_token_type_ids=True)
    assert sentence_tokens(load_tokenizer(folder), texts, 256) == list(zip(encoded["input_ids"],
                                                                             encoded["token_type_ids"]))


def test_tokenizing_for_the_onnx_runtime_imports_neither_torch_nor_transformers():
    printed = heavy_modules_after(
        "from qa.reader import Reader; from qa.windows import load_tokenizer, make_windows; "
        "from qa.embedding import shipped_embedder_path; from qa.config import SHIPPED_READER; "
        "r = Reader(str(SHIPPED_READER), runtime='onnx'); "
        "w = make_windows(r.tokenizer, ['Who directed the film?'], ['It was directed by Kang Yun-sung.']); "
        "load_tokenizer(shipped_embedder_path()).encode('Who directed the film?'); print(len(w))")
    assert printed.splitlines() == ["1", "[]"], printed
