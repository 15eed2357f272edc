"""Finding how-to episodes in a scope's history: ordered steps someone went through, and the request that led to them.

Procedural memory is learnt from what recurs. When a user or an agent goes through the same steps again and again
(rotating keys, deploying a service), those steps are worth keeping as a procedure, with a trigger that says when to
use it. This module only finds the candidates: one Episode per how-to stretch of history. The caller embeds each
episode's `text`, clusters the episodes and turns the ones that recur into procedural memories; an episode found by
mistake (a shopping list, a story told in order) seldom recurs, so robustness matters more here than precision.

Detection is heuristic, with no language model, so that it runs everywhere and costs nothing:

- Steps in one item: a numbered list ("1. x", "1) x", "Step 1: x") or a bulleted one ("- x", "* x", "• x"), one
  step a line; else an inline numbered sequence ("1) x 2) y"); else sequencing words at the start of clauses
  ("First, ... Then ... Next, ... After that, ... Finally, ..."). Lists win over inline sequences in the same item.
- Steps over several items: consecutive items of one speaker in one session, each continuing the last with a
  sequencing word or the next step number ("Then ...", "Step 2: ..."), with at most `max_gap` items of other
  speakers ("ok", "done") in between. An item of the same speaker with no steps ends the sequence, and so does a
  step marked as the last ("Finally, ...").
- A sequence counts when it has at least `min_steps` steps and is clearly a sequence: a list, or one that opens with
  "First" / "To start" / "Start by" / step 1, or one with two or more sequencing words. A single "then" in a
  sentence ("Open the vault, then generate keys") is too common in chat to count on its own.
- The trigger is the closest request or question of another speaker just before the steps (within `max_gap`
  items, not used by an earlier episode); else the sentence that introduces the steps in their own item ("To deploy
  the billing service:"); else the first step. The title is the trigger stripped of its request phrasing.

Only dialogue and episodic items are read: semantic items are facts, not things done, and procedural items are
procedures already. They are skipped as if absent (they neither break a sequence nor count as a gap).
"""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from memsvc.consolidation.types import HistoryItem

MAX_STEPS = 20  # steps kept per episode; a longer run is a document more than a procedure
MAX_STEP_CHARS = 300  # a step (with its sub-steps and code) longer than this is cut at a word boundary
MAX_TITLE_CHARS = 80
MAX_TRIGGER_CHARS = 240  # a longer request item is a paragraph: only its request sentence is the trigger
STEP_TYPES = frozenset({"dialogue", "episodic"})


@dataclass(frozen=True)
class Episode:
    """A how-to sequence found in history: the steps, what led to them, and the memories it came from."""

    trigger: str  # when to use it: the request that led to the steps, or the sentence introducing them
    title: str  # a short name of the skill, from the trigger without its request phrasing
    steps: tuple[str, ...]  # in order, without numbering, bullets or sequencing words
    source_ids: tuple[uuid.UUID, ...]  # the trigger's and the steps' items, in history order, no duplicates

    @property
    def text(self) -> str:
        """What the caller embeds to compare episodes: "title: step; step; ...", each step's first letter
        lowercased like the title's, so that two episodes compare on their words and not on their layout."""
        return f"{self.title}: " + "; ".join(_lower_first(step) for step in self.steps)


def find_episodes(items: Sequence[HistoryItem], *, min_steps: int = 2, max_gap: int = 3) -> list[Episode]:
    """Episodes in history order (by their first source item). `items` are in history order; each session (and
    session-less history) is searched on its own, so steps never join across sessions. `min_steps` is the fewest
    steps an episode has; `max_gap` is both how many items of other speakers may come between two step items of one
    sequence and how far back (in items) the request that led to the steps may be."""
    if min_steps < 1 or max_gap < 0:
        raise ValueError(f"need min_steps >= 1 and max_gap >= 0: {min_steps=} {max_gap=}")
    sessions: dict[str | None, list[tuple[int, HistoryItem]]] = {}
    for index, item in enumerate(items):
        if item.type in STEP_TYPES:
            sessions.setdefault(item.session_id, []).append((index, item))
    found: list[tuple[tuple[int, int], Episode]] = []
    for stream in sessions.values():
        found.extend(_session_episodes(stream, min_steps, max_gap))
    return [episode for _, episode in sorted(found, key=lambda pair: pair[0])]


