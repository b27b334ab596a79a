"""The index on disk: passages, their vectors and a FAISS index, with a manifest.

Layout: index/CURRENT names the live version folder (index/v-...); a new version is written
completely in a temporary folder, renamed, and only then does CURRENT switch to it (os.replace is
atomic), so a crash or a concurrent reader never sees half an index. No pickle: JSON, JSONL, .npy
(allow_pickle=False) and FAISS's own format.

One writer at a time: every write happens under an exclusive lock on index/.writer.lock (filelock,
across processes and threads); readers take no lock. Only the lock holder cleans up, and only what is
provably dead: versions other than the live one and the one before it (named in the live manifest),
and the .tmp-* folders and .CURRENT-* files of writers that were killed.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
from filelock import FileLock, Timeout

from ..chunking import Chunk, chunk_article
from ..embedding import Embedder
from ..errors import IndexBusy, IndexCorrupt, StorageError
from ..shapes import field_problem
from ..sources.files import Article
from .base import ArticleEntry, Hit, UpdateReport, chunking_settings, plan_changes

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LOCK_FILE = ".writer.lock"
HOLDER_FILE = ".writer.pid"   # who holds the lock, for the waiting message only


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


def build_faiss(vectors: np.ndarray, hnsw_above: int) -> faiss.Index:
    """Exact inner-product search while small; HNSW (approximate, much faster) above the threshold."""
    dim = vectors.shape[1]
    if len(vectors) > hnsw_above:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 256   # recall@10 0.979 against exact search at 100k passages, 0.26 ms (bench/scale.py)
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
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            found = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise IndexCorrupt(f"index at {root} is unreadable: its format {found} is not {FORMAT_VERSION}")
        problem = manifest_problem(manifest)
        if problem:  # valid JSON of the wrong shape: as unreadable as a truncated file, rebuilt the same way
            raise IndexCorrupt(f"index at {root} is unreadable: its manifest {problem}")
        with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
            chunks = [Chunk(**json.loads(line)) for line in fh]
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        index = faiss.read_index(str(folder / "passages.faiss"))
    except IndexCorrupt:
        raise
    except Exception as err:  # truncated JSON, short .npy, bad FAISS file...: all mean "rebuild"
        raise IndexCorrupt(f"index at {root} is unreadable: {_one_line(err)}") from err
    problem = chunks_problem(chunks, manifest["articles"])
    if problem:
        raise IndexCorrupt(f"index at {root} is inconsistent: {problem}")
    n = len(chunks)
    if vectors.ndim != 2 or vectors.shape[1] != index.d:
        raise IndexCorrupt(f"index at {root} is inconsistent: vectors of shape {vectors.shape}, "
                           f"FAISS of dimension {index.d}")
    if not (len(chunks) == len(vectors) == index.ntotal == n):
        raise IndexCorrupt(f"index at {root} is inconsistent: {len(chunks)} passages, {len(vectors)} vectors, "
                           f"{index.ntotal} in FAISS, {n} in the manifest")
    return StoredIndex(manifest, chunks, vectors, index, folder)


_ENTRY_FIELDS = {"sha256": str, "title": str, "source": str, "published": (str, type(None)), "chunks": int,
                 "author": (str, type(None)), "site": (str, type(None)), "url": (str, type(None))}
_REQUIRED = ("sha256", "title", "source", "chunks")


def manifest_problem(manifest: dict) -> str | None:
    """What makes a manifest (valid JSON) other than the structure save_index writes, or None: every key
    a reader or writer looks up is there, of its type; each article entry is an ArticleEntry."""
    if not isinstance(manifest.get("embedder"), str):
        return "names no embedder"
    if not isinstance(manifest.get("chunking"), dict):
        return "has no chunking settings"
    if not isinstance(manifest.get("previous"), (str, type(None))):
        return "names its previous version wrongly"
    articles = manifest.get("articles")
    if not isinstance(articles, dict):
        return f"holds its articles as {type(articles).__name__}, not an object"
    for article_id, entry in articles.items():
        if not isinstance(entry, dict):
            return f"has an entry for {article_id!r} that is {type(entry).__name__}, not an object"
        for key in _REQUIRED:
            if key not in entry:
                return f"has an entry for {article_id!r} without {key!r}"
        problem = field_problem(entry, _ENTRY_FIELDS, f"has an entry for {article_id!r} that", non_negative="chunks")
        if problem:
            return problem
    return None


def chunks_problem(chunks: list[Chunk], articles: dict[str, dict]) -> str | None:
    """Passages of the wrong types, or not as many per article as the manifest says; None when right."""
    counts: dict[str, int] = {}
    for c in chunks:
        if not (isinstance(c.article_id, str) and isinstance(c.text, str) and type(c.start) is int
                and type(c.end) is int):
            return f"a passage of the wrong types ({c.article_id!r}, {c.start!r}, {c.end!r})"
        counts[c.article_id] = counts.get(c.article_id, 0) + 1
    expected = {a: e["chunks"] for a, e in articles.items() if e["chunks"]}
    if counts != expected:
        wrong = next(a for a in sorted(set(counts) | set(expected)) if counts.get(a, 0) != expected.get(a, 0))
        return (f"{counts.get(wrong, 0)} passages of {wrong!r} in chunks.jsonl, {expected.get(wrong, 0)} in "
                "the manifest")
    return None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


_quiet_holders: set[int] = set()


def wait_quietly_for(pid: int) -> None:
    """Waiting for process `pid`'s lock is routine (the chat, in its own indexing child): no warning."""
    _quiet_holders.add(pid)


