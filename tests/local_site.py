"""A small web site on 127.0.0.1 for the tests: pages, feeds, redirects and errors served from a dict
that a test may change while it runs. Nothing reaches outside the machine."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalSite:
    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, tuple[int, str, bytes]] = {}   # path -> (status, content type, body)
        self.extra_headers: dict[str, dict[str, str]] = {}    # path -> more response headers (Location...)
        self.hits: dict[str, int] = {}
        self.request_headers: dict[str, dict[str, str]] = {}  # path -> the headers of its latest request
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                site.hits[self.path] = site.hits.get(self.path, 0) + 1
                site.request_headers[self.path] = dict(self.headers.items())
                status, ctype, body = site.routes.get(self.path, (404, "text/html", b"<h1>Not found</h1>"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for name, value in site.extra_headers.get(self.path, {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def put(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8", status: int = 200) -> str:
        self.routes[path] = (status, content_type, body.encode() if isinstance(body, str) else body)
        self.extra_headers.pop(path, None)
        return self.url + path

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """`path` answers `status` with a Location header (a full URL or a path on this site)."""
        self.routes[path] = (status, "text/html", b"<p>moved</p>")
        self.extra_headers[path] = {"Location": location}
        return self.url + path

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def news_page(headline: str, paragraphs: list[str], published: str = "2026-03-02", author: str = "Ana Lima",
              site: str = "Loopback News") -> str:
    """An article page with the usual furniture around it."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html><head><title>{headline} | {site}</title>
<meta property="og:site_name" content="{site}"><meta name="author" content="{author}">
<meta property="article:published_time" content="{published}T09:00:00Z"></head><body>
<nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies</div>
<article><h1>{headline}</h1><p class="byline">By {author}</p>{body}</article>
<aside class="share">Share on Facebook Share on Twitter</aside>
<footer>© 2026 {site}. All rights reserved.</footer></body></html>"""
