"""Reader-only EM/F1 of several reader folders (a run's snapshots) on the calibration articles: the
questions held out of training that a choice between checkpoints may look at (never the eval file).

    python bench/learning_curve.py models/reader runs/reader-v3/snapshot-500 runs/reader-v3/final [--json out.json]
    python bench/learning_curve.py ... --eval   # also the held-out eval file: to report, not to choose
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import Settings
from qa.training.evaluate import evaluate_reader
from qa.reader import Reader
from qa.training.train import CALIBRATION_FILE, CALIBRATION_TITLES, HELD_OUT

DATA = ROOT.parent / "shared" / "data" / "qa"


def calibration_file(folder: Path) -> Path:
    """The calibration articles as a SQuAD file of their own."""
    squad = json.loads((DATA / CALIBRATION_FILE).read_text())
    squad["data"] = [a for a in squad["data"] if a["title"] in CALIBRATION_TITLES]
    out = folder / "calibration-articles.json"
    out.write_text(json.dumps(squad))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("readers", nargs="+", help="reader folders")
    ap.add_argument("--eval", action="store_true", help="also the held-out eval file (report only)")
    ap.add_argument("--json", type=Path, help="write the table here")
    args = ap.parse_args()
    s = Settings.from_env()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {"calibration": calibration_file(Path(tmp))}
        if args.eval:
            files["eval"] = DATA / HELD_OUT
        for folder in args.readers:
            reader = Reader(folder, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size)
            row = {"reader": folder}
            for name, path in files.items():
                r = evaluate_reader(str(path), reader)
                row[name] = {"n": r["n"], "exact_match": round(r["exact_match"], 2), "f1": round(r["f1"], 2)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
