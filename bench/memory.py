"""Memory of the chat process around adding and removing a large article.

    python bench/memory.py [--size "1.9 MB"] [--json]

RSS (resident memory) after the models are loaded and a question answered; after adding an article of
SIZE (SQuAD paragraphs, as bench/load_app.py builds it); after removing it, first with the garbage
collector only, then after giving the C allocator's free memory back (malloc_trim, which QA does by
itself after every index swap: it is switched off here to show what it does).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from load_app import big_article, rss_mb

from qa import QA, live
from qa.config import parse_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1.9 MB")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    trim = live._give_memory_back
    live._give_memory_back = gc.collect  # measured apart below
    work = Path(tempfile.mkdtemp(prefix="qa-memory-"))
    shutil.copy2(ROOT / "seeds" / "run-to-the-west-korea-first-ai-feature-film.txt", work / "seed.txt")
    (work / "articles").mkdir()
    shutil.move(work / "seed.txt", work / "articles" / "seed.txt")
    qa = QA(articles=work / "articles", index=work / "index")
    qa.answer("Who directed the film?")
    trim()
    out = {"before_mb": round(rss_mb(), 1)}
    text = big_article(parse_size(args.size)).encode()
    t0 = time.perf_counter()
    article = qa.add_article("long-report.txt", text)
    out.update(bytes=len(text), passages=qa.articles[article]["chunks"], add_s=round(time.perf_counter() - t0, 1),
               after_add_mb=round(rss_mb(), 1))
    qa.answer("Who directed the film?")
    qa.remove_article(article)
    del text
    gc.collect()
    out["after_remove_gc_only_mb"] = round(rss_mb(), 1)
    trim()
    out["after_remove_trimmed_mb"] = round(rss_mb(), 1)
    out["after_remove_vs_before"] = f"{out['after_remove_trimmed_mb'] / out['before_mb'] - 1:+.1%}"
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out) if args.json else "\n".join(f"{k:>26}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