def forget_holder(pid: int) -> None:
    _quiet_holders.discard(pid)


@contextmanager
def writer_lock(root: str | Path, timeout: float = 600.0):
    """Hold the index's writer lock: a second writer (another process, or another thread) waits,
    saying so, and raises IndexBusy after `timeout` seconds. StorageError if the folder is unwritable."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(root / LOCK_FILE, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = read_holder(root)
            # another process: say so; another thread of this one (the chat's add and its watcher), or
            # the chat whose indexing child this is: routine
            ours = (f"process {os.getpid()} ", *(f"process {pid} " for pid in _quiet_holders))
            level = logging.INFO if holder.startswith(ours) else logging.WARNING
            log.log(level, "the index %s is being updated by %s; waiting for it (up to %.0f s)", root, holder, timeout)
            lock.acquire(timeout=timeout)
    except Timeout:
        raise IndexBusy(f"the index {root} is still being updated by another writer after {timeout:.0f} s "
                        "(QA_LOCK_TIMEOUT); try again later",
                        public="the index is being updated by someone else; try again in a minute") from None
    except OSError as err:
        raise _storage_error(root, err) from None
    try:
        write_holder(root)
        yield
    finally:
        lock.release()


_HOLDER = re.compile(r"process \d+ \(thread [^\n]*\)\n")


def write_holder(root: Path) -> None:
    """Who holds the lock, for the waiting message only: written beside the file and renamed over it,
    so that a waiting writer never reads it half written."""
    tmp = root / f".CURRENT-holder-{uuid.uuid4().hex[:8]}"   # a name clean_up removes if we die here
    try:
        tmp.write_text(f"process {os.getpid()} (thread {threading.current_thread().name})\n")
        os.replace(tmp, root / HOLDER_FILE)
    except OSError:  # only used for the message
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def read_holder(root: Path) -> str:
    """"process N (thread T)" of the lock's holder; "another process" when the file is missing, empty or
    only partly written (by a version that wrote it in place)."""
    try:
        text = (root / HOLDER_FILE).read_text()
    except (OSError, UnicodeDecodeError):
        return "another process"
    return text.strip() if _HOLDER.fullmatch(text) else "another process"


def _storage_error(root: Path, err: OSError) -> StorageError:
    what = f" ({Path(err.filename).name})" if isinstance(err.filename, str) and err.strerror else ""
    return StorageError(f"cannot write the index in {root}: {_one_line(err.strerror or err)}{what}",
                        public="the index could not be written on the server; nothing was changed")


def save_index(root: str | Path, stored: StoredIndex) -> Path:
    """Write a new version and switch CURRENT to it atomically; then remove versions older than
    the previous one (a reader that opened the previous one a moment ago can still finish).
    The caller holds writer_lock(root)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"v-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    previous = (root / "CURRENT").read_text().strip() if (root / "CURRENT").exists() else None
    stored.manifest["previous"] = previous  # the clean-up keeps it: a reader may still be loading it
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    step = tmp / "chunks.jsonl"   # the file being written, named in the error (a full disk, a size limit)
    try:
        with open(step, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in stored.chunks)
        step = tmp / "vectors.npy"
        np.save(step, stored.vectors, allow_pickle=False)
        step = tmp / "passages.faiss"
        write_faiss(stored.faiss_index, step)
        step = tmp / "manifest.json"
        step.write_text(json.dumps(stored.manifest, indent=2, ensure_ascii=False))
        for f in tmp.iterdir():
            step = f
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        tmp.rename(root / name)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(step)
        raise
    pointer_tmp = root / f".CURRENT-{uuid.uuid4().hex[:8]}"
    try:
        pointer_tmp.write_text(name + "\n")
        os.replace(pointer_tmp, root / "CURRENT")
    except BaseException:
        pointer_tmp.unlink(missing_ok=True)
        shutil.rmtree(root / name, ignore_errors=True)
        raise
    stored.path = root / name
    clean_up(root, keep={name, previous})
    return stored.path


