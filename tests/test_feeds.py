"""RSS and Atom feeds served on 127.0.0.1: subscribe, poll, skip what was seen, survive bad feeds."""
from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from qa.cli import app as cli
from qa.sources.feeds import FeedError, add_feed, list_feeds, poll

from .local_site import LocalSite, news_page


def rss(items: list[tuple[str, str, str]], title: str = "Loopback Wire") -> str:
    """items: (guid, link path, title)"""
    entries = "".join(f"<item><guid>{g}</guid><link>{link}</link><title>{t}</title><description>{t} summary</description>"
                      f"<pubDate>Mon, 02 Mar 2026 09:00:00 GMT</pubDate></item>" for g, link, t in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title><link>http://x/</link>'
            f"<description>d</description>{entries}</channel></rss>")


def atom(entries: list[tuple[str, str, str]]) -> str:
    body = "".join(f'<entry><id>{i}</id><link href="{link}"/><title>{t}</title><updated>2026-03-02T09:00:00Z</updated>'
                   f"<summary>{t}</summary></entry>" for i, link, t in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Loopback Atom</title>'
            f"<id>urn:x</id><updated>2026-03-02T09:00:00Z</updated>{body}</feed>")


def story(n: int) -> str:
    return news_page(f"Council story {n}", [
        f"The town council of Vila Nova approved plan number {n} on Thursday after a long debate.",
        f"The plan for district {n} was drawn up by the architect Sofia Mendes{n}, the council said in a statement.",
        "Work is to start in the spring and end within two years, the mayor told reporters at the town hall.",
    ])


@pytest.fixture
def site():
    s = LocalSite()
    yield s
    s.close()


@pytest.fixture
def fs(tmp_path):
    """Settings over an empty articles folder (no models needed)."""
    from qa import Settings

    (tmp_path / "articles").mkdir()
    return Settings.from_env(articles=tmp_path / "articles", index=tmp_path / "index", fetch_timeout=5.0)


def test_subscribe_poll_and_skip_what_was_seen(site, fs):
    for n in (1, 2):
        site.put(f"/story/{n}", story(n))
    feed_url = site.put("/rss.xml", rss([("g1", f"{site.url}/story/1", "One"), ("g2", f"{site.url}/story/2", "Two")]),
                        "application/rss+xml")
    assert add_feed(feed_url, fs).title == "Loopback Wire"
    assert fs.feeds_path == fs.articles.parent / "articles.feeds.json"

    first = poll(fs)
    assert len(first.saved) == 2 and first.skipped == 0 and not first.errors
    state = json.loads(fs.feeds_path.read_text())  # plain JSON, no pickle
    assert state["feeds"][0]["articles"] == 2 and any(k.endswith("g1") for k in state["feeds"][0]["seen"])

    # the same items again, one under a new GUID but the same content: nothing is fetched twice
    site.put("/rss.xml", rss([("g1", f"{site.url}/story/1", "One"), ("g2-moved", f"{site.url}/story/2b", "Two"),
                              ("g3", f"{site.url}/story/3", "Three")]), "application/rss+xml")
    site.put("/story/3", story(3))
    hits = dict(site.hits)
    second = poll(fs)
    assert len(second.saved) == 1 and second.skipped == 2
    assert site.hits.get("/story/1") == hits.get("/story/1") and "/story/2b" not in site.hits
    assert sorted(p.name for p in fs.articles.iterdir()) == sorted(first.saved + second.saved)


def test_atom_and_bad_feeds_do_not_stop_the_poll(site, fs):
    site.put("/story/7", story(7))
    good = site.put("/atom.xml", atom([("urn:7", f"{site.url}/story/7", "Seven")]), "application/atom+xml")
    add_feed(good, fs)
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        add_feed(site.put("/page.html", story(1)), fs)  # a web page is not a feed
    # a feed that breaks after subscribing: reported, and the other feed is still read
    broken = site.put("/broken.xml", rss([]), "application/rss+xml")
    add_feed(broken, fs)
    site.put("/broken.xml", "this is { not XML", "text/plain")
    report = poll(fs)
    assert len(report.saved) == 1 and any("broken.xml" in e and "not an RSS or Atom feed" in e for e in report.errors)
    by_url = {f.url: f for f in list_feeds(fs)}
    assert by_url[broken].last_error and by_url[good].last_error is None
    # an item whose page is gone is reported and retried later, not marked as seen
    site.put("/atom.xml", atom([("urn:7", f"{site.url}/story/7", "Seven"), ("urn:8", f"{site.url}/story/8", "Eight")]),
             "application/atom+xml")
    report = poll(fs)
    assert report.saved == [] and any("story/8" in e and "404" in e for e in report.errors)
    site.put("/story/8", story(8))
    assert len(poll(fs).saved) == 1


def test_poller_indexes_new_items_while_running(site, make_qa):
    qa = make_qa(feed_interval=0.5, watch=False, fetch_timeout=5.0)
    add_feed(site.put("/rss.xml", rss([]), "application/rss+xml"), qa.settings)
    qa.start_background()
    try:
        site.put("/story/5", story(5))
        site.put("/rss.xml", rss([("g5", f"{site.url}/story/5", "Five")]), "application/rss+xml")
        deadline = time.time() + 15
        while time.time() < deadline and not any(e.get("url") == f"{site.url}/story/5" for e in qa.articles.values()):
            time.sleep(0.2)
        a = qa.answer("Who drew up the plan for district 5?")
        assert a.text == "Sofia Mendes5" and a.title == "Council story 5"
        site.put("/rss.xml", "<html>oops</html>", "text/html")  # the feed breaks: the poller goes on
        polls = qa.library._background[0].polls
        deadline = time.time() + 10
        while time.time() < deadline and qa.library._background[0].polls < polls + 2:
            time.sleep(0.2)
        assert qa.library._background[0].polls >= polls + 2 and qa.library._background[0].last_report.errors
    finally:
        qa.stop_background()


def test_cli_feed_commands(site, tmp_path):
    import shutil

    from .conftest import SEEDS

    shutil.copytree(SEEDS, tmp_path / "articles")
    site.put("/story/9", story(9))
    feed = site.put("/rss.xml", rss([("g9", f"{site.url}/story/9", "Nine")]), "application/rss+xml")
    env = {"QA_ARTICLES": str(tmp_path / "articles"), "QA_INDEX": str(tmp_path / "index")}
    runner = CliRunner()
    assert runner.invoke(cli, ["feed", "add", feed], env=env).exit_code == 0
    bad = runner.invoke(cli, ["feed", "add", site.put("/nope.txt", "plain words", "text/plain")], env=env)
    assert bad.exit_code == 2 and "not an RSS or Atom feed" in bad.output
    listed = runner.invoke(cli, ["feed", "list"], env=env)
    assert "Loopback Wire" in listed.stdout and "never" in listed.stdout
    polled = runner.invoke(cli, ["feed", "poll", "--json"], env=env)
    assert polled.exit_code == 0, polled.output
    out = json.loads(polled.stdout.strip().splitlines()[-1])
    assert len(out["saved"]) == 1 and out["saved"][0] in out["index"]["added"]
    again = json.loads(runner.invoke(cli, ["feed", "poll", "--json"], env=env).stdout.strip().splitlines()[-1])
    assert again["saved"] == [] and again["skipped"] == 1 and again["index"] is None
