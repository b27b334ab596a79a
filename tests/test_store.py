"""The index on disk without the reader: atomic versions, HNSW above the threshold, corruption."""
from __future__ import annotations

import faiss
import pytest

from qa.errors import IndexCorrupt
from qa.sources.files import Article, load_articles
from qa.stores.embedded import load_index, update_index

from .conftest import SEEDS


def articles_of(n: int) -> list[Article]:
    base, _ = load_articles(SEEDS)
    seed = base[0]
    return [Article(f"copy-{i}.txt", f"Copy {i}", seed.text + f"\n\nEdition {i}.", "", None, f"{i:064x}") for i in range(n)]


def test_versions_switch_atomically_and_old_ones_are_cleaned(tmp_path, embedder):
    root = tmp_path / "index"
    first, _ = update_index(root, articles_of(1), embedder, 900, 200, 20_000)
    second, report = update_index(root, articles_of(2), embedder, 900, 200, 20_000)
    assert report.added == ["copy-1.txt"] and report.unchanged == ["copy-0.txt"]
    assert (root / "CURRENT").read_text().strip() == second.path.name
    third, _ = update_index(root, articles_of(3), embedder, 900, 200, 20_000)
    versions = sorted(p.name for p in root.iterdir() if p.name.startswith("v-"))
    assert first.path.name not in versions  # older than the previous one: removed
    assert second.path.name in versions and third.path.name in versions
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]


def test_hnsw_above_threshold(tmp_path, embedder):
    stored, _ = update_index(tmp_path / "index", articles_of(3), embedder, 900, 200, hnsw_above=10)
    assert stored.manifest["faiss"] == "hnsw"
    loaded = load_index(tmp_path / "index")
    assert isinstance(loaded.faiss_index, faiss.IndexHNSWFlat) and loaded.faiss_index.ntotal == len(loaded.chunks)


@pytest.mark.parametrize("victim", ["manifest.json", "chunks.jsonl", "passages.faiss"])
def test_corrupt_files_are_detected(tmp_path, embedder, victim):
    stored, _ = update_index(tmp_path / "index", articles_of(1), embedder, 900, 200, 20_000)
    path = stored.path / victim
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(IndexCorrupt):
        load_index(tmp_path / "index")
    rebuilt, report = update_index(tmp_path / "index", articles_of(1), embedder, 900, 200, 20_000)
    assert report.full_rebuild and load_index(tmp_path / "index").path == rebuilt.path


def test_keyword_search_is_the_same_from_many_threads_at_once(tmp_path, embedder):
    """The chat searches on many threads; the BM25 lane stems with each thread's own stemmer
    (a PyStemmer object is not thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    from qa.stores.embedded import EmbeddedSearch

    stored, _ = update_index(tmp_path / "index", articles_of(3), embedder, 900, 200, 20_000)
    search = EmbeddedSearch(stored)
    words = ["directed", "filmmakers", "reapers", "running", "theaters", "chased", "rendering", "experiences"]
    queries = [f"{words[i % len(words)]} {words[(i * 3 + 1) % len(words)]} edition {i % 3}" for i in range(240)]
    vectors = embedder.embed(queries)

    def ids(i: int) -> list[tuple[str, int]]:
        (hits,) = search.keyword([queries[i]], vectors[i : i + 1], 5, [frozenset()])
        return [(h.chunk.article_id, h.chunk.start) for h in hits]

    alone = [ids(i) for i in range(len(queries))]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ids, range(len(queries))))
    assert together == alone and all(alone)
