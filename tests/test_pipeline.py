"""The whole product over a real index: answers with sources, updates, recovery, bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qa import QA, ArticlesNotFound, InvalidQuestion, NoArticles
from qa.stores.embedded import load_index

from .conftest import SEED_ARTICLE


def article_text(qa: QA, article_id: str) -> str:
    return (qa.settings.articles / article_id).read_text(encoding="utf-8")


def test_seed_answer_with_source_and_offsets(seed_qa):
    a = seed_qa.answer("Who directed the film?")
    assert a.text == "Kang Yun-sung"
    assert a.article == SEED_ARTICLE
    assert a.title == "South Korea Launches First AI-Enhanced Feature Film 'Run to the West'"
    assert article_text(seed_qa, a.article)[a.start:a.end] == a.text
    assert a.context[a.start - a.context_start:a.end - a.context_start] == a.text
    assert 0.5 < a.score <= 1.0
    assert all(alt.text != a.text for alt in a.alternatives)


def test_unanswerable_question_abstains(seed_qa):
    a = seed_qa.answer("What is the boiling point of mercury?")
    assert a.text is None and a.abstained
    assert a.start is None and a.end is None
    assert a.context  # the closest passage is still offered
    assert 0.0 <= a.score < 0.5


def test_follow_up_uses_the_conversation(seed_qa):
    a = seed_qa.answer("When did it open in theaters?", history=["Who directed Run to the West?"])
    assert a.text == "Wednesday"


def test_add_change_delete_an_article(make_qa):
    qa = make_qa()
    folder = qa.settings.articles
    question = "Who is the mayor of Lindenbrook?"
    assert qa.answer(question).text is None

    (folder / "lindenbrook.md").write_text(
        "# Lindenbrook elects a new mayor\n\n2026-03-02\n\nThe town of Lindenbrook elected Maria Okafor as its mayor "
        "on Sunday. Okafor, a former school teacher, won 58 percent of the vote.\n", encoding="utf-8")
    report = qa.update()
    assert report.added == ["lindenbrook.md"] and report.unchanged == [SEED_ARTICLE]
    assert report.chunks_embedded == 1  # only the new article was embedded
    a = qa.answer(question)
    assert a.text == "Maria Okafor" and a.article == "lindenbrook.md" and a.title == "Lindenbrook elects a new mayor"

    (folder / "lindenbrook.md").write_text(
        "# Lindenbrook mayor resigns\n\nThe mayor of Lindenbrook is now Tomas Berger, who took office on Monday "
        "after the previous mayor resigned.\n", encoding="utf-8")
    report = qa.update()
    assert report.changed == ["lindenbrook.md"] and report.unchanged == [SEED_ARTICLE]
    assert qa.answer(question).text == "Tomas Berger"

    (folder / "lindenbrook.md").unlink()
    report = qa.update()
    assert report.removed == ["lindenbrook.md"] and report.chunks_embedded == 0
    assert qa.answer(question).text is None
    assert qa.answer("Who directed the film?").text == "Kang Yun-sung"


def test_unchanged_folder_writes_nothing(make_qa):
    qa = make_qa()
    live = load_index(qa.settings.index).path
    report = qa.update()
    assert not report.modified and report.chunks_embedded == 0
    assert load_index(qa.settings.index).path == live


def test_new_qa_notices_a_stale_index(make_qa):
    qa = make_qa()
    (qa.settings.articles / "note.txt").write_text("The Harbor Festival will take place on 14 June in Port Ellis.\n")
    again = make_qa()  # a fresh QA on the same folders updates on start
    assert again.last_report.added == ["note.txt"]
    assert again.answer("When will the Harbor Festival take place?").text == "14 June"


def test_truncated_index_file_is_rebuilt(make_qa, caplog):
    qa = make_qa()
    live = load_index(qa.settings.index).path
    vectors = live / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:100])
    again = make_qa()
    assert "rebuilding" in caplog.text
    assert again.last_report.full_rebuild
    assert again.answer("Who directed the film?").text == "Kang Yun-sung"


def test_changed_chunking_rebuilds_everything(make_qa):
    make_qa()
    report = make_qa(chunk_chars=600, chunk_overlap=100).last_report
    assert report.full_rebuild and report.chunks_embedded == report.chunks_total > 0


def test_unreadable_files_are_skipped_and_named(make_qa):
    qa = make_qa()
    folder = qa.settings.articles
    (folder / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (folder / "image.html").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (folder / "empty.md").write_text("   \n")
    report = qa.update()
    assert sorted(p.rsplit("/", 1)[-1] for p in report.skipped) == ["empty.md", "image.html", "latin1.txt"]
    assert report.unchanged == [SEED_ARTICLE]


@pytest.mark.parametrize("question", ["", "   \n\t", "x" * 10_000])
def test_bad_questions_raise(seed_qa, question):
    with pytest.raises(InvalidQuestion):
        seed_qa.answer(question)


def test_missing_and_empty_articles_folders(tmp_path, embedder, reader):
    with pytest.raises(ArticlesNotFound, match="nowhere"):
        QA(articles=tmp_path / "nowhere", index=tmp_path / "index", embedder=embedder, reader=reader)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoArticles):
        QA(articles=tmp_path / "empty", index=tmp_path / "index", embedder=embedder, reader=reader)


def qa_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_index_and_ask(tmp_path):
    import shutil

    from .conftest import SEEDS

    shutil.copytree(SEEDS, tmp_path / "seeds")
    done = qa_cli("index", "--articles", "seeds", "--index", "idx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 added" in done.stdout
    done = qa_cli("ask", "Who directed the film?", "--articles", "seeds", "--index", "idx", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["text"] == "Kang Yun-sung" and answer["article"] == SEED_ARTICLE

    for bad in ["", "   ", "y" * 10_000]:
        done = qa_cli("ask", bad, "--articles", "seeds", "--index", "idx", cwd=tmp_path)
        assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr
    done = qa_cli("index", "--articles", "missing", "--index", "idx", cwd=tmp_path)
    assert done.returncode == 2 and "missing" in done.stderr
    (tmp_path / "empty").mkdir()
    done = qa_cli("ask", "Who?", "--articles", "empty", "--index", "idx2", cwd=tmp_path)
    assert done.returncode == 2 and "no readable" in done.stderr
