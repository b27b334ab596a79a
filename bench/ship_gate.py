"""The reader's ship rule (issue 37), measured in one run: every row for the shipped reader (the baseline)
and for each candidate, then the verdict of each candidate against the baseline.

    python bench/ship_gate.py CANDIDATE [CANDIDATE...] [--baseline models/reader] [--shipped READER]
                              [--json OUT] [--rows a,b]

The baseline of the guards stays the reader shipped when the rule was set (round 5); --shipped names the
reader shipped now, which a candidate must also read at least as well as (reader-only and open F1).

With --json, rows already in OUT are kept and only the missing ones (or those named by --rows) are measured,
so the slow rows can run once and the speed row (seed) again for every reader side by side. Each reader's rows
record the CPU they were measured on (qa/cpu.py), and rows from another CPU are never mixed in: the int8
reader scores near-ties differently with and without VNNI (model card, round 9).

Each row runs the project's own command in a child process, one after the other (never two at once):
`qa eval` on the eval file (reader-only int8 and fp32, open), bench/seed_eval.py, bench/absent_facts.py
(the multi-article folder and the five news pages) and `qa eval` on the Wikinews dev set (reports 1-16
guard the ship; 17-32 are reported and decide nothing). A reader's own calibration.json is used throughout.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.cpu import describe  # noqa: E402
DATA = ROOT.parent / "shared" / "data" / "qa"
EVAL = DATA / "squad-v1.1-dev-part-eval.json"
WIKINEWS = DATA / "wikinews-dev.json"
QA = [sys.executable, "-m", "qa.cli"]


def _json(cmd: list[str], env: dict | None = None) -> dict:
    run = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def same_machine(rows: dict, here: dict, reader: str) -> None:
    """Refuse to add to a reader's rows measured on another CPU (or on one not recorded)."""
    if rows and rows.get("machine") != here:
        raise SystemExit(f"{reader}: its rows in --json were measured on {rows.get('machine') or 'a CPU not recorded'}, "
                         f"this is {here}; int8 figures differ by CPU: measure every row again into a new --json")


ROWS = ("reader", "fp32", "open", "seed", "multi", "news", "wikinews")


def measure(reader: str, rows_wanted: set[str], fp32: bool) -> dict:
    rows: dict = {}
    if "reader" in rows_wanted:
        r = _json([*QA, "eval", str(EVAL), "--mode", "reader", "--reader", reader, "--json"])
        rows["reader_em"], rows["reader_f1"] = r["exact_match"], r["f1"]
    if "fp32" in rows_wanted and fp32:
        r = _json([*QA, "eval", str(EVAL), "--mode", "reader", "--reader", reader, "--json"], {"QA_RUNTIME": "torch"})
        rows["reader_f1_fp32"] = r["f1"]
    if "open" in rows_wanted:
        r = _json([*QA, "eval", str(EVAL), "--mode", "open", "--reader", reader, "--json"])
        rows.update(open_em=r["exact_match"], open_f1=r["f1"], answers_with=100 * r["answer_rate_with_article"],
                    abstains_without=100 * r["abstain_rate_without_article"], unsaid=100 * r["abstain_rate_unsaid"])
    if "seed" in rows_wanted:
        r = _json([sys.executable, "bench/seed_eval.py", "--json"], {"QA_READER": reader})
        rows.update(seed_em=r["exact_match"], seed_f1=r["f1"], seed_right=sum(x["em"] for x in r["rows"]),
                    seed_p50_ms=r["p50_ms"], seed_unanswerable_abstained=r["abstain_rate_unanswerable"])
    for name, spec in (("multi", []), ("news", ["--spec", "tests/data/news_pages_questions.json"])):
        if name in rows_wanted:
            r = _json([sys.executable, "bench/absent_facts.py", "--reader", reader, *spec, "--json"])
            rows[f"{name}_right"], rows[f"{name}_answerable"] = r["answered_right"], r["answerable"]
            rows[f"{name}_abstained"], rows[f"{name}_unanswerable"] = r["abstained"], r["unanswerable"]
    if "wikinews" in rows_wanted and WIKINEWS.is_file():
        for part in ("1-16", "17-32"):
            rows[f"wikinews_{part}"] = _json([*QA, "eval", str(WIKINEWS), "--reports", part, "--reader", reader, "--json"])
    return rows


def _wn(rows: dict, part: str, key: str) -> float:
    """A count from the Wikinews rows: fact questions right (EM), unanswerable questions abstained."""
    w = rows.get(f"wikinews_{part}") or {}
    if key == "fact_right":
        return round(w["fact"]["exact_match"] * w["fact"]["n"] / 100) if w else float("nan")
    return round(w["unanswerable"]["abstained"] * w["unanswerable"]["n"]) if w else float("nan")


