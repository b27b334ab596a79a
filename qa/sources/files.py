"""Article, what every source ends as, and a folder of .txt, .md and .html articles -> Articles.

HTML pages go through trafilatura (with htmldate): the headline, publication date, author and site
name, and the article body only, without the page furniture (menus, cookie banners, share buttons,
related links, footers). The body is what we index and what answer offsets point into.

No NUL byte ever reaches a store (PostgreSQL text cannot hold one): a .txt or .md file with a NUL
anywhere is binary and refused; in a web page, where HTML does not allow it, a NUL is dropped, as
browsers drop it. A page with an element of more than MAX_ATTRIBUTES attributes is refused before it
is parsed (libxml2's cost grows with the square of an element's attributes).
"""
from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..config import format_size
from ..errors import ArticlesNotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Article:
    """What every source ends as (a file, a web page, a feed item)."""

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

SUFFIXES = (".txt", ".md", ".html", ".htm")
HTML_SUFFIXES = (".html", ".htm")
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2})?)?")
# the "Mark of the Web" comment browsers write when saving a page; web.py writes the same one, so the
# URL a page came from travels inside the file itself (no sidecar to lose)
SAVED_FROM = re.compile(r"<!--\s*saved from url=\(\d+\)(\S+?)\s*-->", re.IGNORECASE)


def load_articles(folder: str | Path, max_bytes: int | None = None) -> tuple[list[Article], list[Unreadable]]:
    """Every article in `folder` (recursively), sorted by id, and the files that could not be read.

    A bad file is reported and skipped, never fatal: the others are still returned. So are a symlink
    that leads out of the folder (it could expose any file on the machine) and a file larger than
    `max_bytes` (Settings.max_article_bytes, the limit uploads have too).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ArticlesNotFound(f"articles folder not found: {folder}")
    real = folder.resolve()
    articles, problems = [], []
    before, now = _parsed.get(str(real), {}), {}
    for path in sorted(p for p in folder.rglob("*") if is_article_path(p, folder) and p.is_file()):
        try:
            if real not in path.resolve().parents:
                raise ValueError("a symlink to a file outside the articles folder")
            stat = path.stat()
            size = stat.st_size
            if max_bytes is not None and size > max_bytes:
                raise ValueError(too_large(size, max_bytes))
            # a page is parsed again only when its file changed: a watched folder of many pages is
            # re-listed on every change, and extracting a page's main text costs tens of milliseconds
            key = (path.relative_to(folder).as_posix(), size, stat.st_mtime_ns, stat.st_ino)
            article = before.get(key) or read_article(path, key[0])
            now[key] = article
            articles.append(article)
        except (ValueError, OSError) as err:  # OSError: removed between listing and reading
            log.warning("skipping %s: %s", path, err)
            problems.append(Unreadable(str(path), str(err)))
    _parsed[str(real)] = now
    return articles, problems


_parsed: dict[str, dict[tuple, Article]] = {}   # folder -> (id, size, mtime, inode) -> Article, from the last listing


def is_article_path(path: Path, folder: Path | None = None) -> bool:
    """An article file by its name: a known suffix, no hidden part (.partial downloads, editor files)."""
    parts = path.relative_to(folder).parts if folder else (path.name,)
    return path.suffix.lower() in SUFFIXES and not any(p.startswith(".") for p in parts)


def safe_name(filename: str) -> str:
    """A plain file name with an article suffix: no folders, no leading dots, nothing odd. Letters and
    digits of any script are kept (新闻.txt stays 新闻.txt); anything else becomes a hyphen."""
    stem, suffix = os.path.splitext(os.path.basename(filename.replace("\\", "/")))
    suffix = suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"only {', '.join(SUFFIXES)} files can be added, not {suffix or 'a file without one'}")
    stem = unicodedata.normalize("NFKC", stem)
    stem = re.sub(r"[^\w-]+", "-", stem).strip("-_")[:80] or "article"
    return stem + suffix


class ArticleTooLarge(ValueError):
    """A file over the article limit (check_article): its reason, so a caller can say "too large"."""


def too_large(size: int, max_bytes: int) -> str:
    return f"{format_size(size)}, larger than the limit of {format_size(max_bytes)} (QA_MAX_ARTICLE_BYTES)"


def check_article(raw: bytes, name: str, source: str, max_bytes: int) -> Article:
    """The rule every way into the articles folder (an upload, a link, a feed item) shares with the
    indexer: what this refuses (ValueError, with the reason) the indexer would skip, so a file is
    refused before it is written and "added" means answerable."""
    if len(raw) > max_bytes:
        raise ArticleTooLarge(too_large(len(raw), max_bytes))
    return parse_article(raw, Path(name).suffix.lower(), name, source)


def read_article(path: Path, article_id: str) -> Article:
    return parse_article(path.read_bytes(), path.suffix.lower(), article_id, str(path))


def parse_article(raw: bytes, suffix: str, article_id: str, source: str) -> Article:
    """An article from a file's bytes; ValueError (with the reason) if it is not usable text."""
    digest = hashlib.sha256(raw).hexdigest()   # of the file as it is, whatever its encoding
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # UTF-16 has NUL bytes but is text
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"not valid UTF-16 text (byte {err.start})") from None
    if b"\x00" in raw[:8192]:
        raise ValueError("binary file, not text")
    meta: dict = {}
    if suffix in HTML_SUFFIXES:
        # a NUL further in is dropped, as browsers drop it from a page's text (it is not allowed in
        # HTML): no article text or metadata ever holds one (PostgreSQL text cannot)
        meta = {k: v.replace("\x00", "") if isinstance(v, str) else v
                for k, v in html_article(raw.replace(b"\x00", b"")).items()}
        text = meta.pop("text")
    else:
        nul = raw.find(b"\x00")
        if nul >= 0:  # a NUL anywhere in a text article: binary, whatever its first 8 KB look like
            raise ValueError(f"binary file, not text (a NUL byte at byte {nul:,})")
        try:
            content = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ValueError(f"not UTF-8 or UTF-16 text (byte {err.start})") from None
        text = content.replace("\r\n", "\n").strip()
        meta = {"title": _title_of(text, markdown=suffix == ".md"), "published": _date_of(text), **_header_of(text)}
    if not text.strip():
        raise ValueError("empty article")
    url = meta.get("url")
    return Article(
        id=article_id,
        title=meta.get("title") or Path(article_id).stem.replace("_", " "),
        text=text,
        source=url or source,
        published=meta.get("published"),
        sha256=digest,
        author=meta.get("author"),
        site=meta.get("site"),
        url=url,
    )


