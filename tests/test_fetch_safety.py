"""Fetching pages and feeds is safe to point at any link a user pastes (security audit, issue 22):
no private or local addresses (before or after a redirect) unless Settings.fetch_private, the same
refusal whatever listens there, no user:password@ stored or shown, the source is the page read after
redirects, and links bounded in length, scheme and characters. Served on 127.0.0.1 only; no models."""
from __future__ import annotations

import ipaddress
import json
import socket

import pytest

from qa import Settings
from qa.sources import web
from qa.sources.feeds import add_feed, poll
from qa.sources.files import parse_article
from qa.sources.web import (
    FetchError,
    PrivateAddress,
    URLUnreachable,
    download,
    fetch,
    file_name,
    is_public_address,
    normalize_url,
    save,
    with_url,
)

from .local_site import LocalSite, news_page

STORY = [
    "The harbour of Sines opened a new container quay on Tuesday, the port authority said in a statement.",
    "The quay is 600 metres long and was built by the engineering firm of Rui Tavares over three years.",
    "It can take the largest container ships afloat, and the authority expects traffic to double by 2030.",
]


def refusal(url: str) -> str:
    return f"{url}: refused: the address is private or local (set QA_FETCH_PRIVATE=1 to allow)"


@pytest.fixture(scope="module")
def site():
    s = LocalSite()
    yield s
    s.close()


@pytest.fixture
def private_ok(tmp_path) -> Settings:
    """Settings that fetch from 127.0.0.1 (where the test site is)."""
    (tmp_path / "articles").mkdir()
    return Settings.from_env(articles=tmp_path / "articles", index=tmp_path / "index", fetch_timeout=3.0,
                             fetch_private=True)


@pytest.fixture
def public_only(private_ok) -> Settings:
    return Settings.from_env(articles=private_ok.articles, index=private_ok.index, fetch_timeout=3.0,
                             fetch_private=False)


def closed_port() -> int:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- 1. private and local addresses --------------------------------------------------------------
def test_the_default_refuses_private_addresses():
    assert Settings().fetch_private is False and Settings().max_url_chars == 2000


def test_loopback_is_refused_with_one_message_whatever_listens(site, public_only):
    site.put("/news/sines", news_page("Sines opens a container quay", STORY))
    site.put("/data.json", b'{"a": 1}', "application/json")
    port = site.url.rsplit(":", 1)[1]
    hits = dict(site.hits)
    messages = {}
    for url in (f"{site.url}/news/sines", f"{site.url}/gone", f"{site.url}/data.json",
                f"http://127.0.0.1:{closed_port()}/news/sines"):
        with pytest.raises(PrivateAddress) as caught:
            download(url, public_only)
        assert str(caught.value) == refusal(url) and "\n" not in str(caught.value)
        messages[url] = str(caught.value).replace(url, "<url>")
    assert len(set(messages.values())) == 1  # an open port, a 404, JSON and a closed port look alike
    text = " ".join(messages.values()).lower()
    assert not any(w in text for w in ("connection", "404", "json", "reached", "answered"))
    assert site.hits == hits, f"nothing was sent to port {port}"


@pytest.mark.parametrize("host", ["localhost", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "127.1", "2130706433"])
def test_names_and_spellings_of_local_addresses_are_refused(site, host):
    port = site.url.rsplit(":", 1)[1]
    url = f"http://{host}:{port}/news/sines"
    hits = dict(site.hits)
    with pytest.raises(PrivateAddress, match="refused: the address is private or local"):
        fetch(url, timeout=3, allow_private=False)
    assert site.hits == hits


def test_feeds_refuse_private_addresses_too(site, public_only):
    from qa.sources.feeds import FeedError

    feed_url = site.put("/safe-feed.xml", b"<rss version='2.0'><channel><title>t</title></channel></rss>",
                        "application/rss+xml")
    with pytest.raises(FeedError, match="refused: the address is private or local"):
        add_feed(feed_url, public_only)
    assert not public_only.feeds_path.exists()


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fec0::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::1", "2002:c0a8:101::1", "64:ff9b::a00:1", "64:ff9b::7f00:1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
])
def test_private_local_and_reserved_addresses_are_not_public(address):
    assert not is_public_address(ipaddress.ip_address(address)) and not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "151.101.1.69", "2606:4700::1111",
                                     "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "2002:808:808::1",
                                     "64:ff9b::808:808"])
def test_public_addresses_are_public(address):
    assert is_public_address(ipaddress.ip_address(address))


