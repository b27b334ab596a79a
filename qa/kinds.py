"""What kind of answer a question asks for, and what kind of thing a span of text is.

"How many ...?" wants a number, "How much did it cost?" a sum of money, "When ...?" a time, "How long
...?" a length of time (or a distance), "Who ...?" a person or an organisation, "Where ...?" a place.
The reader picks the best span of any kind; answers.py gives the best span of the asked kind, when one
scores near the best, or says why not (qa/reasons.py).

A span's kind is read from its words: numbers, units, currencies, months, weekdays and countries.
Those vocabularies are CLDR's (the `babel` library: unit names by category, currency names and symbols,
month and weekday names, territory names); the short lists here are the English number and time words,
the words that ask, and the CLDR words that are ordinary English too ("won", "point"). A kind the
question does not name (None) fits any span.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

COUNT, AMOUNT, MONEY, SHARE, TIME, DURATION, LENGTH, PERSON, ORG, PLACE = (
    "count", "amount", "money", "share", "time", "duration", "length", "person", "organisation", "place")

# what a reason calls the kind a question asks for
WANTED = {COUNT: "a number", AMOUNT: "an amount", MONEY: "a sum of money", SHARE: "a share or percentage",
          TIME: "a time or date", DURATION: "a length of time", LENGTH: "a distance or size",
          PERSON: "a person or organisation", ORG: "an organisation", PLACE: "a place"}

GENERIC = "a name or phrase"   # what a reason calls a span that is none of the kinds above

_NUMBER_WORDS = frozenset({
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty",
    "sixty", "seventy", "eighty", "ninety", "hundred", "thousand", "million", "billion", "trillion", "dozen",
    "dozens", "hundreds", "thousands", "millions", "billions", "trillions", "scores"
})
_SCALE = frozenset({"hundred", "thousand", "million", "billion", "trillion", "bn", "m", "k"})
_FRACTION = frozenset({"half", "halves", "quarter", "quarters", "third", "thirds", "percent", "percentage"})
# "one-eighth", "two thirds", "a fifth", "3/4": a fraction is a share
_FRACTION_TEXT = re.compile(r"\b(?:(?:one|two|three|four|five|six|seven|eight|nine|a|an)[- ](?:thirds?|quarters?|fourths?|"
                            r"fifths?|sixths?|sevenths?|eighths?|ninths?|tenths?)|\d+/\d+)\b", re.IGNORECASE)
_ORDINAL = frozenset({"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"})
_FREQUENCY = frozenset({"once", "twice", "thrice"})
_TIME_WORDS = frozenset({
    "today", "yesterday", "tomorrow", "tonight", "ago", "morning", "afternoon", "evening", "night", "noon",
    "midnight", "century", "centuries", "decade", "decades", "spring", "summer", "autumn", "fall", "winter",
    "weekend", "bc", "ad", "bce", "ce"
})
_SOME = frozenset({"a", "an", "several", "few", "many", "some"})   # "a week", "several years": no figure
_QUALIFIERS = frozenset({
    "the", "of", "about", "around", "nearly", "almost", "over", "under", "more", "less", "than", "up", "to", "just",
    "only", "at", "least", "per", "cent", "and", "or", "in", "on", "by", "times", "ago", "later", "earlier",
    "before", "after", "since", "until", "last", "next", "this", "early", "late", "mid", "middle", "end", "start",
    "beginning", "approximately", "roughly", "some", "may", "am", "pm", "m", "p", "o'clock"
})
# CLDR unit and currency words that are ordinary English words too: never a unit here
_NOT_UNITS = frozenset({
    "in", "to", "us", "st", "se", "pm", "ma", "dr", "cd", "da", "mc", "fun", "earth", "light", "sun", "point",
    "points", "unit", "units", "british", "mercury", "force", "mass", "gray", "henry", "stone", "stones", "square",
    "cubic", "metric", "temperature", "equivalent", "imperial", "fluid", "thermal", "troy", "drop", "drops", "cup",
    "cups", "pinch", "spoon", "won", "real", "reals", "rights", "account", "value", "gold", "silver", "sol", "dong",
    "rand", "dram", "drams", "som", "lei", "leu", "lev", "kina", "kip", "tala", "inti", "dec", "jo", "ken", "ri",
    "rin", "sai"
})

_TOKEN = re.compile(r"\d[\d,.]*(?:[-–]\d[\d,.]*)?|[^\W\d_]+(?:['’][^\W\d_]+)*|[$£€¥%]")
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})s?$")
_DATE = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})-[01]?[0-9]-[0-3]?[0-9]\b")   # 2026-03-02
# 10 a.m., 7 pm, 9:30
_CLOCK = re.compile(r"\b\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\b\.?|o['’]clock)|\b\d{1,2}:\d{2}\b", re.IGNORECASE)
# the end of one sentence and the start of the next inside a span ("floods. The footbridge"; not "a.m. Eastern",
# "Mr. Sunshine" or "U.S. Air")
_SENTENCE_END = re.compile(r"[a-z]{3}[.!?][\"'”’)]*\s+[\"'“‘(]?[A-Z0-9]|\n")
MAX_TOKENS = 10   # a longer span is a clause with a figure or a day in it, not a figure or a date


@lru_cache(maxsize=1)
def _cldr() -> dict[str, object]:
    """Word lists from CLDR (babel), read once: unit words by category, currency words and symbols,
    month and weekday names, territory names."""
    from babel import Locale
    from babel.units import format_unit

    en = Locale.parse("en")
    units: dict[str, set[str]] = {"duration": set(), "length": set(), "measure": set()}
    for unit in en.unit_display_names:
        category = unit.split("-")[0]
        if category in ("angle", "graphics", "digital", "light", "concentr", "consumption"):
            continue   # "minute" of arc, "point", "dot": not what a news figure means
        group = category if category in ("duration", "length") else "measure"
        for count, length in ((1, "long"), (2, "long"), (2, "short")):
            try:
                words = format_unit(count, unit, length=length, locale=en).split()
            except ValueError:  # a unit without that form (babel's UnknownUnitError)
                continue
            for w in words[1:]:
                w = w.lower().strip(".")
                if w.isalpha() and len(w) > 1 and w not in ("per", "of", "and"):
                    units[group].add(w)
                    units[group].add(w.replace("meter", "metre").replace("liter", "litre"))   # en_GB
    # a word of a duration or a distance is only that (a "second" of arc is gone above)
    units["measure"] -= units["duration"] | units["length"]
    units["length"] -= units["duration"]   # "light years"
    units = {k: w - _NOT_UNITS for k, w in units.items()}
    currency_words, symbols = set(), set()
    for code, name in en.currencies.items():
        symbols.update((code, en.currency_symbols.get(code, code)))
        if "(" not in name:
            word = name.split()[-1].lower()
            currency_words.update((word, word + "s"))   # "dollar", "dollars"; a "yens" costs nothing
    # a symbol counts only just before a figure: "$" 11.5, "USD" 300 (never "ALL" or "TOP" in a headline)
    symbols = {s for s in symbols if len(s) == 1 or (s.isalpha() and s.isupper())} | {"$", "£", "€", "¥"}
    months = {m.lower() for width in ("wide", "abbreviated") for m in en.months["format"][width].values()}
    days = {d.lower() for width in ("wide", "abbreviated") for d in en.days["format"][width].values()}
    countries = {name.lower() for code, name in en.territories.items() if code.isalpha()}
    return {"duration": frozenset(units["duration"]), "length": frozenset(units["length"]),
            "measure": frozenset(units["measure"]), "currency": frozenset(currency_words - _NOT_UNITS - {"mark"}),
            "symbols": frozenset(symbols), "months": frozenset(months - {"may"}), "days": frozenset(days),
            "countries": frozenset(countries),
            # words that say no more than a figure, a unit or a date (what is left is a name or a phrase)
            "plain": (_NUMBER_WORDS | _SCALE | _FRACTION | _ORDINAL | _FREQUENCY | _TIME_WORDS | _SOME | _QUALIFIERS
                      | months | days | {"%", "times"}),
            "measures": units["duration"] | units["length"] | units["measure"] | currency_words}


@dataclass(frozen=True)
class Traits:
    """What a span holds: a figure, its unit, a date... (see traits())."""

    number: bool = False      # a figure: 3,500, "five", "a dozen"
    money: bool = False       # a currency by a figure: $11.5bn, 6.2 million pounds
    share: bool = False       # 22 percent, 9.9%, about half
    duration: bool = False    # ten days, 45.9 seconds, a 60-minute
    length: bool = False      # 500 miles, 12 meters
    measure: bool = False     # 13,100 kg: any other unit
    time: bool = False        # Wednesday, March 11, 25 years ago, the middle of the century
    year: bool = False        # 2001, the 1990s, 300 BC (or a count: 1709 schoolchildren)
    frequency: bool = False   # twice, five times
    ordinal: bool = False     # third
    country: bool = False     # Malaysia, the United States
    words: bool = False       # a word that is none of the above ("Kang Yun-sung", "grim reapers")
    clause: bool = False      # over MAX_TOKENS words, or over two sentences: a clause, not a name, figure or date

    def describe(self) -> str:
        """What a reason calls it."""
        for flag, name in (("money", "a sum of money"), ("share", "a share"), ("time", "a time or date"),
                           ("duration", "a length of time"), ("length", "a distance"), ("measure", "a measurement"),
                           ("year", "a year"),
                           ("frequency", "a number of times"), ("number", "a number"), ("ordinal", "a rank"),
                           ("country", "a country")):
            if getattr(self, flag):
                return name
        return GENERIC


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _is_figure(token: str) -> bool:
    return token[0].isdigit() or token.lower() in _NUMBER_WORDS


def _figures(toks: list[str], first: int, last: int) -> list[tuple[str, str, str]]:
    """(word before, figure, word after) for each figure in toks[first:last] ("6.2 million pounds" ->
    ("", "6.2", "pounds"), "$" "11.5" "bn" -> ("$", "11.5", ""), "a week" -> ("", "a", "week")): the
    words around it may lie outside the span (toks[:first], toks[last:]), a figure's scale never counts."""
    found = []
    for i in range(first, last):
        t = toks[i]
        if not (_is_figure(t) or t.lower() in _SOME) or (i > first and _is_figure(toks[i - 1])):
            continue
        if t.lower() == "one" and i > first and toks[i - 1].lower() not in _QUALIFIERS:
            continue   # "a steel one", "the one": a pronoun
        j = i + 1
        while j < len(toks) and (toks[j].lower() in _SCALE or _is_figure(toks[j]) or (
                toks[j].lower() == "of" and toks[j - 1].lower().endswith("s"))):   # "millions of dollars"
            j += 1
        found.append((toks[i - 1] if i else "", t, toks[j].lower() if j < len(toks) else ""))
    return found