# -- plain text ------------------------------------------------------------------------------------
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


_BYLINE = re.compile(r"^(?:by|written by)\s+(.{2,80})$", re.IGNORECASE)


def _header_of(text: str) -> dict:
    """Author and outlet from the short lines between the headline and the first paragraph, e.g.
    "Sayart" / "By Jane Doe" / "name@outlet.com | 2025-10-13 10:41". Only what is plainly there."""
    lines = [line.strip() for line in text.splitlines()[:12] if line.strip()]
    found: dict = {}
    for line in lines[1:6]:
        if len(line) > 100 or line.endswith((".", "!", "?", '"', "”")):
            break  # the body has started
        byline = _BYLINE.match(line)
        if byline:
            found.setdefault("author", byline.group(1).strip())
        elif _DATE.search(line):
            # "author | date" bylines: what stands beside the date is the writer (a name or an address)
            rest = [p.strip() for p in re.split(r"\s*[|·•]\s*", _DATE.sub("", line)) if p.strip()]
            if rest and len(rest[0]) <= 60:
                found.setdefault("author", rest[0])
        elif len(line) <= 60 and "site" not in found:
            found["site"] = line
    return found


# -- HTML ------------------------------------------------------------------------------------------
# regions a page marks as "not content" for search engines (related posts, newsletter boxes)
_GOOGLEOFF = re.compile(rb"<!--\s*googleoff:\s*\w+\s*-->.*?(?:<!--\s*googleon:\s*\w+\s*-->|$)", re.DOTALL | re.IGNORECASE)
# lines of furniture that survive inside the main block on some sites
_FURNITURE_LINE = re.compile(
    r"^(?:©|\(c\)\s|copyright\b|all rights reserved|read more:|related:|advertisement$|share this\b)", re.IGNORECASE)
_TITLE_SEP = re.compile(r"\s+\|\s+")
_TITLE_DATE = re.compile(r"^(?:(\d{1,2})\.(\d{1,2})\.(\d{4})|(\d{4})-(\d{2})-(\d{2}))$")


def html_article(raw: bytes) -> dict:
    """Main text and metadata of a web page: {"text", "title", "published", "author", "site", "url"}."""
    import trafilatura  # a heavy import, only needed for HTML
    from trafilatura.utils import decode_file

    url_match = SAVED_FROM.search(raw[:4096].decode("ascii", "replace"))
    page = decode_file(_GOOGLEOFF.sub(b"", raw))  # the page's own charset, not only UTF-8
    check_attributes(page)
    doc = trafilatura.bare_extraction(page, url=url_match.group(1) if url_match else None, with_metadata=True,
                                      favor_precision=True, include_comments=False, include_tables=True)
    if doc is None or not (doc.text or "").strip():
        raise ValueError("no main text found in the page")
    title, title_date = _clean_title(doc.title or "", doc.sitename or "")
    return {
        "text": _clean_text(doc.text),
        "title": title,
        # a date standing alone in the title ("Headline | DW | 10.06.2013") is the site stating its
        # publication date; htmldate can be misled by the dates of related articles listed beside it
        "published": title_date or doc.date,
        "author": doc.author or None,
        "site": doc.sitename or None,
        "url": url_match.group(1) if url_match else (doc.url or None),
    }


