"""Does a headline line above an article throw the reader? SQuAD paragraphs indexed one article each,
once as the plain paragraph and once with a headline line on top ("<title> (n)", blank line, paragraph:
the layout of tests/ray_worker.py), then their questions asked over the whole folder. Reports, per
reader folder and layout, how many answerable questions were answered, and EM/F1.

    python bench/headline_layout.py models/reader runs/reader-v4/final [--source calibration|train] [--json out.json]

--source calibration (default): every paragraph of the calibration articles, held out of training, so a
choice between readers may look at it. --source train: the first 300 paragraphs of the training file,
2 questions from every 6th (the check behind round 3's revert; the readers trained on them).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import QA, Settings  # noqa: E402
from qa.embedding import Embedder  # noqa: E402
from qa.training.metrics import best_score, exact_match, token_f1  # noqa: E402
from qa.training.train import CALIBRATION_FILE, CALIBRATION_TITLES  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "qa"


def paragraphs(source: str) -> tuple[list[tuple[str, str]], list[tuple[str, tuple[str, ...]]]]:
    """(title, context) per article to write, and (question, gold answers) to ask."""
    squad = json.loads((DATA / CALIBRATION_FILE).read_text())["data"]
    contexts, questions = [], []
    if source == "calibration":
        for doc in squad:
            if doc["title"] in CALIBRATION_TITLES:
                for p in doc["paragraphs"]:
                    contexts.append((doc["title"], p["context"]))
                    questions += [(q["question"], tuple(a["text"] for a in q["answers"])) for q in p["qas"] if q["answers"]]
        return contexts, questions
    for doc in squad:
        for p in doc["paragraphs"]:
            if len(contexts) == 300:
                return contexts, questions
            if len(contexts) % 6 == 0:
                questions += [(q["question"], tuple(a["text"] for a in q["answers"])) for q in p["qas"][:2] if q["answers"]]
            contexts.append((doc["title"], p["context"]))
    return contexts, questions


def write(folder: Path, contexts: list[tuple[str, str]], headline: bool) -> None:
    folder.mkdir(parents=True)
    for n, (title, context) in enumerate(contexts):
        name = f"{n:03d}-{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}.txt"
        head = f"{title.replace('_', ' ')} ({n})\n\n" if headline else ""
        (folder / name).write_text(f"{head}{context}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("readers", nargs="+", help="reader folders (each with its calibration.json)")
    ap.add_argument("--source", choices=("calibration", "train"), default="calibration")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    contexts, questions = paragraphs(args.source)
    print(f"{len(contexts)} paragraphs, {len(questions)} answerable questions ({args.source})", file=sys.stderr)
    embedder = Embedder()  # the index does not depend on the reader: built once per layout
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("plain", "headline"):
            articles, index = Path(tmp) / layout, Path(tmp) / f"{layout}-index"
            write(articles, contexts, layout == "headline")
            for folder in args.readers:
                qa = QA(settings=Settings.from_env(articles=articles, index=index, reader=folder), embedder=embedder)
                got = [(qa.answer(q).text, gold) for q, gold in questions]
                n = len(got)
                row = {"reader": folder, "layout": layout, "n": n,
                       "answered": sum(text is not None for text, _ in got),
                       "exact_match": round(100 * sum(best_score(exact_match, t or "", g) for t, g in got) / n, 2),
                       "f1": round(100 * sum(best_score(token_f1, t or "", g) for t, g in got) / n, 2)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