def verdict(base: dict, cand: dict, shipped: dict | None = None) -> list[tuple[str, bool, str]]:
    """(row, holds, figures) for every clause of the rule; with `shipped` (the reader shipped now, when the
    baseline is an older one), also: it reads at least as well as that reader (model card, round 8)."""
    if not all(k in cand and k in base for k in ("reader_f1", "open_f1", "seed_right", "multi_right", "news_right")):
        return [("every row measured", False, "missing rows")]
    checks = [
        ("reader-only F1 >= baseline + 1.0", cand["reader_f1"] >= base["reader_f1"] + 1.0,
         f"{cand['reader_f1']:.2f} vs {base['reader_f1']:.2f}"),
        ("open F1 >= baseline", cand["open_f1"] >= base["open_f1"], f"{cand['open_f1']:.2f} vs {base['open_f1']:.2f}"),
        ("seed p50 at most 10 % above", cand["seed_p50_ms"] <= 1.1 * base["seed_p50_ms"],
         f"{cand['seed_p50_ms']} vs {base['seed_p50_ms']} ms"),
    ]
    # the guards: no worse than the baseline by more than the noise of a small set
    for label, key, allowance in (("seed set: questions right", "seed_right", 1),
                                  ("multi-article: abstained", "multi_abstained", 2),
                                  ("multi-article: right", "multi_right", 1),
                                  ("news pages: abstained", "news_abstained", 1),
                                  ("news pages: right", "news_right", 1),
                                  ("answers with the article (points)", "answers_with", 1.5),
                                  ("abstains without it (points)", "abstains_without", 1.5)):
        checks.append((f"{label}: at most {allowance:g} lower", cand[key] >= base[key] - allowance,
                       f"{cand[key]:.4g} vs {base[key]:.4g}"))
    if "reader_f1_fp32" in cand:
        checks.append(("int8 within 0.5 F1 of fp32", abs(cand["reader_f1"] - cand["reader_f1_fp32"]) <= 0.5,
                       f"{cand['reader_f1']:.2f} vs {cand['reader_f1_fp32']:.2f}"))
    if shipped is not None and shipped is not cand:
        for key, label in (("reader_f1", "reader-only F1"), ("open_f1", "open F1")):
            checks.append((f"{label} >= the shipped reader's", cand[key] >= shipped[key],
                           f"{cand[key]:.2f} vs {shipped[key]:.2f}"))
    if "wikinews_1-16" in cand:
        for key, label in (("fact_right", "Wikinews 1-16: fact right at most 2 fewer"),
                           ("unanswerable_abstained", "Wikinews 1-16: unanswerable abstained at most 2 fewer")):
            c, b = _wn(cand, "1-16", key), _wn(base, "1-16", key)
            checks.append((label, c >= b - 2, f"{c} vs {b}"))
    return checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="*")
    ap.add_argument("--baseline", default=str(ROOT / "models" / "reader"))
    ap.add_argument("--shipped", help="the reader shipped now, when --baseline is an older one: measured too, "
                                      "and a candidate must read at least as well (it may be one of the candidates)")
    ap.add_argument("--json", type=Path, help="write every row here")
    ap.add_argument("--rows", default="", help=f"comma-separated rows to measure (again) ({', '.join(ROWS)}); default: the missing ones")
    args = ap.parse_args()
    results = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    again = {r for r in args.rows.split(",") if r}
    readers = [args.baseline, *args.candidates]
    if args.shipped and args.shipped not in readers:
        readers.append(args.shipped)
    here = describe()
    for reader in readers:
        have = results.setdefault(reader, {})
        same_machine(have, here, reader)
        have["machine"] = here
        wanted = again or {r for r in ROWS if not any(k.startswith(r if r != "fp32" else "reader_f1_fp32") for k in have)}
        print(f"measuring {reader}: {', '.join(sorted(wanted)) or 'nothing new'}", file=sys.stderr, flush=True)
        for row in (r for r in ROWS if r in wanted):  # one at a time, kept as it comes
            have.update(measure(reader, {row}, fp32=reader != args.baseline))
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
    base = results[args.baseline]
    for reader in args.candidates:
        checks = verdict(base, results[reader], results[args.shipped] if args.shipped else None)
        print(f"\n{reader}: {'SHIPS' if all(ok for _, ok, _ in checks) else 'does not ship'}")
        for row, ok, figures in checks:
            print(f"  {'ok  ' if ok else 'FAIL'} {row}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