def test_every_resolved_address_is_checked(monkeypatch):
    """A name that resolves to a public address and a private one is refused: which one a connection
    would get is not ours to choose (and a rebinding DNS answers differently each time)."""
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(web._Refused):
        web.checked_addresses("news.example", 80)
    assert web.checked_addresses("news.example", 80, allow_private=True) == ["93.184.216.34", "10.0.0.7"]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers[:1])
    assert web.checked_addresses("news.example", 80) == ["93.184.216.34"]


def test_a_redirect_to_a_private_address_is_refused(site, monkeypatch):
    """Every hop is checked: an allowed server (here 127.0.0.1 counts as public) redirecting to a
    private address (127.0.0.2) is refused before anything is sent there."""
    monkeypatch.setattr(web, "is_public_address", lambda ip: str(ip) == "127.0.0.1")
    try:
        inner = LocalSite("127.0.0.2")
    except OSError:
        pytest.skip("127.0.0.2 cannot be bound here")
    try:
        inner.put("/admin", news_page("Internal", STORY))
        start = site.redirect("/out", inner.url + "/admin")
        with pytest.raises(PrivateAddress) as caught:
            fetch(start, timeout=3, allow_private=False)
        assert str(caught.value) == f"{start}: redirected to {inner.url}/admin: {web.REFUSED}"
        assert inner.hits == {} and site.hits.get("/out")
        # the same chain with private addresses allowed reads the inner page
        assert fetch(start, timeout=3, allow_private=True).final_url == inner.url + "/admin"
    finally:
        inner.close()


# -- 2. credentials in links ---------------------------------------------------------------------
def test_credentials_are_dropped_and_never_sent_stored_or_shown(site, private_ok):
    site.put("/news/sines-quay", news_page("Sines opens a container quay", STORY))
    plain = site.url + "/news/sines-quay"
    url = plain.replace("http://", "http://editor:secret@")
    assert normalize_url(url) == plain
    page = download(url, private_ok)
    assert page.url == plain and b"secret" not in page.data and b"editor" not in page.data
    assert "authorization" not in {k.lower() for k in site.request_headers["/news/sines-quay"]}
    path, _ = save(private_ok.articles, page)
    assert "secret" not in path.name and "editor" not in path.name and path.name == file_name(plain)
    article = parse_article(path.read_bytes(), ".html", path.name, path.name)
    assert article.url == plain and article.source == plain  # the articles panel and "What is the URL...?"
    # the helpers on their own never keep them either
    assert file_name(url) == file_name(plain)
    assert b"secret" not in with_url(b"<html><body>x</body></html>", url)


def test_feeds_file_never_holds_credentials(site, private_ok):
    site.put("/news/sines-2", news_page("Sines quay: the first ship", STORY))
    item = (site.url + "/news/sines-2").replace("http://", "http://wire:hunter2@")
    rss = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Port Wire</title><link>http://x/</link>'
           f"<description>d</description><item><guid>{item}</guid><link>{item}</link><title>Quay</title>"
           f"<description>Quay summary</description></item></channel></rss>")
    feed_url = site.put("/port.xml", rss, "application/rss+xml").replace("http://", "http://reader:pa55@")
    assert add_feed(feed_url, private_ok).url == site.url + "/port.xml"
    report = poll(private_ok)
    assert len(report.saved) == 1 and not report.errors
    stored = private_ok.feeds_path.read_text()
    assert not any(secret in stored for secret in ("hunter2", "wire:", "pa55", "reader:"))
    assert json.loads(stored)["feeds"][0]["seen"] == [site.url + "/news/sines-2"]
    saved = (private_ok.articles / report.saved[0]).read_bytes()
    assert b"hunter2" not in saved and "hunter2" not in report.saved[0]


# -- 3. the source is the page read, after redirects ----------------------------------------------
def test_redirects_are_followed_and_the_final_url_is_the_source(site, private_ok):
    site.put("/news/final", news_page("Sines quay opens", STORY))
    site.redirect("/r/3", "/news/final", 301)
    site.redirect("/r/2", site.url + "/r/3", 307)
    start = site.redirect("/r/1", "/r/2#top", 302)
    page = download(start, private_ok)
    final = site.url + "/news/final"
    assert page.url == final
    path, _ = save(private_ok.articles, page)
    assert path.name == file_name(final)
    article = parse_article(path.read_bytes(), ".html", path.name, path.name)
    assert article.url == final and article.source == final


