"""What both stores share: the manifest entry of an article, the update report, the plan of what
changed, and a search hit. Plain frozen dataclasses; the stores persist and search, nothing more."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..chunking import Chunk
from ..sources.files import Article


@dataclass(frozen=True)
class ArticleEntry:
    sha256: str
    title: str
    source: str
    published: str | None
    chunks: int
    author: str | None = None   # the article's own metadata, for questions about it (qa/metadata.py)
    site: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class UpdateReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # unreadable files, by path
    reasons: dict[str, str] = field(default_factory=dict)  # path -> why it was skipped
    chunks_embedded: int = 0
    chunks_total: int = 0
    full_rebuild: bool = False
    seconds: float = 0.0

    @property
    def modified(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.full_rebuild)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.changed)} changed", f"{len(self.removed)} removed",
                 f"{len(self.unchanged)} unchanged"]
        text = (f"{', '.join(parts)}; {self.chunks_embedded} of {self.chunks_total} passages embedded"
                f"{' (full rebuild)' if self.full_rebuild else ''} in {self.seconds:.2f} s")
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{p} ({self.reasons[p]})" if p in self.reasons else p
                                              for p in self.skipped)
        return text

    def to_dict(self) -> dict:
        return asdict(self)


def chunking_settings(chunk_chars: int, chunk_overlap: int) -> dict:
    return {"chunk_chars": chunk_chars, "chunk_overlap": chunk_overlap}


@dataclass(frozen=True)
class Hit:
    """A passage found by one lane of the search, with the query's cosine similarity to it."""
    chunk: Chunk
    title: str
    score: float    # the lane's own score: cosine (dense) or BM25 / ts_rank (keyword)
    cosine: float


@dataclass(frozen=True)
class ArticleChanges:
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    full: bool
    to_embed: frozenset[str]   # the articles to chunk and embed: added and changed, or all when `full`


def plan_changes(indexed: dict[str, str], articles: list[Article], full: bool = False) -> ArticleChanges:
    """What an update must do, from the indexed articles' hashes (id -> sha256) and the articles now;
    `full`: everything is re-embedded (another embedder or chunking, or asked for)."""
    added, changed, unchanged = [], [], []
    for a in articles:
        before = indexed.get(a.id)
        (added if before is None else unchanged if before == a.sha256 else changed).append(a.id)
    removed = sorted(set(indexed) - {a.id for a in articles})
    to_embed = frozenset(added + changed + (unchanged if full else []))
    return ArticleChanges(added, changed, removed, unchanged, full, to_embed)