# libxml2 checks each attribute of an element against the ones before it: an element with 100,000
# attributes (a 1 MB page) took 30 s to read, and trafilatura parses a page more than once (security
# audit, issue 40). Real pages have a few attributes per element (the news pages here: 9 at most).
MAX_ATTRIBUTES = 256
_TAG_OPEN = re.compile(r"</?[A-Za-z]")
_TAG_NAME_END = re.compile(r"[\t\n\f\r />]")
# one step of an HTML5 tokenizer in a tag (libxml2 2.14 tokenizes as HTML5 does): separators, then
# the end of the tag (group 1), or an attribute: its name (which may start with "=" and hold quotes
# or "<"), and a value if "=" follows: "quoted", 'quoted' or unquoted (up to white space or ">")
_ATTRIBUTE = re.compile(
    r"""[\t\n\f\r /]*+(?:(>|\Z)|[^\t\n\f\r />][^\t\n\f\r />=]*+[\t\n\f\r ]*+"""
    r"""(?:=[\t\n\f\r ]*+(?:"[^"]*+"?|'[^']*+'?|[^\t\n\f\r >]*+))?)"""
)


def most_attributes(page: str, limit: int = MAX_ATTRIBUTES) -> int:
    """The most attributes one tag of `page` has, counted up to `limit` + 1 (then it stops). Every
    "<" + letter is taken as the start of a tag, even inside a comment, a script or another tag's
    attribute value, so no reading of where the tags are can hide a larger one; tags are read as an
    HTML5 tokenizer reads them. Linear time: a tag read from one "<" joins, at the first attribute
    boundary they share, the reading of every other tag through the same place (memoised)."""
    after: dict[int, int] = {}    # position between attributes -> attributes from there to the tag's end
    name_end, most = -1, 0
    for tag in _TAG_OPEN.finditer(page):
        if tag.end() > name_end:   # tag names in one run of letters ("<a<a<a") end at the same place
            found = _TAG_NAME_END.search(page, tag.end())
            name_end = found.start() if found else len(page)
        at, path = name_end, []
        while at not in after:
            step = _ATTRIBUTE.match(page, at)
            if step.group(1) is not None:   # ">" or the end of the page
                after[at] = 0
                break
            path.append(at)
            if len(path) > limit:
                return len(path)
            at = step.end()
        n = after[at]
        for at in reversed(path):
            n += 1
            after[at] = n
        most = max(most, n)
        if most > limit:
            return most
    return most


def check_attributes(page: str) -> None:
    """ValueError when an element of the page has more than MAX_ATTRIBUTES attributes."""
    if most_attributes(page) > MAX_ATTRIBUTES:
        raise ValueError(f"not an article page: an element has more than {MAX_ATTRIBUTES} attributes "
                         "(such a page takes minutes to read)")


def _clean_text(text: str) -> str:
    """One paragraph per block, separated by a blank line (so passages and sentences break there);
    stray white space and furniture lines left out."""
    lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in text.splitlines()]
    return "\n\n".join(line for line in lines if line and not _FURNITURE_LINE.match(line))


def _clean_title(title: str, site: str) -> tuple[str, str | None]:
    """The headline without the site name and date that pages append ("Headline | DW | 19.01.2020"),
    and that date (ISO) if there was one."""
    parts = _TITLE_SEP.split(title.strip())
    date = None
    for part in parts[1:]:
        m = _TITLE_DATE.match(part)
        if m:
            d, mo, y = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(6), m.group(5), m.group(4))
            if 1 <= int(mo) <= 12 and 1 <= int(d) <= 31:
                date = f"{y}-{int(mo):02d}-{int(d):02d}"
    def simple(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())

    def is_site(s: str) -> bool:
        return bool(site and simple(s) and (simple(s) in simple(site) or simple(site) in simple(s)))

    kept = [p for p in parts if not _TITLE_DATE.match(p) and not is_site(p)]
    headline = kept[0] if kept else parts[0]
    # "Headline - Site" / "Headline – Site": drop the tail only when it is the site's name
    for sep in (" - ", " – ", " — ", " / "):
        head, _, tail = headline.rpartition(sep)
        if head and is_site(tail):
            headline = head
    return headline.strip(), date