def title_from_trigger(trigger: str) -> str:
    """A short name of the skill a trigger asks for: without leading request phrasing ("How do I", "Can you walk me
    through", "Please", "I need to", "To", ...) and trailing punctuation, "please" or ", can you help?", the first
    letter lowercased unless the first word looks like a name (an acronym, "GitHub", "I"), at most MAX_TITLE_CHARS
    at a word boundary. "Can you walk me through deploying the billing service?" -> "deploying the billing service".
    A capitalised ordinary-looking name ("Kubernetes") is lowercased: that cannot be told from a capitalised verb
    without a model."""
    title = " ".join(trigger.split())
    bare_to = False
    previous = None
    while title != previous:
        previous = title
        match = _TITLE_PREFIX.match(title)
        if match:
            bare_to = bare_to or match["to"] is not None
            title = title[match.end() :].lstrip(" ,;:-")
    if bare_to:
        # "To rotate the keys, you need vault access." names the skill in its first clause.
        title = title.split(",", 1)[0]
    previous = None
    while title != previous:
        previous = title
        title = _TITLE_SUFFIX.sub("", title).rstrip(" ?.!:;,")
    title = _lower_first(title)
    if len(title) > MAX_TITLE_CHARS:
        cut = title[: MAX_TITLE_CHARS + 1]
        title = (cut.rsplit(" ", 1)[0] if " " in cut else title[:MAX_TITLE_CHARS]).rstrip(" ,;:.-")
    return title


# --- Finding steps in one item ---------------------------------------------------------------------------------


@dataclass
class _Run:
    """Steps found in one item, with how they are marked, which decides whether a run can continue another."""

    steps: list[str]
    intro: str | None = None  # the sentence before the steps that introduces them
    first_number: int | None = None  # the numbers of numbered steps
    last_number: int | None = None
    opens: bool = False  # the first step is marked as a beginning: First, To start, step 1
    continues: bool = False  # the first step is marked as coming after others: Then, Next, Finally
    final: bool = False  # the last step is marked as the last: Finally, Lastly
    markers: int = 0  # how many steps carry a mark (a number, a bullet, a sequencing word)
    structured: bool = False  # a list or an inline numbered sequence: a sequence by its form alone


