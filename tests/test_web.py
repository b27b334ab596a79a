"""Articles from links: pages served on 127.0.0.1, fetched with limits, stored in the articles folder
with their URL, updated in place, and every kind of bad page refused with a clear message."""
from __future__ import annotations

import json
import shutil
import socket

import pytest
from typer.testing import CliRunner

from qa import QA, ArticleRejected, QAError, Settings
from qa.cli import app as cli
from qa.sources.web import (
    HTTPStatusError,
    NoMainText,
    NotHTML,
    TooLarge,
    URLUnreachable,
    fetch,
)

from .conftest import SEEDS
from .local_site import LocalSite, news_page

BRIDGE = [
    "The new Tagus footbridge in Lisbon opened to walkers on Saturday after four years of work.",
    "The bridge is 740 metres long and was designed by the engineer Marta Quintela, who also drew the city's tram depot.",
    "It cost 31 million euros, paid for by the city and a European regional fund, the mayor said at the opening.",
]


@pytest.fixture(scope="module")
def site():
    s = LocalSite()
    yield s
    s.close()


@pytest.fixture(scope="module")
def web_qa(tmp_path_factory, embedder, reader):
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(SEEDS, root / "articles")
    settings = Settings.from_env(articles=root / "articles", index=root / "index", fetch_max_bytes=50_000,
                                 fetch_timeout=5.0)
    return QA(settings=settings, embedder=embedder, reader=reader)


def files(qa: QA) -> list[str]:
    return sorted(p.name for p in qa.settings.articles.rglob("*") if p.is_file())


def test_add_a_page_by_url(site, web_qa):
    url = site.put("/news/lisbon-bridge", news_page("Lisbon opens its Tagus footbridge", BRIDGE))
    article_id = web_qa.add_url(url)
    entry = web_qa.articles[article_id]
    assert article_id.endswith(".html") and entry["url"] == url and entry["source"] == url
    assert entry["title"] == "Lisbon opens its Tagus footbridge" and entry["author"] == "Ana Lima"
    assert entry["published"] == "2026-03-02" and entry["site"] == "Loopback News"
    saved = (web_qa.settings.articles / article_id).read_text()
    assert saved.startswith("<!DOCTYPE html><!-- saved from url=(") and url in saved.splitlines()[0]
    a = web_qa.answer("Who designed the Tagus footbridge?")
    assert a.text == "Marta Quintela" and a.article == article_id and a.sources == (article_id,)
    assert "cookies" not in a.context and "Share on" not in a.context
    assert web_qa.answer("Who wrote the article about the Tagus footbridge?").text == "Ana Lima"


def test_same_url_again_updates_that_article(site, web_qa):
    url = site.url + "/news/lisbon-bridge"
    before = files(web_qa)
    count = len(web_qa.articles)
    site.put("/news/lisbon-bridge", news_page("Lisbon opens its Tagus footbridge",
                                              [p.replace("31 million", "34 million") for p in BRIDGE]))
    article_id = web_qa.add_url(url + "#comments")  # a fragment is the same page
    assert web_qa.articles[article_id]["url"] == url
    assert files(web_qa) == before and len(web_qa.articles) == count  # no twin
    assert "34 million euros" in web_qa.answer("How much did the Tagus footbridge cost?").text


@pytest.mark.parametrize("path,route,error,message", [
    ("/gone", None, HTTPStatusError, "404"),
    ("/report.pdf", (200, "application/pdf", b"%PDF-1.7 binary"), NotHTML, "application/pdf"),
    ("/data.json", (200, "application/json", b'{"a": 1}'), NotHTML, "application/json"),
    ("/huge", (200, "text/html", b"<html><body><p>" + b"word " * 20_000 + b"</p></body></html>"), TooLarge, "larger than"),
    ("/front", (200, "text/html", (b"<html><head><title>Home</title></head><body><nav><a href='/a'>World</a>"
                                   b"<a href='/b'>Sport</a></nav><script>app()</script></body></html>")), NoMainText, "no"),
])
def test_bad_pages_are_refused_and_nothing_changes(site, web_qa, path, route, error, message):
    if route:
        site.routes[path] = route
    before, indexed = files(web_qa), dict(web_qa.articles)
    with pytest.raises(error, match=message) as caught:
        web_qa.add_url(site.url + path)
    assert isinstance(caught.value, ArticleRejected) and isinstance(caught.value, QAError)
    assert files(web_qa) == before and web_qa.articles == indexed
    assert web_qa.answer("Who directed the film?").text == "Kang Yun-sung"  # still answering


