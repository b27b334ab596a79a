"""The PostgreSQL + pgvector store: passages and vectors in tables, for many serving processes.

One database holds one index: `qa_articles` (the manifest), `qa_passages` (text, offsets, the
vector under an HNSW index, a tsvector under a GIN index for the keyword lane) and `qa_meta` (which
embedder and chunking made them). The schema is created and upgraded by `migrate()`, its version in
`qa_schema`; a newer schema than this code knows is refused. Every article's change (delete + insert)
is one transaction, so a question never sees half an article; one writer at a time holds an
advisory lock. psycopg and pgvector are imported only when a `postgresql://` store is used.
"""
from __future__ import annotations

import itertools
import json
import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from urllib.parse import urlsplit

import numpy as np

from ..sources.files import Article
from ..chunking import Chunk, chunk_article
from ..embedding import Embedder
from ..errors import DatabaseError, IndexBusy, SchemaMismatch
from .base import ArticleEntry, Hit, UpdateReport, chunking_settings, plan_changes

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
WRITER_LOCK_KEY = 7_307_405_361   # pg_advisory_lock key of "the qa writer" (any constant shared by all writers)
EF_SEARCH = 200                    # HNSW candidates per search: recall against speed (bench/scale.py)
HNSW_INDEX = ("CREATE INDEX qa_passages_hnsw ON qa_passages USING hnsw (embedding vector_ip_ops) "
              "WITH (m = 16, ef_construction = 100)")
PAIRS_ABOVE = 20_000               # passages: above, a keyword match needs two of the question's words
MAX_QUERY_WORDS = 12               # (12 words: 66 pairs)
HNSW_BUILD_MEMORY = "512MB"        # maintenance_work_mem while the graph is built: fits 100k+ vectors
MIGRATIONS = {  # version -> the statements that bring the previous version to it
    1: [
        "CREATE TABLE qa_meta (key text PRIMARY KEY, value jsonb NOT NULL)",
        "CREATE TABLE qa_articles (id text PRIMARY KEY, sha256 text NOT NULL, entry jsonb NOT NULL)",
        """CREATE TABLE qa_passages (
               id bigserial PRIMARY KEY,
               article_id text NOT NULL REFERENCES qa_articles (id) ON DELETE CASCADE,
               start_char integer NOT NULL,
               end_char integer NOT NULL,
               text text NOT NULL,
               embedding vector NOT NULL,
               tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)""",
        "CREATE INDEX qa_passages_article ON qa_passages (article_id)",
        "CREATE INDEX qa_passages_tsv ON qa_passages USING gin (tsv)",
    ],
}


