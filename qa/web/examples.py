"""Example questions for the chat, of the kind a reader would ask, drawn from the articles themselves.

`example_questions([(title, text), ...], n=3)`: newest article first. Each article gives short questions
from simple patterns, no model: who made something ("Directed by Kang Yun-sung" -> "Who directed the
film?"), who holds a role ("lead actor Byun Yo-han" -> "Who is the lead actor?"), what something cost,
and when or what the headline's subject did ("Tartu Opens Solar-Powered Footbridge" -> "When did Tartu
open the footbridge?"). Only the first paragraphs are read: that is where a news story names its
people, places and dates. The questions are candidates: the chat (qa/web/page.py) keeps the ones it answers.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

MAX_CHARS = 80          # an example is a short question
PARAGRAPHS = 3          # the first paragraphs of the story hold its who, what and when
LEAD_CHARS = 2000

# "<verb> by <Name>": the question's verb (the participle's active past form)
AGENT_VERBS = {
    "directed": "directed", "designed": "designed", "written": "wrote", "led": "led", "founded": "founded",
    "built": "built", "produced": "produced", "developed": "developed", "created": "created",
    "painted": "painted", "composed": "composed", "invented": "invented", "discovered": "discovered",
    "organised": "organised", "organized": "organized", "drawn": "drew", "conducted": "conducted",
    "edited": "edited", "commissioned": "commissioned", "hosted": "hosted", "chaired": "chaired",
    "coached": "coached", "illustrated": "illustrated", "translated": "translated", "restored": "restored",
}
ROLES = (
    "lead actor", "lead actress", "actor", "actress", "director", "filmmaker", "film director", "producer",
    "screenwriter", "writer", "author", "novelist", "poet", "composer", "singer", "artist", "painter",
    "architect", "engineer", "designer", "conservator", "curator", "scientist", "researcher", "professor",
    "mayor", "governor", "president", "prime minister", "minister", "chancellor", "senator", "ambassador",
    "spokesperson", "spokesman", "spokeswoman", "chief executive", "founder", "chairman", "chairwoman",
    "coach", "captain", "manager", "editor", "judge", "commissioner", "inventor", "explorer", "chair",
    "skipper", "pilot", "shopkeeper", "owner", "farmer", "teacher", "doctor", "police chief", "head teacher",
)
# a headline's verb (third person) -> the form after "did"
HEADLINE_VERBS = {
    "opens": "open", "reopens": "reopen", "launches": "launch", "unveils": "unveil", "releases": "release",
    "announces": "announce", "gets": "get", "wins": "win", "builds": "build", "completes": "complete",
    "starts": "start", "begins": "begin", "closes": "close", "introduces": "introduce", "debuts": "debut",
    "premieres": "premiere", "adopts": "adopt", "approves": "approve", "bans": "ban", "buys": "buy",
    "sells": "sell", "acquires": "acquire", "signs": "sign", "names": "name", "appoints": "appoint",
    "elects": "elect", "hosts": "host", "finds": "find", "discovers": "discover", "restores": "restore",
    "inaugurates": "inaugurate", "celebrates": "celebrate", "marks": "mark", "receives": "receive",
    "awards": "award", "honours": "honour", "honors": "honor", "expands": "expand", "plans": "plan",
    "unveil": "unveil", "launch": "launch", "open": "open", "welcomes": "welcome", "holds": "hold",
    "breaks": "break", "sets": "set", "reaches": "reach", "returns": "return", "joins": "join",
    "enters": "enter", "makes": "make", "takes": "take", "gains": "gain", "ends": "end",
}
# "<subject> opened ... on Friday" -> "When did <subject> open ...?"
DATE_VERBS = {
    "opened": "open", "reopened": "reopen", "launched": "launch", "released": "release", "premiered": "premiere",
    "began": "begin", "started": "start", "closed": "close", "ended": "end", "debuted": "debut",
    "arrived": "arrive", "unveiled": "unveil", "completed": "complete", "finished": "finish",
}
# "<subject> carries up to 180 passengers" -> "How many passengers does <subject> carry?"
COUNT_VERBS = {"carries": "carry", "has": "have", "employs": "employ", "holds": "hold", "seats": "seat",
               "houses": "house", "serves": "serve", "welcomes": "welcome", "handles": "handle", "counts": "count"}
# "which was built ... at the Aldmouth boatyard" -> "Where was the ferry built?"
PLACE_VERBS = ("built", "made", "founded", "held", "filmed", "recorded", "found", "discovered", "born", "buried",
               "opened", "staged", "launched", "signed", "painted", "shot")
NUMBER = r"(?:about |around |nearly |some |over |more than |almost |up to |at least )?\d[\d.,]*"
PREPOSITIONS = ("in", "to", "at", "on", "for", "with", "across", "into", "over", "near")
SUBJECT_AUX = ("is", "was", "were", "are", "has", "had", "will", "would", "can", "cost", "costs", "took", "opened",
               "began", "lasted", "runs", "ran", "stands", "sits", "spans", "became", "remains")
DETERMINERS = ("the", "this", "its", "their", "his", "her")
STOP_AFTER_OBJECT = {"in", "at", "on", "for", "with", "to", "after", "as", "from", "near", "over", "across", "into",
                     "amid", "and", "by", "of", "under", "despite", "while"}
WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
          "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
TIME = re.compile(rf"\b(?:{WEEKDAYS}|yesterday|today|(?:{MONTHS})\.?\s+\d{{1,2}}|\d{{1,2}}\s+(?:{MONTHS})|"
                  rf"(?:in|since|by)\s+(?:1[89]|20)\d\d)\b", re.IGNORECASE)
NAME_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
CONNECTORS = {"de", "da", "di", "del", "van", "von", "der", "la", "le", "bin", "al", "du", "dos"}
SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’']?\s+(?=[\"“'‘]?[^\W\d_])")
MONEY = re.compile(r"\bcost(?:s|ing)?\s+(?:about |around |nearly |some |over |more than |almost )?"
                   r"(?:[$€£¥₩]\s?)?\d[\d.,]*(?:\s+(?:million|billion|thousand))?", re.IGNORECASE)


def example_questions(articles: Iterable[tuple[str, str]], n: int = 3) -> list[str]:
    """Up to `n` distinct questions over `articles` ((title, text) pairs, newest first): each article's
    best question first, then each one's second best, and so on."""
    return interleave([questions_for(title, text) for title, text in articles], n)


