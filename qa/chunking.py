"""Article -> overlapping, sentence-aligned passages that keep their character offsets."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .sources.files import Article


@dataclass(frozen=True)
class Chunk:
    article_id: str
    start: int   # offsets into the article's text: article.text[start:end] == text
    end: int
    text: str


# A sentence ends after . ! or ? (and any closing quotes or brackets) when white space and a capital,
# digit or opening quote follow; a blank line always ends one. Short abbreviations (Mr., U.S.) do not.
# Linear time on any text (security audit, issue 40): a run of . ! ? is only tried from its first
# character, and the possessive quantifiers (++, *+) never hand back what they took, so a long run not
# followed by a capital is looked at once, not once per character.
_END = re.compile(r"""(?<![.!?])[.!?]++["'”’)\]]*+(?=\s++["'“‘(\[]?[A-Z0-9])|\n\s*\n""")
# Short abbreviations: a "." right after one of these words, or after a capital standing alone (A.,
# and so U.S., whose "S." is a capital after a dot), at the start of a word. Matched at the dot by
# fixed-width look-behinds (one per word length), so each candidate end costs the same however long
# the sentence has grown (the old check searched the whole sentence so far, again at every "Mr.").
_ABBREVIATION = re.compile(
    r"(?:(?<=\b[A-Z])|(?<=\b(?:Mr|Ms|Dr|Sr|Jr|St|Mt|Lt|Co|vs|No))"
    r"|(?<=\b(?:Mrs|Gen|Col|Sgt|Rep|Sen|Gov|Inc|Ltd|etc|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec))"
    r"|(?<=\b(?:Prof|Capt|Pres|Corp|Sept))|(?<=\bapprox))\."
)


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, white space around them left out."""
    spans, start = [], 0
    for match in _END.finditer(text):
        if match.group().startswith("\n"):
            end = match.start()
        elif _ABBREVIATION.match(text, match.start()):  # Mr. Smith, U.S. Army: not an end
            continue
        else:
            end = match.end()
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    return [strip_span(text, s, e) for s, e in spans if text[s:e].strip()]


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """text[start:end] without the white space at either end, as offsets."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """A sentence longer than a passage is cut at white space."""
    pieces = []
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        pieces.append(strip_span(text, start, cut))
        start = cut
    pieces.append(strip_span(text, start, end))
    return [p for p in pieces if p[1] > p[0]]


def chunk_article(article: Article, size: int = 900, overlap: int = 200) -> list[Chunk]:
    """Pack whole sentences into passages of about `size` characters; each passage starts with the
    last sentences (up to `overlap` characters) of the one before, so a fact cut by a passage edge
    is whole in one of them."""
    if overlap >= size:
        raise ValueError(f"chunk overlap ({overlap}) must be smaller than chunk size ({size})")
    text = article.text
    spans = [p for s, e in sentences(text) for p in _split_long(text, s, e, size)]
    chunks: list[Chunk] = []
    i = 0
    while i < len(spans):
        j = i
        while j + 1 < len(spans) and spans[j + 1][1] - spans[i][0] <= size:
            j += 1
        start, end = spans[i][0], spans[j][1]
        chunks.append(Chunk(article.id, start, end, text[start:end]))
        if j + 1 >= len(spans):
            break
        # step back over trailing sentences that fit in the overlap, but always move forward
        nxt = j + 1
        while nxt - 1 > i and spans[j][1] - spans[nxt - 1][0] <= overlap:
            nxt -= 1
        i = nxt
    return chunks
