"""Why there is no answer, in one sentence from the passage read: what was found nearest, and why it was
not given ("The nearest answer found, 'twice', is a number of times, not a number.", "The reports mention
a number ('three'), but not 'people', 'combined' or 'employ'.")."""
from __future__ import annotations

import re

from .kinds import GENERIC, WANTED, Asked, Traits
from .support import content_words, unstated

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def missing_words(question: str, passage: str, most: int = 3) -> list[str]:
    """The question's content words (as the question writes them) that the passage does not state, by
    qa/support.py's own test (stem, one typo, numbers exactly)."""
    asked = content_words(question)
    out: list[str] = []
    for word in _WORD.findall(question):
        low = re.sub(r"['’]s$", "", word.lower())
        shown = re.sub(r"['’]s$", "", word)
        if low in asked and shown not in out and unstated(low, passage) > 0:
            out.append(shown)
    return out[:most]


def _quoted(words: list[str]) -> str:
    q = [f"'{w}'" for w in words]
    return q[0] if len(q) == 1 else f"{', '.join(q[:-1])} or {q[-1]}"


def _short(text: str, most: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def why(question: str, asked: Asked | None, nearest: str | None, traits: Traits | None, fitting: str | None,
        passage: str, confidence: float, mismatch: bool = False) -> str:
    """One sentence: why the answer `nearest` (the reader's best span, None when it found none) was not
    given. `asked`: the kind the question asks for; `traits`: nearest's kind; `mismatch`: nearest is
    not of the asked kind and `fitting`, the best span that is, was too far behind (or None);
    otherwise nearest was not sure enough; `passage`: the headline and text nearest came from."""
    if nearest is None:
        return "No passage read holds anything that answers this question."
    text = _short(nearest)
    if mismatch and asked is not None and traits is not None:
        wanted = WANTED[asked.kind]
        if fitting is None:
            return f"The nearest answer found, '{text}', is {traits.describe()}, not {wanted}."
        return (f"The nearest answer found, '{text}', is {traits.describe()}, not {wanted}, and the best "
                f"{wanted.split(' ', 1)[1]} found, '{_short(fitting)}', scored far lower.")
    lacking = missing_words(question, passage)
    what = WANTED[asked.kind] if asked is not None else traits.describe() if traits is not None else ""
    if lacking:
        said = f"{what} ('{text}')" if what and what != GENERIC else f"'{text}'"
        return f"The reports mention {said}, but not {_quoted(lacking)}."
    return f"The nearest answer found, '{text}', is not certain enough to give ({confidence:.2f})."
