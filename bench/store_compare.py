"""The PostgreSQL store against the embedded one, in one run: the seed question set's answers (the same
or not) and keyword-lane rankings (PostgreSQL's BM25 in SQL against bm25s: the same passages in the same
order, or not), question p50/p95 on the seed corpus (asked in turn, same process, same models), and
open-mode EM/F1 on the held-out eval part. Starts its own PostgreSQL on loopback unless --store-url is given
(an empty database: its index is replaced).

    python bench/store_compare.py [--rounds 5] [--skip-open] [--json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from qa import QA, Settings
from qa.embedding import Embedder
from qa.training.evaluate import evaluate_open
from qa.reader import Reader

SEED = ROOT / "seeds" / "run-to-the-west-korea-first-ai-feature-film.txt"
EVAL_FILE = ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-eval.json"


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def new_database(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def keyword_rankings_differ(settings: Settings, url: str, embedder: Embedder, questions: list[str]) -> list[str]:
    """The questions whose keyword lane (top 50) is not the same passages in the same order in both stores."""
    from qa.stores.embedded import EmbeddedSearch, load_index
    from qa.stores.postgres import PostgresStore

    embedded, postgres = EmbeddedSearch(load_index(settings.index)), PostgresStore(url, read_only=True)
    try:
        vectors, none = embedder.embed(questions), [frozenset()] * len(questions)
        lanes = [[[(h.chunk.article_id, h.chunk.start) for h in hits] for hits in store.keyword(questions, vectors, 50, none)]
                 for store in (embedded, postgres)]
    finally:
        postgres.close()
    return [q for q, a, b in zip(questions, *lanes) if a != b]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="times each seed question is asked of each store")
    parser.add_argument("--store-url", help="a PostgreSQL server URL (default: start a local one)")
    parser.add_argument("--skip-open", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    seeds = json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text())
    questions = [q["question"] for q in seeds["answerable"]] + list(seeds["unanswerable"])
    settings = Settings.from_env(store="")
    embedder = Embedder(settings.embedder, settings.runtime, settings.runtime_cache or None)
    reader = Reader(settings.reader_path, settings.window_tokens, settings.window_stride, settings.max_answer_tokens,
                    settings.batch_size, settings.runtime, settings.runtime_cache or None)
    server = None
    work = Path(tempfile.mkdtemp(prefix="store-compare-"))
    result: dict = {}
    try:
        url = args.store_url
        if url is None:
            from pg_server import LocalPostgres
            server = LocalPostgres().init().start()
            url = server.url
        (work / "articles").mkdir()
        shutil.copy2(SEED, work / "articles")
        s = replace(settings, articles=work / "articles", index=work / "index")
        embedded = QA(settings=s, embedder=embedder, reader=reader)
        seed_url = new_database(url, "qa_seed")
        postgres = QA(settings=s, embedder=embedder, reader=reader, store=seed_url)

        differ = []
        for q in questions:
            a, b = embedded.answer(q), postgres.answer(q)
            if (a.text, a.article, a.start) != (b.text, b.article, b.start):
                differ.append({"question": q, "embedded": a.text, "postgres": b.text})
        result["seed_questions"] = len(questions)
        result["seed_answers_differ"] = differ
        result["seed_keyword_rankings_differ"] = keyword_rankings_differ(s, seed_url, embedder, questions)

        times: dict[str, list[float]] = {"embedded": [], "postgres": []}
        for _ in range(args.rounds):
            for q in questions:
                for name, qa in (("embedded", embedded), ("postgres", postgres)):
                    t = time.perf_counter()
                    qa.answer(q)
                    times[name].append(time.perf_counter() - t)
        for name, values in times.items():
            result[f"seed_{name}_p50_ms"] = round(statistics.median(values) * 1000, 1)
            result[f"seed_{name}_p95_ms"] = round(percentile(values, 95) * 1000, 1)
        result["seed_p50_ratio"] = round(result["seed_postgres_p50_ms"] / result["seed_embedded_p50_ms"], 2)
        print(json.dumps(result), flush=True)

        if not args.skip_open and EVAL_FILE.exists():
            for name, store in (("embedded", ""), ("postgres", new_database(url, "qa_eval"))):
                got = evaluate_open(str(EVAL_FILE), replace(settings, store=store), embedder, reader, progress=False)
                result[f"open_{name}"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in got.items()
                                          if k in ("exact_match", "f1", "answer_rate_with_article", "abstain_rate_without_article",
                                                   "recall@5", "seconds_per_question")}
                print(name, json.dumps(result[f"open_{name}"]), flush=True)
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.folder, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
