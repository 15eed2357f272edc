"""Cutting a scope's history into segments for consolidation (HMT's segment stream, with sensory memory).

HMT reads a long stream in segments of L tokens and prepends the last k tokens of the previous segment (sensory
memory). Here the stream is a scope's history: a segment is a run of items of one session (or of session-less
history), bounded by an item count and a token budget, and its sensory memory is the tail of the previous segment of
the same session, so that a segment is read in the context it continues without ever citing that context.
"""

import math
import re
from collections.abc import Sequence

from memsvc.consolidation.types import HistoryItem, Segment

_WORD = re.compile(r"\S+")


def approximate_tokens(text: str) -> int:
    """The number of whitespace-separated words in `text`: a cheap stand-in for a tokenizer's count (subword
    tokenizers give roughly 1.3 tokens per English word), good enough to bound what one segment holds."""
    return len(_WORD.findall(text))


def segment_history(
    items: Sequence[HistoryItem], *, max_items: int = 24, max_tokens: int = 1024, sensory_items: int = 2
) -> list[Segment]:
    """The segments of `items` (given in history order), in history order, indexed 0, 1, ... over the whole list.

    A segment holds items of one session_id only (session-less items group together, in order); it closes when the
    next item is of another session or would take it past `max_items` items or `max_tokens` approximate tokens of
    the items' lines. An item longer than `max_tokens` on its own forms a segment of one. Each segment's sensory
    memory is the last `sensory_items` items of the previous segment of the same session (none for a session's first
    segment), even when segments of other sessions came in between.
    """
    if max_items < 1 or max_tokens < 1 or sensory_items < 0:
        raise ValueError(
            f"need max_items >= 1, max_tokens >= 1, sensory_items >= 0: {max_items=} {max_tokens=} {sensory_items=}"
        )
    runs: list[list[HistoryItem]] = []
    current: list[HistoryItem] = []
    current_tokens = 0
    for item in items:
        tokens = approximate_tokens(item.line)
        fits = len(current) + 1 <= max_items and current_tokens + tokens <= max_tokens
        if current and (item.session_id != current[0].session_id or not fits):
            runs.append(current)
            current, current_tokens = [], 0
        current.append(item)
        current_tokens += tokens
    if current:
        runs.append(current)

    segments: list[Segment] = []
    # The last segment seen of each session (None for session-less history), whose tail the next one reads.
    previous_of_session: dict[str | None, Sequence[HistoryItem]] = {}
    for index, run in enumerate(runs):
        session_id = run[0].session_id
        previous = previous_of_session.get(session_id, ())
        sensory = tuple(previous[max(0, len(previous) - sensory_items) :])
        segments.append(Segment(index=index, items=tuple(run), sensory=sensory))
        previous_of_session[session_id] = run
    return segments


def first_half(segment: Segment) -> list[HistoryItem]:
    """The first ceil(n/2) of the segment's n items: the text its representation S_n is extracted from (HMT encodes
    the first half of a segment, so that recall happens before the whole segment has been read)."""
    return list(segment.items[: math.ceil(len(segment.items) / 2)])