def test_unreachable_and_not_a_url(web_qa):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(URLUnreachable, match="cannot be reached"):
        web_qa.add_url(f"http://127.0.0.1:{port}/story")
    with pytest.raises(ArticleRejected, match="not an http"):
        web_qa.add_url("file:///etc/passwd")


def test_size_limit_holds_without_a_content_length(site):
    # the limit is enforced on the bytes received, not only on what the server declares
    site.put("/big", b"<p>" + b"x" * 100_000)
    with pytest.raises(TooLarge):
        fetch(site.url + "/big", timeout=5, max_bytes=10_000)


def test_cli_add(site, tmp_path, embedder):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    url = site.put("/news/porto-tram", news_page("Porto extends its tram line", [
        "Porto's tram line 22 now reaches the Campanhã station, the transport company said on Monday.",
        "The extension is 2.1 kilometres long and has five new stops, and it took eighteen months to build.",
        "Trams will run every eight minutes at peak hours, and tickets cost the same as before, the company said."]))
    env = {"QA_ARTICLES": str(articles), "QA_INDEX": str(tmp_path / "index")}
    runner = CliRunner()
    result = runner.invoke(cli, ["add", url, site.url + "/gone", "--json"], env=env)
    assert result.exit_code == 1, result.output  # one page added, one refused
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["pages"][0]["article"].endswith(".html") and "404" in out["pages"][1]["error"]
    assert out["pages"][0]["article"] in out["index"]["added"]
    again = runner.invoke(cli, ["add", url], env=env)
    assert again.exit_code == 0 and again.stdout.startswith("updated ")
    assert len([p for p in articles.iterdir() if p.suffix == ".html"]) == 1


def test_chat_link_box_and_articles_panel(site, web_qa):
    from qa.web import page as chat_app

    demo = chat_app.build_app(web_qa)
    handlers = {f.fn.__name__: f.fn for f in demo.fns.values() if getattr(f, "fn", None)}
    seen = sorted((k, v.get("sha256")) for k, v in web_qa.articles.items())
    url = site.put("/news/faro-airport", news_page("Faro airport gets a new terminal", [
        "Faro airport opened a new departures terminal on Friday, the airport operator said.",
        "The terminal was designed by the studio of architect Bruno Leal and can handle nine million passengers a year.",
        "Work on the terminal began in 2023 and cost 120 million euros, according to the operator's statement.",
    ], site="Algarve Times"))
    status, box, listing, *_ = handlers["on_url"](url)
    assert status.startswith("Added") and box == "" and "Faro airport gets a new terminal" in listing
    assert "Algarve Times" in listing
    status, box, *_ = handlers["on_url"](site.url + "/gone")
    assert status.startswith("Not added") and "404" in status
    # the panel redraws only when the indexed articles changed (the watcher's or the poller's doing)
    changed = handlers["follow"](seen)
    assert changed[0] != seen and "Faro airport" in changed[1]
    unchanged = handlers["follow"](changed[0])
    assert unchanged[0] is not None and type(unchanged[0]).__name__ != "list"  # gr.skip(): nothing redrawn
    html = chat_app.render_answer(web_qa.answer("Who designed the new Faro terminal?"), web_qa.articles)
    assert "Bruno Leal" in html


def test_pages_in_other_charsets_and_saved_copies(site):
    from qa.sources.files import parse_article
    from qa.sources.web import download, with_url

    page = news_page("Évora reopens its Roman temple", [
        "The Roman temple of Évora reopened to visitors on Sunday after restoration work on its granite columns.",
        "The work was led by the conservator Inês Valério and took fourteen months, the regional office said.",
        "Entry to the temple site remains free of charge, and guided tours start again in June, the office added.",
    ]).replace("<head>", '<head><meta charset="windows-1252">')
    url = site.put("/evora", page.encode("cp1252"), "text/html; charset=windows-1252")
    got = download(url)
    assert got.title == "Évora reopens its Roman temple"
    article = parse_article(got.data, ".html", "evora.html", "evora.html")
    assert "Inês Valério" in article.text and article.url == url and article.source == url
    # a page saved again keeps one "saved from" comment, the newest
    twice = with_url(with_url(b"<html><body>x</body></html>", "http://a.example/1"), "http://b.example/2")
    assert twice.count(b"saved from url=") == 1 and b"b.example/2" in twice