def write_faiss(index: faiss.Index, path: Path) -> None:
    """faiss.write_index(index, path) raises a RuntimeError when a write fails in the middle, and when the
    last, buffered part fails (a full disk, a file size limit) it only prints to stderr and leaves a short
    file. Streamed through a Python file instead, every failed write is an OSError (with its errno)."""
    with open(path, "wb") as fh:
        try:
            faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))
        except RuntimeError as err:   # FAISS's own failure (the OSError of fh.write comes through as itself)
            raise OSError(f"FAISS could not write {path.name}: {_one_line(err)}") from None


def clean_up(root: Path, keep: set[str | None]) -> list[str]:
    """Remove what no one can be using: versions not in `keep`, and the temporary files of writers
    that died. Only the holder of the writer lock may call this. Returns the names removed."""
    removed = []
    for old in Path(root).iterdir():
        name = old.name
        if _dead(name, keep):
            try:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
                removed.append(name)
            except OSError as err:  # best effort: the next writer tries again
                log.warning("could not remove %s: %s", old, err)
    return removed


def _dead(name: str, keep: set[str | None]) -> bool:
    """A version no one can be using, or a temporary file of a writer that died."""
    return (name.startswith("v-") and name not in keep) or name.startswith((".tmp-", ".CURRENT-"))


def _leftovers(root: Path, live: StoredIndex | None) -> bool:
    keep = {live.path.name, live.manifest.get("previous")} if live is not None and live.path else set()
    try:
        return any(_dead(p.name, keep) for p in root.iterdir())
    except OSError:
        return False


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
    reasons: dict[str, str] | None = None,
    locked: bool = False,
    lock_timeout: float = 600.0,
) -> tuple[StoredIndex, UpdateReport]:
    """Bring the index under `root` in line with `articles`: only new and changed articles are
    embedded; a different embedder or chunking (or `full`) re-embeds everything; a corrupt index
    is rebuilt with a warning. Writes under the writer lock (`locked`: the caller holds it), and
    only when something changed, so an up-to-date index in a read-only folder still loads."""
    started = time.perf_counter()
    root = Path(root)
    extra = {"skipped": skipped or [], "reasons": reasons or {}}
    live = None
    if not locked and not full:
        live, done = check_current(root, articles, embedder, chunk_chars, chunk_overlap, skipped, reasons)
        if done is not None:
            return live, done  # nothing to write
    with nullcontext() if locked else writer_lock(root, lock_timeout):
        try:
            # again, unless nothing changed: another writer may have switched it while we waited
            same = live is not None and (root / "CURRENT").read_text().strip() == live.path.name
            old = live if same else load_index(root)
        except IndexCorrupt as err:
            log.warning("%s; rebuilding it from the articles", err)
            old = None
        except OSError as err:
            raise _storage_error(root, err) from None
        stored, report = _diff(old, articles, embedder, chunk_chars, chunk_overlap, full, extra, started)
        if stored is not None:
            try:
                clean_up(root, keep={old.path.name, old.manifest.get("previous")})
            except OSError:
                pass
            return stored, report
        chunks, to_embed, vectors, entries, report, full = report
        fresh = embedder.embed([chunks[i].text for i in to_embed], batch_size=batch_size, progress=progress)
        for i, v in zip(to_embed, fresh):
            vectors[i] = v
        del fresh
        matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, embedder.dim), np.float32)
        del vectors
        manifest = {
            "format_version": FORMAT_VERSION,
            "embedder": embedder.id,
            "dim": int(matrix.shape[1]),
            "chunking": chunking_settings(chunk_chars, chunk_overlap),
            "faiss": "hnsw" if len(matrix) > hnsw_above else "flat",
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "articles": entries,
        }
        stored = StoredIndex(manifest, chunks, matrix, build_faiss(matrix, hnsw_above))
        try:
            save_index(root, stored)
        except OSError as err:
            raise _storage_error(root, err) from None
    return stored, UpdateReport(**report, **extra, chunks_embedded=len(to_embed), chunks_total=len(chunks),
                                full_rebuild=full, seconds=time.perf_counter() - started)


def check_current(root: str | Path, articles: list[Article], embedder: Embedder, chunk_chars: int,
                  chunk_overlap: int, skipped: list[str] | None = None, reasons: dict[str, str] | None = None,
                  ) -> tuple[StoredIndex | None, UpdateReport | None]:
    """Without any lock: (the live index, a report) when it already matches `articles` and there is
    nothing to clean up; (the live index or None, None) when a writer has work to do."""
    started = time.perf_counter()
    root = Path(root)
    try:
        live = load_index(root)
    except (IndexCorrupt, OSError):
        return None, None
    if live is None:
        return None, None
    extra = {"skipped": skipped or [], "reasons": reasons or {}}
    stored, report = _diff(live, articles, embedder, chunk_chars, chunk_overlap, False, extra, started)
    if stored is not None and not _leftovers(root, live):
        return stored, report
    return live, None


