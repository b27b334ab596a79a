"""Questions about the article itself ("When was the article published?", "Who wrote it?",
"Which outlet published it?"), answered from its metadata rather than read from its passages.

Detection is a short list of explicit patterns, on purpose: a question about the film's writer
("Who wrote the script?") must still go to the reader, so only questions whose object is the article
("it", "the article", "this story"...) match.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_IT = r"(?:it|this|that|the (?:article|story|piece|report|news(?: story)?|post)|this (?:article|story|piece|report)|that (?:article|story|piece))"
_ABOUT = r"(?:\s+(?:about|on|regarding|concerning|covering)\b.*?)?"   # "the article about the bridge"
_OUTLET = r"(?:outlet|publication|newspaper|paper|site|website|web ?site|news ?site|magazine|publisher|news organi[sz]ation|news agency|media(?: outlet)?)"

PATTERNS: dict[str, tuple[re.Pattern, ...]] = {
    "published": tuple(re.compile(p, re.IGNORECASE) for p in (
        rf"\bwhen (?:was|is|were) {_IT}\b.*\b(?:published|written|posted|released|dated|put out|out)\b",
        rf"\bwhen did {_IT} (?:come out|appear|get published)\b",
        r"\b(?:publication|publishing|publish|release) date\b",
        rf"\bwhat (?:date|day) (?:was|is) {_IT}\b.*\b(?:published|written|posted|from|dated)\b",
        rf"\bwhat is the date of {_IT}\b",
    )),
    "author": tuple(re.compile(p, re.IGNORECASE) for p in (
        rf"\bwho (?:wrote|authored|penned|reported|filed) {_IT}{_ABOUT}\s*\??$",
        rf"\bwho (?:is|was) the (?:author|writer|reporter|journalist)(?: of {_IT}{_ABOUT})?\s*\??$",
        rf"\b(?:who|what) is {_IT}{_ABOUT} (?:written )?by\s*\??$",
        rf"\b(?:author|writer|byline) of {_IT}\b",
        rf"\bwho (?:is|was) {_IT} (?:written )?by\b",
    )),
    "site": tuple(re.compile(p, re.IGNORECASE) for p in (
        rf"\b(?:which|what) {_OUTLET}\b.*\b(?:publish|run|ran|carr|post|print|put out|is {_IT} from|was {_IT} from)",
        rf"\bwho (?:published|ran|carried|posted|printed) {_IT}\b",
        rf"\bwhere (?:was|is) {_IT} (?:published|posted|from|printed)\b",
        rf"\b(?:outlet|publication|publisher|source|site) of {_IT}\b",
        rf"\b(?:which|what) {_OUTLET} is {_IT} from\b",
    )),
    "url": tuple(re.compile(p, re.IGNORECASE) for p in (
        rf"\b(?:url|link|web address|address) (?:of|for|to) {_IT}\b",
        rf"\bwhere can i (?:read|find) {_IT}(?: online)?\s*\??$",
    )),
}
FIELDS = tuple(PATTERNS)
_LABELS = {"published": "Published", "author": "By", "site": "Outlet", "url": "URL"}


def asked_field(question: str) -> str | None:
    """Which piece of the article's metadata the question asks for, or None for an ordinary question."""
    q = " ".join(question.split())
    for name, patterns in PATTERNS.items():
        if any(p.search(q) for p in patterns):
            return name
    return None


@dataclass(frozen=True)
class Fact:
    """A metadata value of one article, and where it shows in the article's text, if it does."""

    field: str
    value: str
    article: str
    title: str | None
    context: str                  # the passage that shows it, else a line made of the metadata
    start: int | None = None      # offsets into the article's text when the value is written there
    end: int | None = None
    context_start: int | None = None


def metadata_of(entry: dict) -> dict[str, str | None]:
    """The article's metadata fields from its manifest entry."""
    return {"published": entry.get("published"), "author": entry.get("author"), "site": entry.get("site"),
            "url": entry.get("url")}


def describe(meta: dict[str, str | None]) -> str:
    """One line with what is known: "Published 2019-10-22 · By Bob Yirka · Outlet Phys.org"."""
    return " · ".join(f"{_LABELS[k]} {v}" for k, v in meta.items() if v)


def fact(field: str, article_id: str, title: str | None, meta: dict[str, str | None],
         passages: list[tuple[int, str]]) -> Fact | None:
    """The answer to a metadata question about one article, None when that field is unknown.
    `passages`: (start offset, text) of the article's passages, to point at the value when the
    article's text states it (a dateline, a byline)."""
    value = meta.get(field)
    if not value:
        return None
    needle = value.lower()
    for start, text in passages:
        at = text.lower().find(needle)
        if at >= 0:
            return Fact(field, text[at:at + len(value)], article_id, title, text,
                        start + at, start + at + len(value), start)
    return Fact(field, value, article_id, title, describe(meta))