def traits(text: str, before: str = "", after: str = "") -> Traits:
    """The kind of thing `text` is; `before` / `after`: its passage's text around it (a currency symbol
    just before the span, or a unit just after it, counts: "$" + "11.5bn", "22" + " percent")."""
    v = _cldr()
    lead, toks, tail = _tokens(before)[-1:], _tokens(text), _tokens(after)[:1]
    if len(toks) > MAX_TOKENS or _SENTENCE_END.search(text):
        return Traits(words=True, clause=True)
    low = [t.lower() for t in toks]
    units = _figures(lead + toks + tail, len(lead), len(lead) + len(toks))
    figures = [(b, f, u) for b, f, u in units if _is_figure(f)]
    number = bool(figures)
    duration = any(u in v["duration"] for _, _, u in units)
    length = any(u in v["length"] for _, _, u in figures)
    measure = any(u in v["measure"] for _, _, u in figures)
    money = any(b in v["symbols"] or u in v["currency"] for b, _, u in figures)
    share = any(u in ("%", "percent", "percentage", "per") for _, _, u in figures) or bool(
        set(low) & {"half", "halves", "quarter", "quarters"} and not duration) or bool(_FRACTION_TEXT.search(text))
    months = bool(set(low) & v["months"]) or ("may" in low and number)
    days = bool(set(low) & v["days"])
    year = any(_YEAR.match(t) for t in toks) and not (money or share or measure or length)
    time = months or days or bool(_DATE.search(text) or _CLOCK.search(text)) or bool(set(low) & _TIME_WORDS) or any(
        u in ("ago", "later", "earlier") for _, _, u in units)
    frequency = bool(set(low) & _FREQUENCY) or any(u == "times" for _, _, u in figures)
    ordinal = bool(set(low) & _ORDINAL) and not number
    phrase = " ".join(low)
    country = phrase in v["countries"] or phrase.removeprefix("the ") in v["countries"]
    plain, measures = v["plain"], v["measures"]
    words = not country and any(not t[0].isdigit() and t.lower() not in plain and t not in v["symbols"] and not (
        t.lower() in measures and any(u == t.lower() for _, _, u in units)) for t in toks)
    return Traits(number=number, money=money, share=share, duration=duration, length=length, measure=measure,
                  time=time, year=year, frequency=frequency, ordinal=ordinal, country=country, words=words)


