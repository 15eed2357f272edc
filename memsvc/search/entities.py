"""Entities for the memories' `entities` column (Postgres text[], GIN index) and the query terms matched against it.

At write time `extract_entities` picks out what a memory talks about: names and other proper nouns, acronyms,
product and code identifiers, emails, URLs and domains, handles, hashtags and quoted titles, each in the stored form
`normalize_entity` gives. At query time `query_terms` lists every form under which something in the query could have
been stored, so that array overlap works for lowercase queries too. Heuristics only: no models, no I/O, standard
library only; a 300-character text takes well under a millisecond.

Stored forms: lowercased, whitespace collapsed, surrounding punctuation and a trailing possessive removed, typographic
apostrophes folded to "'". Handles and hashtags are stored without their sigil ("@alice" -> "alice", "#MachineLearning"
-> "machinelearning"), so a handle also matches a plain mention of the name, and a query needs no sigil to find either.
"""

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, auto

MAX_ENTITIES = 32
MAX_QUERY_TERMS = 64


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words: pronouns, determiners, prepositions, conjunctions, auxiliaries, question words.
_FUNCTION_WORDS = _words(
    """
    a an the this that these those some any each every either neither no none all both few many much more most other
    another such what which who whom whose when where why how whatever whoever whenever wherever however
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves one ones someone something somebody somewhere anyone
    anything anybody everyone everything everybody nothing nobody
    am is are was were be been being have has had having do does did doing done will would shall should can could may
    might must ought
    and or but nor so yet if then than because as while although though unless until since whether
    of in on at to for with by from about into onto over under above below between among through during before after
    against without within along across around behind beyond near off out up down upon via per
    not very too also just only even still again ever never always often here there now
    """
)

_COMMON_VERBS = _words(
    """
    say says said tell tells told ask asks asked talk talks talked speak spoke mention mentions mentioned remember
    remembered recall recalled do get gets got go goes went gone make makes made like likes liked know knows knew known
    think thinks thought want wants wanted need needs needed come came take took see saw seen look looked give gave let
    find found use used try tried call called keep kept put feel felt seem seemed leave left work worked meet met show
    showed hear heard help helped start started
    """
)

# Words that open sentences without naming anything: time words, greetings, fillers, sentence adverbs, everyday
# adjectives, imperatives, number words.
_SENTENCE_OPENERS = _words(
    """
    yesterday today tomorrow tonight morning afternoon evening night week weekend month year lately recently currently
    thanks thank yes yeah yep nope hey hi hello dear bye goodbye please sorry ok okay sure well oh ah um hmm wow
    great good nice cool awesome fine perfect right wrong true false new old big small little long short high low
    first last next final finally actually basically honestly really maybe perhaps probably definitely certainly
    anyway anyways plus instead meanwhile otherwise besides therefore thus hence overall generally usually sometimes
    later soon earlier once twice note update reminder todo same different important interesting
    remind send add remove set create book buy write read check bring stop wait watch play run move email ping text
    message going doing
    two three four five six seven eight nine ten second third
    """
)

_COMMON_WORDS = _FUNCTION_WORDS | _COMMON_VERBS | _SENTENCE_OPENERS

_STOPWORDS = _FUNCTION_WORDS | _COMMON_VERBS

# Time is extracted elsewhere; ambiguous abbreviations (Jan, Mar, May, Sun) are left out on purpose.
_CALENDAR = _words(
    """
    monday tuesday wednesday thursday friday saturday sunday tue tues wed thu thur thurs fri
    january february march april may june july august september october november december
    feb apr jun jul aug sep sept oct nov
    """
)

_HONORIFICS = _words("mr mrs ms mx miss dr prof sir madam st jr sr")

# Lowercase words allowed inside a run of capitalized words ("Bank of America", "Ludwig van Beethoven").
_CONNECTORS = _words("of de van von the")
_NAME_CONNECTORS = _words("de van von")

# Capitalized words dropped from the edges of a run: "met The Beatles" names the Beatles, "Good Morning Alice" Alice.
_RUN_EDGE_NOISE = _words(
    "the an and or of to in on at for with by from hello hi hey thanks dear morning evening afternoon night"
)

# Last words that make a run a place, organisation or event rather than a person ("Golden Gate Bridge").
_PLACE_ORG_HEADS = _words(
    """
    bridge street road avenue ave boulevard lane park square station airport river lake mountain mount island islands
    bay beach valley city county state states kingdom republic university college school institute academy hospital
    museum library center centre hall tower building church cathedral bank company co corp corporation inc ltd llc
    group foundation association society club team department ministry office agency council committee restaurant
    cafe hotel bar market mall store shop press times news post journal lab labs studio studios project service
    services system systems conference summit festival war act day cup award awards prize
    """
)

