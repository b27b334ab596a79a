"""The same story from several outlets (wire copy): near-duplicate articles by MinHash LSH (datasketch).

Groups are computed for each live index version over whole articles (the text of their passages),
not over the few passages a question retrieves: an answer must list *every* outlet that carries the
story, including those whose passages were not retrieved. A MinHash is kept per article hash, so a new
version only hashes the articles that are new or changed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NUM_PERM = 128
SHINGLE = 5   # words per shingle: long enough that two different stories share few of them


def shingles(text: str) -> set[bytes]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i:i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


def minhash(text: str):
    from datasketch import MinHash

    m = MinHash(num_perm=NUM_PERM)
    m.update_batch(shingles(text))
    return m


@dataclass(frozen=True)
class Duplicates:
    """article id -> the ids of every article carrying the same story (itself included, sorted); only
    articles that have copies are in it."""

    groups: dict[str, tuple[str, ...]]

    def of(self, article_id: str | None) -> tuple[str, ...]:
        """The articles carrying the story of `article_id`: itself first, then the others."""
        if article_id is None:
            return ()
        return (article_id, *(a for a in self.groups.get(article_id, ()) if a != article_id))

    @property
    def any(self) -> bool:
        return any(len(g) > 1 for g in self.groups.values())


class DuplicateFinder:
    """Builds Duplicates for index versions, remembering MinHashes by article hash between versions."""

    def __init__(self, threshold: float = 0.6):
        self.threshold = threshold
        self._cache: dict[str, object] = {}   # sha256 -> MinHash

    def find(self, texts: dict[str, tuple[str, str]]) -> Duplicates:
        """`texts`: article id -> (sha256, text)."""
        from datasketch import MinHashLSH

        hashes = {}
        for article_id, (sha, text) in texts.items():
            if sha not in self._cache:
                self._cache[sha] = minhash(text)
            hashes[article_id] = self._cache[sha]
        live = {sha for sha, _ in texts.values()}
        self._cache = {sha: m for sha, m in self._cache.items() if sha in live}
        lsh = MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM)
        for article_id, m in hashes.items():
            lsh.insert(article_id, m)
        parent = {a: a for a in hashes}

        def root(a: str) -> str:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for article_id, m in hashes.items():
            for other in lsh.query(m):
                # LSH finds candidates; the estimated Jaccard confirms them
                if other != article_id and m.jaccard(hashes[other]) >= self.threshold:
                    parent[root(other)] = root(article_id)
        members: dict[str, list[str]] = {}
        for a in hashes:
            members.setdefault(root(a), []).append(a)
        return Duplicates({a: tuple(sorted(g)) for g in members.values() if len(g) > 1 for a in g})


def article_texts(stored) -> dict[str, tuple[str, str]]:
    """article id -> (sha256, its text as the index holds it: its passages, overlaps and all)."""
    parts: dict[str, list[str]] = {}
    for chunk in stored.chunks:
        parts.setdefault(chunk.article_id, []).append(chunk.text)
    entries = stored.manifest["articles"]
    return {a: (entries[a]["sha256"], "\n".join(p)) for a, p in parts.items() if a in entries}


def collapse(passages: list, duplicates: Duplicates, k: int) -> list:
    """The first k passages, leaving out those of an article that is a copy of the article of a
    passage already kept: the reader reads each story once, and no answer gains support from
    merely being reprinted."""
    if not duplicates.any:
        return passages[:k]
    kept, seen_groups = [], {}
    for p in passages:
        group = duplicates.groups.get(p.chunk.article_id, (p.chunk.article_id,))  # sorted: one key per story
        owner = seen_groups.setdefault(group, p.chunk.article_id)
        if owner == p.chunk.article_id:
            kept.append(p)
        if len(kept) == k:
            break
    return kept