def interleave(per_article: list[list[str]], n: int) -> list[str]:
    """Up to `n` distinct questions: one from each list in turn, the next one a list has that is not
    already taken (two stories about bridges each get a question of their own)."""
    out: list[str] = []
    at = [0] * len(per_article)
    while len(out) < n:
        took = False
        for i, questions in enumerate(per_article):
            while at[i] < len(questions) and questions[at[i]] in out:
                at[i] += 1
            if at[i] < len(questions):
                out.append(questions[at[i]])
                at[i] += 1
                took = True
                if len(out) >= n:
                    break
        if not took:
            break
    return out


def questions_for(title: str, text: str) -> list[str]:
    """One article's candidate questions, the likeliest to read naturally first."""
    title = " ".join((title or "").split())
    lead = _lead(title, text or "")
    sentences = [s for s in SENTENCE_END.split(lead) if s.strip()]
    # people named with their role ("lead actor Byun Yo-han") may come later in the story
    later = [s for s in SENTENCE_END.split(_lead(title, text or "", 40, 8000)) if s.strip()]
    head = _headline(title)  # (subject, verb, head noun) or None
    thing = head[3] if head else None  # what the story is about: "film", "footbridge"
    common = {w for w in re.findall(r"[^\W\d_]+", text or "") if w.islower()}

    agents, dates, roles, costs, named = [], [], [], [], set()
    for sentence in sentences:
        agents += _agent_questions(sentence, thing, named)
        dates += _date_questions(sentence, thing)
    for sentence in sentences:  # how much, how many, where
        costs += _cost_questions(sentence, thing) + _count_questions(sentence) + _place_questions(sentence, thing)
    for sentence in later:  # a role whose holder is not already an answer above
        roles += _role_questions(sentence, named, common)
    headline = []
    if head:
        subject, verb, phrase, _ = head
        if phrase and TIME.search(lead) and not dates:
            headline.append(f"When did {subject} {verb} {phrase}?")
        headline.append(f"What did {subject} {verb}?")
    when = dates or headline[:1]

    ordered = agents[:1] + when[:1] + roles[:1] + costs[:1] + agents[1:] + roles[1:] + costs[1:] + when[1:] + headline
    seen, out = set(), []
    for q in ordered:
        key = q.lower()
        if key not in seen and len(q) <= MAX_CHARS:
            seen.add(key)
            out.append(q)
    return out