def is_database_url(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://"))


def describe_url(url: str) -> str:
    """postgresql://host:port/db of a URL, without the user's password, for messages."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:  # a port that is not a number
        port = "?"
    return f"postgresql://{parts.hostname or 'localhost'}:{port}{parts.path or '/'}"


class PostgresStore:
    """An index in a PostgreSQL database. `read_only`: never migrates or writes (serving replicas)."""

    def __init__(self, url: str, read_only: bool = False, pool_size: int = 8, connect_timeout: float = 5.0):
        try:
            import psycopg
            from pgvector.psycopg import register_vector
            from psycopg_pool import ConnectionPool
        except ImportError as err:
            raise DatabaseError(f"a postgresql:// store needs the postgres extra: pip install 'article-qa[postgres]' "
                                f"({err.name} is missing)") from None
        self.url, self.where, self.read_only = url, describe_url(url), read_only
        self._psycopg = psycopg
        try:  # one plain connection first: a clear error now rather than a pool retrying in the background
            with psycopg.connect(url, connect_timeout=connect_timeout, autocommit=True) as conn:
                if read_only:
                    self._check_schema(conn)  # first: an empty database says "no index", not "no pgvector"
                    self._check_extension(conn)
                else:
                    self._check_extension(conn)
                    self.migrate(conn)
        except psycopg.OperationalError as err:
            raise DatabaseError(f"cannot connect to PostgreSQL at {self.where}: {_first_line(err)}",
                                public="the database is unavailable") from None
        except psycopg.ProgrammingError as err:  # e.g. an invalid URL
            raise DatabaseError(f"bad PostgreSQL URL for {self.where}: {_first_line(err)}") from None

        def configure(conn):
            register_vector(conn)
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, configure=configure, open=True,
                                   kwargs={"connect_timeout": connect_timeout})

    def close(self) -> None:
        self.pool.close()

    # -- schema ------------------------------------------------------------------------------------
    def _check_extension(self, conn) -> None:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        if self.read_only:
            raise DatabaseError(f"the database at {self.where} has no pgvector extension (and this store is read-only)")
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        if not available:
            raise DatabaseError(f"the PostgreSQL server at {self.where} has no pgvector extension installed "
                                "(https://github.com/pgvector/pgvector#installation)")

    def migrate(self, conn) -> int:
        """Create or upgrade the schema to SCHEMA_VERSION, each step in one transaction; returns the version."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK_KEY + 1,))  # one migrator at a time
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except self._psycopg.Error as err:
                raise DatabaseError(f"cannot enable pgvector in {self.where} (CREATE EXTENSION vector): "
                                    f"{_first_line(err)}") from None
            conn.execute("CREATE TABLE IF NOT EXISTS qa_schema (version integer NOT NULL)")
            row = conn.execute("SELECT version FROM qa_schema").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise SchemaMismatch(f"the index in {self.where} has schema version {version}, newer than this "
                                     f"package's {SCHEMA_VERSION}: upgrade article-qa")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
                log.info("PostgreSQL index schema %s: migrated to version %d", self.where, step)
            if row is None:
                conn.execute("INSERT INTO qa_schema VALUES (%s)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                conn.execute("UPDATE qa_schema SET version = %s", (SCHEMA_VERSION,))
        return SCHEMA_VERSION

    def _check_schema(self, conn) -> None:
        exists = conn.execute("SELECT to_regclass('qa_schema')").fetchone()[0]
        if exists is None:
            raise DatabaseError(f"no index in the database at {self.where}: run `qa index` against it first")
        version = conn.execute("SELECT version FROM qa_schema").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            raise SchemaMismatch(f"the index in {self.where} has schema version {version and version[0]}; "
                                 f"this package reads version {SCHEMA_VERSION}")

    # -- reading the manifest ----------------------------------------------------------------------
    def meta(self) -> dict:
        with self.pool.connection() as conn:
            return dict(conn.execute("SELECT key, value FROM qa_meta").fetchall())

    @property
    def articles(self) -> dict[str, dict]:
        with self.pool.connection() as conn:
            return {i: e for i, e in conn.execute("SELECT id, entry FROM qa_articles ORDER BY id")}

    def chunks_of(self, article_id: str) -> list[Chunk]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT article_id, start_char, end_char, text FROM qa_passages "
                                "WHERE article_id = %s ORDER BY start_char", (article_id,)).fetchall()
        return [Chunk(*r) for r in rows]

    def article_texts(self) -> dict[str, tuple[str, str]]:
        """id -> (sha256, the text its passages cover), for finding near-duplicate articles."""
        texts: dict[str, tuple[str, str]] = {}
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT a.id, a.sha256, string_agg(p.text, E'\\n' ORDER BY p.start_char) "
                                "FROM qa_articles a JOIN qa_passages p ON p.article_id = a.id GROUP BY a.id, a.sha256")
            for article_id, sha, text in rows:
                texts[article_id] = (sha, text)
        return texts

    @property
    def size(self) -> int:
        with self.pool.connection() as conn:
            return conn.execute("SELECT count(*) FROM qa_passages").fetchone()[0]

    # -- searching ---------------------------------------------------------------------------------
    def dense(self, vectors: np.ndarray, depth: int, exclude: list[frozenset[str]]) -> list[list[Hit]]:
        """Per query vector: the `depth` nearest passages by inner product (HNSW), leaving out articles."""
        out = []
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, depth)}")
            conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")  # filtered searches still fill `depth`
            for v, left_out in zip(vectors, exclude):
                rows = conn.execute(
                    "SELECT p.article_id, p.start_char, p.end_char, p.text, a.entry->>'title', -(p.embedding <#> %(v)s) "
                    "FROM qa_passages p JOIN qa_articles a ON a.id = p.article_id "
                    "WHERE NOT (p.article_id = ANY(%(ex)s)) ORDER BY p.embedding <#> %(v)s LIMIT %(n)s",
                    {"v": v, "ex": list(left_out), "n": depth}).fetchall()
                out.append([Hit(Chunk(*r[:4]), r[4] or "", float(r[5]), float(r[5])) for r in rows])
        return out

    def keyword(self, queries: list[str], vectors: np.ndarray, depth: int, exclude: list[frozenset[str]]) -> list[list[Hit]]:
        """Per query: PostgreSQL full-text search (English stemming) ranked by ts_rank. On a small corpus
        any of the question's words may match; on a large one (> PAIRS_ABOVE passages) a passage must hold
        two of them: ranking every passage that holds any one word took 200 ms at 100k passages, this
        6 ms, for the same recall of the right article (bench/scale.py). Cosine and title are computed for
        the top rows only."""
        out = []
        with self.pool.connection() as conn:
            large = conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'qa_passages'").fetchone()[0] > PAIRS_ABOVE
            for q, v, left_out in zip(queries, vectors, exclude):
                words = conn.execute("SELECT coalesce(array_agg(quote_literal(w)), '{}') "
                                     "FROM unnest(tsvector_to_array(to_tsvector('english', %s))) w", (q,)).fetchone()[0]
                if not words:
                    out.append([])
                    continue
                words = words[:MAX_QUERY_WORDS]
                if large and len(words) > 1:
                    query = " | ".join(f"({a} & {b})" for a, b in itertools.combinations(words, 2))
                else:
                    query = " | ".join(words)
                rows = conn.execute(
                    "WITH top AS (SELECT p.id, ts_rank(p.tsv, q) AS r FROM qa_passages p, to_tsquery('simple', %(q)s) q "
                    "             WHERE p.tsv @@ q AND NOT (p.article_id = ANY(%(ex)s)) ORDER BY r DESC, p.id LIMIT %(n)s) "
                    "SELECT p.article_id, p.start_char, p.end_char, p.text, a.entry->>'title', top.r, -(p.embedding <#> %(v)s) "
                    "FROM top JOIN qa_passages p ON p.id = top.id JOIN qa_articles a ON a.id = p.article_id "
                    "ORDER BY top.r DESC, p.id",
                    {"q": query, "v": v, "ex": list(left_out), "n": depth}).fetchall()
                out.append([Hit(Chunk(*r[:4]), r[4] or "", float(r[5]), float(r[6])) for r in rows])
        return out

    # -- writing -----------------------------------------------------------------------------------
    @contextmanager
    def writer_lock(self, timeout: float = 600.0):
        """One writer at a time, across processes and machines: a session advisory lock."""
        if self.read_only:
            raise DatabaseError(f"this store ({self.where}) is read-only")
        with self.pool.connection() as conn:
            conn.autocommit = True  # a session lock: no transaction (and no snapshot) kept open for the update's length
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchone()[0]:
                log.warning("the index in %s is being updated by another writer; waiting for it (up to %.0f s)",
                            self.where, timeout)
                deadline = time.monotonic() + timeout
                while not conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchone()[0]:
                    if time.monotonic() > deadline:
                        raise IndexBusy(f"the index in {self.where} is still being updated by another writer "
                                        f"after {timeout:.0f} s (QA_LOCK_TIMEOUT); try again later",
                                        public="the index is being updated by someone else; try again in a minute")
                    time.sleep(0.25)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK_KEY,))
                conn.autocommit = False

    def update(self, articles: list[Article], embedder: Embedder, chunk_chars: int, chunk_overlap: int,
               full: bool = False, progress: bool = False, batch_size: int = 32, locked: bool = False,
               lock_timeout: float = 600.0, skipped: list[str] | None = None,
               reasons: dict[str, str] | None = None) -> UpdateReport:
        """Bring the database in line with `articles`: new and changed articles are chunked, embedded
        and written, each in one transaction (delete + insert); removed ones deleted. A different
        embedder or chunking (or `full`) rewrites everything in one transaction."""
        started = time.perf_counter()
        with self.writer_lock(lock_timeout) if not locked else nullcontext():
            meta = self.meta()
            settings = chunking_settings(chunk_chars, chunk_overlap)
            full = full or meta.get("embedder") != embedder.id or meta.get("chunking") != settings
            plan = plan_changes({i: e["sha256"] for i, e in self.articles.items()}, articles, full)
            todo = [a for a in articles if a.id in plan.to_embed]
            if not todo and not plan.removed:  # nothing changed: write nothing
                return UpdateReport(added=[], changed=[], removed=[], unchanged=plan.unchanged, skipped=skipped or [],
                                    reasons=reasons or {}, chunks_total=self.size,
                                    seconds=time.perf_counter() - started)
            chunks = {a.id: chunk_article(a, chunk_chars, chunk_overlap) for a in todo}
            texts = [c.text for a in todo for c in chunks[a.id]]
            vectors = embedder.embed(texts, batch_size=batch_size, progress=progress)
            with self.pool.connection() as conn:
                if full:
                    with conn.transaction():  # everything or nothing
                        # the HNSW graph is built once after the rows are in: much faster than row by row
                        conn.execute("DROP INDEX IF EXISTS qa_passages_hnsw")
                        self._set_dimension(conn, embedder.dim)
                        conn.execute("DELETE FROM qa_articles")
                        self._insert(conn, todo, chunks, vectors)
                        conn.execute(f"SET LOCAL maintenance_work_mem = '{HNSW_BUILD_MEMORY}'")
                        conn.execute(HNSW_INDEX)
                        self._set_meta(conn, embedder, settings)
                    conn.execute("ANALYZE qa_passages")  # fresh statistics: the planner's, and keyword()'s corpus size
                else:
                    row = 0
                    for article in todo:  # same embedder as the rows already there (else `full`): same dimension
                        n = len(chunks[article.id])
                        with conn.transaction():  # one article at a time: a question sees it whole or not at all
                            conn.execute("DELETE FROM qa_articles WHERE id = %s", (article.id,))
                            self._insert(conn, [article], chunks, vectors[row: row + n])
                        row += n
                    if plan.removed:
                        with conn.transaction():
                            conn.execute("DELETE FROM qa_articles WHERE id = ANY(%s)", (plan.removed,))
                    with conn.transaction():
                        self._set_meta(conn, embedder, settings)
                total = conn.execute("SELECT count(*) FROM qa_passages").fetchone()[0]
        return UpdateReport(added=plan.added, changed=plan.changed, removed=plan.removed, unchanged=plan.unchanged,
                            skipped=skipped or [], reasons=reasons or {}, chunks_embedded=len(texts),
                            chunks_total=total, full_rebuild=full, seconds=time.perf_counter() - started)

    @staticmethod
    def _set_dimension(conn, dim: int) -> None:
        """The vector column takes the embedder's dimension (a rebuild, with the HNSW index dropped, calls this)."""
        current = conn.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'qa_passages'::regclass "
                               "AND attname = 'embedding'").fetchone()[0]
        if current != dim:
            conn.execute("DELETE FROM qa_passages")
            conn.execute(f"ALTER TABLE qa_passages ALTER COLUMN embedding TYPE vector({int(dim)})")

    @staticmethod
    def _insert(conn, articles: list[Article], chunks: dict[str, list[Chunk]], vectors: np.ndarray) -> None:
        with conn.cursor() as cur:
            for a in articles:
                entry = ArticleEntry(a.sha256, a.title, a.source, a.published, len(chunks[a.id]), a.author, a.site, a.url)
                cur.execute("INSERT INTO qa_articles (id, sha256, entry) VALUES (%s, %s, %s)",
                            (a.id, a.sha256, json.dumps(asdict(entry), ensure_ascii=False)))
            # binary COPY: the vectors go as packed floats (text would format 384 numbers a row in Python)
            with cur.copy("COPY qa_passages (article_id, start_char, end_char, text, embedding) "
                          "FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["text", "int4", "int4", "text", "vector"])
                row = 0
                for a in articles:
                    for c in chunks[a.id]:
                        copy.write_row((c.article_id, c.start, c.end, c.text, vectors[row]))
                        row += 1

    @staticmethod
    def _set_meta(conn, embedder: Embedder, settings: dict) -> None:
        for key, value in {"embedder": embedder.id, "dim": embedder.dim, "chunking": settings,
                           "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}.items():
            conn.execute("INSERT INTO qa_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, json.dumps(value)))


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
