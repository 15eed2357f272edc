"""Time expressions in search queries become UTC windows relative to a fixed `now`. No database involved."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from memsvc.search.timeparse import TimeWindow, asks_about_present, parse_time_window

# A Wednesday.
NOW = datetime(2024, 5, 15, 14, 30, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def window(query: str, now: datetime = NOW) -> tuple[datetime | None, datetime | None]:
    found = parse_time_window(query, now)
    assert found is not None, query
    return found.start, found.end


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        # single days
        ("what did we do today", utc(2024, 5, 15), utc(2024, 5, 16)),
        ("plans for tonight", utc(2024, 5, 15), utc(2024, 5, 16)),
        ("what did Bob say this morning", utc(2024, 5, 15), utc(2024, 5, 16)),
        ("yesterday's call", utc(2024, 5, 14), utc(2024, 5, 15)),
        ("what did I eat last night", utc(2024, 5, 14), utc(2024, 5, 15)),
        ("the day before yesterday", utc(2024, 5, 13), utc(2024, 5, 14)),
        # calendar periods
        ("last week", utc(2024, 5, 6), utc(2024, 5, 13)),
        ("last month", utc(2024, 4, 1), utc(2024, 5, 1)),
        ("last year", utc(2023, 1, 1), utc(2024, 1, 1)),
        ("this week", utc(2024, 5, 13), utc(2024, 5, 20)),
        ("this month", utc(2024, 5, 1), utc(2024, 6, 1)),
        ("this year", utc(2024, 1, 1), utc(2025, 1, 1)),
        # windows ending now
        ("past 3 days", utc(2024, 5, 12, 14, 30), NOW),
        ("the last 2 weeks", utc(2024, 5, 1, 14, 30), NOW),
        ("the past few days", utc(2024, 5, 12, 14, 30), NOW),
        ("last 6 months", utc(2023, 11, 15, 14, 30), NOW),
        ("past 2 years", utc(2022, 5, 15, 14, 30), NOW),
        ("in the past 24 hours", utc(2024, 5, 14, 14, 30), NOW),
        ("in the last week", utc(2024, 5, 8, 14, 30), NOW),
        ("what came up recently", utc(2024, 4, 15, 14, 30), NOW),
        # "N units ago": the day, week, month or year containing now minus N units
        ("3 days ago", utc(2024, 5, 12), utc(2024, 5, 13)),
        ("a couple of days ago", utc(2024, 5, 13), utc(2024, 5, 14)),
        ("a week ago", utc(2024, 5, 6), utc(2024, 5, 13)),
        ("a few weeks ago", utc(2024, 4, 22), utc(2024, 4, 29)),
        ("a month ago", utc(2024, 4, 1), utc(2024, 5, 1)),
        ("two years ago", utc(2022, 1, 1), utc(2023, 1, 1)),
        # weekends and weekdays (strictly before today)
        ("last weekend", utc(2024, 5, 11), utc(2024, 5, 13)),
        ("this weekend", utc(2024, 5, 18), utc(2024, 5, 20)),
        ("last Monday", utc(2024, 5, 13), utc(2024, 5, 14)),
        ("last Sunday", utc(2024, 5, 12), utc(2024, 5, 13)),
        ("on Friday", utc(2024, 5, 10), utc(2024, 5, 11)),
        ("on Wednesday", utc(2024, 5, 8), utc(2024, 5, 9)),
        # years
        ("what happened in 2023", utc(2023, 1, 1), utc(2024, 1, 1)),
        ("during 2019", utc(2019, 1, 1), utc(2020, 1, 1)),
        ("the best of 2022", utc(2022, 1, 1), utc(2023, 1, 1)),
        ("from 2019 to 2021", utc(2019, 1, 1), utc(2022, 1, 1)),
        # months; without a year, the latest one begun by now
        ("in May", utc(2024, 5, 1), utc(2024, 6, 1)),
        ("in may", utc(2024, 5, 1), utc(2024, 6, 1)),
        ("in May 2023", utc(2023, 5, 1), utc(2023, 6, 1)),
        ("May 2023", utc(2023, 5, 1), utc(2023, 6, 1)),
        ("Jan. 2024", utc(2024, 1, 1), utc(2024, 2, 1)),
        ("during March", utc(2024, 3, 1), utc(2024, 4, 1)),
        ("last March", utc(2024, 3, 1), utc(2024, 4, 1)),
        ("last May", utc(2023, 5, 1), utc(2023, 6, 1)),
        ("in December", utc(2023, 12, 1), utc(2024, 1, 1)),
        ("in Sept", utc(2023, 9, 1), utc(2023, 10, 1)),
        ("early May 2023", utc(2023, 5, 1), utc(2023, 5, 11)),
        ("mid-May 2023", utc(2023, 5, 11), utc(2023, 5, 21)),
        ("late Feb 2024", utc(2024, 2, 21), utc(2024, 3, 1)),
        ("2023-05", utc(2023, 5, 1), utc(2023, 6, 1)),
        # dates; without a year, the latest one on or before today
        ("8 May 2023", utc(2023, 5, 8), utc(2023, 5, 9)),
        ("May 8, 2023", utc(2023, 5, 8), utc(2023, 5, 9)),
        ("May 8th 2023", utc(2023, 5, 8), utc(2023, 5, 9)),
        ("on 8 May", utc(2024, 5, 8), utc(2024, 5, 9)),
        ("the 8th of May", utc(2024, 5, 8), utc(2024, 5, 9)),
        ("May 8", utc(2024, 5, 8), utc(2024, 5, 9)),
        ("May 20", utc(2023, 5, 20), utc(2023, 5, 21)),
        ("Feb 29", utc(2024, 2, 29), utc(2024, 3, 1)),
        ("2023-05-08", utc(2023, 5, 8), utc(2023, 5, 9)),
        ("2023/05/08", utc(2023, 5, 8), utc(2023, 5, 9)),
        ("logged at 2023-05-08T10:00:00Z", utc(2023, 5, 8), utc(2023, 5, 9)),
        # seasons (northern hemisphere, meteorological)
        ("last summer", utc(2023, 6, 1), utc(2023, 9, 1)),
        ("summer 2023", utc(2023, 6, 1), utc(2023, 9, 1)),
        ("in the summer of 2022", utc(2022, 6, 1), utc(2022, 9, 1)),
        ("in winter", utc(2023, 12, 1), utc(2024, 3, 1)),
    ],
)
def test_closed_windows(query: str, start: datetime, end: datetime) -> None:
    assert window(query) == (start, end)


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("since 2020", utc(2020, 1, 1), None),
        ("before 2020", None, utc(2020, 1, 1)),
        ("after 2020", utc(2021, 1, 1), None),
        ("until 2021", None, utc(2022, 1, 1)),
        ("till 2021", None, utc(2022, 1, 1)),
        ("since March", utc(2024, 3, 1), None),
        ("since Monday", utc(2024, 5, 13), None),
        ("since yesterday", utc(2024, 5, 14), None),
        ("before last week", None, utc(2024, 5, 6)),
        ("after 8 May 2023", utc(2023, 5, 9), None),
    ],
)
def test_open_windows(query: str, start: datetime | None, end: datetime | None) -> None:
    assert window(query) == (start, end)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "what did Bob say about the budget",
        "May I ask what Bob said",
        "what may happen next",
        "march on",
        "what did Janet say",
        "2023",
        "top 2023 results",
        "room 1204",
        "over 2000 users",
        "in 1204",
        "8/5/2023",
        "31 February 2023",
        "in 31 February 2023",
        "2023-13",
        "2023-02-30",
        "in the fall of Rome",
        "past 0 days",
        "past 9999 years",
        "every weekend",
    ],
)
def test_no_time_expression(query: str) -> None:
    assert parse_time_window(query, NOW) is None


def test_text_is_the_expression_as_written() -> None:
    query = "What did Alice say about the budget LAST WEEK?"
    found = parse_time_window(query, NOW)
    assert found == TimeWindow(start=utc(2024, 5, 6), end=utc(2024, 5, 13), text="LAST WEEK")
    assert found.text in query


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("notes since 2020 about hiring", "since 2020"),
        ("what happened in May 2023?", "in May 2023"),
        ("the past few days", "the past few days"),
        ("the 8th of May, at the office", "the 8th of May"),
        ("a couple of days ago", "a couple of days ago"),
    ],
)
def test_text_includes_the_shaping_words(query: str, text: str) -> None:
    found = parse_time_window(query, NOW)
    assert found is not None
    assert found.text == text


def test_leftmost_expression_wins() -> None:
    first = parse_time_window("yesterday, or maybe last week", NOW)
    assert first is not None and first.text == "yesterday"
    second = parse_time_window("last week, or maybe yesterday", NOW)
    assert second is not None and second.text == "last week"


def test_longest_expression_wins_at_the_same_start() -> None:
    found = parse_time_window("in May 2023", NOW)
    assert found is not None and found.text == "in May 2023"


def test_invalid_date_does_not_fall_back_to_its_month() -> None:
    assert parse_time_window("31 February 2023", NOW) is None
    later = parse_time_window("31 February 2023 or last week", NOW)
    assert later is not None and later.text == "last week"


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_time_window("today", datetime(2024, 5, 15, 14, 30))


def test_windows_are_in_utc() -> None:
    found = parse_time_window("last week", datetime(2024, 5, 15, 9, 0, tzinfo=timezone(timedelta(hours=9))))
    assert found is not None and found.start is not None and found.end is not None
    assert found.start.tzinfo is UTC and found.end.tzinfo is UTC
    # Tokyo's Monday midnight is Sunday 15:00 UTC.
    assert (found.start, found.end) == (utc(2024, 5, 5, 15), utc(2024, 5, 12, 15))


def test_calendar_days_are_in_the_callers_zone() -> None:
    # 22:30 in New York is already May 16 in UTC; "today" is still New York's May 15.
    now = datetime(2024, 5, 15, 22, 30, tzinfo=ZoneInfo("America/New_York"))
    assert window("today", now) == (utc(2024, 5, 15, 4), utc(2024, 5, 16, 4))
    assert window("yesterday", now) == (utc(2024, 5, 14, 4), utc(2024, 5, 15, 4))
    assert window("in 2023", now) == (utc(2023, 1, 1, 5), utc(2024, 1, 1, 5))


def test_week_across_a_dst_change_keeps_local_midnights() -> None:
    now = datetime(2024, 3, 13, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    # Monday March 4 starts in EST (UTC-5), Monday March 11 in EDT (UTC-4).
    assert window("last week", now) == (utc(2024, 3, 4, 5), utc(2024, 3, 11, 4))


def test_month_arithmetic_clamps_to_month_end() -> None:
    now = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
    assert window("a month ago", now) == (utc(2024, 2, 1), utc(2024, 3, 1))
    assert window("past 1 month", now) == (utc(2024, 2, 29, 12), now)


def test_weekday_named_today_means_a_week_ago() -> None:
    monday = datetime(2024, 5, 13, 8, 0, tzinfo=UTC)
    assert window("on Monday", monday) == (utc(2024, 5, 6), utc(2024, 5, 7))


def test_last_weekend_seen_from_sunday_is_the_one_before() -> None:
    sunday = datetime(2024, 5, 19, 12, 0, tzinfo=UTC)
    assert window("last weekend", sunday) == (utc(2024, 5, 11), utc(2024, 5, 13))


def test_hours_are_elapsed_time_across_a_dst_change() -> None:
    # 03:30 EDT on the night clocks sprang forward from 02:00 EST: three real hours back is 23:30 EST the day before.
    now = datetime(2024, 3, 10, 3, 30, tzinfo=ZoneInfo("America/New_York"))
    assert window("past 3 hours", now) == (utc(2024, 3, 10, 4, 30), utc(2024, 3, 10, 7, 30))


@pytest.mark.parametrize(
    ("query", "present"),
    [
        ("Which city does Dana live in now?", True),
        ("what is her current job", True),
        ("Is Bob still at Acme?", True),
        ("what does he do these days", True),
        ("where did Dana live in 2020?", False),
        ("Nowhere to be found", False),
        ("who knows", False),
    ],
)
def test_a_question_about_the_present_is_recognised(query: str, present: bool) -> None:
    assert asks_about_present(query) is present