# A list line: "1. x", "1) x", "(1) x", "Step 1: x" (a markdown heading allowed) or a bullet "- x", "* x", "• x".
_LIST_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?:#{1,6}[ \t]+)?"
    r"(?:(?:step|stage)[ \t]+(?P<step>\d{1,2})[ \t]*[:.)\-–—]|\(?(?P<number>\d{1,2})[.)]|(?P<bullet>[-*•‣◦▪–+]))"
    r"[ \t]+(?P<text>\S.*)$",
    re.IGNORECASE,
)
_FENCE = ("```", "~~~")
# Inline numbering: "1) x 2) y", "(1) x (2) y", "1. x 2. y", "Step 1: x Step 2: y".
_INLINE_NUMBER = re.compile(
    r"(?<![\w.])(?:(?P<step>step)\s+(?P<s>\d{1,2})\s*[:.)\-–—]|\((?P<p>\d{1,2})\)|(?P<n>\d{1,2})[.)])(?=\s)",
    re.IGNORECASE,
)
# Sequencing words, each in one of three groups: what opens a sequence, what ends it, what continues it. Uses that
# are not sequencing are kept out: "first time", "next week", "then again", "to start the server" (an intro).
_OPENING = (
    r"first(?:ly)?(?:\s+of\s+all)?(?!\s+(?:time|times|thing|things|day|days|week|month|year|one|ones|of)\b)"
    r"|to\s+(?:start|begin)(?:\s+with)?(?=\s*[,:])|start\s+(?:off\s+)?(?:by|with)|begin\s+(?:by|with)"
    r"|the\s+first\s+step\s+is(?:\s+to)?"
)
_FINAL = r"finally|lastly|last\s+of\s+all|last(?=\s*[,:])|the\s+(?:last|final)\s+step\s+is(?:\s+to)?"
_CONTINUING = (
    r"then(?!\s+again\b)|next(?!\s+(?:time|week|weeks|day|days|month|year|morning|evening|one|to|door)\b)"
    r"|after\s+(?:that|this)|afterwards?"
    r"|(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)(?:ly|(?=\s*[,:]))"
    r"|(?:once|when)\s+(?:that|this|it)(?:['’]s|\s+is|\s+has\s+been)?\s+done"
    r"|the\s+(?:next|second|third)\s+step\s+is(?:\s+to)?"
)
_MARKER = re.compile(
    rf"(?<![\w'’])(?:and\s+)?(?:(?P<open>{_OPENING})|(?P<final>{_FINAL})|(?P<cont>{_CONTINUING}))(?=[\s,:]|$)[,:]?\s*",
    re.IGNORECASE,
)
# What a step starts with that is not the step: numbering, a bullet, a sequencing word.
_LEADING_NUMBER = re.compile(r"^(?:(?:step|stage)\s+\d{1,2}\s*[:.)\-–—]?|\(?\d{1,2}[.)]|[-*•‣◦▪–+])\s+", re.IGNORECASE)
_TRAILING_CONJUNCTION = re.compile(r"[\s,;]+(?:and|or)$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def _runs(text: str) -> list[_Run]:
    """The runs of steps in one item's text: its lists if it has any, else an inline sequence, else none."""
    runs = _list_runs(text)
    if runs:
        return runs
    run = _inline_numbered_run(text) or _inline_sequence_run(text)
    return [run] if run else []


@dataclass
class _Block:
    """A list being read: the prose before it, whether it is numbered, its left margin, its entries (each the
    text parts of one step: the line, then continuation lines, sub-items and code)."""

    before: list[str]
    numbered: bool
    indent: int
    entries: list[tuple[int | None, list[str]]]
    headed: bool = False  # its lines are markdown headings ("### Step 1: Install"): the prose under each is its step


def _list_runs(text: str) -> list[_Run]:
    """One run per list in the text. A list is a block of list lines; more indented lines, sub-items and fenced code
    belong to the step above them. Prose between two numbered lines is a note of the step above when the numbering
    goes on and the prose does not end with ":"; otherwise, like prose between bullets, it ends the list and
    introduces the next ("To roll back:" between two lists). Prose after the last line is talk ("Let me know!"),
    except under a heading."""
    blocks: list[_Block] = []
    block: _Block | None = None
    pending: list[str] = []  # prose lines since the last list line (or the start)
    fenced = False
    for raw in text.replace("**", "").splitlines():
        line = raw.rstrip().expandtabs(4)
        stripped = line.strip()
        if stripped.startswith(_FENCE):
            fenced = not fenced
            continue
        if fenced or not stripped:
            # Code goes with the step it follows; code before any list introduces nothing.
            if fenced and stripped and block is not None and not pending:
                block.entries[-1][1].append(stripped)
            continue
        indent = len(line) - len(line.lstrip())
        match = _LIST_LINE.match(line)
        if match is None:
            if block is not None and indent > block.indent and not pending:
                block.entries[-1][1].append(stripped)
            else:
                pending.append(stripped)
            continue
        digits = match["step"] or match["number"]
        number = int(digits) if digits else None
        entry_text = match["text"].strip()
        if block is not None:
            # A deeper item, or a bullet under a numbered step at the same margin, is a sub-step.
            nested = indent > block.indent or (block.numbered and number is None)
            if nested and not pending:
                block.entries[-1][1].append(entry_text)
                continue
            if _same_list(block, number, pending):
                block.entries[-1][1].extend(pending)
                pending = []
                block.entries.append((number, [entry_text]))
                continue
            blocks.append(block)
        block = _Block(pending, number is not None, indent, [(number, [entry_text])], headed=line.lstrip()[:1] == "#")
        pending = []
    if block is not None:
        if block.headed:
            block.entries[-1][1].extend(pending)
        blocks.append(block)
    return [run for run in map(_block_run, blocks) if run is not None]


def _same_list(block: _Block, number: int | None, pending: list[str]) -> bool:
    """Whether a list line at the block's margin (after the prose lines `pending`) goes on with the block."""
    if not block.numbered:
        return number is None and not pending
    last = block.entries[-1][0]
    if number is None or last is None or number <= last:
        return False  # numbering starts again: another list
    return not (pending and pending[-1].endswith(":"))


def _block_run(block: _Block) -> _Run | None:
    """The run of a list; a single bullet is not a list (a single numbered line is: it may go on in the next item)."""
    if not block.numbered and len(block.entries) < 2:
        return None
    steps = [step for step in (_clean_step(_join(parts)) for _, parts in block.entries) if step]
    if not steps:
        return None
    first_number, last_number = block.entries[0][0], block.entries[-1][0]
    first_kind = _leading_kind(block.entries[0][1][0])
    return _Run(
        steps=steps,
        intro=_intro("\n".join(block.before)),
        first_number=first_number,
        last_number=last_number,
        opens=first_number == 1 or first_kind == "open",
        continues=(first_number or 0) > 1 or first_kind in ("cont", "final"),
        final=_leading_kind(block.entries[-1][1][0]) == "final",
        markers=len(block.entries),
        structured=True,
    )


def _inline_numbered_run(text: str) -> _Run | None:
    """Steps numbered within running text: "1) x 2) y 3) z", from number 1 on, each number the next one after the
    last (other numbers in between are part of a step). Without a 1, an explicit "Step N:" starts the run, so that
    "Done? Step 3: restart the pods." continues a sequence of earlier items."""
    matches = list(_INLINE_NUMBER.finditer(text))
    start = next((m for m in matches if _number(m) == 1), None) or next((m for m in matches if m["step"]), None)
    if start is None:
        return None
    chain = [start]
    for match in matches:
        if match.start() > chain[-1].start() and _number(match) == _number(chain[-1]) + 1:
            chain.append(match)
    if len(chain) < 2 and _number(start) == 1 and not start["step"]:
        return None  # a lone "1." in running text is no sequence
    spans = _sentence_spans(text)
    bounds = [m.start() for m in chain[1:]] + [_sentence_end(spans, chain[-1].end(), len(text))]
    steps = [_clean_step(text[m.end() : end]) for m, end in zip(chain, bounds, strict=True)]
    steps = [step for step in steps if step]
    if not steps:
        return None
    first, last = _number(chain[0]), _number(chain[-1])
    return _Run(
        steps=steps,
        intro=_intro(text[: chain[0].start()]),
        first_number=first,
        last_number=last,
        opens=first == 1,
        continues=first > 1,
        markers=len(chain),
        structured=True,
    )


def _number(match: re.Match[str]) -> int:
    return int(match["s"] or match["p"] or match["n"])


def _inline_sequence_run(text: str) -> _Run | None:
    """Steps marked by sequencing words at the start of clauses. A step runs from its word to the next one; the
    last runs to the end of its sentence (what follows is talk, not a step). When the first word is not an opening
    one, what comes just before it is a step too: the start of its sentence ("Open the vault, then ...") or, with
    two or more words, the sentence before ("Open the vault. Then ... Finally ..."); a lone continuing word leaves
    the sentence before out, since a turn that goes on with a sequence usually starts with talk ("Great, that
    worked. Then ..."). Questions are not steps ("Then what?")."""
    markers = [m for m in _MARKER.finditer(text) if _at_clause_start(text, m.start())]
    if not markers:
        return None
    spans = _sentence_spans(text)
    bounds = [m.start() for m in markers[1:]] + [_sentence_end(spans, markers[-1].end(), len(text))]
    steps = [text[m.end() : end] for m, end in zip(markers, bounds, strict=True)]

    first = markers[0]
    intro_end = first.start()
    intro: str | None = None
    if _kind(first) != "open":
        sentence = next(((s, e) for s, e in spans if s <= first.start() < e), None)
        pre_start: int | None = None
        if sentence is not None and text[sentence[0] : first.start()].strip():
            pre_start = sentence[0]  # the marker is inside its sentence: the clause before it is a step
        elif len(markers) >= 2:
            earlier = [s for s, e in spans if e <= first.start()]
            pre_start = earlier[-1] if earlier else None
        if pre_start is not None:
            pre = text[pre_start : first.start()].strip()
            # "To deploy, build the image, then ..." : the "To" clause introduces, the rest is the first step.
            to_clause = re.match(r"(to\s[^,]+),\s*(.+)$", pre, re.IGNORECASE | re.DOTALL)
            if to_clause:
                intro, pre = to_clause[1], to_clause[2]
            if pre and not _is_filler(pre) and not pre.rstrip(",;: ").endswith(("?", ":")):
                steps.insert(0, pre)
                intro_end = pre_start
    steps = [step for step in (_clean_step(s) for s in steps) if step and not step.endswith("?")]
    if not steps:
        return None
    return _Run(
        steps=steps,
        intro=intro or _intro(text[:intro_end]),
        opens=_kind(first) == "open",
        continues=_kind(first) in ("cont", "final"),
        final=_kind(markers[-1]) == "final",
        markers=len(markers),
    )


def _kind(match: re.Match[str]) -> str:
    return "open" if match["open"] else "final" if match["final"] else "cont"


def _leading_kind(text: str) -> str | None:
    """The kind of sequencing word a text starts with, if any."""
    match = _MARKER.match(text.strip())
    return _kind(match) if match else None


def _at_clause_start(text: str, position: int) -> bool:
    """Whether a sequencing word at `position` starts a clause: the text's start, after a sentence, a line break,
    ",", ";", ":", a dash or "(", or as "and then" / "and finally" anywhere. "I first tried" is no step mark."""
    if text[position : position + 4].lower().startswith("and") and text[position + 3 : position + 4].isspace():
        return True
    before = text[:position].rstrip(" \t")
    if not before:
        return True
    last = before[-1]
    if last in ".!?;:,\n(—–-":
        return True
    return last in "\"'”’)" and len(before) > 1 and before[-2] in ".!?"


def _clean_step(text: str) -> str:
    """A step as kept: one line, without leading numbering, bullets or sequencing words, without trailing
    punctuation or a dangling "and", at most MAX_STEP_CHARS (cut at a word boundary, marked with "…")."""
    step = _WHITESPACE.sub(" ", text).strip()
    previous = None
    while step != previous:
        previous = step
        step = _LEADING_NUMBER.sub("", step)
        marker = _MARKER.match(step)
        if marker:
            step = step[marker.end() :]
        step = step.strip()
        step = _TRAILING_CONJUNCTION.sub("", step).rstrip(" ,;:.").strip()
    if len(step) > MAX_STEP_CHARS:
        step = step[:MAX_STEP_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…"
    return step


def _join(parts: list[str]) -> str:
    """A step's line with what belongs to it (sub-steps, notes, code) as one text: "Configure: set A; set B",
    "Open the vault. You need admin rights"."""
    text = parts[0]
    for part in parts[1:]:
        if text.rstrip()[-1:] in (".", ":", ";", ",", "!", "?"):
            text = f"{text} {part}"
        elif part[:1].isupper():
            text = f"{text}. {part}"
        else:
            text = f"{text}; {part}"
    return text


# --- Sentences, intros, requests ----------------------------------------------------------------------------------

# Words whose period does not end a sentence ("e.g. the vault"), lowercased, without their last period.
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "cf"})
# A sentence ends at ., ! or ? (closing quotes or brackets included) before whitespace, or at a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)\]]*[ \t]+|[ \t]*\n\s*")
# Words that introduce without saying what ("Sure, here's how:", "Happy to help!"): such a sentence is no intro.
_FILLER_WORDS = frozenset(
    # acknowledgements and greetings
    {"sure", "ok", "okay", "yes", "yeah", "yep", "of", "course", "absolutely", "certainly", "no", "problem", "alright"}
    | {"great", "good", "fine", "right", "cool", "nice", "perfect", "awesome", "excellent", "thanks", "thank", "hi"}
    | {"hey", "hello", "so", "well", "now", "done", "got", "worked", "works", "went", "on", "happy", "glad", "be"}
    # pointing at the steps without naming what they do
    | {"here", "here's", "heres", "is", "are", "it", "it's", "its", "this", "that", "these", "those", "the", "a", "an"}
    | {"following", "follow", "steps", "step", "how", "to", "do", "you", "can", "i", "i'd", "i'll", "we", "let's"}
    | {"lets", "me", "help", "with", "easy", "simple", "just", "what", "as", "goes", "will", "would", "should", "need"}
    | {"way", "process", "procedure", "instructions", "quick", "guide", "below", "them", "they", "there", "some", "few"}
    | {"like"}
)
_REQUEST_START = re.compile(
    r"^(?:(?:ok(?:ay)?|so|hey|hi|hello|and|also|now|well|um+|hmm+|quick\s+question)\b[,:!]?\s+)*"
    r"(?:how\b|can\s+you\b|could\s+you\b|would\s+you\b|will\s+you\b|please\b|help\s+me\b"
    r"|(?:i|we)(?:\s+(?:really\s+)?(?:need|want|have)|\s+would\s+like|['’]d\s+like|['’]m\s+trying|\s+am\s+trying"
    r"|\s+are\s+trying)\s+to\b"
    r"|what(?:['’]s|\s+is|\s+are)\s+the\s+(?:\w+\s+)?(?:way|ways|process|procedure|steps?)\b"
    r"|walk\s+me\s+through\b|show\s+me\b|tell\s+me\s+how\b|explain\s+how\b|remind\s+me\s+how\b|is\s+there\s+a\s+way\b"
    r"|any\s+idea\s+how\b|do\s+you\s+know\s+how\b|need\s+help\b)",
    re.IGNORECASE,
)
# Leading phrasing that asks or introduces, not names the skill; stripped repeatedly ("Could you" then "please").
_TITLE_PREFIX = re.compile(
    r"(?:(?:ok(?:ay)?|so|hey|hi|hello|and|also|now|well|um+|hmm+|quick\s+question|question|yes|yeah|sure|thanks"
    r"|great)\b[,:!.]?"
    r"|how\s+(?:do|can|should|would|could|did|does|might|must|will)\s+(?:i|we|you|one|someone|they|people)"
    r"(?:\s+go\s+about)?"
    r"|how\s+to"
    r"|what(?:['’]s|\s+is|\s+are)\s+the\s+(?:\w+\s+)?(?:way|ways|process|procedure|steps?)\s+(?:to|for|of)"
    r"|is\s+there\s+an?\s+(?:\w+\s+)?way\s+to"
    r"|(?:can|could|would|will)\s+you(?:\s+please)?(?:\s+(?:tell|show)\s+me)?"
    r"|please"
    r"|help\s+me(?:\s+(?:with|to))?"
    r"|(?:i|we)(?:\s+(?:really\s+)?(?:need|want|have)|\s+would\s+like|['’]d\s+like|['’]m\s+trying|\s+am\s+trying"
    r"|\s+are\s+trying)\s+to(?:\s+(?:know|learn|figure\s+out|understand)\s+how\s+to)?"
    r"|(?:i\s+|we\s+)?need\s+help(?:\s+(?:with|to))?"
    r"|walk\s+me\s+through(?:\s+(?:how\s+to|the\s+steps\s+(?:to|for)|the\s+process\s+(?:of|for)))?"
    r"|(?:show|tell|remind|teach)\s+me(?:\s+how\s+to)?"
    r"|explain\s+how\s+to"
    r"|(?:any\s+idea|do\s+you\s+know)\s+how\s+to"
    r"|here(?:['’]s|\s+is|\s+are)\s+(?:how(?:\s+(?:to|you|i|we))?|the\s+steps\s+(?:to|for))"
    r"|this\s+is\s+how(?:\s+(?:to|you|i|we))?"
    r"|(?:the\s+)?(?:steps|process|procedure)\s+(?:to|for)"
    r"|(?P<to>to))\s+",
    re.IGNORECASE,
)
_TITLE_SUFFIX = re.compile(
    r"(?:,?\s+please|\s+for\s+me|,?\s+(?:can|could|would)\s+you\s+help(?:\s+me)?(?:\s+with\s+that)?)$", re.IGNORECASE
)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, without surrounding whitespace: split after ., ! or ? followed by
    whitespace and at line breaks, except after a common abbreviation ("e.g. the vault")."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        if "\n" not in match.group() and _ends_with_abbreviation(text[start : match.start()]):
            continue
        _add_span(spans, text, start, match.start())
        start = match.end()
    _add_span(spans, text, start, len(text))
    return spans


