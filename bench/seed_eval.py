"""Our own question set about the seed article (tests/data/seed_questions.json): EM, F1 and abstention.

    python bench/seed_eval.py [--json]        (QA_READER=DIR for another reader; p50: one answer's latency)
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import QA, Settings
from qa.training.metrics import best_score, exact_match, token_f1

QUESTIONS = ROOT / "tests" / "data" / "seed_questions.json"


def run(qa: QA) -> dict:
    data = json.loads(QUESTIONS.read_text())
    rows, seconds = [], []
    qa.answer(data["answerable"][0]["question"])  # warm-up: the first answer loads the models
    for item in data["answerable"]:
        started = time.perf_counter()
        a = qa.answer(item["question"])
        seconds.append(time.perf_counter() - started)
        rows.append({"question": item["question"], "gold": item["answers"], "answer": a.text, "score": round(a.score, 3),
                     "em": best_score(exact_match, a.text or "", tuple(item["answers"])),
                     "f1": best_score(token_f1, a.text or "", tuple(item["answers"]))})
    unanswered = [{"question": q, "answer": qa.answer(q).text} for q in data["unanswerable"]]
    n = len(rows)
    return {
        "n_answerable": n, "n_unanswerable": len(unanswered),
        "exact_match": 100 * sum(r["em"] for r in rows) / n, "f1": 100 * sum(r["f1"] for r in rows) / n,
        "answer_rate": sum(r["answer"] is not None for r in rows) / n,
        "abstain_rate_unanswerable": sum(u["answer"] is None for u in unanswered) / len(unanswered),
        "p50_ms": round(1000 * statistics.median(seconds), 1),
        "rows": rows, "unanswerable": unanswered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "seeds", Path(tmp) / "seeds")
        qa = QA(settings=Settings.from_env(articles=Path(tmp) / "seeds", index=Path(tmp) / "index"))
        result = run(qa)
    if args.json:
        print(json.dumps(result))
        return
    for r in result["rows"]:
        mark = "ok " if r["em"] else ("~  " if r["f1"] else "X  ")
        print(f"{mark}{r['question']!r:75} -> {r['answer']!r} ({r['score']})")
    for u in result["unanswerable"]:
        print(f"{'ok ' if u['answer'] is None else 'X  '}{u['question']!r:75} -> {u['answer']!r}")
    print(f"EM {result['exact_match']:.1f}  F1 {result['f1']:.1f}  answered {result['answer_rate']:.0%} of "
          f"{result['n_answerable']}  abstained on {result['abstain_rate_unanswerable']:.0%} of {result['n_unanswerable']} unanswerable; p50 {result['p50_ms']} ms")


if __name__ == "__main__":
    main()
