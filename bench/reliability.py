"""Reliability diagram: what a confidence of 70% means, measured.

    qa eval ../shared/data/qa/squad-v1.1-dev-part-eval.json --mode open --json > open.json
    python bench/reliability.py open.json models/reader/reliability.png

Reads the "reliability" table of an open-mode evaluation (every answer given, with its article
indexed and without it) and draws confidence bins against the share of those answers that were right.
Needs matplotlib (`pip install article-qa[bench]`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path, help="JSON printed by `qa eval --mode open --json`")
    parser.add_argument("png", type=Path)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = json.loads(args.result.read_text())
    table = [row for row in result["reliability"] if row["answers"]]
    centres = [(row["bin"][0] + row["bin"][1]) / 2 for row in table]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    top.bar(centres, [row["accuracy"] for row in table], width=0.09, color="#3b6ea8", label="measured accuracy")
    top.plot([row["mean_confidence"] for row in table], [row["accuracy"] for row in table], "o", color="#d95f02",
             label="mean confidence in the bin")
    top.set_ylabel("share of answers right (F1 >= 0.5)")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{result['file']}, open mode\nanswers with and without their article", fontsize=9)
    bottom.bar(centres, [row["answers"] for row in table], width=0.09, color="grey")
    bottom.set_ylabel("answers")
    bottom.set_xlabel("confidence")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(args.png, dpi=90)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