# -- the parts -------------------------------------------------------------------------------------
def _lead(title: str, text: str, paragraphs: int = PARAGRAPHS, chars: int = LEAD_CHARS) -> str:
    """The story's first paragraphs: not the headline again, not a byline or a dateline on its own."""
    kept = []
    for para in re.split(r"\n\s*\n", text[:4 * chars]):
        para = " ".join(para.split())
        if not para or para == title or len(para) < 60 or "@" in para or " | " in para:
            continue
        kept.append(para)
        if len(kept) >= paragraphs:
            break
    return " ".join(kept)[:chars]


def _name_at(text: str, pos: int) -> str | None:
    """The capitalised name (1 to 4 words, "de", "van" and the like allowed inside) starting at `pos`."""
    words, i = [], pos
    while len(words) < 4:
        m = NAME_WORD.match(text, i)
        if not m:
            break
        word = m.group().rstrip(".'’")
        if word[:1].isupper() or (word in CONNECTORS and words):
            words.append(word)
        else:
            break
        i = m.end()
        if text[i:i + 1] != " ":  # a comma, a full stop: the name ends here
            break
        i += 1
    while words and words[-1] in CONNECTORS:
        words.pop()
    return " ".join(words) or None


def _name_after(text: str, pos: int, words: int = 4) -> str | None:
    """A name after at most `words` lowercase words ("the studio of architect Bruno Leal")."""
    for _ in range(words + 1):
        if text[pos:pos + 1].isupper():
            return _name_at(text, pos)
        m = re.match(r"[^\W\d_][\w-]* ", text[pos:])
        if not m or not m.group()[0].islower():
            return None
        pos += m.end()
    return None


def _subject(sentence: str) -> str | None:
    """The head of a sentence-initial "The bridge is ..." / "The new terminal was ...": "bridge", "new terminal"."""
    m = re.match(rf"(?:{'|'.join(DETERMINERS)})\s+((?:[\w-]+\s+){{0,2}}?[\w-]+)\s+(?:{'|'.join(SUBJECT_AUX)})\b",
                 sentence, re.IGNORECASE)
    if not m:
        return None
    words = m.group(1).split()
    if any(w[:1].isupper() for w in words):  # "The Louvre was ...": a name, not a thing
        return None
    return " ".join(words)


def _agent_questions(sentence: str, thing: str | None, named: set[str]) -> list[str]:
    out = []
    verbs = "|".join(AGENT_VERBS)
    for m in re.finditer(rf"\b(?i:({verbs})) by ", sentence):
        name = _name_after(sentence, m.end())
        if name is None:  # "by the engineer Mirela Quantrell", not "by hand"
            continue
        verb = AGENT_VERBS[m.group(1).lower()]
        before = sentence[:m.start()].strip()
        if not before:  # "Directed by Kang Yun-sung, the film ...": the story's own subject
            what = thing
        else:
            what = _subject(sentence) or (thing if re.search(r"\b(?:it|which|that)\s+(?:was|is)\s*$", before) else None)
        if what:
            out.append(f"Who {verb} the {what}?")
            named.add(name)
    return out


