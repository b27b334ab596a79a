"""The articles folder's rules (qa/library.py): "added" means answerable, a missing folder is an
error for every writer, file names keep their script, UTF-16 is text, a broken index is rebuilt."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from qa import ArticleRejected, ArticlesNotFound
from qa.config import PACKAGE_ROOT
from qa.sources.files import read_article, safe_name
from qa.stores.embedded import load_index

from .conftest import SEED_ARTICLE, SEEDS
from .local_site import LocalSite, news_page

LIGHTHOUSE = "The Port Ellis lighthouse\n\nThe Port Ellis lighthouse was designed by the architect Odile Brandt in 1911.\n"


@pytest.fixture(scope="module")
def site():
    s = LocalSite()
    yield s
    s.close()


def test_a_page_over_the_article_limit_is_refused_before_it_is_written(make_qa, site):
    # finding 2: a page between 2 MB and 5 MB was reported added, then skipped by the indexer
    qa = make_qa()
    paragraphs = [f"Paragraph {i} of a very long report on the harbour works at Port Ellis." * 20 for i in range(2000)]
    url = site.put("/huge-report", news_page("A very long report", paragraphs))
    before = sorted(p.name for p in qa.settings.articles.iterdir())
    with pytest.raises(ArticleRejected, match="larger than the limit of 2 MB"):
        qa.add_url(url)
    assert sorted(p.name for p in qa.settings.articles.iterdir()) == before
    assert sorted(qa.articles) == [SEED_ARTICLE]


def test_an_upload_over_the_limit_is_refused(make_qa):
    qa = make_qa()
    with pytest.raises(ArticleRejected, match="larger than the limit of 2 MB"):
        qa.add_article("big.txt", b"The harbour. " * 200_000)
    assert sorted(p.name for p in qa.settings.articles.iterdir()) == [SEED_ARTICLE]


def test_a_deleted_articles_folder_is_an_error_for_every_writer(make_qa, site):
    # finding 5: one add recreated the folder with only the new page; the index shrank to it
    qa = make_qa()
    qa.add_article("lighthouse.txt", LIGHTHOUSE.encode())
    indexed = sorted(qa.articles)
    shutil.rmtree(qa.settings.articles)
    url = site.put("/port-news", news_page("Port Ellis news", ["The ferry to Port Ellis now leaves at nine. " * 10]))
    for write in (lambda: qa.add_article("other.txt", b"Another article about the harbour."),
                  lambda: qa.add_url(url), lambda: qa.remove_article("lighthouse.txt")):
        with pytest.raises(ArticlesNotFound, match="articles folder not found"):
            write()
        assert not qa.settings.articles.exists()
    with pytest.raises(ArticlesNotFound):
        qa.update()
    assert sorted(qa.articles) == indexed  # still answering from the whole index
    assert qa.answer("Who designed the Port Ellis lighthouse?").text == "Odile Brandt"


def test_file_names_keep_their_script():
    # finding 9: 新闻.txt became article.txt
    assert safe_name("新闻.txt") == "新闻.txt"
    assert safe_name("Café au lait.md") == "Café-au-lait.md"
    assert safe_name("../../etc/passwd.txt") == "passwd.txt"
    assert safe_name("\u200b.txt") == "article.txt"


def test_an_upload_with_a_chinese_name_keeps_it(make_qa):
    qa = make_qa()
    assert qa.add_article("新闻.txt", LIGHTHOUSE.encode()) == "新闻.txt"
    assert qa.answer("Who designed the Port Ellis lighthouse?").article == "新闻.txt"


def test_utf16_text_is_text(tmp_path):
    # finding 9: UTF-16 text was called "binary"
    for encoding in ("utf-16", "utf-16-be"):
        path = tmp_path / f"lighthouse-{encoding}.txt"
        data = LIGHTHOUSE.encode(encoding)
        path.write_bytes(data if encoding == "utf-16" else b"\xfe\xff" + data)
        article = read_article(path, path.name)
        assert article.title == "The Port Ellis lighthouse" and "Odile Brandt" in article.text


def test_publication_date_over_several_articles_is_not_certain(make_qa):
    # finding 9: "When was the article published?" over five articles answered the first one's date, confidence 1.0
    qa = make_qa()
    for i, town in enumerate(["Lindenbrook", "Port Ellis", "Harwick", "Dunmore"]):
        qa.add_article(f"{town}.md", f"# {town} news\n\n2026-0{i + 1}-02\n\nThe council of {town} met on Monday "
                       f"to discuss the article about the {town} bridge.\n".encode())
    a = qa.answer("When was the article published?")
    assert a.text is not None and a.score < 1.0
    only = make_qa(articles=SEEDS)
    assert only.answer("When was the article published?").score == 1.0  # one article: no doubt which


def test_an_index_with_vectors_of_the_wrong_dimension_is_rebuilt(tmp_path, make_qa):
    # finding 9: the CLI crashed instead of rebuilding
    make_qa().update()  # the index the CLI then finds: built here, with the session's models (same layout)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(PACKAGE_ROOT))
    ask = [sys.executable, "-m", "qa.cli", "ask", "Who directed the film?", "--articles", "articles", "--index", "index"]
    live = load_index(tmp_path / "index")
    assert live.vectors.shape[1] == 384
    np.save(live.path / "vectors.npy", np.zeros((len(live.chunks), 17), np.float32))
    done = subprocess.run(ask, check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.startswith("Kang Yun-sung")
    assert load_index(tmp_path / "index").vectors.shape[1] == 384


def test_the_chats_indexing_child_does_not_warn_that_the_chat_is_waiting(tmp_path, caplog):
    # finding 9: the app's own indexing child logged that the app was "waiting" on itself
    import logging

    from qa.stores import embedded

    index = tmp_path / "idx"
    script = ("import time; from qa.stores.embedded import writer_lock\n"
              f"with writer_lock({str(index)!r}):\n    print('held', flush=True); time.sleep(3)")
    holder = subprocess.Popen([sys.executable, "-c", script],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level(logging.INFO, logger="qa.stores.embedded"), embedded.writer_lock(index, timeout=30):
            pass
        assert [r.levelname for r in caplog.records if "waiting" in r.message] == ["WARNING"]  # a stranger's lock
    finally:
        holder.wait(timeout=30)
    caplog.clear()
    holder = subprocess.Popen(holder.args, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        embedded.wait_quietly_for(holder.pid)  # what qa/indexing.py's child does for the chat that started it
        with caplog.at_level(logging.INFO, logger="qa.stores.embedded"), embedded.writer_lock(index, timeout=30):
            pass
        assert [r.levelname for r in caplog.records if "waiting" in r.message] == ["INFO"]
    finally:
        holder.wait(timeout=30)