def _add_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    if piece.strip():
        spans.append((start + len(piece) - len(piece.lstrip()), end - len(piece) + len(piece.rstrip())))


def _ends_with_abbreviation(sentence: str) -> bool:
    words = sentence.split()
    return bool(words) and words[-1].lower().rstrip(".") in _ABBREVIATIONS


def _sentence_end(spans: list[tuple[int, int]], position: int, default: int) -> int:
    """Where the sentence that holds `position` (or the next one, from a gap between sentences) ends."""
    return next((end for _, end in spans if end > position), default)


def _sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in _sentence_spans(text)]


def _is_filler(sentence: str) -> bool:
    words = re.findall(r"[a-z']+", sentence.lower().replace("’", "'"))
    return all(word in _FILLER_WORDS for word in words)


def _intro(before: str) -> str | None:
    """The sentence that introduces steps: the last one before them that says something ("To deploy the billing
    service:", not "Sure, here's how:"), without the trailing ":" or ","."""
    for sentence in reversed(_sentences(before)):
        cleaned = sentence.strip().rstrip(" ,:;—–-").strip()
        if cleaned and not _is_filler(cleaned):
            return cleaned
    return None


def _is_request(sentence: str) -> bool:
    return sentence.rstrip(" \"'”’)").endswith("?") or _REQUEST_START.match(sentence) is not None