# -- what the question asks for -----------------------------------------------------------------
_MONEY_WORDS = frozenset({
    "cost", "costs", "costing", "price", "priced", "pay", "paid", "paying", "spend", "spent", "spending", "worth",
    "fund", "funds", "funding", "money", "revenue", "revenues", "budget", "salary", "salaries", "fee", "fees",
    "fine", "fined", "profit", "profits", "earn", "earned", "earnings", "raise", "raised", "invest", "invested",
    "investment", "sell", "sold", "buy", "bought", "charge", "charged", "value", "valued", "compensation",
    "damages", "loan", "debt"
})
_ASKS = {  # "which/what <word>": the kind of answer that word asks for
    TIME: "year years date dates day days month months time century decade season hour".split(),
    PLACE: "country countries city cities town towns village state states province provinces region regions "
           "island islands continent place places location locations area areas venue site port".split(),
    ORG: "company companies firm firms organisation organisations organization organizations party parties "
         "newspaper newspapers paper channel network agency agencies church club team teams university "
         "universities bank broadcaster airline manufacturer retailer retailers".split(),
    MONEY: "cost price revenue budget salary fee fine profit".split(),
    SHARE: "percentage percent share proportion fraction".split(),
    COUNT: "number population".split(),
    LENGTH: "height length distance depth width".split(),
}
_ASKS_BY_WORD = {w: kind for kind, words in _ASKS.items() for w in words}
_HOW = {"many": COUNT, "much": AMOUNT, "long": DURATION, "old": AMOUNT, "far": LENGTH, "tall": LENGTH,
        "high": LENGTH, "deep": LENGTH, "wide": LENGTH, "big": AMOUNT, "large": AMOUNT, "heavy": AMOUNT}