def _date_questions(sentence: str, thing: str | None) -> list[str]:
    """"The new Tagus footbridge in Lisbon opened to walkers on Saturday" -> "When did the footbridge
    open to walkers?"; "... feature film that opened in theaters Wednesday" -> "When did the film open
    in theaters?" (`thing`: what "that" stands for, the headline's noun)."""
    out = []
    verbs = "|".join(DATE_VERBS)
    for m in re.finditer(rf"\b({verbs})\b((?:\s+[\w'’-]+){{0,8}}?)\s+(?:on\s+|last\s+|this\s+)?(?=(?i:{TIME.pattern}))",
                         sentence):
        before = sentence[:m.start()].strip()
        if re.search(r"\b(?:that|which)$", before):
            who = f"the {thing}" if thing else None
        else:
            who = _noun_phrase(before)
        rest = m.group(2).split()
        if rest and rest[0].lower() in PREPOSITIONS and len(rest) <= 3:
            what = " ".join(rest)           # "to walkers", "in theaters"
        elif rest and rest[0].lower() in ("a", "an", "the", "its", "their", "his", "her"):
            noun = _head_noun(rest[1:])     # "a new departures terminal" -> "the terminal"
            what = f"the {noun}" if noun else None
        else:
            what = "" if not rest else None
        if who and what is not None:
            out.append(" ".join(f"When did {who} {DATE_VERBS[m.group(1)]} {what}".split()) + "?")
    return out


def _head_noun(words: list[str]) -> str | None:
    """The last plain word before a preposition: ["new", "departures", "terminal", "over", ...] -> "terminal"."""
    kept = []
    for w in words:
        if w.lower() in STOP_AFTER_OBJECT or not w[:1].isalpha():
            break
        kept.append(w.strip(",;:"))
    if not kept or not kept[-1][:1].islower():
        return None
    return kept[-1]


def _noun_phrase(before: str) -> str | None:
    """What a clause is about, from the words before its verb: "The Roman temple of Évora" -> "the
    temple", "The city of Tartu" -> "the city of Tartu", "Faro airport" -> "Faro airport"."""
    words = before.split()
    if len(words) > 3 and "," in before and words[0].lower() in DETERMINERS:  # "The vessel, named Mira after ...,"
        words = before.split(",", 1)[0].split()
    if not words or len(words) > 7:
        return None
    if words[0].lower() in DETERMINERS:
        noun = _head_noun(words[1:])
        if noun is None:
            return None
        at = [w.strip(",;:") for w in words[1:]].index(noun) + 1
        rest, modifiers = words[at + 1:], words[1:at]
        if rest and rest[0] == "of" and len(rest) == 2 and rest[1][:1].isupper():
            return f"the {noun} of {rest[1]}"  # "the city of Tartu": the place is the point
        if len(modifiers) == 1 and modifiers[0].islower() and modifiers[0] not in ("new", "old", "first"):
            return f"the {modifiers[0]} {noun}"  # "the harbour board"
        return f"the {noun}"
    if words[0][:1].isupper() and len(words) <= 3 and all(w[:1].isalpha() for w in words):
        return " ".join(words)   # "Faro airport", "Kang"
    return None


def _role_questions(sentence: str, named: set[str], common: set[str]) -> list[str]:
    """"lead actor Byun Yo-han" -> "Who is the lead actor?"; "Board chair Tomasz Wren" -> "Who is the
    board chair?" (a word the story also writes in lower case is a common noun)."""
    out = []
    roles = "|".join(sorted(ROLES, key=len, reverse=True))
    for m in re.finditer(rf"\b({roles}) (?=[^\W\d_])", sentence):
        name = _name_at(sentence, m.end()) if sentence[m.end()].isupper() else None
        if not name or name in named:
            continue
        role = m.group(1)
        before = re.search(r"(?:^|\s)([^\W\d_][\w-]*) $", sentence[:m.start()])
        if before and before.group(1)[:1].isupper() and before.group(1).lower() not in ("the", "a", "an", "however", "but",
                                                                                          "and", "last", "this", "former"):
            word = before.group(1)
            role = f"{word.lower() if word.lower() in common else word} {role}"  # "board chair", "Skerrin shopkeeper"
        out.append(f"Who is the {role}?")
        named.add(name)
    return out


