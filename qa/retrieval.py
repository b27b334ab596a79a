"""Hybrid retrieval: dense (FAISS) and BM25 rankings fused by reciprocal rank fusion."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer

from .chunking import Chunk
from .embedding import Embedder
from .store import StoredIndex

# bm25s sets its own logger to DEBUG, which floods any application that configures logging
logging.getLogger("bm25s").setLevel(logging.WARNING)

RRF_K = 60  # the usual constant: damps the head of each ranking so neither ranker dominates


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    title: str
    dense_score: float   # cosine similarity
    bm25_score: float
    fused_score: float   # reciprocal rank fusion of the two rankings


class Retriever:
    def __init__(self, stored: StoredIndex, embedder: Embedder):
        self.stored = stored
        self.embedder = embedder
        self.titles = {a: e["title"] for a, e in stored.manifest["articles"].items()}
        self._stemmer = Stemmer.Stemmer("english")
        self.bm25 = bm25s.BM25()
        if stored.chunks:
            tokens = bm25s.tokenize([c.text for c in stored.chunks], stemmer=self._stemmer, show_progress=False)
            self.bm25.index(tokens, show_progress=False)

    def search(self, query: str, k: int = 5, exclude_articles: frozenset[str] = frozenset()) -> list[Passage]:
        return self.search_many([query], k, [exclude_articles])[0]

    def search_many(self, queries: list[str], k: int = 5, exclude: list[frozenset[str]] | None = None) -> list[list[Passage]]:
        """Top-k passages per query; `exclude` leaves the given articles out (open-mode evaluation)."""
        chunks = self.stored.chunks
        exclude = exclude or [frozenset()] * len(queries)
        if not chunks:
            return [[] for _ in queries]
        depth = min(len(chunks), max(50, 10 * k))
        vectors = self.embedder.embed(queries)
        entries = self.stored.manifest["articles"]
        hidden = max(sum(entries[a]["chunks"] for a in left_out if a in entries) for left_out in exclude)
        dense_scores, dense_ids = self.stored.faiss_index.search(vectors, min(len(chunks), depth + hidden))
        query_tokens = bm25s.tokenize(queries, stemmer=self._stemmer, show_progress=False, return_ids=False)
        results = []
        for qi in range(len(queries)):
            left_out = exclude[qi]
            dense = [(int(i), float(s)) for i, s in zip(dense_ids[qi], dense_scores[qi])
                     if i >= 0 and chunks[i].article_id not in left_out][:depth]
            bm25_all = self.bm25.get_scores(query_tokens[qi]) if query_tokens[qi] else np.zeros(len(chunks))
            order = np.argsort(-bm25_all, kind="stable")[: depth + hidden]
            lexical = [int(i) for i in order if chunks[i].article_id not in left_out and bm25_all[i] > 0][:depth]
            fused: dict[int, float] = {}
            for rank, (i, _) in enumerate(dense):
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
            for rank, i in enumerate(lexical):
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
            dense_of = dict(dense)
            best = sorted(fused, key=lambda i: -fused[i])[:k]
            results.append([
                Passage(chunks[i], self.titles.get(chunks[i].article_id, ""),
                        dense_of.get(i, float(self.stored.vectors[i] @ vectors[qi])), float(bm25_all[i]), fused[i])
                for i in best
            ])
        return results
