"""Scale: both stores at 100,000+ passages. Build throughput, disk, memory, question p50/p95,
recall@10 of the approximate (HNSW) search against exact search on the same real embeddings, the
keyword lanes (bm25s in memory, BM25 computed in SQL in PostgreSQL) side by side, with how many questions
they rank alike (the same top 10 in the same order), an update of 1% of the articles, and exact vs HNSW
search time by corpus size (the embedded store's threshold).

The corpus: one article per distinct context of every SQuAD-format file in ../shared/data/qa
(7,957 contexts, about 8,300 passages). Those files hold no more text than that, so the rest, up
to --passages, are articles made by drawing 5 sentences at random (seeded) from the contexts of one
source article: real sentences, real embeddings, but new combinations. Questions are the files'
own, whose context is known: so the keyword lanes' recall of the gold passage is measured too.

Embedding dominates every build; it is measured once (passages/s) and its vectors are kept in
runs/scale/ (not in git), so that each store's build is then timed on writing and indexing alone.
A build's cost is reported as embedding + writing.

    python bench/scale.py [--passages 100000] [--questions 300] [--store-url postgresql://...] [--json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from qa.chunking import chunk_article
from qa.config import Settings
from qa.embedding import Embedder
from qa.retrieval import Retriever
from qa.sources.files import Article
from qa.stores.embedded import EmbeddedSearch, build_faiss, load_index, update_index

DATA = ROOT.parent / "shared" / "data" / "qa"
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def du_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def article(article_id: str, title: str, text: str) -> Article:
    return Article(article_id, title, text, article_id, None, hashlib.sha256(text.encode()).hexdigest())


def corpus(target: int, settings: Settings) -> tuple[list[Article], list[tuple[str, str]], int]:
    """(articles, [(question, id of the article holding its context)], passages of the real contexts)."""
    articles, questions, by_title, seen = [], [], {}, {}
    for path in sorted(DATA.glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in entry["paragraphs"]:
                text = paragraph["context"]
                if text not in seen:
                    seen[text] = f"{path.stem}/{len(seen):05d}.txt"
                    articles.append(article(seen[text], entry["title"], text))
                    by_title.setdefault((path.stem, entry["title"]), []).extend(SENTENCE.split(text))
                questions += [(q["question"], seen[text]) for q in paragraph["qas"] if not q.get("is_impossible")]
    real = sum(len(chunk_article(a, settings.chunk_chars, settings.chunk_overlap)) for a in articles)
    rng, pools, count, n = random.Random(13), list(by_title.items()), real, 0
    while count < target:
        (_, title), sentences = pools[n % len(pools)]
        text = " ".join(rng.sample(sentences, min(5, len(sentences))))
        a = article(f"mixed/{n:06d}.txt", f"{title} (mixed {n})", text)
        articles.append(a)
        count += len(chunk_article(a, settings.chunk_chars, settings.chunk_overlap))
        n += 1
    return articles, questions, real


class CachedEmbedder:
    """The real embedder, with vectors already computed for known texts (computed once, timed once)."""

    def __init__(self, embedder: Embedder, known: dict[str, np.ndarray]):
        self.embedder, self.known, self.id, self.dim = embedder, known, embedder.id, embedder.dim

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.known]
        if missing:
            self.known.update(zip(missing, self.embedder.embed(missing, batch_size=batch_size)))
        return np.stack([self.known[t] for t in texts]).astype(np.float32) if texts else np.zeros((0, self.dim), np.float32)


def embed_all(embedder: Embedder, texts: list[str], cache: Path) -> tuple[dict[str, np.ndarray], dict]:
    key = hashlib.sha256(("\n".join(texts) + embedder.id).encode()).hexdigest()[:16]
    file = cache / f"vectors-{key}.npy"
    info = json.loads((cache / f"vectors-{key}.json").read_text()) if file.exists() else None
    if info is None:
        cache.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        vectors = embedder.embed(texts, batch_size=64, progress=True)
        seconds = time.perf_counter() - started
        np.save(file, vectors, allow_pickle=False)
        info = {"passages": len(texts), "seconds": round(seconds, 1), "passages_per_s": round(len(texts) / seconds, 1)}
        (cache / f"vectors-{key}.json").write_text(json.dumps(info))
    vectors = np.load(file, allow_pickle=False)
    return dict(zip(texts, vectors)), info


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def lane_figures(store, embedder: Embedder, questions: list[tuple[str, str]], exact: np.ndarray | None,
                 chunk_row: dict | None, rankings: list | None = None) -> dict:
    """Per lane: p50/p95 ms, recall@10 of the gold article; dense: recall@10 against exact search.
    `rankings`: gets each question's keyword top 10 as (article, start) pairs."""
    vectors = embedder.embed([q for q, _ in questions])
    none = [frozenset()]
    dense_ms, keyword_ms, dense_gold, keyword_gold, ann = [], [], 0, 0, []
    for i, (q, gold) in enumerate(questions):
        hits, s = timed(store.dense, vectors[i:i + 1], 10, none)
        dense_ms.append(s * 1000)
        dense_gold += any(h.chunk.article_id == gold for h in hits[0])
        if exact is not None:
            found = {chunk_row[h.chunk] for h in hits[0]}
            ann.append(len(found & set(exact[i])) / 10)
        hits, s = timed(store.keyword, [q], vectors[i:i + 1], 10, none)
        keyword_ms.append(s * 1000)
        keyword_gold += any(h.chunk.article_id == gold for h in hits[0][:10])
        if rankings is not None:
            rankings.append([(h.chunk.article_id, h.chunk.start) for h in hits[0][:10]])
    n = len(questions)
    out = {"dense_p50_ms": round(statistics.median(dense_ms), 2), "dense_p95_ms": round(percentile(dense_ms, 95), 2),
           "keyword_p50_ms": round(statistics.median(keyword_ms), 2), "keyword_p95_ms": round(percentile(keyword_ms, 95), 2),
           "dense_gold_recall@10": round(dense_gold / n, 3), "keyword_gold_recall@10": round(keyword_gold / n, 3)}
    if ann:
        out["dense_recall@10_vs_exact"] = round(float(np.mean(ann)), 4)
    return out


