"""How many of the retrieved passages must the reader read? The early stop, measured.

Each retrieved passage is read alone once per question (exact with the ONNX runtime: a window's
logits depend on that window only, qa/runtime.py), then reading policies are replayed from those
readings (qa/reader.py: EarlyStop, passages_needed; qa/training/evaluate.py: replay):
- read all top-k (no early stop);
- "score": read the first m passages; stop when the best span there scores at least S (start + end
  logit) and beats "no answer" by the abstention threshold, else read the rest (what ships);
- "gap": the same with the span's gap to "no answer" as the test instead of its score.
Reading more passages can only raise the best span and lower the no-answer score, so a stop never
turns an answer into an abstention or back: only WHICH answer is given can change.

The stop is chosen on the calibration articles (held out of training) by the rule `qa calibrate`
uses (qa/training/calibrate.py choose_stop_score), and only reported on the eval file and the seed questions:

    python bench/read_policy.py [--json out.json] [--readings runs/read_policy.pkl]
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tqdm import tqdm

from qa import QA, Settings
from qa.training.distractors import paragraph_articles
from qa.embedding import Embedder
from qa.training.calibrate import STOP_MAX_F1_LOSS, STOP_SCORES, choose_stop_score
from qa.training.evaluate import replay, whole_articles_of
from qa.reader import EarlyStop, Reader
from qa.retrieval import Retriever
from qa.training.squad import read_squad
from qa.stores.embedded import EmbeddedSearch, update_index
from qa.training.train import CALIBRATION_FILE, is_calibration

DATA = ROOT.parent / "shared" / "data" / "qa"
EVAL = DATA / "squad-v1.1-dev-part-eval.json"
SEED_QUESTIONS = ROOT / "tests" / "data" / "seed_questions.json"
GAPS = (8, 10, 12, 14, 16, 18, 20)
SHOWN = (4, 6, 8, 10, 12, 14, 16, 20)


def per_passage(reader: Reader, items: list[tuple[str, list, tuple]]) -> list[dict]:
    """items: (question, passages, gold answers) -> the readings of each passage alone."""
    out = []
    for q, passages, gold in tqdm(items, desc="reading", unit="q"):
        readings = reader.read_many([q] * len(passages), [[p.chunk.text] for p in passages])
        out.append({"question": q, "passages": passages, "readings": readings, "gold": gold})
    return out


def squad_items(examples, whole: bool, embedder: Embedder, settings: Settings) -> list[tuple]:
    articles, _ = (whole_articles_of if whole else paragraph_articles)(examples)
    with tempfile.TemporaryDirectory() as tmp:
        stored, _ = update_index(tmp, articles, embedder, settings.chunk_chars, settings.chunk_overlap,
                                 settings.hnsw_above, progress=False)
    retriever = Retriever(EmbeddedSearch(stored), embedder)
    found = retriever.search_many([e.question for e in examples], k=settings.top_k)
    return [(e.question, ps, e.answers) for e, ps in zip(examples, found)]


def seed_items(settings: Settings) -> list[tuple]:
    data = json.loads(SEED_QUESTIONS.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "seeds", Path(tmp) / "seeds")
        qa = QA(settings=Settings.from_env(articles=Path(tmp) / "seeds", index=Path(tmp) / "index"))
        items = [(i["question"], qa.retrieve(i["question"]), tuple(i["answers"])) for i in data["answerable"]]
        items += [(q, qa.retrieve(q), ()) for q in data["unanswerable"]]
    return items


def as_records(rows: list[dict]) -> list[dict]:
    """Rows of this script -> the records qa.training.evaluate.replay reads (answerable questions only)."""
    return [{"passages": r["passages"], "alone": r["readings"], "example": SimpleNamespace(answers=r["gold"])}
            for r in rows if r["gold"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write every policy's figures here")
    parser.add_argument("--readings", type=Path, help="pickle the per-passage readings here (or load them, if it exists)")
    parser.add_argument("--max-loss", type=float, default=STOP_MAX_F1_LOSS,
                        help="F1 points the early stop may lose on the calibration set against reading all")
    args = parser.parse_args()
    settings = Settings.from_env()
    embedder = Embedder(settings.embedder)
    reader = Reader(settings.reader_path, settings.window_tokens, settings.window_stride, settings.max_answer_tokens)
    calibration = reader.calibration

    if args.readings and args.readings.exists():
        sets = pickle.loads(args.readings.read_bytes())
    else:
        held_out = [e for e in read_squad(str(DATA / CALIBRATION_FILE))
                    if is_calibration(CALIBRATION_FILE, e) and not e.is_impossible]
        evaluation = [e for e in read_squad(str(EVAL)) if not e.is_impossible]
        sets = {
            "seed": per_passage(reader, seed_items(settings)),
            "calibration": per_passage(reader, squad_items(held_out, False, embedder, settings)
                                       + squad_items(held_out, True, embedder, settings)),
            "eval": per_passage(reader, squad_items(evaluation, False, embedder, settings)),
        }
        if args.readings:
            args.readings.write_bytes(pickle.dumps(sets))
    records = {name: as_records(rows) for name, rows in sets.items()}
    chosen, _ = choose_stop_score(records["calibration"], calibration, settings.read_first, args.max_loss)

    threshold = calibration.no_answer_threshold
    policies = [("all", None, None, None)]
    policies += [("score", m, v, EarlyStop(m, v, threshold)) for m in (1, 2, 3) for v in STOP_SCORES]
    policies += [("gap", m, v, EarlyStop(m, -math.inf, max(v, threshold))) for m in (1, 2, 3) for v in GAPS]
    results = {name: [{"test": t, "first": m, "value": v, **replay(rows, calibration, early)}
                      for t, m, v, early in policies] for name, rows in records.items()}
    print(f"chosen on the calibration set (first {settings.read_first}, F1 loss <= {args.max_loss}): stop score {chosen}")
    print(f"{'set':12} {'test':>5} {'first':>5} {'value':>5} {'read':>5} {'same':>6} {'EM':>6} {'F1':>6}")
    for name, rows in results.items():
        for r in rows:
            if r["test"] == "all" or r["value"] in SHOWN or (r["first"], r["value"]) == (settings.read_first, chosen):
                value = "-" if r["value"] is None else r["value"]
                print(f"{name:12} {r['test']:>5} {r['first'] or '-':>5} {value:>5} "
                      f"{r['passages_read']:5.2f} {r['same_as_all']:6.1%} {r['exact_match']:6.2f} {r['f1']:6.2f}")
    if args.json:
        args.json.write_text(json.dumps({"chosen_stop_score": chosen, "first": settings.read_first,
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
