"""List answers: "Who stars in the film?" is answered by every name of the cast, not by the first one.

When the question asks for several things ("which countries", "who stars", "which two retailers") and
the answer the reader found stands in a list in its sentence ("A, B and C"), `items` gives each item of
that list with its offsets. An item has the answer's own shape: a name (capitalised words) beside names,
a figure with the same unit beside figures ("9.9%, over 25% and 46%"); two items are neighbours in the
list when the words between them end with a comma, "and", "or" or "&" (an aside between them, ", known
for ...,", is skipped). A span that is itself a list ("Sudan, Iran, Libya, and Yemen") is split the same
way; a lower-case phrase only when the reader's span holds the whole list, or starts one that runs on
after it ("found amulets, 22 bronze coins, a royal statue, and a bust"). When the answer stands in no
list, the other things the reader found of the same shape and nearly as sure make the list
(`same_shape`, answers.LIST_MARGIN): two people quoted in different sentences.
"""
from __future__ import annotations

import re
from itertools import pairwise

from .chunking import sentences, strip_span

# "which countries ...", "what artifacts ...", "which two retailers ...": the words after which/what,
# up to a verb or a preposition, hold a plural noun or a number
_STOP = frozenset({
    "is", "was", "are", "were", "be", "been", "did", "do", "does", "has", "have", "had", "will", "would", "can",
    "could", "should", "may", "might", "of", "in", "for", "at", "on", "by", "from", "with", "to", "about", "into",
    "over", "under", "after", "before"
})
_SKIP = frozenset({"the", "a", "an", "other"})
_SEVERAL = frozenset({"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several", "both"})
_PLURAL = frozenset({"people", "men", "women", "children", "staff", "cast", "crew", "media"})
_NOT_PLURAL = frozenset({
    "news", "series", "species", "means", "lens", "bus", "gas", "physics", "politics", "economics"
})
_CAST = frozenset({"stars", "star", "starred", "starring"})   # "who stars in it?": its cast
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def _plural(word: str) -> bool:
    w = word.lower()
    if w in _PLURAL:
        return True
    if w in _NOT_PLURAL or len(w) < 4 or w.endswith(("ss", "us", "is", "'s", "’s")):
        return False
    return w.endswith("s")


def asks_for_several(question: str) -> bool:
    """True for "Which countries ...?", "Who stars in it?", "Which two players ...?", "Name the ...s"."""
    words = _WORD.findall(question)
    low = [w.lower() for w in words]
    for i, w in enumerate(low[:3]):
        if w in ("which", "what", "name", "list"):
            rest = low[i + 1 :]
            if rest and rest[0] in ("are", "were") and w in ("which", "what"):
                rest = rest[1:]    # "What are the names ...": the plural after the verb
            noun = []
            for x in rest:
                if x in _STOP or (x.endswith("ed") and noun):   # "which body announced ...": the verb
                    break
                if x not in _SKIP:
                    noun.append(x)
            noun = noun[:3]
            return any(x in _SEVERAL or _plural(x) for x in noun)
        if w == "who":
            nxt = low[i + 1 : i + 2]
            return bool(nxt) and (nxt[0] in _CAST or (nxt[0] in ("are", "were") and len(low) > i + 2 and any(
                _plural(x) for x in low[i + 2 : i + 5])))
    return False


# a capitalised name: words with a capital (or a figure: "7 Years") joined by short lower-case links
# the short lower-case words that join a name's capitalised words: "University of Colorado at Boulder"
NAME_LINKS = frozenset({"of", "the", "at", "de", "del", "da", "von", "van", "der", "al", "bin", "y", "for", "on"})
_LINK = "(?:" + "|".join(sorted(NAME_LINKS, key=len, reverse=True)) + ")"
_NAME = re.compile(rf"[A-Z][\w'’.&-]*(?:\s+(?:{_LINK}\s+)*[A-Z][\w'’.&-]*)*")
_FIGURE = re.compile(r"(?:(?:about|around|nearly|almost|over|under|some|more than|less than|up to)\s+)?"
                     r"[$£€¥]?\d(?:[\d,.]*\d)?(?:\s*(?:%|[^\W\d_]+))?")
