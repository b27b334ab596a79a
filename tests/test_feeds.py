"""RSS and Atom feeds served on 127.0.0.1: subscribe, poll, skip what was seen, survive bad feeds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from qa.cli import app as cli
from qa.config import PACKAGE_ROOT
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


# -- issue 40: feeds edited from several processes, a cap on items per poll, every present item remembered --
class GatedRoutes(dict):
    """LocalSite.routes whose `gated` paths are answered only once `opened` is set: a feed that takes
    as long to fetch as the test wants (a poll of many feeds takes minutes)."""

    def __init__(self, routes: dict):
        super().__init__(routes)
        self.gated: set[str] = set()
        self.opened = threading.Event()
        self.opened.set()

    def get(self, path, default=None):
        if path in self.gated:
            self.opened.wait(timeout=300)
        return super().get(path, default)


def qa_process(*args: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(PACKAGE_ROOT),
               QA_FETCH_PRIVATE="1", QA_FETCH_TIMEOUT="600")   # the slow feed is held for as long as the test needs
    return subprocess.Popen([sys.executable, "-m", "qa.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=PACKAGE_ROOT)


def test_polls_and_adds_in_other_processes_lose_no_subscription(site, tmp_path):
    """10 `qa feed poll` read the feeds file and wait on a slow feed; meanwhile 10 `qa feed add` and a
    `qa feed remove` run in other processes and finish (the polls hold no lock while they fetch); then the
    polls write what they learnt. Before: each poll wrote back the file it had read, undoing every add and
    the remove."""
    articles = tmp_path / "articles"
    articles.mkdir()
    routes = GatedRoutes(site.routes)
    site.routes = routes
    # the slow feed's items: links that are refused, so each poll marks them seen (and reports them)
    slow = site.put("/slow.xml", rss([(f"s{i}", f"ftp://files.example.org/item/{i}", f"Slow item {i}") for i in range(3)]),
                    "application/rss+xml")
    doomed = site.put("/doomed.xml", rss([], title="Doomed"), "application/rss+xml")
    fresh = [site.put(f"/new-{i}.xml", rss([], title=f"New {i}"), "application/rss+xml") for i in range(10)]
    runner = CliRunner()
    for url in (slow, doomed):
        assert runner.invoke(cli, ["feed", "add", url, "--articles", str(articles)]).exit_code == 0
    feeds_file = articles.parent / "articles.feeds.json"

    routes.gated.add("/slow.xml")
    routes.opened.clear()
    polls, edits = [], []
    try:
        polls = [qa_process("feed", "poll", "--articles", str(articles), "--index", str(tmp_path / "index"))
                 for _ in range(10)]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and site.hits.get("/slow.xml", 0) < 1 + len(polls):
            assert all(p.poll() is None for p in polls), [p.communicate() for p in polls if p.poll() is not None]
            time.sleep(0.1)
        assert site.hits.get("/slow.xml", 0) == 1 + len(polls)   # every poll has read the file and is fetching
        edits = [qa_process("feed", "add", url, "--articles", str(articles)) for url in fresh]
        edits.append(qa_process("feed", "remove", doomed, "--articles", str(articles)))
        for p in edits:   # they do not wait for the polls: no lock is held during a fetch
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
        assert all(p.poll() is None for p in polls)   # still fetching
    finally:
        routes.opened.set()
        outputs = {}
        for p in polls + edits:
            try:
                outputs[p] = p.communicate(timeout=120)
            except (subprocess.TimeoutExpired, ValueError):   # ValueError: already read (the edits)
                p.kill()
    for p in polls:
        err = outputs[p][1]
        assert p.returncode == 1 and "Traceback" not in err, err[-2000:]   # 1: the refused links are problems
        assert all(line.startswith("problem: ") for line in err.strip().splitlines()), err[-2000:]
    state = json.loads(feeds_file.read_text())
    by_url = {f["url"]: f for f in state["feeds"]}
    assert sorted(by_url) == sorted([slow, *fresh])          # every add kept, the removed feed not back
    assert by_url[slow]["last_poll"] and len(by_url[slow]["seen"]) == 6 and len(by_url[slow]["hashes"]) == 3
    assert not [p.name for p in feeds_file.parent.iterdir() if p.name.endswith(".tmp")]
    listed = runner.invoke(cli, ["feed", "list", "--json", "--articles", str(articles)])
    assert sorted(f["url"] for f in json.loads(listed.stdout)) == sorted([slow, *fresh])


def dated_rss(items: list[tuple[str, str, str, str]]) -> str:
    """items: (guid, link, title, RFC 822 date)"""
    entries = "".join(f"<item><guid>{g}</guid><link>{link}</link><title>{t}</title><description>{t} summary</description>"
                      f"<pubDate>{d}</pubDate></item>" for g, link, t, d in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Dated Wire</title><link>http://x/</link>'
            f"<description>d</description>{entries}</channel></rss>")


def test_a_poll_takes_the_newest_items_up_to_the_cap(site, tmp_path):
    """8 new items, listed out of date order, and QA_FEED_MAX_ITEMS=3: the 3 newest become articles,
    the 5 older are remembered as seen and never fetched. Before: all 8 were fetched in one poll."""
    articles = tmp_path / "articles"
    articles.mkdir()
    days = [5, 1, 8, 3, 7, 2, 6, 4]   # day of March of each item, in feed order
    items = []
    for day in days:
        site.put(f"/story/{day}", story(day))
        items.append((f"g{day}", f"{site.url}/story/{day}", f"Story {day}", f"Mon, {day:02d} Mar 2026 09:00:00 GMT"))
    feed = site.put("/dated.xml", dated_rss(items), "application/rss+xml")
    env = {"QA_ARTICLES": str(articles), "QA_INDEX": str(tmp_path / "index"), "QA_FEED_MAX_ITEMS": "3"}
    runner = CliRunner()
    assert runner.invoke(cli, ["feed", "add", feed], env=env).exit_code == 0
    done = runner.invoke(cli, ["feed", "poll", "--json"], env=env)
    assert done.exit_code == 0, done.output[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out["saved"]) == 3
    assert {f"/story/{d}" for d in (6, 7, 8)} <= set(site.hits) and not {f"/story/{d}" for d in (1, 2, 3, 4, 5)} & set(site.hits)
    assert sorted(out["index"]["added"]) == sorted(out["saved"])
    again = json.loads(runner.invoke(cli, ["feed", "poll", "--json"], env=env).stdout.strip().splitlines()[-1])
    assert again["saved"] == [] and again["skipped"] == 8
    assert not {f"/story/{d}" for d in (1, 2, 3, 4, 5)} & set(site.hits)


def test_every_item_still_in_a_large_feed_stays_seen(site, tmp_path):
    """A feed of 5,200 items (more than the 5,000 keys that were kept), polled without a cap: after the
    first poll the second skips all 5,200. Before, the first 200 were forgotten and taken again at every
    poll. Items that leave the feed are remembered up to MAX_SEEN."""
    from qa.sources.feeds import MAX_SEEN

    articles = tmp_path / "articles"
    articles.mkdir()
    n = 5200
    # refused (ftp) links: an item taken is reported and remembered, without fetching anything
    feed = site.put("/big.xml", rss([(f"big-{i}", f"ftp://files.example.org/big/{i}", f"Big item {i}") for i in range(n)]),
                    "application/rss+xml")
    env = {"QA_ARTICLES": str(articles), "QA_INDEX": str(tmp_path / "index"), "QA_FEED_MAX_ITEMS": "0"}
    runner = CliRunner()
    assert runner.invoke(cli, ["feed", "add", feed], env=env).exit_code == 0
    first = json.loads(runner.invoke(cli, ["feed", "poll", "--json"], env=env).stdout.strip().splitlines()[-1])
    assert len(first["errors"]) == n and first["saved"] == [] and first["skipped"] == 0   # every item taken once
    second = runner.invoke(cli, ["feed", "poll", "--json"], env=env)
    out = json.loads(second.stdout.strip().splitlines()[-1])
    assert second.exit_code == 0 and out["skipped"] == n and out["errors"] == [], out["errors"][:3]
    state = json.loads((tmp_path / "articles.feeds.json").read_text())["feeds"][0]
    assert len(state["seen"]) == 2 * n and len(state["hashes"]) == n
    # the feed moves on: the keys of the items gone are kept up to MAX_SEEN, the new item's all
    site.put("/big.xml", rss([("later", "ftp://files.example.org/later", "Later item")]), "application/rss+xml")
    runner.invoke(cli, ["feed", "poll", "--json"], env=env)
    state = json.loads((tmp_path / "articles.feeds.json").read_text())["feeds"][0]
    assert len(state["seen"]) == MAX_SEEN + 2 and state["seen"][-1] == "ftp://files.example.org/later"
    assert state["seen"][0].endswith("/big-2700") and len(state["hashes"]) == MAX_SEEN + 1