def _request_sentence(text: str) -> str | None:
    """The sentence of an item that asks for something, if any: the first request or question that names a skill
    of two words or more ("I need to rotate the keys." over "Can you help?"), else the first one."""
    requests = [sentence for sentence in _sentences(text) if _is_request(sentence)]
    return next((s for s in requests if len(title_from_trigger(s).split()) >= 2), requests[0] if requests else None)


def _lower_first(text: str) -> str:
    """`text` with its first letter lowercased, unless its first word looks like a name: an acronym ("API"), a word
    with a capital inside ("GitHub", "iOS") or a digit, or "I"."""
    if not text or not text[0].isupper():
        return text
    word = text.split(maxsplit=1)[0]
    letters = re.sub(r"[^A-Za-z]", "", word)
    if word == "I" or word.startswith(("I'", "I’")) or any(c.isdigit() for c in word):
        return text
    if (len(letters) >= 2 and letters.isupper()) or any(c.isupper() for c in letters[1:]):
        return text
    return text[0].lower() + text[1:]


# --- Sequences over items, and episodes -------------------------------------------------------------------------


@dataclass
class _Chain:
    """A sequence of steps being followed through one speaker's items (positions in the session's stream)."""

    speaker: str | None
    steps: list[tuple[str, int]]  # each step with the position of its item
    last: int
    last_run: _Run
    intro: str | None
    opens: bool
    markers: int
    structured: bool

    @classmethod
    def start(cls, run: _Run, position: int, speaker: str | None) -> "_Chain":
        return cls(
            speaker=speaker,
            steps=[(step, position) for step in run.steps],
            last=position,
            last_run=run,
            intro=run.intro,
            opens=run.opens,
            markers=run.markers,
            structured=run.structured,
        )

    def extend(self, run: _Run, position: int) -> None:
        self.steps.extend((step, position) for step in run.steps)
        self.last = position
        self.last_run = run
        self.markers += run.markers
        self.structured = self.structured or run.structured

    @property
    def first(self) -> int:
        return self.steps[0][1]


