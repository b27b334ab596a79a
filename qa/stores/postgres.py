"""The PostgreSQL + pgvector store: passages and vectors in tables, for many serving processes.

One database holds one index: `qa_articles` (the manifest), `qa_passages` (text, offsets, token count, the
vector under an HNSW index), `qa_terms` (the keyword lane: each passage's terms and their counts),
`qa_vocab` (each term's document frequency), `qa_corpus` (passages and tokens in all, for BM25, and the
generation of the manifest) and `qa_meta` (which embedder and chunking made them). The schema is created
and upgraded by `migrate()`, its version in `qa_schema`; another schema than this code knows is refused.
Every article's change (delete + insert) is one transaction, so a question never sees half an article; one
writer at a time holds an advisory lock. psycopg and pgvector are imported only when a `postgresql://`
store is used.

The keyword lane ranks as the embedded store's does: BM25 (bm25s's "lucene" variant, its k1 and b) over the
same tokens (bm25s.tokenize with PyStemmer's English stemmer), computed in one SQL query per question from
the per-passage term counts written at index time. Triggers keep `qa_vocab` and `qa_corpus` (N, the mean
length, the generation) in step with every insert and delete, in the same transaction. A serving process
keeps the manifest and the passages of the articles it was asked about until the generation moves.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from urllib.parse import urlsplit

import numpy as np

from ..chunking import Chunk, chunk_article
from ..embedding import Embedder
from ..errors import DatabaseError, IndexBusy, SchemaMismatch, StorageError
from ..sources.files import Article
from .base import ArticleEntry, Hit, UpdateReport, chunking_settings, plan_changes

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
WRITER_LOCK_KEY = 7_307_405_361   # pg_advisory_lock key of "the qa writer" (any constant shared by all writers)
EF_SEARCH = 200                    # HNSW candidates per search: recall against speed (bench/scale.py)
HNSW_INDEX = ("CREATE INDEX qa_passages_hnsw ON qa_passages USING hnsw (embedding vector_ip_ops) "
              "WITH (m = 16, ef_construction = 100)")
HNSW_BUILD_MEMORY = "512MB"        # maintenance_work_mem while the graph is built: fits 100k+ vectors
# BM25 as the embedded store's bm25s.BM25() scores it (its defaults: method "lucene", k1 1.5, b 0.75):
# idf = ln(1 + (N - df + 0.5) / (df + 0.5)), a term's weight idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))
BM25_K1, BM25_B = 1.5, 0.75
# the term lookup (every posting of a term, its count and the passage's length: an index-only scan) and
# the postings of a passage (a deleted passage's terms go with it)
TERMS_INDEXES = {
    "qa_terms_term": "CREATE INDEX qa_terms_term ON qa_terms (term, passage_id) INCLUDE (tf, length)",
    "qa_terms_passage": "CREATE INDEX qa_terms_passage ON qa_terms (passage_id)",
}

# Statement-level triggers, so that every write path (a cascade from qa_articles included) keeps them true:
# the corpus figures BM25 needs (N and the token total in qa_corpus, each term's document frequency in
# qa_vocab), the terms of removed passages removed, and the manifest's generation (the id of the last
# transaction that changed an article: serving processes keep the manifest until it moves).
CORPUS_TRIGGERS = [
    """CREATE FUNCTION qa_passages_added() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE qa_corpus SET passages = passages + (SELECT count(*) FROM added),
                                tokens = tokens + (SELECT coalesce(sum(length), 0) FROM added);
           RETURN NULL;
       END $$""",
    """CREATE FUNCTION qa_passages_removed() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           IF EXISTS (SELECT FROM gone) THEN
               DELETE FROM qa_terms WHERE passage_id IN (SELECT id FROM gone);
               UPDATE qa_corpus SET passages = passages - (SELECT count(*) FROM gone),
                                    tokens = tokens - (SELECT coalesce(sum(length), 0) FROM gone);
           END IF;
           RETURN NULL;
       END $$""",
    """CREATE FUNCTION qa_terms_added() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           INSERT INTO qa_vocab AS v (term, df) SELECT term, count(*) FROM added GROUP BY term
           ON CONFLICT (term) DO UPDATE SET df = v.df + excluded.df;
           RETURN NULL;
       END $$""",
    """CREATE FUNCTION qa_terms_removed() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           IF EXISTS (SELECT FROM gone) THEN
               UPDATE qa_vocab v SET df = v.df - g.n FROM (SELECT term, count(*) AS n FROM gone GROUP BY term) g
               WHERE v.term = g.term;
               DELETE FROM qa_vocab WHERE df <= 0 AND term IN (SELECT term FROM gone);
           END IF;
           RETURN NULL;
       END $$""",
    """CREATE FUNCTION qa_articles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           UPDATE qa_corpus SET generation = pg_current_xact_id()::text::bigint;
           RETURN NULL;
       END $$""",
    ("CREATE TRIGGER qa_passages_added AFTER INSERT ON qa_passages REFERENCING NEW TABLE AS added "
     "FOR EACH STATEMENT EXECUTE FUNCTION qa_passages_added()"),
    ("CREATE TRIGGER qa_passages_removed AFTER DELETE ON qa_passages REFERENCING OLD TABLE AS gone "
     "FOR EACH STATEMENT EXECUTE FUNCTION qa_passages_removed()"),
    ("CREATE TRIGGER qa_terms_added AFTER INSERT ON qa_terms REFERENCING NEW TABLE AS added "
     "FOR EACH STATEMENT EXECUTE FUNCTION qa_terms_added()"),
    ("CREATE TRIGGER qa_terms_removed AFTER DELETE ON qa_terms REFERENCING OLD TABLE AS gone "
     "FOR EACH STATEMENT EXECUTE FUNCTION qa_terms_removed()"),
    ("CREATE TRIGGER qa_articles_changed AFTER INSERT OR UPDATE OR DELETE ON qa_articles "
     "FOR EACH STATEMENT EXECUTE FUNCTION qa_articles_changed()"),
]


def _backfill_terms(conn) -> None:
    """Version 1 -> 2: the passages already in the database get their token counts and terms (their
    vectors stay: nothing is re-embedded)."""
    rows = conn.execute("SELECT id, text FROM qa_passages ORDER BY id").fetchall()
    if rows:
        log.warning("migrating the index to schema version 2: building the BM25 keyword lane of %d passages",
                    len(rows))
        ids = [r[0] for r in rows]
        tokens = tokenize([r[1] for r in rows])
        with conn.cursor() as cur:
            _copy_terms(cur, ids, tokens, freeze=False)   # qa_vocab follows by trigger
        conn.execute("UPDATE qa_passages p SET length = v.length FROM unnest(%s::bigint[], %s::integer[]) "
                     "AS v (id, length) WHERE p.id = v.id", (ids, [len(t) for t in tokens]))
    conn.execute("UPDATE qa_corpus SET passages = (SELECT count(*) FROM qa_passages), "
                 "tokens = (SELECT coalesce(sum(length), 0) FROM qa_passages)")


MIGRATIONS = {  # version -> the statements (or Python steps) that bring the previous version to it
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
    2: [  # the keyword lane: BM25 over the embedded store's tokens instead of full-text search's ts_rank
        "ALTER TABLE qa_passages DROP COLUMN tsv",   # its GIN index goes with it
        "ALTER TABLE qa_passages ADD COLUMN length integer NOT NULL DEFAULT 0",   # tokens, for BM25
        ("CREATE TABLE qa_terms (term text NOT NULL, passage_id bigint NOT NULL, tf integer NOT NULL, "
         "length integer NOT NULL)"),   # the passage's length again: a term's postings score without a join
        "CREATE TABLE qa_vocab (term text PRIMARY KEY, df integer NOT NULL)",   # passages holding the term
        "CREATE TABLE qa_corpus (passages bigint NOT NULL, tokens bigint NOT NULL, generation bigint NOT NULL)",
        "INSERT INTO qa_corpus VALUES (0, 0, 0)",
        *CORPUS_TRIGGERS,
        _backfill_terms,
        "ALTER TABLE qa_passages ALTER COLUMN length DROP DEFAULT",
        *TERMS_INDEXES.values(),
        "ANALYZE qa_passages, qa_terms, qa_vocab, qa_corpus",
    ],
}

DENSE_SQL = (
    "SELECT p.article_id, p.start_char, p.end_char, p.text, a.entry->>'title', -(p.embedding <#> %(v)s) "
    "FROM qa_passages p JOIN qa_articles a ON a.id = p.article_id "
    "WHERE NOT (p.article_id = ANY(%(ex)s)) ORDER BY p.embedding <#> %(v)s LIMIT %(n)s")

# One statement per question: the question's terms (with how often it says each) weighted by idf from
# qa_vocab, every posting of those terms scored and summed per passage, the top `n` cut (ties in the order
# the passages were written: on a fresh build the articles' order, as bm25s's stable sort keeps the
# embedded store's), then text, title and cosine for those `n` only. Excluded articles count in N and df,
# as in the embedded store, and their passages are left out before the cut. All in float8: bm25s sums in
# float32, so scores agree to about 1e-7.
KEYWORD_SQL = """
WITH q AS (SELECT * FROM unnest(%(terms)s::text[], %(weights)s::float8[]) AS q (term, weight)),
     idf AS MATERIALIZED (  -- a row per term the corpus holds: its weight, and the length normalisation
         SELECT q.term, q.weight * ln(1 + (c.n - v.df + 0.5) / (v.df + 0.5)) AS w, c.lo, c.per_token
         FROM q JOIN qa_vocab v ON v.term = q.term
         CROSS JOIN (SELECT passages::float8 AS n, %(k1)s * (1 - %(b)s) AS lo,
                            %(k1)s * %(b)s / (greatest(tokens, 1)::float8 / greatest(passages, 1)) AS per_token
                     FROM qa_corpus LIMIT 1) c),  -- LIMIT 1: the planner knows it is one row, stats or not
     top AS (SELECT t.passage_id, sum(idf.w * t.tf / (t.tf + idf.lo + idf.per_token * t.length)) AS score
             FROM idf JOIN qa_terms t ON t.term = idf.term
             {hidden}
             GROUP BY t.passage_id
             ORDER BY score DESC, t.passage_id
             LIMIT %(n)s)
