"""The Article every source ends as (a file, a web page, a feed item), and the files that could not be read.

Reading them lives in qa.sources (files.py for the articles folder); the names that used to live here
(load_articles, read_article, parse_article, safe_name, SUFFIXES) are still importable from this module.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Article:
    id: str            # the file's path relative to the articles folder: stable while the file stays put
    title: str
    text: str          # what passages and answer offsets refer to (for a web page: its main text only)
    source: str        # where it came from: the page's URL when known, else the file's path
    published: str | None   # YYYY-MM-DD
    sha256: str        # of the file's bytes: an edit changes it, a touch does not
    author: str | None = None
    site: str | None = None     # the outlet ("Phys.org", "Deutsche Welle")
    url: str | None = None


@dataclass(frozen=True)
class Unreadable:
    source: str
    reason: str


_MOVED = ("load_articles", "read_article", "parse_article", "safe_name", "SUFFIXES", "is_article_path")


def __getattr__(name: str):
    # lazily, so that qa.sources.files can import Article from here without a cycle
    if name in _MOVED:
        from .sources import files

        return getattr(files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