def _continues(previous: _Run, run: _Run) -> bool:
    """Whether `run` (at the start of an item) goes on with `previous` (at the end of an earlier item of the same
    speaker): the next step number, or a continuing word, and `previous` not marked as the end."""
    if previous.final:
        return False
    if run.first_number is not None:
        if previous.last_number is not None:
            return run.first_number == previous.last_number + 1
        return run.first_number > 1
    return run.continues


def _chains(stream: list[tuple[int, HistoryItem]], max_gap: int) -> list[_Chain]:
    """Every sequence of steps in one session's stream, whether or not it will count as an episode."""
    open_chains: dict[str | None, _Chain] = {}
    closed: list[_Chain] = []
    for position, (_, item) in enumerate(stream):
        runs = _runs(item.text)
        chain = open_chains.pop(item.speaker, None)
        if not runs:
            if chain is not None:
                closed.append(chain)  # the speaker said something else: the sequence is over
            continue
        first, *rest = runs
        if chain is not None and position - chain.last - 1 <= max_gap and _continues(chain.last_run, first):
            chain.extend(first, position)
        else:
            if chain is not None:
                closed.append(chain)
            chain = _Chain.start(first, position, item.speaker)
        for run in rest:  # a second list in the same item is another sequence ("To roll back: 1. ...")
            closed.append(chain)
            chain = _Chain.start(run, position, item.speaker)
        open_chains[item.speaker] = chain
    closed.extend(open_chains.values())
    return closed