SELECT p.article_id, p.start_char, p.end_char, p.text, a.entry->>'title', top.score, -(p.embedding <#> %(v)s)
FROM top JOIN qa_passages p ON p.id = top.passage_id JOIN qa_articles a ON a.id = p.article_id
ORDER BY top.score DESC, top.passage_id"""
KEYWORD_QUERIES = {  # without and with articles left out (open-mode evaluation)
    False: KEYWORD_SQL.format(hidden=""),
    True: KEYWORD_SQL.format(hidden="WHERE t.passage_id NOT IN (SELECT id FROM qa_passages WHERE article_id = ANY(%(ex)s))"),
}

CHUNKS_CACHED = 1024   # articles whose passages a process keeps (questions about an article's metadata)

_local = threading.local()   # a PyStemmer stemmer per thread: one is not safe to share


def tokenize(texts: list[str]) -> list[list[str]]:
    """The embedded store's BM25 tokens: bm25s.tokenize (lower case, words of two or more characters,
    its English stop words) and PyStemmer's English stemmer, exactly as qa/stores/embedded.py calls them."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import bm25s
        import Stemmer

        logging.getLogger("bm25s").setLevel(logging.WARNING)   # it sets DEBUG on import (as embedded.py notes)
        _local.bm25s, _local.stemmer = bm25s, Stemmer.Stemmer("english")
        stemmer = _local.stemmer
    return _local.bm25s.tokenize(texts, stemmer=stemmer, show_progress=False, return_ids=False)


