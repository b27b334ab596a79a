"""Where a name answer starts and ends: "Which party came second?" is answered "Renamo", not "opposition
Renamo party"; "Who switched on the lights?" "Hau Lung-bin", not "mayor Hau Lung-bin".

The reader often takes in the lower-case words around a name: a title or a description before it
("mayor", "the country's", "opposition", all in lower case) and the question's own noun after it ("party" for "which
party"). For a question that asks for a person or an organisation (qa/kinds.py), those words are cut when
what is left is a name: capitalised words joined by short lower-case links ("University of Colorado at
Boulder"). Anything else (a place: "northern Italy"; a phrase: "a group of German scientists"; a name
inside quotes) is left as the reader found it.
"""
from __future__ import annotations

import re

from .kinds import ORG, PERSON, Asked
from .lists import NAME_LINKS

_TOKEN = re.compile(r"\S+")
# the lower-case words inside names (qa/lists.py's, and more particles: "Muhammad ibn Zakariya Razi")
_LINKS = NAME_LINKS | {"and", "&", "della", "di", "du", "des", "dos", "das", "do", "la", "le", "el", "ibn", "bint",
                       "den", "ter", "zu", "e"}
_PREPOSITIONS = frozenset({"in", "from", "by", "to", "with", "into", "over", "under", "as", "like", "than", "who", "which"})
_ARTICLES = frozenset({"the", "a", "an"})
MAX_CUT_WORDS = 3   # words before the name, "the" aside; a longer lead-in is a clause ("the man who ran the ..."), not a title


def _capitalised(token: str) -> bool:
    word = token.strip("\"'“”‘’(),.")
    return bool(word) and (word[0].isupper() or word[0].isdigit())


def name_bounds(wanted: Asked | None, text: str) -> tuple[int, int]:
    """The (start, end) of the name inside `text`, the reader's answer to a question asking for `wanted`
    (qa/kinds.py asked()); (0, len(text)) when that is no person or organisation, or nothing is cut."""
    whole = (0, len(text))
    if wanted is None or wanted.kind not in (PERSON, ORG) or any(q in text for q in "\"“”"):
        return whole
    words = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    noun = wanted.words.split()[-1]   # "which party" -> "party" (lower case only: "Roman Catholic Church" stays)
    noun_cut = len(words) > 1 and words[-1][2].strip(".,") == noun
    if noun_cut:
        words = words[:-1]            # the question's own noun after the name
    # the name: the last run of capitalised words and the links between them; before it, the lead-in
    first = len(words)
    while first > 0 and (_capitalised(words[first - 1][2]) or words[first - 1][2].lower() in _LINKS):
        first -= 1
    while first < len(words) and not _capitalised(words[first][2]):
        first += 1                    # a name starts with a capital, not with "of" or "the"
    if first == len(words) or not _a_title(w for _, _, w in words[:first]):
        if not noun_cut or not all(_capitalised(w) or w.lower() in _LINKS for _, _, w in words):
            return whole              # nothing to cut, or what the noun's cut leaves is no name ("the ruling party")
        first = 0
    return words[first][0], words[-1][1]


def _a_title(lead) -> bool:
    """Whether the words before a name are a title or a description to cut ("mayor", "the country's"): a
    few lower-case words, not "the" alone, no preposition or link ("the king of France" is a phrase), and no
    capital, which may be the name's own ("Daniel arap Moi") as often as a description's ("Victorian engineer")."""
    words = [w for w in lead if w.lower() not in _ARTICLES]
    return 0 < len(words) <= MAX_CUT_WORDS and not any(
        _capitalised(w) or w in _LINKS or w in _PREPOSITIONS for w in words)
