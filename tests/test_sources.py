"""Real pages saved from news sites (../shared/data/news-html, read in place): headline, date, author
and site by trafilatura, the article body only, and questions about the body answered."""
from __future__ import annotations

import html
import re

import pytest

from qa import QA, Settings
from qa.articles import load_articles, read_article
from qa.config import PACKAGE_ROOT

PAGES = PACKAGE_ROOT.parent / "shared" / "data" / "news-html"
pytestmark = pytest.mark.skipif(not (PAGES / "README.md").is_file(),
                                reason=f"the shared news pages are not here ({PAGES}); they are read in place, never copied")

# the README's table: file -> (headline, published, by)
EXPECTED = {
    "dw.com.colonial.html": ("Berlin confronts Germany's colonial past with new initiative", "2020-01-19", "Deutsche Welle"),
    "dw.com.uncork.html": ("Uncork the mystery of Germany's Frühburgunder", "2013-06-10", "Deutsche Welle"),
    "phys.org.tool.html": ("Flint flake tool partially covered by birch tar adds to evidence of Neanderthal complex thinking",
                           "2019-10-22", "Bob Yirka"),
    "boingboing.net.millenials.html": ("Hating Millennials - the prejudice you're allowed to boast about", "2013-07-19",
                                       "Cory Doctorow"),
    "kulu-media.com.meta-outage.html": ("Meta Outage Hits Facebook, Instagram and Messenger", "2026-06-12",
                                        "Kulu Media News Desk"),
}
# the README's kinds of page furniture, as each page words them (all present in the raw pages)
FURNITURE = [
    "Skip to", "We use cookies", "uses cookies", "Cookie Policy", "Share on Facebook", "Send Facebook Twitter",
    "Follow Us", "Newsletter", "Subscribe", "Sign up", "©", "Copyright", "All Rights Reserved", "Privacy Policy",
    "Terms of", "Legal notice", "Related content", "Related Stories", "Related Topics", "Recommended for you",
    "More from", "DW recommends", "Read more", "TOP STORIES", "Advertisement", "Feedback to editors", "COMMENTS",
    "Home »", "Up Next", "Choir! Choir!",
]


@pytest.fixture(scope="module")
def pages():
    articles, problems = load_articles(PAGES)
    assert not problems
    return {a.id: a for a in articles if a.id.endswith(".html")}  # the folder's README.md is an article too


def test_titles_dates_and_authors(pages):
    assert set(pages) == set(EXPECTED)
    got = {k: (a.title, a.published, a.author) for k, a in pages.items()}
    assert got == EXPECTED  # 5/5 headlines, 5/5 dates, 5/5 bylines


def test_sites_and_urls(pages):
    assert pages["phys.org.tool.html"].site == "Phys.org"
    assert pages["kulu-media.com.meta-outage.html"].site == "Kulu Media"
    assert pages["phys.org.tool.html"].url == "https://phys.org/news/2019-10-flint-flake-tool-partially-birch.html"
    assert pages["phys.org.tool.html"].source == pages["phys.org.tool.html"].url  # the page's URL is its source


def test_no_page_furniture_in_the_indexed_text(pages):
    # the pages' visible words, crudely: every phrase but the README's two generic examples is really there
    raw = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", p.read_text(errors="replace"))) for p in PAGES.glob("*.html"))
    raw = " ".join(raw.split()).lower()
    assert [f for f in FURNITURE if f.lower() not in raw] == ["Skip to", "Share on Facebook"]
    found = {a.id: [f for f in FURNITURE if f.lower() in a.text.lower()] for a in pages.values()}
    assert found == {k: [] for k in EXPECTED}


def test_body_text_kept(pages):
    assert "Zandmotor beach near The Hague" in pages["phys.org.tool.html"].text
    assert "Otto von Bismarck hosted the infamous Berlin Conference" in pages["dw.com.colonial.html"].text
    assert "Ahr Valley" in pages["dw.com.uncork.html"].text
    for a in pages.values():  # paragraphs, no stray white space
        assert "\n\n\n" not in a.text and a.text == a.text.strip() and "\t" not in a.text


def test_old_hand_written_parser_is_gone():
    import qa.sources.files as files

    assert not hasattr(files, "_HTMLText") and not hasattr(files, "HTMLParser")


@pytest.fixture(scope="module")
def pages_qa(tmp_path_factory, embedder, reader):
    """A QA over the shared folder itself (read only: the index lives elsewhere; its README is indexed too)."""
    index = tmp_path_factory.mktemp("news-html-index")
    return QA(settings=Settings.from_env(articles=PAGES, index=index, watch=False), embedder=embedder, reader=reader)


@pytest.mark.parametrize("question,expected,article", [
    ("How old is the flint tool with birch tar?", "50,000 years", "phys.org.tool.html"),
    ("Where was the Neanderthal flint tool found?", "Zandmotor beach", "phys.org.tool.html"),
    ("Who hosted the Berlin Conference in 1884?", "Otto von Bismarck", "dw.com.colonial.html"),
])
def test_questions_about_the_bodies(pages_qa, question, expected, article):
    a = pages_qa.answer(question)
    assert a.article == article and expected in a.text
    assert read_article(PAGES / article, article).text[a.start:a.end] == a.text  # offsets into the indexed text


def test_metadata_questions_on_a_page(pages_qa):
    history = ["Where was the Neanderthal flint tool found?"]
    assert pages_qa.answer("Who wrote the article?", history=history).text == "Bob Yirka"
    assert pages_qa.answer("Which outlet published it?", history=history).text == "Phys.org"
    a = pages_qa.answer("When was it published?", history=history)
    assert a.text == "2019-10-22" and a.article == "phys.org.tool.html" and a.start is None  # not in the body
    assert "Bob Yirka" in a.context  # the metadata shown as its source