_SKIP = frozenset({
    "is", "was", "are", "were", "the", "a", "an", "of", "did", "do", "does", "has", "have", "had", "will", "would",
    "can", "could"
})
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@dataclass(frozen=True)
class Asked:
    kind: str          # one of the kinds above
    words: str         # the question's words that ask it: "how many", "which company"
    unit: str = ""     # "how many years": the unit the count is in


def asked(question: str) -> Asked | None:
    """The kind of answer `question` asks for; None when it does not say ("What did Kang say?")."""
    words = [w.lower() for w in _WORD.findall(question)]
    for i, w in enumerate(words):
        nxt = words[i + 1 : i + 5]
        if w == "how" and nxt and nxt[0] in _HOW:
            kind, said = _HOW[nxt[0]], f"how {nxt[0]}"
            rest = words[i + 2 :]
            if nxt[0] in ("many", "much") and rest:
                unit = rest[0]
                v = _cldr()
                if unit in v["duration"] or unit in ("times",):
                    return Asked(DURATION if unit != "times" else COUNT, f"{said} {unit}", unit)
                if nxt[0] == "much" and (unit == "time"):
                    return Asked(DURATION, f"{said} {unit}", unit)
            if nxt[0] == "much" and set(words) & _MONEY_WORDS:
                return Asked(MONEY, said)
            if nxt[0] == "long" and "ago" in rest:
                return Asked(TIME, "how long ago")
            return Asked(kind, said)
        if w == "when":
            # "When do cash flow problems exist?": a habit's "when" is a condition as often as a time
            return None if nxt[:1] in (["do"], ["does"]) else Asked(TIME, w)
        if w in ("who", "whom", "whose"):
            return Asked(PERSON, w)
        if w == "where":
            return Asked(PLACE, w)
        if w in ("what", "which"):
            if nxt[:1] in (["do"], ["does"], ["did"]):
                return None   # "What does the time element mean?": what is asked is the verb's object
            after = words[i + 1 :]
            for k, n in [(k, x) for k, x in enumerate(after) if x not in _SKIP][:3]:
                if n in _ASKS_BY_WORD:
                    return Asked(_ASKS_BY_WORD[n], f"{w} {n}")
                if n in ("name",):   # "what is the name of ...": any kind
                    return None
                if after[k + 1 : k + 2] in (["the"], ["a"], ["an"]):
                    return None   # "What causes the population ...": a verb, and what it asks is its object
            return None
        if i >= 2:   # the asking words open the question ("In which city", "By how much")
            return None
    return None


def fits(kind: Asked | None, t: Traits) -> bool:
    """Whether a span with traits `t` is the kind of answer asked for."""
    if kind is None:
        return True
    k = kind.kind
    if k == COUNT:
        if kind.unit == "times":
            return t.frequency or (t.number and not (t.duration or t.length or t.measure or t.money or t.share
                                                     or t.time))
        # "How many Victorians are Catholic?" - "26.7%": a percentage of a group counts it too (a bare "half"
        # does not: on Wikinews reports 1-16 it answered a question the report cannot)
        return t.number and not t.time and not (
            t.money or t.duration or t.length or t.measure or t.frequency)
    if k == AMOUNT:
        # "How much do they eat?" - "ten times their own weight": a multiple is an amount
        return (t.number or t.share) and not (t.time and not t.duration)
    if k == MONEY:
        return t.money
    if k == SHARE:
        return t.share
    if k == TIME:
        return t.time or t.year
    if k == DURATION:
        return t.duration or (kind.unit == "" and t.length)   # "how long": a time, or a length
    if k == LENGTH:
        return t.length or (t.measure and kind.words.endswith(("length", "big")))
    # a name: anything but a bare figure, a date or a measure, or a clause; a person or an organisation is no country
    if t.clause:
        return False
    if not t.words and (t.number or t.time or t.year or t.share or t.money or t.ordinal or t.frequency):
        return False
    return not (k in (PERSON, ORG) and t.country)