def _copy_terms(cur, ids: list[int], tokens: list[list[str]], freeze: bool) -> None:
    """Each passage's (term, count, length) rows. Text COPY, written a passage at a time: a token is
    word characters only (bm25s's pattern), so it needs no escaping."""
    with cur.copy(f"COPY qa_terms (term, passage_id, tf, length) FROM STDIN{' WITH (FREEZE)' if freeze else ''}") as copy:
        for passage_id, passage_tokens in zip(ids, tokens):
            if passage_tokens:
                n = len(passage_tokens)
                copy.write("".join(f"{term}\t{passage_id}\t{tf}\t{n}\n" for term, tf in Counter(passage_tokens).items()))


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
        # the pool's own warnings (a broken connection discarded, each reconnection attempt, several lines
        # each) would follow the one-line error this store raises when the server goes away: errors only,
        # unless the application has set that logger's level itself
        pool_log = logging.getLogger("psycopg.pool")
        if pool_log.level == logging.NOTSET:
            pool_log.setLevel(logging.ERROR)
        self._psycopg = psycopg
        # what a serving process keeps between questions, valid while qa_corpus.generation stays put:
        # (generation, the manifest) and (generation, article id -> its passages)
        self._manifest: tuple[int, dict[str, dict]] | None = None
        self._chunks: tuple[int | None, dict[str, list[Chunk]]] = (None, {})
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
            # the dense lane's settings for the whole session: a search is then one statement, one round trip
            conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
            conn.execute("SET hnsw.iterative_scan = strict_order")  # filtered searches still fill `depth`
            # psycopg prepares a statement run 5 times; a generic plan for the keyword query cannot know how
            # many terms a question has, so each execution is planned for its own values (under a millisecond)
            conn.execute("SET plan_cache_mode = force_custom_plan")
        # autocommit: a read is one statement, one round trip (no BEGIN, no COMMIT); writes open transactions
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, configure=configure, open=True,
                                   kwargs={"connect_timeout": connect_timeout, "autocommit": True})

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
        """Create or upgrade the schema to SCHEMA_VERSION, all steps in one transaction; returns the version."""
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
                    statement(conn) if callable(statement) else conn.execute(statement)
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
        row = conn.execute("SELECT version FROM qa_schema").fetchone()
        version = row and row[0]
        if version != SCHEMA_VERSION:
            if isinstance(version, int) and version < SCHEMA_VERSION:
                todo = (f"older than this package's {SCHEMA_VERSION}: run `qa index --store {self.where}` once with "
                        "this package (it migrates the index in place: the keyword lane is rebuilt from the "
                        "stored passages, nothing is re-embedded), then start the read-only servers")
            else:
                todo = f"this package reads version {SCHEMA_VERSION}: upgrade article-qa"
            raise SchemaMismatch(f"the index in {self.where} has schema version {version}; {todo}")

    # -- reading the manifest ----------------------------------------------------------------------
    @contextmanager
    def _reading(self, what: str):
        """A connection of the pool for a read; the server gone away (or never reached) is DatabaseError,
        in one line, not psycopg's own error."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except self._psycopg.Error as err:
            raise DatabaseError(f"cannot read {what} from PostgreSQL at {self.where}: {_first_line(err)}",
                                public="the database is unavailable") from None

    def _lost(self, step: str, err: Exception) -> StorageError:
        """An update cut short by the server (gone away, restarted, out of disk): what failed, and that the
        next `qa index` completes it (what was committed is whole, article by article)."""
        return StorageError(f"the PostgreSQL server at {self.where} failed while {step}: {_first_line(err)}; "
                            "run `qa index` again to complete the update",
                            public="the index could not be updated in the database; try again in a minute")

    def meta(self) -> dict:
        with self._reading("the index settings") as conn:
            return dict(conn.execute("SELECT key, value FROM qa_meta").fetchall())

    @property
    def articles(self) -> dict[str, dict]:
        """id -> manifest entry. Read again only when an article changed since (one small statement
        checks the generation, and brings the manifest when it moved)."""
        known = self._manifest
        with self._reading("the manifest") as conn:
            generation, manifest = conn.execute(
                "SELECT generation, CASE WHEN generation IS DISTINCT FROM %s THEN "
                "(SELECT json_object_agg(id, entry ORDER BY id) FROM qa_articles) END FROM qa_corpus",
                (known[0] if known else None,)).fetchone()
        if known is not None and generation == known[0]:
            return known[1]
        self._manifest = (generation, manifest or {})
        return self._manifest[1]

    def chunks_of(self, article_id: str) -> list[Chunk]:
        """An article's passages in order; kept per process until an article changes."""
        generation, cached = self._chunks
        with self._reading(f"the passages of {article_id!r}") as conn:
            now = conn.execute("SELECT generation FROM qa_corpus").fetchone()[0]
            if now == generation and article_id in cached:
                return list(cached[article_id])
            rows = conn.execute("SELECT c.generation, p.article_id, p.start_char, p.end_char, p.text "
                                "FROM qa_corpus c LEFT JOIN qa_passages p ON p.article_id = %s "
                                "ORDER BY p.start_char", (article_id,)).fetchall()
        now = rows[0][0]
        chunks = [Chunk(*r[1:]) for r in rows if r[1] is not None]
        if now != generation or len(cached) >= CHUNKS_CACHED:
            cached = {}
            self._chunks = (now, cached)
        cached[article_id] = chunks
        return list(chunks)

    def article_texts(self) -> dict[str, tuple[str, str]]:
        """id -> (sha256, the text its passages cover), for finding near-duplicate articles."""
        texts: dict[str, tuple[str, str]] = {}
        with self._reading("the articles' passages") as conn:
            rows = conn.execute("SELECT a.id, a.sha256, string_agg(p.text, E'\\n' ORDER BY p.start_char) "
                                "FROM qa_articles a JOIN qa_passages p ON p.article_id = a.id GROUP BY a.id, a.sha256")
            for article_id, sha, text in rows:
                texts[article_id] = (sha, text)
        return texts

    @property
    def size(self) -> int:
        with self._reading("the number of passages") as conn:
            return conn.execute("SELECT passages FROM qa_corpus").fetchone()[0]

    # -- searching ---------------------------------------------------------------------------------
    def dense(self, vectors: np.ndarray, depth: int, exclude: list[frozenset[str]]) -> list[list[Hit]]:
        """Per query vector: the `depth` nearest passages by inner product (HNSW), leaving out articles.
        One statement each: the session's hnsw settings are set when the pool opens the connection."""
        out = []
        with self._reading("the nearest passages") as conn:
            wider = depth > EF_SEARCH
            with conn.transaction() if wider else nullcontext():
                if wider:
                    conn.execute(f"SET LOCAL hnsw.ef_search = {int(depth)}")
                for v, left_out in zip(vectors, exclude):
                    rows = conn.execute(DENSE_SQL, {"v": v, "ex": list(left_out), "n": depth}).fetchall()
                    out.append([Hit(Chunk(*r[:4]), r[4] or "", float(r[5]), float(r[5])) for r in rows])
        return out

    def keyword(self, queries: list[str], vectors: np.ndarray, depth: int, exclude: list[frozenset[str]]) -> list[list[Hit]]:
        """Per query: the `depth` best passages by BM25, as the embedded store ranks them (the same tokens,
        the same formula and parameters: see KEYWORD_SQL), one statement each. Cosine and title are
        computed for those rows only."""
        tokens = tokenize(list(queries))
        if not any(tokens):
            return [[] for _ in queries]
        out = []
        with self._reading("the keyword search's passages") as conn:
            for q_tokens, v, left_out in zip(tokens, vectors, exclude):
                if not q_tokens:
                    out.append([])
                    continue
                counts = Counter(q_tokens)  # a word the question repeats counts again, as in bm25s
                rows = conn.execute(KEYWORD_QUERIES[bool(left_out)],
                                    {"terms": list(counts), "weights": [float(n) for n in counts.values()],
                                     "k1": BM25_K1, "b": BM25_B, "ex": list(left_out), "n": depth, "v": v}).fetchall()
                out.append([Hit(Chunk(*r[:4]), r[4] or "", float(r[5]), float(r[6])) for r in rows])
        return out

    # -- writing -----------------------------------------------------------------------------------
    @contextmanager
    def writer_lock(self, timeout: float = 600.0):
        """One writer at a time, across processes and machines: a session advisory lock."""
        if self.read_only:
            raise DatabaseError(f"this store ({self.where}) is read-only")
        held = False   # past this point a psycopg error is the caller's (its own update converts it)
        try:
            with self.pool.connection() as conn:  # autocommit: no transaction (and no snapshot) kept open for the update's length
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
                held = True
                try:
                    yield
                finally:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK_KEY,))
                    except self._psycopg.Error:  # the session is gone, and its advisory lock with it
                        pass
        except self._psycopg.Error as err:
            if held:
                raise
            raise self._lost("taking the writer lock", err) from None

    def update(self, articles: list[Article], embedder: Embedder, chunk_chars: int, chunk_overlap: int,
               full: bool = False, progress: bool = False, batch_size: int = 32, locked: bool = False,
               lock_timeout: float = 600.0, skipped: list[str] | None = None,
               reasons: dict[str, str] | None = None) -> UpdateReport:
        """Bring the database in line with `articles`: new and changed articles are chunked, embedded
        and written, each in one transaction (delete + insert); removed ones deleted. A different
        embedder or chunking (or `full`) rewrites everything in one transaction."""
        started = time.perf_counter()
        where = ["reading the index's manifest"]   # what the update is doing, for the message if the server goes away
        try:
            with self.writer_lock(lock_timeout) if not locked else nullcontext():
                with self.pool.connection() as conn:
                    meta = dict(conn.execute("SELECT key, value FROM qa_meta").fetchall())
                    indexed = dict(conn.execute("SELECT id, sha256 FROM qa_articles").fetchall())
                settings = chunking_settings(chunk_chars, chunk_overlap)
                full = full or meta.get("embedder") != embedder.id or meta.get("chunking") != settings
                plan = plan_changes(indexed, articles, full)
                todo = [a for a in articles if a.id in plan.to_embed]
                if not todo and not plan.removed:  # nothing changed: write nothing
                    where[0] = "counting the passages"
                    with self.pool.connection() as conn:
                        total = conn.execute("SELECT passages FROM qa_corpus").fetchone()[0]
                    return UpdateReport(added=[], changed=[], removed=[], unchanged=plan.unchanged,
                                        skipped=skipped or [], reasons=reasons or {}, chunks_total=total,
                                        seconds=time.perf_counter() - started)
                chunks = {a.id: chunk_article(a, chunk_chars, chunk_overlap) for a in todo}
                texts = [c.text for a in todo for c in chunks[a.id]]
                vectors = embedder.embed(texts, batch_size=batch_size, progress=progress)
                total = self._write(plan, todo, chunks, vectors, embedder, settings, full, where)
        except self._psycopg.Error as err:
            raise self._lost(where[0], err) from None
        return UpdateReport(added=plan.added, changed=plan.changed, removed=plan.removed, unchanged=plan.unchanged,
                            skipped=skipped or [], reasons=reasons or {}, chunks_embedded=len(texts),
                            chunks_total=total, full_rebuild=full, seconds=time.perf_counter() - started)

    def _write(self, plan, todo: list[Article], chunks: dict[str, list[Chunk]], vectors: np.ndarray,
               embedder: Embedder, settings: dict, full: bool, where: list[str]) -> int:
        """The rows of an update: everything in one transaction (`full`), else an article a transaction,
        then the removals and the settings. Returns the passages in all. `where[0]` says what it is doing."""
        with self.pool.connection() as conn:
            if full:
                where[0] = f"rebuilding the index ({len(todo)} articles, in one transaction: nothing was changed)"
                with conn.transaction():  # everything or nothing
                    # the HNSW graph and the term indexes are built once after the rows are in: much
                    # faster than row by row. (Readers wait for the commit: DROP INDEX locks the tables.)
                    conn.execute("DROP INDEX IF EXISTS qa_passages_hnsw")
                    conn.execute("TRUNCATE qa_terms, qa_vocab")  # at once (else: the delete triggers' work)
                    for name in TERMS_INDEXES:
                        conn.execute(f"DROP INDEX IF EXISTS {name}")
                    self._set_dimension(conn, embedder.dim)
                    conn.execute("DELETE FROM qa_articles")
                    self._insert(conn, todo, chunks, vectors, True)
                    conn.execute(f"SET LOCAL maintenance_work_mem = '{HNSW_BUILD_MEMORY}'")
                    for statement in TERMS_INDEXES.values():
                        conn.execute(statement)
                    conn.execute(HNSW_INDEX)
                    self._set_meta(conn, embedder, settings)
                where[0] = "updating the planner's statistics (the rebuild was committed)"
                conn.execute("ANALYZE qa_passages, qa_terms, qa_vocab")  # fresh statistics for the planner
            else:
                row = 0
                for done, article in enumerate(todo):  # same embedder as the rows already there (else `full`): same dimension
                    where[0] = (f"writing article {article.id!r} ({done} of {len(todo)} new or changed articles "
                                "committed before it)")
                    n = len(chunks[article.id])
                    with conn.transaction():  # one article at a time: a question sees it whole or not at all
                        # its passages go by cascade, their terms and the corpus figures by trigger
                        conn.execute("DELETE FROM qa_articles WHERE id = %s", (article.id,))
                        self._insert(conn, [article], chunks, vectors[row: row + n])
                    row += n
                if plan.removed:
                    where[0] = f"removing {len(plan.removed)} article(s) (every new or changed one was committed)"
                    with conn.transaction():
                        conn.execute("DELETE FROM qa_articles WHERE id = ANY(%s)", (plan.removed,))
                where[0] = "recording the embedder and chunking (every article was committed)"
                with conn.transaction():
                    self._set_meta(conn, embedder, settings)
            where[0] = "counting the passages (the update was committed)"
            return conn.execute("SELECT passages FROM qa_corpus").fetchone()[0]

    @staticmethod
    def _set_dimension(conn, dim: int) -> None:
        """The vector column takes the embedder's dimension (a rebuild, with the HNSW index dropped, calls this)."""
        current = conn.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'qa_passages'::regclass "
                               "AND attname = 'embedding'").fetchone()[0]
        if current != dim:
            conn.execute("DELETE FROM qa_passages")
            conn.execute(f"ALTER TABLE qa_passages ALTER COLUMN embedding TYPE vector({int(dim)})")

    @staticmethod
    def _insert(conn, articles: list[Article], chunks: dict[str, list[Chunk]], vectors: np.ndarray,
                fresh: bool = False) -> None:
        """The articles' manifest entries, passages and terms. `fresh`: qa_terms was truncated in this
        transaction (a rebuild), so its rows are written frozen: visible to index-only scans at once."""
        passages = [c for a in articles for c in chunks[a.id]]
        tokens = tokenize([c.text for c in passages])
        entries = [json.dumps(asdict(ArticleEntry(a.sha256, a.title, a.source, a.published, len(chunks[a.id]), a.author,
                                                  a.site, a.url)), ensure_ascii=False) for a in articles]
        with conn.cursor() as cur:
            # one statement (its trigger runs once, not once an article)
            cur.execute("INSERT INTO qa_articles (id, sha256, entry) SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[])",
                        ([a.id for a in articles], [a.sha256 for a in articles], entries))
            if not passages:
                return
            # the passages' ids first, so that their terms can be written beside them
            ids = sorted(r[0] for r in cur.execute("SELECT nextval('qa_passages_id_seq') FROM generate_series(1, %s)",
                                                   (len(passages),)))
            # binary COPY: the vectors go as packed floats (text would format 384 numbers a row in Python)
            with cur.copy("COPY qa_passages (id, article_id, start_char, end_char, text, length, embedding) "
                          "FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "int4", "int4", "text", "int4", "vector"])
                for passage_id, c, t, v in zip(ids, passages, tokens, vectors):
                    copy.write_row((passage_id, c.article_id, c.start, c.end, c.text, len(t), v))
            _copy_terms(cur, ids, tokens, freeze=fresh)

    @staticmethod
    def _set_meta(conn, embedder: Embedder, settings: dict) -> None:
        for key, value in {"embedder": embedder.id, "dim": embedder.dim, "chunking": settings,
                           "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}.items():
            conn.execute("INSERT INTO qa_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, json.dumps(value)))


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