def _counts(chain: _Chain, min_steps: int) -> bool:
    return len(chain.steps) >= min_steps and (chain.structured or chain.opens or chain.markers >= 2)


def _session_episodes(
    stream: list[tuple[int, HistoryItem]], min_steps: int, max_gap: int
) -> list[tuple[tuple[int, int], Episode]]:
    """The episodes of one session's stream (its dialogue and episodic items, with their indexes in the whole
    history), each with its sort key: the history index of its first source, then of its first step."""
    chains = sorted((c for c in _chains(stream, max_gap) if _counts(c, min_steps)), key=lambda c: c.first)
    # A request just before another episode's steps led to those: the search for a request stops there.
    claimed = {position for chain in chains for _, position in chain.steps}
    episodes: list[tuple[tuple[int, int], Episode]] = []
    for chain in chains:
        steps = chain.steps[:MAX_STEPS]
        request = _find_request(stream, chain, claimed, max_gap)
        if request is not None:
            claimed.add(request)
            text = stream[request][1].text
            sentence = _request_sentence(text) or text
            written = " ".join(text.split())
            trigger = written if len(written) <= MAX_TRIGGER_CHARS else " ".join(sentence.split())
            title = title_from_trigger(sentence)
        else:
            trigger = chain.intro or steps[0][0]
            title = title_from_trigger(trigger)
        title = title or title_from_trigger(steps[0][0]) or steps[0][0][:MAX_TITLE_CHARS]
        positions = sorted({position for _, position in steps} | ({request} if request is not None else set()))
        source_ids = tuple(dict.fromkeys(stream[position][1].memory_id for position in positions))
        episode = Episode(trigger=trigger, title=title, steps=tuple(step for step, _ in steps), source_ids=source_ids)
        episodes.append(((stream[positions[0]][0], stream[chain.first][0]), episode))
    return episodes


def _find_request(stream: list[tuple[int, HistoryItem]], chain: _Chain, claimed: set[int], max_gap: int) -> int | None:
    """The position of the closest request or question of another speaker in the `max_gap` items before the
    chain's first step item, not past an item of another episode."""
    for position in range(chain.first - 1, max(chain.first - 1 - max_gap, -1), -1):
        if position in claimed:
            return None
        item = stream[position][1]
        if item.speaker != chain.speaker and _request_sentence(item.text) is not None:
            return position
    return None