_ARTICLES = _words("the a an")

# Lowercase words a Title Case title may contain ("Pride and Prejudice", "Gone with the Wind").
_TITLE_SMALL_WORDS = _words("a an the and or but nor of in on at to for with by from as into de van von")

# A run of more capitalized words than this is a Title Case heading, not one name.
_MAX_RUN_NAMES = 5

_TOKEN = re.compile(
    r"""
      (?P<title>"[^"\n]{1,80}"|“[^”\n]{1,80}”)
    | (?P<url>(?:https?://|www\.)[^\s<>"“”]+)
    | (?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)
    | (?P<lang>(?<![\w+\#])[A-Z](?:\+\+|\#)(?![\w+\#]))
    | (?P<handle>(?<![\w@])@\w+)
    | (?P<hashtag>(?<![\w\#&])\#\w*[^\W\d_]\w*)
    | (?P<dotted>\w+(?:\.\w+)+)
    | (?P<word>\w+(?:['’-]\w+)*)
    """,
    re.VERBOSE,
)
_QUERY_TOKEN = re.compile(r"[^\W_]+(?:[.'’_@-][^\W_]+)*(?:\+\+|#)?")
_SENTENCE_BREAK = re.compile(r"[.!?:\n]")
_CLAUSE_BREAK = re.compile(r"[,;:!?.()\[\]{}\"“”\n]")
_RUN_GAP = re.compile(r"[^\S\r\n]+")
_CONTRACTION = re.compile(r"(?P<stem>\w+?)(?:(?P<negation>n't)|'(?:s|re|ve|ll|d|m))")
_POSSESSIVE = re.compile(r"'s$")
_VERSION = re.compile(r"v?\d+(?:\.\d+)+[a-z\d-]*", re.IGNORECASE)
_VERSION_WORD = re.compile(r"v\d+")
_URL_HOST = re.compile(r"(?:https?://)?(?:[^@/\s]*@)?(?P<host>[^/:?#\s]+)", re.IGNORECASE)
_ADVERB_ENDINGS = ("ally", "ently", "antly", "fully", "ously", "ively")

_URL_TRAILING = ".,;:!?)]}>'"
_OPENERS = "\"“‘'(["
# '_' belongs to identifiers ("__init__"); a trailing '+' or '#' to languages ("c++", "c#").
_LEADING_NOISE = "".join(sorted(set(string.punctuation) - {"_"})) + "“”‘’«»… \t\r\n"
_TRAILING_NOISE = "".join(sorted(set(string.punctuation) - {"_", "+", "#"})) + "“”‘’«»… \t\r\n"


def normalize_entity(name: str) -> str:
    """The stored form of `name`: lowercased, whitespace collapsed, surrounding punctuation and a trailing possessive
    ('s, ’s) removed ("  Alice's " -> "alice", "New   York" -> "new york", "@bob" -> "bob")."""
    folded = " ".join(name.replace("’", "'").split()).lower()
    stripped = folded.lstrip(_LEADING_NOISE).rstrip(_TRAILING_NOISE)
    return _POSSESSIVE.sub("", stripped).lstrip(_LEADING_NOISE).rstrip(_TRAILING_NOISE)


def extract_entities(text: str) -> list[str]:
    """Normalized entities mentioned in `text`, unique, in order of first appearance, at most MAX_ENTITIES: runs of
    capitalized words (and each word of a 2-3 word person-like run), acronyms, mixed-case and letter+digit identifiers,
    emails, URLs and their hosts, domains and dotted or snake_case identifiers, handles, hashtags, quoted titles."""
    found = _Collector(MAX_ENTITIES)
    run: list[str] = []
    connectors: list[str] = []
    previous: _Token | None = None
    after_honorific = False
    for token in _scan(text):
        gap = text[previous.end if previous else 0 : token.start]
        adjacent = previous is not None and _RUN_GAP.fullmatch(gap) is not None
        if token.kind != "word":
            _add_run(run, found)
            run, connectors = [], []
            _add_special(token, found)
            after_honorific = False
        else:
            # "Dr. Smith": the honorific's period does not open a sentence.
            at_sentence_start = not after_honorific and _starts_sentence(gap, previous)
            role = _word_role(token.text, at_sentence_start)
            extends = bool(run) and adjacent and not _has_possessive(run[-1])
            if role is _Role.NAME:
                if extends:
                    run.extend(connectors)
                    run.append(token.text)
                else:
                    _add_run(run, found)
                    run = [token.text]
                connectors = []
            elif role is _Role.CONNECTOR and extends and len(connectors) < 2:
                connectors.append(token.text)
            else:
                _add_run(run, found)
                run, connectors = [], []
                if role is _Role.STANDALONE:
                    found.add(token.text)
            after_honorific = role is _Role.HONORIFIC
        if found.full:
            return found.entities()
        previous = token
    _add_run(run, found)
    return found.entities()


