"""How fast the watched articles folder is followed: a file dropped in is answerable, and a removed
one stops being answered, while a QA is live (the chat's setting: QA.start_background()).

    python bench/watch_latency.py [--tries 20] [--corpus seeds|news-html] [--json]

Each try writes a new article (its own facts) into the folder and times, from the moment the file
is complete, (1) until the index lists it, (2) until a question about it is answered from it; then
removes it and times until it is gone from the index and no longer the answer's source. Target:
answerable within 5 s, p95 over 20 tries.
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

NAMES = ["Ines Duarte", "Tomas Reis", "Clara Viana", "Hugo Matos", "Marta Pinheiro", "Nuno Faria", "Rita Coelho",
         "Paulo Antunes", "Sara Lobo", "Diogo Serra", "Joana Brito", "Luis Moura"]
PLACES = ["Aveiro", "Braga", "Coimbra", "Evora", "Guarda", "Leiria", "Lagos", "Tavira", "Viseu", "Tomar", "Sintra",
          "Obidos"]


def article(i: int) -> tuple[str, str, str, str]:
    """(file name, text, a question about it, its answer): every try has its own facts."""
    name, place = NAMES[i % len(NAMES)], PLACES[(i * 5) % len(PLACES)]
    text = (f"New lighthouse keeper for {place} harbour, number {i}\n\nCoast Weekly | 2026-05-{1 + i % 28:02d}\n\n"
            f"The harbour of {place} has a new lighthouse keeper. {name} took over the lighthouse on Monday, "
            f"the port authority said, after the previous keeper retired.\n\n"
            f"The lighthouse was built in 18{10 + i} and its light can be seen 40 kilometres out at sea.")
    return f"lighthouse-{i}.txt", text, f"Who is the new lighthouse keeper of {place} harbour?", name


def until(check, timeout: float = 30.0, every: float = 0.05) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            return float("inf")
        time.sleep(every)
    return time.perf_counter() - start


def pct(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50": round(statistics.median(xs), 2), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs) + 0.5) - 1)], 2),
            "max": round(xs[-1], 2), "n": len(xs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--corpus", default="seeds", help="seeds, or a folder of articles to start from")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="watch-latency-"))
    source = ROOT / "seeds" if args.corpus == "seeds" else Path(args.corpus)
    shutil.copytree(source, work / "articles")
    qa = QA(settings=Settings.from_env(articles=work / "articles", index=work / "index", feed_interval=0))
    qa.answer("Who directed the film?")  # models loaded and warm
    qa.start_background()
    listed, answered, gone, not_answered, wrong = [], [], [], [], 0
    try:
        for i in range(args.tries):
            name, text, question, expected = article(i)
            path = work / "articles" / name
            tmp = path.with_name("." + name + ".part")
            tmp.write_text(text, encoding="utf-8")
            tmp.rename(path)  # the file appears complete, as a saved download or an editor's save does
            t0 = time.perf_counter()
            until(lambda name=name: name in qa.articles)
            listed.append(time.perf_counter() - t0)
            until(lambda q=question, name=name: qa.answer(q).article == name, every=0.0)
            answered.append(time.perf_counter() - t0)
            if qa.answer(question).text != expected:
                wrong += 1
            path.unlink()
            t0 = time.perf_counter()
            until(lambda name=name: name not in qa.articles)
            gone.append(time.perf_counter() - t0)
            until(lambda q=question, name=name: qa.answer(q).article != name, every=0.0)
            not_answered.append(time.perf_counter() - t0)
    finally:
        qa.stop_background()
        shutil.rmtree(work, ignore_errors=True)
    result = {"tries": args.tries, "articles_in_folder": len(qa.articles), "debounce_ms": qa.settings.watch_debounce_ms,
              "added_indexed_s": pct(listed), "added_answerable_s": pct(answered),
              "removed_unindexed_s": pct(gone), "removed_unanswered_s": pct(not_answered), "wrong_answers": wrong,
              "target_met": pct(answered)["p95"] <= 5.0 and pct(not_answered)["p95"] <= 5.0}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
