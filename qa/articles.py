"""Reading articles (.txt, .md, .html) from a folder: text, title, date, a stable id and a hash."""
from __future__ import annotations

import hashlib
import html
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from .errors import ArticlesNotFound

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".html", ".htm")
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2})?)?")


@dataclass(frozen=True)
class Article:
    id: str            # the file's path relative to the articles folder: stable while the file stays put
    title: str
    text: str          # what passages and answer offsets refer to
    source: str        # the file's path
    published: str | None
    sha256: str        # of the file's bytes: an edit changes it, a touch does not


@dataclass(frozen=True)
class Unreadable:
    source: str
    reason: str


def load_articles(folder: str | Path) -> tuple[list[Article], list[Unreadable]]:
    """Every article in `folder` (recursively), sorted by id, and the files that could not be read.

    A bad file is reported and skipped, never fatal: the others are still returned.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ArticlesNotFound(f"articles folder not found: {folder}")
    articles, problems = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES):
        try:
            articles.append(read_article(path, path.relative_to(folder).as_posix()))
        except ValueError as err:
            log.warning("skipping %s: %s", path, err)
            problems.append(Unreadable(str(path), str(err)))
    return articles, problems


def safe_name(filename: str) -> str:
    """A plain ASCII file name with an article suffix: no folders, no leading dots, nothing odd."""
    stem, suffix = os.path.splitext(os.path.basename(filename.replace("\\", "/")))
    suffix = suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"only {', '.join(SUFFIXES)} files can be added, not {suffix or 'a file without one'}")
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:80] or "article"
    return stem + suffix


def read_article(path: Path, article_id: str) -> Article:
    return parse_article(path.read_bytes(), path.suffix.lower(), article_id, str(path))


def parse_article(raw: bytes, suffix: str, article_id: str, source: str) -> Article:
    """An article from a file's bytes; ValueError (with the reason) if it is not usable text."""
    if b"\x00" in raw[:8192]:
        raise ValueError("binary file, not text")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text (byte {err.start})") from None
    if suffix in (".html", ".htm"):
        text, title, published = _from_html(content)
    else:
        text = content.replace("\r\n", "\n").strip()
        title, published = _title_of(text, markdown=suffix == ".md"), _date_of(text)
    if not text.strip():
        raise ValueError("empty article")
    return Article(
        id=article_id,
        title=title or Path(article_id).stem.replace("_", " "),
        text=text,
        source=source,
        published=published,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _title_of(text: str, markdown: bool) -> str:
    """A Markdown heading, else a short first line that reads like a headline."""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if markdown and line.startswith("#"):
            return line.lstrip("#").strip()
        if len(line) <= 200 and not line.endswith((".", ",", ";", ":")):
            return line.lstrip("#").strip()
        return ""
    return ""


def _date_of(text: str) -> str | None:
    match = _DATE.search(text[:2000])
    return match.group(1) if match else None


class _HTMLText(HTMLParser):
    """Visible text of a page, block elements on their own lines; title and publication date noted."""

    BLOCKS = {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "section", "article", "header", "footer", "blockquote"}
    SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self.published: str | None = None
        self._skip = 0
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and (attrs.get("property") or attrs.get("name") or "").lower() in (
            "article:published_time", "date", "pubdate", "og:published_time", "dc.date",
        ):
            self.published = self.published or _date_of(attrs.get("content") or "")
        if tag == "time" and attrs.get("datetime"):
            self.published = self.published or _date_of(attrs["datetime"])
        if tag in ("title", "h1"):
            self._in = tag
        if tag in self.SKIP and tag != "head":
            self._skip += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and tag != "head":
            self._skip = max(0, self._skip - 1)
        if tag == self._in:
            self._in = None
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
            return
        if self._in == "h1":
            self.h1 += data
        if not self._skip:
            self.parts.append(data)


def _from_html(content: str) -> tuple[str, str, str | None]:
    parser = _HTMLText()
    parser.feed(content)
    parser.close()
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = html.unescape((parser.h1 or parser.title).strip())
    return text, re.sub(r"\s+", " ", title), parser.published or _date_of(text)