def question_times(retriever: Retriever, questions: list[tuple[str, str]]) -> dict:
    """Retrieval of a question end to end (embedding the question, both lanes, fusion), top 5."""
    retriever.search(questions[0][0])
    times, gold = [], 0
    for q, article_id in questions:
        passages, s = timed(retriever.search, q, 5)
        times.append(s * 1000)
        gold += any(p.chunk.article_id == article_id for p in passages)
    return {"retrieve_p50_ms": round(statistics.median(times), 2), "retrieve_p95_ms": round(percentile(times, 95), 2),
            "gold_recall@5": round(gold / len(questions), 3)}


def changed_articles(articles: list[Article], share: float) -> list[Article]:
    """The same corpus with `share` of the articles edited (a sentence added), spread over the corpus."""
    step = max(1, round(1 / share))
    return [article(a.id, a.title, a.text + " This paragraph was updated for the benchmark.") if i % step == 0 else a
            for i, a in enumerate(articles)]


def exact_vs_hnsw(vectors: np.ndarray, queries: np.ndarray, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        if n > len(vectors):
            break
        flat = build_faiss(vectors[:n], hnsw_above=10**12)
        _, flat_s = timed(lambda: [flat.search(queries[i:i + 1], 60) for i in range(len(queries))])
        hnsw, build_s = timed(build_faiss, vectors[:n], 0)
        _, hnsw_s = timed(lambda: [hnsw.search(queries[i:i + 1], 60) for i in range(len(queries))])
        rows.append({"passages": n, "exact_ms": round(flat_s * 1000 / len(queries), 3),
                     "hnsw_ms": round(hnsw_s * 1000 / len(queries), 3), "hnsw_build_s": round(build_s, 1)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--store-url", help="an empty PostgreSQL database (default: start a local server)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true", help="and the exact vs HNSW table")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "scale")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    settings = Settings.from_env()
    result: dict = {}
    articles, questions, real = corpus(args.passages, settings)
    questions = random.Random(7).sample(questions, min(args.questions, len(questions)))
    chunks = [c for a in articles for c in chunk_article(a, settings.chunk_chars, settings.chunk_overlap)]
    result["corpus"] = {"articles": len(articles), "passages": len(chunks), "passages_of_real_contexts": real,
                        "questions": len(questions)}
    print(json.dumps(result["corpus"]), flush=True)

    embedder = Embedder(settings.embedder, settings.runtime)
    known, result["embedding"] = embed_all(embedder, [c.text for c in chunks], args.cache)
    cached = CachedEmbedder(embedder, known)
    print("embedding:", json.dumps(result["embedding"]), flush=True)
    embed_s = result["embedding"]["seconds"]

    # exact top-10 per question, for the approximate indexes' recall
    matrix = np.stack([known[c.text] for c in chunks]).astype(np.float32)
    qvec = embedder.embed([q for q, _ in questions])
    _, exact = build_faiss(matrix, hnsw_above=10**12).search(qvec, 10)
    chunk_row = {c: i for i, c in enumerate(chunks)}
    if not args.skip_embedded:
        sizes = sorted({5_000, 10_000, 20_000, 50_000, 100_000, len(matrix)})
        result["exact_vs_hnsw"] = exact_vs_hnsw(matrix, qvec[:100], sizes)
        print("exact vs hnsw:", json.dumps(result["exact_vs_hnsw"]), flush=True)
    edited = changed_articles(articles, 0.01)

    embedded_rankings: list = []   # the embedded store's keyword top 10 per question, for PostgreSQL's to match
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        # -- the embedded store ----------------------------------------------------------------------
        if not args.skip_embedded:
            folder = Path(tmp) / "index"
            before = rss_mb()
            (stored, _), write_s = timed(update_index, folder, articles, cached, settings.chunk_chars,
                                              settings.chunk_overlap, settings.hnsw_above)
            del stored
            live, load_s = timed(load_index, folder)
            search, bm25_s = timed(EmbeddedSearch, live)
            emb = {"write_s": round(write_s, 1), "build_s_with_embedding": round(write_s + embed_s, 1),
                   "passages_per_s_with_embedding": round(len(chunks) / (write_s + embed_s), 1),
                   "faiss": live.manifest["faiss"], "disk_mb": round(du_mb(folder), 1), "load_s": round(load_s, 2),
                   "bm25_build_s": round(bm25_s, 1), "rss_added_mb": round(rss_mb() - before, 1)}
            emb.update(lane_figures(search, embedder, questions, exact, chunk_row, embedded_rankings))
            emb.update(question_times(Retriever(search, embedder), questions))
            fresh = CachedEmbedder(embedder, dict(known))  # the edited texts are embedded for real, and timed
            (_, upd), upd_s = timed(update_index, folder, edited, fresh, settings.chunk_chars, settings.chunk_overlap,
                                    settings.hnsw_above)
            emb["update_1pct"] = {"articles": len(upd.changed), "passages_embedded": upd.chunks_embedded,
                                  "seconds": round(upd_s, 1),
                                  "share_of_full_build": round(upd_s / (write_s + embed_s), 4)}
            result["embedded"] = emb
            print("embedded:", json.dumps(emb), flush=True)
            del live, search

        # -- PostgreSQL --------------------------------------------------------------------------------
        if not args.skip_postgres:
            from pg_server import LocalPostgres

            from qa.stores.postgres import PostgresStore

            server = None
            url = args.store_url
            if url is None:
                server = LocalPostgres().init().start()   # its own temporary folder, owned by its user
                url = server.url
            try:
                store = PostgresStore(url)
                rep, write_s = timed(store.update, articles, cached, settings.chunk_chars, settings.chunk_overlap,
                                     full=True)
                with store.pool.connection() as conn:
                    disk = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname IN "
                                        "('qa_passages', 'qa_articles', 'qa_meta', 'qa_terms', 'qa_vocab', 'qa_corpus')"
                                        ).fetchone()[0]
                    terms_mb = conn.execute("SELECT pg_total_relation_size('qa_terms') + pg_total_relation_size('qa_vocab')"
                                            ).fetchone()[0] / 2**20
                pg = {"write_s": round(write_s, 1), "build_s_with_embedding": round(write_s + embed_s, 1),
                      "passages_per_s_with_embedding": round(len(chunks) / (write_s + embed_s), 1),
                      "disk_mb": round(float(disk) / 2**20, 1), "keyword_lane_disk_mb": round(terms_mb, 1)}
                pg_rankings: list = []
                pg.update(lane_figures(store, embedder, questions, exact, chunk_row, pg_rankings))
                if embedded_rankings:
                    pg["keyword_top10_same_as_embedded"] = round(
                        sum(a == b for a, b in zip(pg_rankings, embedded_rankings)) / len(questions), 3)
                pg.update(question_times(Retriever(store, embedder), questions))
                fresh = CachedEmbedder(embedder, dict(known))
                upd, upd_s = timed(store.update, edited, fresh, settings.chunk_chars, settings.chunk_overlap)
                pg["update_1pct"] = {"articles": len(upd.changed), "passages_embedded": upd.chunks_embedded,
                                     "seconds": round(upd_s, 1),
                                     "share_of_full_build": round(upd_s / (write_s + embed_s), 4)}
                if server is not None:
                    import psutil
                    proc = psutil.Process(server.process.pid)
                    pg["server_rss_mb"] = round(sum(p.memory_info().rss for p in [proc, *proc.children()]) / 2**20, 1)
                result["postgres"] = pg
                print("postgres:", json.dumps(pg), flush=True)
                store.close()
            finally:
                if server is not None:
                    server.stop()
                    shutil.rmtree(server.folder, ignore_errors=True)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
