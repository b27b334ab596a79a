"""Hard distractor passages for training the reader the way it is used.

Every training paragraph is indexed as its own article with the project's own chunking, embedder and
hybrid retriever; for each question the best-ranked passages that are NOT its gold paragraph (and do
not contain a gold answer, which would make them right, not wrong) become its distractors. The
index lives in the training work folder, so a resumed run re-embeds nothing.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tqdm.auto import tqdm

from qa.embedding import Embedder
from qa.retrieval import Retriever
from qa.sources.files import Article
from .squad import Example
from qa.stores.embedded import EmbeddedSearch, update_index

SEARCH_BATCH = 256


def paragraph_articles(examples: list[Example]) -> tuple[list[Article], dict[str, str]]:
    """Each distinct paragraph becomes an article 'Title#n'; also returns context -> that id."""
    ids: dict[str, str] = {}
    articles = []
    counts: dict[str, int] = {}
    for ex in examples:
        if ex.context in ids:
            continue
        n = counts[ex.title] = counts.get(ex.title, -1) + 1
        ids[ex.context] = f"{ex.title}#{n}"
        articles.append(Article(ids[ex.context], ex.title.replace("_", " "), ex.context, "", None,
                                hashlib.sha256(ex.context.encode()).hexdigest()))
    return articles, ids


def _key(ex: Example) -> str:
    return hashlib.sha1(f"{ex.id}\x00{ex.question}\x00{ex.context}".encode()).hexdigest()


def hard_distractors(examples: list[Example], embedder: Embedder, work: Path, per_question: int = 1,
                     wanted: set[int] | None = None, chunk_chars: int = 900,
                     chunk_overlap: int = 200) -> list[list[str]]:
    """For each example, up to `per_question` retrieved passages from other paragraphs (texts); with
    `wanted`, only for those indices (the others get none), though every paragraph stays a candidate."""
    cache_file = work / f"distractors-{per_question}.json"
    cache: dict[str, list[str]] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    todo = [i for i, ex in enumerate(examples) if (wanted is None or i in wanted) and _key(ex) not in cache]
    if todo:
        articles, paragraph_id = paragraph_articles(examples)
        stored, _ = update_index(work / "distractor-index", articles, embedder, chunk_chars, chunk_overlap,
                                 hnsw_above=10**9, progress=True)
        retriever = Retriever(EmbeddedSearch(stored), embedder)
        for lo in tqdm(range(0, len(todo), SEARCH_BATCH), desc="distractors", unit="batch"):
            part = [examples[i] for i in todo[lo : lo + SEARCH_BATCH]]
            found = retriever.search_many([ex.question for ex in part], k=per_question + 6)
            for ex, passages in zip(part, found):
                gold = paragraph_id[ex.context]
                answers = [a.lower() for a in ex.answers]
                picked = [p.chunk.text for p in passages
                          if p.chunk.article_id != gold and not any(a in p.chunk.text.lower() for a in answers)]
                cache[_key(ex)] = picked[:per_question]
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_file)
    return [cache[_key(ex)] if wanted is None or i in wanted else [] for i, ex in enumerate(examples)]
