"""Speed: seconds per question (p50/p95) on the seed corpus and the open eval corpus, index build
throughput, reader windows per second at length 384, and peak memory (RSS) of this process.
QA_RUNTIME=onnx|torch picks the runtime; --profile prints cProfile's top functions over the seed questions.

    python bench/bench.py [--questions N] [--profile] [--json]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import QA, Settings
from qa.embedding import Embedder
from qa.training.distractors import paragraph_articles
from qa.reader import Reader
from qa.retrieval import Retriever
from qa.training.squad import read_squad
from qa.stores.embedded import EmbeddedSearch, update_index
from qa.windows import make_windows

EVAL_FILE = ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-eval.json"


def percentiles(times: list[float]) -> dict:
    times = sorted(times)
    return {"p50": statistics.median(times), "p95": times[min(len(times) - 1, int(0.95 * len(times)))], "n": len(times)}


def time_questions(qa: QA, questions: list[str]) -> dict:
    qa.answer(questions[0])  # warm-up
    times = []
    for q in questions:
        started = time.perf_counter()
        qa.answer(q)
        times.append(time.perf_counter() - started)
    return percentiles(times)


def reader_throughput(reader: Reader, contexts: list[str], n: int = 64) -> float:
    """Windows per second, every window exactly 384 tokens, through the runtime's session."""
    windows = [w for w in make_windows(reader.tokenizer, ["What happened?"] * len(contexts), contexts, 384, 128)
               if len(w) == 384][:n]
    reader.session.logits(windows[:4])
    started = time.perf_counter()
    reader.session.logits(windows)
    return len(windows) / (time.perf_counter() - started)


def profile(qa: QA, questions: list[str], top: int = 12) -> list[str]:
    """cProfile over the questions: the functions with the most time of their own."""
    prof = cProfile.Profile()
    prof.enable()
    for q in questions:
        qa.answer(q)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # by own time (tottime)
    return [f"{tt / len(questions) * 1000:7.2f} ms/q  {100 * tt / total:4.1f}%  {calls / len(questions):7.1f} calls/q  "
            f"{Path(fn).name}:{line}({name})" for (fn, line, name), (_, calls, tt, _, _) in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=200, help="questions from the eval file for the open corpus")
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions over the seed questions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings.from_env()
    embedder = Embedder(settings.embedder, settings.runtime, settings.runtime_cache or None)
    reader = Reader(settings.reader_path, settings.window_tokens, settings.window_stride, settings.max_answer_tokens,
                    settings.batch_size, settings.runtime, settings.runtime_cache or None)
    seed_questions = json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text())
    result = {"runtime": reader.runtime, "embedder_runtime": embedder.runtime}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "seeds", Path(tmp) / "seeds")
        embedder.load(), reader.load()  # load (on first use: export) the models before timing
        qa = QA(settings=Settings.from_env(articles=Path(tmp) / "seeds", index=Path(tmp) / "index"),
                embedder=embedder, reader=reader)
        asks = [q["question"] for q in seed_questions["answerable"]] + seed_questions["unanswerable"]
        result["seed_seconds_per_question"] = time_questions(qa, asks * 3)
        if args.profile:
            result["profile_top_own_time"] = profile(qa, asks * 2)

        examples = read_squad(EVAL_FILE)
        articles, _ = paragraph_articles(examples)
        started = time.perf_counter()
        stored, _ = update_index(Path(tmp) / "eval-index", articles, embedder, settings.chunk_chars,
                                 settings.chunk_overlap, settings.hnsw_above)
        seconds = time.perf_counter() - started
        result["index_build"] = {"passages": len(stored.chunks), "seconds": seconds,
                                 "passages_per_second": len(stored.chunks) / seconds}
        # the eval index is not this QA's folder (its CURRENT names the seed version): swap it in directly
        qa.live._search = EmbeddedSearch(stored)
        qa.live._retriever = Retriever(qa.live._search, embedder)
        result["open_corpus_seconds_per_question"] = time_questions(qa, [e.question for e in examples[: args.questions]])
        result["reader_windows_per_second_at_384"] = reader_throughput(reader, [a.text * 3 for a in articles[:64]])
    result["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(result))
        return
    for line in result.pop("profile_top_own_time", []):
        print(line)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
