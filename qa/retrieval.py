"""Hybrid retrieval: the store's dense and keyword rankings fused by reciprocal rank fusion.

The retriever talks to a store's search side only (qa/stores: EmbeddedSearch or PostgresStore),
never to FAISS or SQL itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .chunking import Chunk
from .embedding import Embedder
from .stores.base import Hit

RRF_K = 60  # the usual constant: damps the head of each ranking so neither ranker dominates


class Searchable(Protocol):
    def dense(self, vectors: np.ndarray, depth: int, exclude: list[frozenset[str]]) -> list[list[Hit]]: ...

    def keyword(self, queries: list[str], vectors: np.ndarray, depth: int,
                exclude: list[frozenset[str]]) -> list[list[Hit]]: ...


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    title: str
    dense_score: float   # cosine similarity
    bm25_score: float    # the keyword lane's score (BM25, or ts_rank in PostgreSQL); 0 when it did not find it
    fused_score: float   # reciprocal rank fusion of the two rankings


class Retriever:
    def __init__(self, store: Searchable, embedder: Embedder):
        self.store = store
        self.embedder = embedder

    def search(self, query: str, k: int = 5, exclude_articles: frozenset[str] = frozenset()) -> list[Passage]:
        return self.search_many([query], k, [exclude_articles])[0]

    def search_many(self, queries: list[str], k: int = 5, exclude: list[frozenset[str]] | None = None) -> list[list[Passage]]:
        """Top-k passages per query; `exclude` leaves the given articles out (open-mode evaluation)."""
        exclude = exclude or [frozenset()] * len(queries)
        depth = max(50, 10 * k)  # candidates per lane; a store with fewer passages returns what it has
        vectors = self.embedder.embed(queries)
        dense_lane = self.store.dense(vectors, depth, exclude)
        keyword_lane = self.store.keyword(queries, vectors, depth, exclude)
        results = []
        for dense, lexical in zip(dense_lane, keyword_lane):
            fused: dict[Chunk, float] = {}
            hits: dict[Chunk, Hit] = {}
            for rank, hit in enumerate(dense):
                fused[hit.chunk] = fused.get(hit.chunk, 0.0) + 1.0 / (RRF_K + rank + 1)
                hits[hit.chunk] = hit
            keyword_score = {}
            for rank, hit in enumerate(lexical):
                fused[hit.chunk] = fused.get(hit.chunk, 0.0) + 1.0 / (RRF_K + rank + 1)
                hits.setdefault(hit.chunk, hit)
                keyword_score[hit.chunk] = hit.score
            best = sorted(fused, key=lambda c: -fused[c])[:k]  # stable: ties keep the dense lane's order
            results.append([Passage(c, hits[c].title, hits[c].cosine, keyword_score.get(c, 0.0), fused[c])
                            for c in best])
        return results
