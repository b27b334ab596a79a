"""The index on disk: passages, their vectors and a FAISS index, with a manifest.

Layout: index/CURRENT names the live version folder (index/v-...); a new version is written
completely in a temporary folder, renamed, and only then does CURRENT switch to it (os.replace is
atomic), so a crash or a concurrent reader never sees half an index. No pickle: JSON, JSONL, .npy
(allow_pickle=False) and FAISS's own format.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from .articles import Article
from .chunking import Chunk, chunk_article
from .embedding import Embedder
from .errors import IndexCorrupt

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ArticleEntry:
    sha256: str
    title: str
    source: str
    published: str | None
    chunks: int


@dataclass
class StoredIndex:
    """One version of the index, loaded in memory."""

    manifest: dict
    chunks: list[Chunk]
    vectors: np.ndarray
    faiss_index: faiss.Index
    path: Path | None = None

    @property
    def articles(self) -> dict[str, ArticleEntry]:
        return {k: ArticleEntry(**v) for k, v in self.manifest["articles"].items()}


@dataclass(frozen=True)
class UpdateReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # unreadable files, by path
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
            text += f"; skipped unreadable: {', '.join(self.skipped)}"
        return text

    def to_dict(self) -> dict:
        return asdict(self)


def chunking_settings(chunk_chars: int, chunk_overlap: int) -> dict:
    return {"chunk_chars": chunk_chars, "chunk_overlap": chunk_overlap}


def build_faiss(vectors: np.ndarray, hnsw_above: int) -> faiss.Index:
    """Exact inner-product search while small; HNSW (approximate, much faster) above the threshold."""
    dim = vectors.shape[1]
    if len(vectors) > hnsw_above:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index


def load_index(root: str | Path) -> StoredIndex | None:
    """The live version under `root`, None if there is none yet; IndexCorrupt if it is broken."""
    root = Path(root)
    pointer = root / "CURRENT"
    if not pointer.exists():
        return None
    try:
        folder = root / pointer.read_text().strip()
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexCorrupt(f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}")
        with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
            chunks = [Chunk(**json.loads(line)) for line in fh]
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        index = faiss.read_index(str(folder / "passages.faiss"))
    except IndexCorrupt:
        raise
    except Exception as err:  # truncated JSON, short .npy, bad FAISS file...: all mean "rebuild"
        raise IndexCorrupt(f"index at {root} is unreadable: {err}") from err
    n = sum(a["chunks"] for a in manifest["articles"].values())
    if not (len(chunks) == len(vectors) == index.ntotal == n):
        raise IndexCorrupt(f"index at {root} is inconsistent: {len(chunks)} passages, {len(vectors)} vectors, "
                           f"{index.ntotal} in FAISS, {n} in the manifest")
    return StoredIndex(manifest, chunks, vectors, index, folder)


def save_index(root: str | Path, stored: StoredIndex) -> Path:
    """Write a new version and switch CURRENT to it atomically; then remove versions older than
    the previous one (a reader that opened the previous one a moment ago can still finish)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"v-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    try:
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in stored.chunks:
                fh.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", stored.vectors, allow_pickle=False)
        faiss.write_index(stored.faiss_index, str(tmp / "passages.faiss"))
        (tmp / "manifest.json").write_text(json.dumps(stored.manifest, indent=2, ensure_ascii=False))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        tmp.rename(root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    previous = (root / "CURRENT").read_text().strip() if (root / "CURRENT").exists() else None
    pointer_tmp = root / f".CURRENT-{uuid.uuid4().hex[:8]}"
    pointer_tmp.write_text(name + "\n")
    os.replace(pointer_tmp, root / "CURRENT")
    for old in root.iterdir():
        if old.name not in (name, previous, "CURRENT") and (old.name.startswith("v-") or old.name.startswith(".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
    stored.path = root / name
    return stored.path


def update_index(
    root: str | Path,
    articles: list[Article],
    embedder: Embedder,
    chunk_chars: int,
    chunk_overlap: int,
    hnsw_above: int,
    full: bool = False,
    skipped: list[str] | None = None,
    progress: bool = False,
    batch_size: int = 32,
) -> tuple[StoredIndex, UpdateReport]:
    """Bring the index under `root` in line with `articles`: only new and changed articles are
    embedded; a different embedder or chunking (or `full`) re-embeds everything; a corrupt index
    is rebuilt with a warning."""
    started = time.perf_counter()
    settings = chunking_settings(chunk_chars, chunk_overlap)
    try:
        old = load_index(root)
    except IndexCorrupt as err:
        log.warning("%s; rebuilding it from the articles", err)
        old = None
    full = full or old is None or old.manifest["embedder"] != embedder.id or old.manifest["chunking"] != settings

    old_rows: dict[str, list[int]] = {}
    if not full:
        for row, c in enumerate(old.chunks):
            old_rows.setdefault(c.article_id, []).append(row)
    old_articles = {} if old is None else old.manifest["articles"]

    report = {"added": [], "changed": [], "removed": [], "unchanged": []}
    chunks: list[Chunk] = []
    vectors: list[np.ndarray] = []
    to_embed: list[int] = []   # positions in `chunks` that need a vector
    entries = {}
    for article in articles:
        before = old_articles.get(article.id)
        kind = "added" if before is None else "unchanged" if before["sha256"] == article.sha256 else "changed"
        report[kind].append(article.id)
        if kind == "unchanged" and not full:
            rows = old_rows.get(article.id, [])
            chunks += [old.chunks[r] for r in rows]
            vectors += [old.vectors[r] for r in rows]
            count = len(rows)
        else:
            new = chunk_article(article, chunk_chars, chunk_overlap)
            to_embed += range(len(chunks), len(chunks) + len(new))
            chunks += new
            vectors += [None] * len(new)
            count = len(new)
        entries[article.id] = asdict(ArticleEntry(article.sha256, article.title, article.source, article.published, count))
    report["removed"] = sorted(set(old_articles) - set(entries))

    if old is not None and not full and not to_embed and not report["removed"]:
        # nothing to do: keep the live version, write nothing
        return old, UpdateReport(**report, skipped=skipped or [], chunks_total=len(chunks),
                                 seconds=time.perf_counter() - started)

    fresh = embedder.embed([chunks[i].text for i in to_embed], batch_size=batch_size, progress=progress)
    for i, v in zip(to_embed, fresh):
        vectors[i] = v
    matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, embedder.dim), np.float32)
    manifest = {
        "format_version": FORMAT_VERSION,
        "embedder": embedder.id,
        "dim": int(matrix.shape[1]),
        "chunking": settings,
        "faiss": "hnsw" if len(matrix) > hnsw_above else "flat",
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "articles": entries,
    }
    stored = StoredIndex(manifest, chunks, matrix, build_faiss(matrix, hnsw_above))
    save_index(root, stored)
    return stored, UpdateReport(**report, skipped=skipped or [], chunks_embedded=len(to_embed),
                                chunks_total=len(chunks), full_rebuild=full, seconds=time.perf_counter() - started)
