"""Segmentation of a scope's history: session boundaries, item and token budgets, sensory memory."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from memsvc.consolidation.segments import approximate_tokens, first_half, segment_history
from memsvc.consolidation.types import HistoryItem, Segment

START = datetime(2026, 1, 1, tzinfo=UTC)


def history(*sessions: str | None, words: int = 3) -> list[HistoryItem]:
    """One dialogue turn per given session id, in order, each `words` words long (its line adds the speaker)."""
    return [
        HistoryItem(
            memory_id=uuid.uuid4(),
            text=" ".join(["word"] * words),
            type="dialogue",
            occurred_at=START + timedelta(minutes=i),
            session_id=session,
            speaker=None,
        )
        for i, session in enumerate(sessions)
    ]


def item_ids(segment: Segment) -> list[uuid.UUID]:
    return item_ids_of(segment.items)


def item_ids_of(items: Sequence[HistoryItem]) -> list[uuid.UUID]:
    return [item.memory_id for item in items]


def test_empty_history_has_no_segments() -> None:
    assert segment_history([]) == []


def test_one_short_session_is_one_segment_without_sensory_memory() -> None:
    items = history("s1", "s1", "s1")
    [segment] = segment_history(items)
    assert segment.index == 0
    assert list(segment.items) == items
    assert segment.sensory == ()
    assert segment.session_id == "s1"


def test_a_change_of_session_starts_a_new_segment() -> None:
    items = history("s1", "s1", "s2", "s2", "s1")
    segments = segment_history(items)
    assert [len(s.items) for s in segments] == [2, 2, 1]
    assert [s.session_id for s in segments] == ["s1", "s2", "s1"]
    assert [s.index for s in segments] == [0, 1, 2]


def test_session_less_items_group_together_in_order() -> None:
    items = history(None, None, "s1", None)
    segments = segment_history(items)
    assert [item_ids(s) for s in segments] == [item_ids_of(items[:2]), item_ids_of(items[2:3]), item_ids_of(items[3:])]
    assert [s.session_id for s in segments] == [None, "s1", None]


def test_a_segment_closes_at_max_items() -> None:
    items = history(*["s1"] * 7)
    segments = segment_history(items, max_items=3)
    assert [len(s.items) for s in segments] == [3, 3, 1]
    assert [item for s in segments for item in s.items] == items


def test_a_segment_closes_before_max_tokens_would_be_exceeded() -> None:
    items = history(*["s1"] * 5, words=4)
    segments = segment_history(items, max_tokens=10)  # two 4-word items fit in 10 tokens, a third does not
    assert [len(s.items) for s in segments] == [2, 2, 1]


def test_tokens_are_counted_on_the_line_with_its_speaker() -> None:
    item = HistoryItem(uuid.uuid4(), "I moved to Lisbon", "dialogue", START, "s1", speaker="Alice")
    assert approximate_tokens(item.line) == 5
    segments = segment_history([item, item], max_tokens=9)
    assert [len(s.items) for s in segments] == [1, 1]


def test_an_item_longer_than_max_tokens_forms_its_own_segment() -> None:
    short_before = history("s1")
    long_item = history("s1", words=50)
    short_after = history("s1", "s1")
    segments = segment_history([*short_before, *long_item, *short_after], max_tokens=20)
    assert [item_ids(s) for s in segments] == [
        item_ids_of(short_before),
        item_ids_of(long_item),
        item_ids_of(short_after),
    ]


def test_sensory_memory_is_the_tail_of_the_previous_segment_of_the_same_session() -> None:
    items = history("s1", "s1", "s1", "s1", "s1")
    first, second = segment_history(items, max_items=3, sensory_items=2)
    assert first.sensory == ()
    assert list(second.sensory) == items[1:3]


def test_sensory_memory_skips_segments_of_other_sessions() -> None:
    items = history("s1", "s1", "s1", "s2", "s2", "s1", "s1")
    segments = segment_history(items, max_items=3, sensory_items=2)
    assert [s.session_id for s in segments] == ["s1", "s2", "s1"]
    assert segments[1].sensory == ()  # first segment of s2: nothing of s1 leaks in
    assert list(segments[2].sensory) == items[1:3]  # the tail of s1's previous segment, not of s2's


def test_sensory_memory_is_shorter_when_the_previous_segment_is() -> None:
    items = history("s1", "s1", "s1", words=30)
    segments = segment_history(items, max_tokens=40, sensory_items=5)
    assert [list(s.sensory) for s in segments] == [[], items[:1], items[1:2]]


def test_no_sensory_memory_when_asked_for_none() -> None:
    segments = segment_history(history("s1", "s1", "s1"), max_items=1, sensory_items=0)
    assert all(s.sensory == () for s in segments)


@pytest.mark.parametrize(("size", "half"), [(1, 1), (2, 1), (4, 2), (5, 3)])
def test_first_half_takes_the_first_ceil_half_of_the_items(size: int, half: int) -> None:
    items = history(*["s1"] * size)
    [segment] = segment_history(items)
    assert first_half(segment) == items[:half]


@pytest.mark.parametrize("bad", [{"max_items": 0}, {"max_tokens": 0}, {"sensory_items": -1}])
def test_impossible_bounds_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        segment_history(history("s1"), **bad)