def query_terms(query: str) -> list[str]:
    """Every normalized form under which an entity in `query` could have been stored, unique, at most
    MAX_QUERY_TERMS: the entities extract_entities finds, then every lowercased non-stopword token, then every 2- and
    3-token sequence within a clause that neither starts nor ends with a stopword ("what did alice say about new
    york" -> "alice", "new", "york", "new york", ...). Sequences stop at punctuation, which no stored name spans."""
    terms = _Collector(MAX_QUERY_TERMS)
    for entity in extract_entities(query):
        terms.add(entity)
    clauses = _query_clauses(query)
    for clause in clauses:
        for token in clause:
            if not _is_stopword(token):
                terms.add(token)
    for size in (2, 3):
        for clause in clauses:
            for i in range(len(clause) - size + 1):
                gram = clause[i : i + size]
                if not _is_stopword(gram[0]) and not _is_stopword(gram[-1]):
                    terms.add(" ".join(gram))
    return terms.entities()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


class _Role(Enum):
    NAME = auto()
    CONNECTOR = auto()
    STANDALONE = auto()
    HONORIFIC = auto()
    OTHER = auto()


class _Collector:
    """Normalized entities in insertion order, unique, capped; forms too short or without letters are dropped."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: dict[str, None] = {}

    @property
    def full(self) -> bool:
        return len(self._seen) >= self._limit

    def add(self, raw: str) -> None:
        entity = normalize_entity(raw)
        if self.full or len(entity) < 2 or not any(c.isalpha() for c in entity):
            return
        self._seen.setdefault(entity, None)

    def entities(self) -> list[str]:
        return list(self._seen)


def _scan(text: str) -> Iterator[_Token]:
    """The tokens of `text`, left to right; a quoted span that is not a title is scanned as plain words."""
    pos = 0
    while (match := _TOKEN.search(text, pos)) is not None:
        kind = match.lastgroup or "word"
        start, end = match.span()
        if kind == "title" and not _is_title(match.group()[1:-1]):
            pos = start + 1
            continue
        if kind == "url":
            end = start + len(match.group().rstrip(_URL_TRAILING))
        yield _Token(kind, text[start:end], start, end)
        pos = end


def _starts_sentence(gap: str, previous: _Token | None) -> bool:
    return previous is None or _SENTENCE_BREAK.search(gap) is not None or gap[-1:] in _OPENERS


def _word_role(word: str, at_sentence_start: bool) -> _Role:
    """How a plain word takes part in extraction."""
    if word.isalpha() and word.islower():
        return _Role.CONNECTOR if word in _CONNECTORS else _Role.OTHER
    folded = word.replace("’", "'")
    lower = folded.lower()
    base = _POSSESSIVE.sub("", lower)
    if lower == "i" or lower.startswith("i'") or base in _CALENDAR:
        return _Role.OTHER
    if base in _HONORIFICS:
        return _Role.HONORIFIC
    if folded in _CONNECTORS:
        return _Role.CONNECTOR
    if "_" in folded:
        return _Role.STANDALONE if any(c.isalpha() for c in folded) else _Role.OTHER
    if not folded[0].isalpha():
        return _Role.OTHER  # numbers and measures: "2024", "10am", "3rd"
    if any(c.isdigit() for c in folded):
        if _VERSION_WORD.fullmatch(lower):
            return _Role.OTHER
        return _Role.NAME if folded[0].isupper() else _Role.STANDALONE  # "EC2" joins a run, "k8s" stands alone
    if not _looks_proper(folded):
        return _Role.OTHER
    shouted = len(folded) > 1 and folded.isupper() and base != "us"
    if _is_common(lower) and (at_sentence_start or shouted):
        return _Role.OTHER
    if at_sentence_start and _looks_like_verb_or_adverb(base):
        return _Role.OTHER
    return _Role.NAME


def _looks_proper(word: str) -> bool:
    """Capitalized ("Alice", "AWS") or mixed case ("iPhone", "macOS")."""
    return word[0].isupper() or any(c.isupper() for c in word[1:])


def _is_common(lower: str) -> bool:
    if lower in _COMMON_WORDS:
        return True
    contraction = _CONTRACTION.fullmatch(lower)
    return contraction is not None and (contraction["negation"] is not None or contraction["stem"] in _COMMON_WORDS)


def _is_stopword(token: str) -> bool:
    if token in _STOPWORDS:
        return True
    contraction = _CONTRACTION.fullmatch(token)
    return contraction is not None and (contraction["negation"] is not None or contraction["stem"] in _STOPWORDS)


def _looks_like_verb_or_adverb(base: str) -> bool:
    # Chat text opens sentences with "Going ...", "Honestly ..."; names with these endings are lost only there.
    return (len(base) >= 5 and base.endswith("ing")) or (len(base) >= 7 and base.endswith(_ADVERB_ENDINGS))


def _has_possessive(word: str) -> bool:
    return word.replace("’", "'").lower().endswith("'s")


def _add_run(run: list[str], found: _Collector) -> None:
    """Add a run of capitalized words (connectors inside) as one entity, plus its words when it names a person."""
    if not run:
        return
    words = _trim_run(run)
    names = [w for w in words if w not in _CONNECTORS]
    if not names:
        return
    if len(names) > _MAX_RUN_NAMES:
        for name in names:
            if not _is_common(name.lower()):
                found.add(name)
        return
    found.add(" ".join(words))
    # Array overlap is exact, and queries often name only part of a person ("what did Alice say" about "Alice
    # Smith"), so each word of a short person-like run is stored too.
    if _is_person_like(words, names):
        for name in names:
            part = normalize_entity(name)
            if part not in _CONNECTORS and not _is_common(part):
                found.add(part)


def _trim_run(run: list[str]) -> list[str]:
    start, end = 0, len(run)
    while start < end and normalize_entity(run[start]) in _RUN_EDGE_NOISE:
        start += 1
    while end > start and normalize_entity(run[end - 1]) in _RUN_EDGE_NOISE:
        end -= 1
    return run[start:end]


def _is_person_like(words: list[str], names: list[str]) -> bool:
    """2-3 capitalized words, joined by nothing or by name particles, not ending in a place or organisation word."""
    if not 2 <= len(names) <= 3:
        return False
    if any(w in _CONNECTORS and w not in _NAME_CONNECTORS for w in words):
        return False
    return normalize_entity(names[-1]) not in _PLACE_ORG_HEADS


def _add_special(token: _Token, found: _Collector) -> None:
    """Add what a non-word token names."""
    if token.kind == "title":
        inner = token.text[1:-1]
        found.add(inner)
        words = inner.split()
        if len(words) > 1 and words[0].lower() in _ARTICLES:
            found.add(" ".join(words[1:]))  # stored with and without the article: "great gatsby" is searched for too
    elif token.kind == "url":
        found.add(token.text)
        host = _URL_HOST.match(token.text)
        if host is not None and "." in host["host"]:
            found.add(host["host"].lower().removeprefix("www."))
    elif token.kind == "dotted":
        if _VERSION.fullmatch(token.text):
            return
        if all(len(segment) == 1 for segment in token.text.split(".")) and not token.text.isupper():
            return  # "e.g", "i.e", "a.m"; uppercase abbreviations ("U.S") stay
        found.add(token.text)
    else:
        found.add(token.text)


def _is_title(inner: str) -> bool:
    """Whether a double-quoted span reads as a title: 1-6 words in Title Case, not just common words, not opening
    with a common word other than an article ("Call Bob" is speech)."""
    words = inner.split()
    if not 1 <= len(words) <= 6 or inner != inner.strip():
        return False
    lowered = [normalize_entity(w) for w in words]
    if lowered[0] not in _ARTICLES and _is_common(lowered[0]):
        return False
    if not all(w[0].isupper() or w[0].isdigit() or (i > 0 and w in _TITLE_SMALL_WORDS) for i, w in enumerate(words)):
        return False
    return any(w[0].isupper() and not _is_common(low) for w, low in zip(words, lowered, strict=True))


def _query_clauses(query: str) -> list[list[str]]:
    """The query's normalized tokens, split where punctuation separates clauses."""
    clauses: list[list[str]] = [[]]
    previous_end = 0
    for match in _QUERY_TOKEN.finditer(query):
        if clauses[-1] and _CLAUSE_BREAK.search(query, previous_end, match.start()):
            clauses.append([])
        token = normalize_entity(match.group())
        if token:
            clauses[-1].append(token)
        previous_end = match.end()
    return clauses


def memory_entities(content: str, speaker: str | None = None, title: str | None = None) -> list[str]:
    """What a memory names: its speaker, then the entities of its title and content (stored with it; matched by
    search's entity boost and filter)."""
    found = [normalize_entity(speaker)] if speaker and speaker.strip() else []
    found += extract_entities(f"{title}. {content}" if title else content)
    return list(dict.fromkeys(e for e in found if e))[:MAX_ENTITIES]