_SEPARATOR = re.compile(r"(?:,|\band\b|\bor\b|&)(?:\s+(?:the|a|an))?$")
_AND = re.compile(r"\b(?:and|or)\b|&")
_CLOSING = re.compile(r"(?:\band|\bor|&)(?:\s+(?:the|a|an))?$")   # the gap before a list's last item
MAX_GAP_WORDS = 12


def _quoted(text: str, at: int) -> bool:
    """Whether position `at` lies inside double quotes ("Mr. Sunshine"), counted from the sentence start."""
    return sum(text.count(q, 0, at) for q in "\"“”") % 2 == 1


def _runs(sentence: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    """Stretches of `sentence` shaped like the span: names beside a name, figures with its unit beside a figure."""
    text = sentence[span[0] : span[1]]
    figure = re.search(r"\d", text)
    if figure:
        unit = re.search(r"\d(?:[\d,.]*\d)?\s*(%|[^\W\d_]+)?", text[figure.start():])
        unit_word = (unit.group(1) or "").lower() if unit else ""
        runs = []
        for m in _FIGURE.finditer(sentence):
            got = re.search(r"\d(?:[\d,.]*\d)?\s*(%|[^\W\d_]+)?$", m.group())
            if (got.group(1) or "").lower() == unit_word if got else not unit_word:
                runs.append((m.start(), m.end()))
        return runs
    if not re.search(r"[A-Z]", text):
        return []
    inside = _quoted(sentence, span[0])
    runs = []
    for m in _NAME.finditer(sentence):
        s, e = m.start(), m.end()
        while e > s and sentence[e - 1] in ".,'’":   # a trailing stop or comma; "Lands' End" keeps its apostrophe
            if sentence[e - 1] in "'’" and sentence[e - 2 : e - 1] == "s":
                break
            e -= 1
        if _quoted(sentence, s) != inside:
            continue
        if s == 0 and " " not in sentence[s:e] and not (s < span[1] and span[0] < e):
            continue   # the sentence's first word: capitalised because it comes first
        runs.append((s, e))
    return runs


def _bare(gap: str) -> str:
    """The words between two runs, quotes and surrounding white space left out."""
    return re.sub(r"[\"“”‘’]", "", gap).strip()


def _neighbours(sentence: str, gap: str) -> bool:
    """Whether two runs with `gap` between them are neighbours in one list."""
    g = _bare(gap)
    return bool(g) and bool(_SEPARATOR.search(g)) and len(g.split()) <= MAX_GAP_WORDS and not re.search(r"[;:()]", g)


def _lists(text: str, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every list the runs make, as (first, last) run indices: neighbours whose gaps are commas but for
    the last, which holds "and" / "or" ("A, B and C", "A, B, and C", "A and B"). An "and" ends a list:
    in "A, B, and C from X, and D and E" the lists are A-C, X-D and D-E, never A-E."""
    gaps = [text[a[1] : b[0]] for a, b in pairwise(runs)]
    found = []
    for first in range(len(runs) - 1):
        for last in range(first + 1, len(runs)):
            gap = gaps[last - 1]
            if not _neighbours(text, gap):
                break
            if _CLOSING.search(_bare(gap)):
                found.append((first, last))
                break
    return found


def _unasked(text: str, asked: set[str]) -> int:
    """How many leading words of a name the question says already (`asked`: its words, lower-cased; "Which
    Detroit Pistons players ...": "Detroit Pistons Chauncey Billups" -> 2); never every word."""
    words = text.split()
    n = 0
    while n < len(words) - 1 and words[n].lower() in asked:
        n += 1
    return n


def items(context: str, start: int, end: int, question: str = "") -> list[tuple[int, int]]:
    """The items of the list that the span context[start:end] stands in, each (start, end) in `context`,
    in reading order; [] when it stands in none (fewer than two items). Where the span touches several
    lists, the longest; a name item loses the leading words the `question` already says."""
    sentence = next(((s, e) for s, e in sentences(context) if s <= start < e), None)
    if sentence is None:
        return []
    s0, e0 = sentence
    text = context[s0:e0]
    span = (start - s0, min(end, e0) - s0)
    runs = _runs(text, span)
    touching = [i for i, (s, e) in enumerate(runs) if s < span[1] and span[0] < e]
    if not touching:
        return _split(context, start, end) or _phrases(context, s0, e0, start, end)
    lists = [(a, b) for a, b in _lists(text, runs) if any(a <= i <= b for i in touching)]
    if not lists:
        return []
    first, last = max(lists, key=lambda ab: (ab[1] - ab[0], sum(ab[0] <= i <= ab[1] for i in touching)))
    chosen = runs[first : last + 1]
    if not re.search(r"\d", text[span[0] : span[1]]):   # names, not figures
        asked = {w.lower() for w in _WORD.findall(question)}
        starts = [[m.start() for m in re.finditer(r"\S+", text[s:e])] for s, e in chosen]
        chosen = [(s + at[_unasked(text[s:e], asked)], e) for (s, e), at in zip(chosen, starts)]
    return [(s0 + s, s0 + e) for s, e in chosen]


MAX_PHRASE_WORDS = 10   # an item of a lower-case list: "an alabaster mask resembling Marc Antony"
MAX_PHRASES = 12
_CLAUSE = re.compile(r"(?:which|who|whom|whose|that|where|when|while|but|although|though|because|as|if)\b", re.IGNORECASE)


def _phrases(context: str, s0: int, e0: int, start: int, end: int) -> list[tuple[int, int]]:
    """A lower-case span that is the first or a middle item of a comma list in its sentence ("found
    amulets, 22 bronze coins, a royal statue, and a bust"): the span, then each comma-separated phrase
    after it, up to the one that starts with "and" / "or" (or, without that comma, the phrase holding
    " and ", split there). [] when no such end comes within a few short phrases, or at ; : ( )."""
    rest = context[end:e0]
    tail = re.match(r"[^;:()]*", rest).group()
    if not tail.startswith(","):
        return []
    commas = [m.start() for m in re.finditer(",", tail)] + [len(tail)]   # tail[0] is the first comma
    parts = [(a + 1, b) for a, b in pairwise(commas)]
    out = [(start, end)]
    oxford = next((i for i, (a, b) in enumerate(parts) if re.match(r"\s*(?:and|or)\s", tail[a:b])), None)
    for i, (a, b) in enumerate(parts[:MAX_PHRASES]):
        phrase = tail[a:b]
        if i == oxford:                   # ", and a statue bust": the last item
            out.append((end + a + re.match(r"\s*(?:and|or)\s+", phrase).end(), end + b))
            break
        joined = list(re.finditer(r"\s(?:and|or)\s", phrase)) if oxford is None else []
        if joined:                        # "coins and a royal statue": the last two items
            out += [(end + a, end + a + joined[-1].start()), (end + a + joined[-1].end(), end + b)]
            break
        out.append((end + a, end + b))
    else:
        return []
    out = [strip_span(context, a, b) for a, b in out]
    out = [(a, b - 1 if context[b - 1 : b] == "." else b) for a, b in out]
    if len(out) < 2 or any(not context[a:b] or len(context[a:b].split()) > MAX_PHRASE_WORDS
                           or _CLAUSE.match(context[a:b]) for a, b in out):
        return []
    return out


def _split(context: str, start: int, end: int) -> list[tuple[int, int]]:
    """A lower-case span that is a list itself ("amulets, coins and a statue"), split at its commas and "and"."""
    text = context[start:end]
    parts, pos = [], 0
    for m in re.finditer(r",\s*(?:and|or)\s+|,\s*|\s+(?:and|or)\s+", text):
        parts.append((pos, m.start()))
        pos = m.end()
    parts.append((pos, len(text)))
    parts = [(start + a, start + b) for a, b in parts if text[a:b].strip()]
    if len(parts) < 2 or not _AND.search(text) or any(len(context[a:b].split()) > 6 for a, b in parts):
        return []
    return parts


MAX_SHAPE_WORDS = 6


def same_shape(a: str, b: str) -> bool:
    """Whether two short spans are things of one kind for a list: both figures, or both names (capitalised,
    no figure), each of at most MAX_SHAPE_WORDS words."""
    if len(a.split()) > MAX_SHAPE_WORDS or len(b.split()) > MAX_SHAPE_WORDS:
        return False
    fig_a, fig_b = bool(re.search(r"\d", a)), bool(re.search(r"\d", b))
    if fig_a or fig_b:
        return fig_a and fig_b
    return bool(_NAME.fullmatch(a.strip())) and bool(_NAME.fullmatch(b.strip()))