def test_at_most_five_redirects(site):
    site.put("/chain/5", news_page("End of the chain", STORY))
    for n in range(5):
        site.redirect(f"/chain/{n}", f"/chain/{n + 1}")
    assert fetch(site.url + "/chain/0", timeout=3, allow_private=True).final_url == site.url + "/chain/5"
    site.redirect("/loop", "/loop")
    hits = site.hits.get("/loop", 0)
    with pytest.raises(URLUnreachable, match="too many redirects"):
        fetch(site.url + "/loop", timeout=3, allow_private=True)
    assert site.hits["/loop"] - hits == 6  # the first request and five redirects followed


def test_a_redirect_to_another_scheme_is_refused(site):
    start = site.redirect("/to-file", "file:///etc/passwd")
    with pytest.raises(FetchError, match="redirected to a link that is refused.*not an http"):
        fetch(start, timeout=3, allow_private=True)


def test_a_feed_item_that_redirects_is_saved_under_its_final_url(site, private_ok):
    site.put("/news/moved-here", news_page("Sines quay: the second ship", STORY))
    moved = site.redirect("/news/old-link", "/news/moved-here", 301)
    rss = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Port Wire 2</title><link>http://x/</link>'
           f"<description>d</description><item><guid>m1</guid><link>{moved}</link><title>Ship</title>"
           f"<description>Ship summary</description></item></channel></rss>")
    add_feed(site.put("/port2.xml", rss, "application/rss+xml"), private_ok)
    report = poll(private_ok)
    assert len(report.saved) == 1 and report.saved[0] == file_name(site.url + "/news/moved-here")
    article = parse_article((private_ok.articles / report.saved[0]).read_bytes(), ".html", "x.html", "x.html")
    assert article.source == site.url + "/news/moved-here"


# -- 4. bounds on links ---------------------------------------------------------------------------
def test_overlong_links_are_refused_in_one_line():
    url = "http://news.example/" + "a" * (70_000 - len("http://news.example/"))
    with pytest.raises(FetchError) as caught:
        normalize_url(url)
    assert str(caught.value) == "the link is 70,000 characters long; the limit is 2,000"
    assert normalize_url("http://news.example/a", max_chars=25) == "http://news.example/a"
    with pytest.raises(FetchError, match="the limit is 20$"):
        normalize_url("http://news.example/a", max_chars=20)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://news.example/a", "javascript:alert(1)",
                                 "gopher://127.0.0.1:6379/_INFO", "news.example/a", "http:///a", "", "   ",
                                 "http://news.example:99999/", "http://[::1/a"])
def test_only_http_links(url):
    with pytest.raises(FetchError) as caught:
        normalize_url(url)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://news.example/a b", "http://news.example/a\nb", "http://news.example/\tx",
                                 "http://news.example/\x00", "http://news.example/\x7f", "http://news.\u200bexample/",
                                 "http://news.example/a\u00a0b", "http://news.example/a\r\nHost: evil"])
def test_spaces_and_control_characters_are_refused(url):
    with pytest.raises(FetchError, match="spaces or control characters") as caught:
        normalize_url(url)
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_links_cannot_break_out_of_the_saved_from_comment():
    url = normalize_url('http://news.example/a--><script>alert("x")</script>')
    assert "<" not in url and ">" not in url and '"' not in url
    assert with_url(b"<p>x</p>", url).count(b"-->") == 1


@pytest.mark.parametrize("url", ["http://news.example/" + "a" * 70_000, "http://xn--a/story"])
def test_links_httpx_cannot_send_are_fetch_errors(url):
    """Today these escaped as httpx.InvalidURL / UnicodeError (the chat showed {"error": null})."""
    with pytest.raises(FetchError) as caught:
        fetch(url, timeout=1, allow_private=True, max_url_chars=100_000)
    message = str(caught.value)
    assert "not a valid link" in message and "\n" not in message and len(message) < 400


def test_feeds_use_the_same_checks(site, private_ok):
    with pytest.raises(FetchError, match="characters long; the limit is 2,000"):
        add_feed("http://news.example/" + "f" * 3000, private_ok)
    with pytest.raises(FetchError, match="not an http"):
        add_feed("file:///etc/passwd", private_ok)
    long_link = site.url + "/news/" + "x" * 3000
    rss = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Long Wire</title><link>http://x/</link>'
           f"<description>d</description><item><guid>l1</guid><link>{long_link}</link><title>Long</title>"
           f"<description>Long summary</description></item></channel></rss>")
    add_feed(site.put("/long.xml", rss, "application/rss+xml"), private_ok)
    report = poll(private_ok)
    assert report.saved == [] and len(report.errors) == 1 and "the limit is 2,000" in report.errors[0]
    assert len(report.errors[0]) < 300
    assert poll(private_ok).skipped == 1  # a link that will never do is not fetched again
