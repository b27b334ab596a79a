"""Run by tests/test_ray.py inside a private network namespace (never collected by pytest):

    unshare -n python -m tests.ray_worker --squad FILE --work DIR [--contexts 300] [--cpus 2] [--compare-local]

Ray binds every network interface, so this refuses to start unless the only interface is loopback
(which it brings up). Then: PostgreSQL on 127.0.0.1, a local Ray with --cpus CPUs, SQuAD contexts
written as articles, indexed with refresh_index + RayEmbedder into the database; `qa index --ray
HOST:PORT` run as a second process joins that cluster for an incremental update; the passages,
vectors and answers are checked against the local embedder; Ray and PostgreSQL are shut down.
Prints one JSON object (the last line) for the test to assert on.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from .pg_server import LocalPostgres

# questions answered from one known context (its place in the file's order of contexts): the answer's text
QUESTIONS = [
    ("What was the proportion of Huguenots to Catholics at their peak?", 142, "one-eighth"),
    ("What ideal thermodynamic cycle analyzes the process by which steam engines work?", 186, "Rankine"),
]


def loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS on lo."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh14x", fcntl.ioctl(s, siocgifflags, struct.pack("16sh14x", b"lo", 0)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh14x", b"lo", flags | iff_up))


def write_articles(squad: Path, folder: Path, count: int) -> list[dict]:
    """The first `count` contexts of a SQuAD file, one article each: "<title> (n)", blank line, context."""
    folder.mkdir(parents=True)
    written = []
    for doc in json.loads(squad.read_text())["data"]:
        for paragraph in doc["paragraphs"]:
            if len(written) == count:
                return written
            n = len(written)
            name = f"{n:03d}-{re.sub(r'[^a-z0-9]+', '-', doc['title'].lower()).strip('-')}.txt"
            (folder / name).write_text(f"{doc['title'].replace('_', ' ')} ({n})\n\n{paragraph['context']}\n")
            written.append({"id": name, "context": paragraph["context"]})
    return written


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--contexts", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--compare-local", action="store_true", help="also time the local embedder on the same passages")
    args = parser.parse_args()

    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        print(json.dumps({"error": f"not in a private network namespace: interfaces {interfaces}"}))
        return 1
    loopback_up()

    import psycopg
    from pgvector.psycopg import register_vector

    from qa import QA, Settings
    from qa.chunking import chunk_article
    from qa.distributed import RayEmbedder
    from qa.embedding import Embedder
    from qa.indexing import refresh_index
    from qa.sources.files import load_articles

    result: dict = {"interfaces": interfaces}
    articles_dir = args.work / "articles"
    written = write_articles(args.squad, articles_dir, args.contexts)
    result["articles"] = len(written)
    (args.work / "pg").mkdir()
    pg = LocalPostgres(folder=args.work / "pg")
    try:
        pg.init().start()
        settings = Settings.from_env(articles=articles_dir, index=args.work / "unused-index", store=pg.url)

        def expected_chunks() -> int:
            articles, problems = load_articles(articles_dir, settings.max_article_bytes)
            assert not problems, problems
            return sum(len(chunk_article(a, settings.chunk_chars, settings.chunk_overlap)) for a in articles)

        def passages() -> int:
            with psycopg.connect(pg.url) as conn:
                return conn.execute("SELECT count(*) FROM qa_passages").fetchone()[0]

        import ray

        started = time.perf_counter()
        with RayEmbedder(settings.embedder, settings.runtime, settings.runtime_cache or None,
                         cpus=args.cpus) as ray_embedder:
            result["ray_start_s"] = time.perf_counter() - started
            result["ray_cpus"] = ray.cluster_resources().get("CPU")
            result["workers"] = ray_embedder.workers()
            embed = ray_embedder.embed

            def timed(texts, **options):
                started = time.perf_counter()
                vectors = embed(texts, **options)
                result["ray_embed_s"] = time.perf_counter() - started
                return vectors
            ray_embedder.embed = timed
            started = time.perf_counter()
            _, report = refresh_index(settings, ray_embedder)
            ray_embedder.embed = embed
            result["ray_index_s"] = time.perf_counter() - started
            result["build"] = {"added": len(report.added), "chunks_embedded": report.chunks_embedded,
                               "chunks_total": report.chunks_total, "full_rebuild": report.full_rebuild,
                               "expected_chunks": expected_chunks(), "rows": passages()}
            result["ray_embedder_id"] = ray_embedder.id

            # a second process joins this cluster by its address: one article changed, one removed
            changed, removed = written[1]["id"], written[2]["id"]
            with open(articles_dir / changed, "a") as f:
                f.write("\nA late addition: the ceremony drew a record crowd of spectators.\n")
            (articles_dir / removed).unlink()
            address = ray.get_runtime_context().gcs_address
            started = time.perf_counter()
            cli = subprocess.run([sys.executable, "-m", "qa.cli", "index", "--ray", address, "--store", pg.url,
                                  "--articles", str(articles_dir), "--index", str(args.work / "unused-index"),
                                  "--json"], check=False, capture_output=True, text=True, timeout=300)
            lines = cli.stdout.strip().splitlines()
            cli_report = json.loads(lines[-1]) if cli.returncode == 0 and lines else {}
            result["cli"] = {"code": cli.returncode, "stderr": cli.stderr[-2000:], "seconds": time.perf_counter() - started,
                             "changed": cli_report.get("changed"), "removed": cli_report.get("removed"),
                             "chunks_embedded": cli_report.get("chunks_embedded"),
                             "chunks_total": cli_report.get("chunks_total"),
                             "expected_chunks": expected_chunks(), "rows": passages(),
                             "expected_changed_chunks": len(chunk_article(
                                 next(a for a in load_articles(articles_dir)[0] if a.id == changed),
                                 settings.chunk_chars, settings.chunk_overlap))}
            result["cluster_alive_after_cli"] = ray.is_initialized() and ray.cluster_resources().get("CPU") == args.cpus
        result["ray_initialized_after_close"] = ray.is_initialized()

        # the vectors are the local embedder's: same id, same numbers
        local = Embedder(settings.embedder, settings.runtime, settings.runtime_cache or None).load()
        with psycopg.connect(pg.url) as conn:
            register_vector(conn)
            sample = conn.execute("SELECT text, embedding FROM qa_passages ORDER BY md5(article_id || start_char) "
                                  "LIMIT 48").fetchall()
            stored_id = conn.execute("SELECT value FROM qa_meta WHERE key = 'embedder'").fetchone()[0]
        stored = np.vstack([np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32)
                            for _, v in sample])
        mine = local.embed([t for t, _ in sample])
        result["vectors"] = {"sampled": len(sample), "max_abs_diff": float(np.abs(stored - mine).max()),
                             "stored_embedder": stored_id if isinstance(stored_id, str) else json.loads(stored_id),
                             "local_embedder": local.id}
        # so the local indexer finds nothing to do
        _, again = refresh_index(settings, local)
        result["local_update"] = {"chunks_embedded": again.chunks_embedded, "unchanged": len(again.unchanged),
                                  "full_rebuild": again.full_rebuild}

        if args.compare_local:
            articles, _ = load_articles(articles_dir, settings.max_article_bytes)
            texts = [c.text for a in articles for c in chunk_article(a, settings.chunk_chars, settings.chunk_overlap)]
            started = time.perf_counter()
            local.embed(texts, batch_size=settings.batch_size)
            result["local_embed_s"] = time.perf_counter() - started

        qa = QA(settings=settings, auto_update=False, store=pg.url)
        answers = []
        for question, context, expected in QUESTIONS:
            a = qa.answer(question)
            answers.append({"question": question, "text": a.text, "article": a.article,
                            "expected_article": written[context]["id"], "expected_text": expected})
        result["answers"] = answers
    finally:
        pg.stop()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