def _diff(old: StoredIndex | None, articles: list[Article], embedder: Embedder, chunk_chars: int, chunk_overlap: int,
          full: bool, extra: dict, started: float):
    """(old, its report) when nothing needs writing; else (None, (chunks, positions to embed, vectors so
    far, manifest entries, report fields, whether everything is re-embedded))."""
    settings = chunking_settings(chunk_chars, chunk_overlap)
    full = full or old is None or old.manifest["embedder"] != embedder.id or old.manifest["chunking"] != settings

    old_rows: dict[str, list[int]] = {}
    if not full:
        for row, c in enumerate(old.chunks):
            old_rows.setdefault(c.article_id, []).append(row)
    old_articles = {} if old is None else old.manifest["articles"]
    plan = plan_changes({a: e["sha256"] for a, e in old_articles.items()}, articles, full)
    report = {"added": plan.added, "changed": plan.changed, "removed": plan.removed, "unchanged": plan.unchanged}
    chunks: list[Chunk] = []
    vectors: list[np.ndarray] = []
    to_embed: list[int] = []   # positions in `chunks` that need a vector
    entries = {}
    for article in articles:
        if article.id not in plan.to_embed:  # unchanged: its passages and vectors carry over
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
        entries[article.id] = asdict(ArticleEntry(article.sha256, article.title, article.source, article.published, count,
                                                         article.author, article.site, article.url))

    if old is not None and not full and not to_embed and not report["removed"]:
        # nothing to do: keep the live version, write nothing
        return old, UpdateReport(**report, **extra, chunks_total=len(chunks), seconds=time.perf_counter() - started)
    return None, (chunks, to_embed, vectors, entries, report, full)


class EmbeddedSearch:
    """Searching one loaded version: FAISS for the dense lane, bm25s (built here, in memory) for the keyword lane."""

    def __init__(self, stored: StoredIndex):
        import bm25s

        from ..support import thread_stemmer

        # bm25s sets its own logger to DEBUG on import, which floods any application that configures logging
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.stored = stored
        self.path = stored.path
        self._bm25s = bm25s
        self._titles = {a: e["title"] for a, e in stored.manifest["articles"].items()}
        self.bm25 = bm25s.BM25()
        if stored.chunks:
            tokens = bm25s.tokenize([c.text for c in stored.chunks], stemmer=thread_stemmer(), show_progress=False)
            self.bm25.index(tokens, show_progress=False)

    @property
    def articles(self) -> dict[str, dict]:
        return self.stored.manifest["articles"]

    def chunks_of(self, article_id: str) -> list[Chunk]:
        return [c for c in self.stored.chunks if c.article_id == article_id]

    def article_texts(self) -> dict[str, tuple[str, str]]:
        from ..duplicates import article_texts

        return article_texts(self.stored)

    def _hidden(self, exclude: list[frozenset[str]]) -> int:
        entries = self.articles
        return max((sum(entries[a]["chunks"] for a in left_out if a in entries) for left_out in exclude), default=0)

    def dense(self, vectors: np.ndarray, depth: int, exclude: list[frozenset[str]]) -> list[list[Hit]]:
        chunks = self.stored.chunks
        if not chunks:
            return [[] for _ in exclude]
        scores, ids = self.stored.faiss_index.search(vectors, min(len(chunks), depth + self._hidden(exclude)))
        return [[Hit(chunks[i], self._titles.get(chunks[i].article_id, ""), float(s), float(s))
                 for i, s in zip(row_ids, row_scores) if i >= 0 and chunks[i].article_id not in left_out][:depth]
                for row_ids, row_scores, left_out in zip(ids, scores, exclude)]

    def keyword(self, queries: list[str], vectors: np.ndarray, depth: int, exclude: list[frozenset[str]]) -> list[list[Hit]]:
        chunks = self.stored.chunks
        if not chunks:
            return [[] for _ in queries]
        from ..support import thread_stemmer

        hidden = self._hidden(exclude)
        # a PyStemmer object is not thread-safe: the chat searches on many threads, each with its own
        tokens = self._bm25s.tokenize(queries, stemmer=thread_stemmer(), show_progress=False, return_ids=False)
        out = []
        for q_tokens, vector, left_out in zip(tokens, vectors, exclude):
            scores = self.bm25.get_scores(q_tokens) if q_tokens else np.zeros(len(chunks))
            order = np.argsort(-scores, kind="stable")[: depth + hidden]
            out.append([Hit(chunks[i], self._titles.get(chunks[i].article_id, ""), float(scores[i]),
                            float(self.stored.vectors[i] @ vector))
                        for i in order if chunks[i].article_id not in left_out and scores[i] > 0][:depth])
        return out