def _cost_questions(sentence: str, thing: str | None) -> list[str]:
    paid = re.search(rf"\bpaid (?:[$€£¥₩]\s?)?{NUMBER}(?: (?:million|billion|thousand))?(?: [a-z]+)? for "
                     r"(?:the|a|an|its|their) ([a-z][\w-]*)\b", sentence)
    if paid:  # "The harbour board paid 6.2 million pounds for the ferry"
        who = _noun_phrase(sentence[:paid.start()].strip())
        if who:
            return [f"How much did {who} pay for the {paid.group(1)}?"]
    if not MONEY.search(sentence):
        return []
    what = _subject(sentence) or (thing if re.match(r"(?:it|this)\b", sentence, re.IGNORECASE) else None)
    return [f"How much did the {what} cost?"] if what else []


def _count_questions(sentence: str) -> list[str]:
    """"The vessel, named Mira after ..., carries up to 180 passengers" -> "How many passengers does
    the vessel carry?"."""
    verbs = "|".join(COUNT_VERBS)
    m = re.search(rf"\b({verbs}) {NUMBER} ([a-z]+s)\b", sentence)
    if not m:
        return []
    who = _noun_phrase(sentence[:m.start()].strip())
    return [f"How many {m.group(2)} does {who} {COUNT_VERBS[m.group(1)]}?"] if who else []


def _place_questions(sentence: str, thing: str | None) -> list[str]:
    """"... for the ferry, which was built over two years at the Aldmouth boatyard" -> "Where was the
    ferry built?"; "The festival was held in Tartu" -> "Where was the festival held?"."""
    verbs = "|".join(PLACE_VERBS)
    m = re.search(rf"\b(?:was|were) ({verbs}) (?:[a-z][\w-]* ){{0,4}}?(?:at|in|on) (?:the )?(?=[^\W\d_])", sentence)
    if not m or not sentence[m.end()].isupper() or not _name_at(sentence, m.end()):
        return []
    before = sentence[:m.start()].rstrip()
    which = re.search(r"(?:the|a|an|its) ([a-z][\w-]*),? (?:which|that)$", before)
    if which:  # "the ferry, which was built": what "which" stands for
        who = f"the {which.group(1)}"
    else:
        who = _noun_phrase(before) or (f"the {thing}" if thing and re.fullmatch(r"(?i)it", before) else None)
    return [f"Where was {who} {m.group(1)}?"] if who else []


def _headline(title: str) -> tuple[str, str, str | None, str | None] | None:
    """"Tartu Opens Solar-Powered Footbridge" -> ("Tartu", "open", "the footbridge", "footbridge"): the
    headline's subject, its verb, what it acts on as a question says it, and that thing's noun (None
    when nothing plain follows the verb)."""
    words = title.split()
    title_case = all(w[:1].isupper() for w in words if w[:1].isalpha() and len(w) > 3)
    for i, word in enumerate(words[1:6], start=1):
        verb = HEADLINE_VERBS.get(word.lower())
        if verb is None:
            continue
        subject = words[:i]
        if not subject[0][:1].isupper() or any(not w[:1].isalpha() for w in subject):
            return None
        if not title_case and len(subject) > 1 and subject[-1][:1].isupper() and any(w.islower() for w in subject):
            subject = ["the", subject[0].lower(), *subject[1:]]  # "Electric ferry Mira" -> "the electric ferry Mira"
        obj = []
        for w in words[i + 1:]:
            if not w[:1].isalpha() or w.lower() in STOP_AFTER_OBJECT:  # a quote, a number, "in", "over"
                break
            obj.append(w.strip(",:;"))
            if w.endswith((",", ":", ";")):
                break
        noun = phrase = None
        if obj and title_case and not obj[-1].isupper():
            noun = obj[-1].lower()
        elif obj and obj[-1].islower():
            if obj[0].lower() in ("a", "an", "the", "its", "their", "his", "her"):
                noun = obj[-1]
            elif len(obj) <= 3 and all(w.islower() for w in obj):
                phrase = " ".join(obj)  # "enters service": no article to add
        if noun:
            phrase = f"the {noun}"
        return " ".join(subject), verb, phrase, noun
    return None
