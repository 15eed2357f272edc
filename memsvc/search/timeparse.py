"""Find a time expression ("last week", "in May 2023", "3 days ago") in a search query and turn it into a time
window relative to a given moment. Standard library only."""

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True)
class TimeWindow:
    """A half-open window [start, end) in UTC; either side may be None (open). `text` is the expression exactly as
    it appears in the query, including a leading preposition that shapes it ("since 2020", "in May")."""

    start: datetime | None
    end: datetime | None
    text: str


_Span = tuple[datetime, datetime]
_Bounds = tuple[datetime | None, datetime | None]
# A handler gets the match and `now` in the caller's zone. It returns None when the text is not a time expression
# after all, and raises ValueError/OverflowError when it is one that names no real date ("31 February 2023").
_Handler = Callable[[re.Match[str], datetime], _Span | None]

_MONTH_ABBRS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
_NUMBER_WORDS |= {"eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_SEASON_START = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}

_PREP = r"(?:(?P<prep>in|during|throughout|over|within|of|on|from|since|before|after|until|till|by)\s+)"
# Narrower than _PREP: "over 2000 users", "by 2000 votes" are counts, not years.
_YEAR_PREP = r"(?:(?P<prep>in|during|throughout|of|from|since|before|after|until|till)\s+)"
_MONTH = (
    r"(?P<month>january|february|march|april|may|june|july|august|september|october|november|december"
    r"|(?:jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?)"
)
_YEAR = r"(?P<year>\d{4})"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_NUM = rf"(?P<n>\d{{1,4}}|{'|'.join(_NUMBER_WORDS)}|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few)"


def _midnight(d: date, now: datetime) -> datetime:
    """Local midnight starting `d` in `now`'s zone."""
    return datetime.combine(d, time(), tzinfo=now.tzinfo)


def _days(first: date, count: int, now: datetime) -> _Span:
    return _midnight(first, now), _midnight(first + timedelta(days=count), now)


def _months(year: int, month: int, count: int, now: datetime) -> _Span:
    """`count` calendar months starting with `month` of `year` (months past 12 roll into later years)."""

    def first_of(index: int) -> datetime:
        y, m = divmod(year * 12 + month - 1 + index, 12)
        return _midnight(date(y, m + 1, 1), now)

    return first_of(0), first_of(count)


def _period(unit: str, day: date, now: datetime) -> _Span:
    """The calendar day, week (Monday first), month or year containing `day`."""
    if unit == "day":
        return _days(day, 1, now)
    if unit == "week":
        return _days(day - timedelta(days=day.weekday()), 7, now)
    if unit == "month":
        return _months(day.year, day.month, 1, now)
    return _months(day.year, 1, 12, now)


def _shift(now: datetime, unit: str, n: int) -> datetime:
    """`now` moved by n units on the wall clock; month ends clamp (March 31 minus a month is February 29)."""
    if unit == "hour":  # elapsed time, not wall clock: across a DST change "past 3 hours" is still 3 hours
        return now.astimezone(UTC) + timedelta(hours=n)
    if unit in ("day", "week"):
        return now + timedelta(**{unit + "s": n})
    y, m = divmod(now.year * 12 + now.month - 1 + n * (12 if unit == "year" else 1), 12)
    return now.replace(year=y, month=m + 1, day=min(now.day, calendar.monthrange(y, m + 1)[1]))


def _count(word: str) -> int:
    word = " ".join(word.lower().split())
    if "couple" in word:
        return 2
    if "few" in word:
        return 3
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def _month_number(name: str) -> int:
    return _MONTH_ABBRS.index(name.lower()[:3]) + 1


def _year(text: str) -> int | None:
    year = int(text)
    return year if 1900 <= year <= 2100 else None


def _month_part(year: int, month: int, part: str | None, now: datetime) -> _Span:
    """The month, or its early (days 1–10), mid (11–20) or late (21–end) part."""
    start, end = _months(year, month, 1, now)
    cut = {"early": (1, 11), "mid": (11, 21), "late": (21, 0)}.get((part or "").lower())
    if cut is None:
        return start, end
    first, stop = cut
    return _midnight(date(year, month, first), now), _midnight(date(year, month, stop), now) if stop else end


def _recent_date(month: int, day: int, today: date) -> date:
    """The latest date with this month and day on or before `today`; ValueError if there is none (Feb 31)."""
    for year in range(today.year, today.year - 9, -1):
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if found <= today:
            return found
    raise ValueError(f"no date {month}-{day}")


def _rolling(m: re.Match[str], now: datetime) -> _Span | None:
    n = _count(m["n"]) if m.groupdict().get("n") else 1
    return (_shift(now, m["unit"].lower(), -n), now) if n > 0 else None


def _ago(m: re.Match[str], now: datetime) -> _Span | None:
    unit, n = m["unit"].lower(), _count(m["n"])
    return _period(unit, _shift(now, unit, -n).date(), now) if n > 0 else None


def _calendar(m: re.Match[str], now: datetime) -> _Span:
    unit = m["unit"].lower()
    back = 0 if m["rel"].lower() == "this" else 1
    return _period(unit, _shift(now, unit, -back).date(), now)


def _weekend(m: re.Match[str], now: datetime) -> _Span:
    monday = now.date() - timedelta(days=now.weekday())
    return _days(monday + timedelta(days=5 if m["rel"].lower() == "this" else -2), 2, now)


def _weekday(m: re.Match[str], now: datetime) -> _Span | None:
    if not (m["prep"] or m["last"]):
        return None
    back = (now.weekday() - _WEEKDAYS.index(m["wd"].lower())) % 7 or 7
    return _days(now.date() - timedelta(days=back), 1, now)


def _bare_month(m: re.Match[str], now: datetime) -> _Span | None:
    # A month name alone is too often a word ("May I ask", "march on"), so it needs a word that makes it a date.
    rel = (m["rel"] or "").lower()
    if not (m["prep"] or rel):
        return None
    month = _month_number(m["month"])
    this_year = month < now.month or (month == now.month and rel != "last")
    return _month_part(now.year if this_year else now.year - 1, month, rel, now)


def _month_year(m: re.Match[str], now: datetime) -> _Span | None:
    year = _year(m["year"])
    return None if year is None else _month_part(year, _month_number(m["month"]), m["part"], now)


def _date(m: re.Match[str], now: datetime) -> _Span | None:
    month, day = _month_number(m["month"]), int(m["day"])
    if not m["year"]:
        return _days(_recent_date(month, day, now.date()), 1, now)
    year = _year(m["year"])
    return None if year is None else _days(date(year, month, day), 1, now)


def _numeric_date(m: re.Match[str], now: datetime) -> _Span | None:
    year = _year(m["year"])
    return None if year is None else _days(date(year, int(m["mon"]), int(m["day"])), 1, now)


def _iso_month(m: re.Match[str], now: datetime) -> _Span | None:
    year, month = _year(m["year"]), int(m["mon"])
    if year is None or not 1 <= month <= 12:
        return None
    return _months(year, month, 1, now)


def _year_window(m: re.Match[str], now: datetime) -> _Span | None:
    year = _year(m["year"])
    return None if year is None else _months(year, 1, 12, now)


def _year_range(m: re.Match[str], now: datetime) -> _Span | None:
    first, last = _year(m["year"]), _year(m["last"])
    if first is None or last is None or last < first:
        return None
    return _months(first, 1, 12 * (last - first + 1), now)


def _season(m: re.Match[str], now: datetime) -> _Span | None:
    rel = (m["rel"] or "").lower()
    if not (m["prep"] or rel or m["year"]):
        return None
    first = _SEASON_START[m["season"].lower()]
    if m["year"]:
        year = _year(m["year"])
        if year is None:
            return None
    elif rel == "last":  # the latest one already over
        year = now.year if first + 3 <= now.month else now.year - 1
    else:  # the latest one already begun
        year = now.year if first <= now.month else now.year - 1
    return _months(year, first, 3, now)


def _fixed_days(back: int) -> _Handler:
    return lambda m, now: _days(now.date() - timedelta(days=back), 1, now)


def _rule(body: str, handler: _Handler, prep: str = _PREP + "?") -> tuple[re.Pattern[str], _Handler]:
    # The edges keep parts of longer tokens out: "1204" in "room 1204x", "5/2023" in "8/5/2023".
    return re.compile(rf"(?<![\w/-]){prep}(?:{body})(?!\w|[/-]\d)", re.IGNORECASE), handler


_WEEKDAY = "|".join(_WEEKDAYS)
_RULES: list[tuple[re.Pattern[str], _Handler]] = [
    _rule(r"the\s+day\s+before\s+yesterday", _fixed_days(2)),
    _rule(r"yesterday|last\s+night", _fixed_days(1)),
    _rule(r"today|tonight|this\s+(?:morning|afternoon|evening)", _fixed_days(0)),
    _rule(rf"(?:the\s+)?(?:past|last)\s+{_NUM}\s+(?P<unit>hour|day|week|month|year)s?", _rolling),
    _rule(r"(?:(?:the\s+)?past|the\s+last)\s+(?P<unit>hour|day|week|month|year)", _rolling),
    _rule(r"(?P<rel>last|previous|this)\s+(?P<unit>week|month|year)", _calendar),
    _rule(rf"{_NUM}\s+(?P<unit>day|week|month|year)s?\s+ago", _ago),
    _rule(r"recently|lately", lambda m, now: (now - timedelta(days=30), now)),
    _rule(r"(?P<rel>last|this)\s+weekend", _weekend),
    _rule(rf"(?P<last>last\s+)?(?P<wd>{_WEEKDAY})", _weekday),
    _rule(_YEAR, _year_window, prep=_YEAR_PREP),
    _rule(rf"(?:between|from)\s+{_YEAR}\s+(?:and|to|through|until|-)\s+(?P<last>\d{{4}})", _year_range, prep=""),
    _rule(rf"(?:(?P<part>early|mid|late)[\s-]+)?{_MONTH},?\s+(?:of\s+)?{_YEAR}", _month_year),
    _rule(rf"(?:(?P<rel>last|early|mid|late)[\s-]+)?{_MONTH}", _bare_month),
    _rule(rf"(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?", _date),
    _rule(rf"{_MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?", _date),
    # An ISO timestamp's time part is taken along (and ignored): the window is still the whole day.
    _rule(
        rf"{_YEAR}(?P<sep>[-/])(?P<mon>\d{{1,2}})(?P=sep)(?P<day>\d{{1,2}})(?:T[\d:.]+(?:Z|[+-][\d:]+)?)?",
        _numeric_date,
    ),
    _rule(rf"{_YEAR}-(?P<mon>\d{{2}})", _iso_month),
    _rule(
        r"(?:(?P<rel>last|this)\s+)?(?:the\s+)?(?P<season>spring|summer|autumn|fall|winter)"
        rf"(?:\s+(?:of\s+)?{_YEAR}|(?!\s+of\b))",
        _season,
    ),
]


def _matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """Every match of `pattern`, one per start position, overlapping ones included."""
    pos = 0
    while (found := pattern.search(text, pos)) is not None:
        yield found
        pos = found.start() + 1


def _shape(prep: str | None, bounds: _Span) -> _Bounds:
    """Apply a bounding preposition: "since X" is from X's start on, "before X" up to X's start, and so on."""
    start, end = bounds
    match (prep or "").lower():
        case "since":
            return start, None
        case "after":
            return end, None
        case "before":
            return None, start
        case "until" | "till" | "by":
            return None, end
        case _:
            return bounds


def parse_time_window(query: str, now: datetime) -> TimeWindow | None:
    """The first (leftmost; on ties, longest) time expression in `query` as a UTC window relative to `now`, or
    None if there is none. Calendar days, weeks, months and years are those of `now`'s zone. An expression naming
    a date that does not exist ("31 February 2023") yields nothing, and neither does any expression inside it."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    found = [(m, handler) for pattern, handler in _RULES for m in _matches(pattern, query)]
    found.sort(key=lambda pair: (pair[0].start(), -pair[0].end()))
    blocked_until = -1
    for m, handler in found:
        if m.start() < blocked_until:
            continue
        try:
            bounds = handler(m, now)
        except (ValueError, OverflowError):
            blocked_until = m.end()
            continue
        if bounds is not None:
            start, end = _shape(m.groupdict().get("prep"), bounds)
            return TimeWindow(
                start=None if start is None else start.astimezone(UTC),
                end=None if end is None else end.astimezone(UTC),
                text=m.group(0),
            )
    return None


_PRESENT = re.compile(
    r"\b(?:now|nowadays|currently|current|these days|at the moment|at present|presently|latest|most recent(?:ly)?|"
    r"still|anymore|any more)\b",
    re.IGNORECASE,
)


def asks_about_present(query: str) -> bool:
    """Whether the query asks what holds now ("where does Ana live now?", "her current job"): then the newest of
    several versions of a fact is the answer."""
    return _PRESENT.search(query) is not None
