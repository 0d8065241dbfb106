"""Maintenance windows: when an instance may be deployed, in the customer's own time zone.

A window is a set of weekdays plus a local start and end time; an end before the start wraps past
midnight (``22:00``–``04:00`` on Friday runs into Saturday morning) and ``24:00`` is the end of the
day. An instance with no windows may be deployed at any time. All functions are pure: ``now`` is
always passed in, aware.

Times are wall-clock times of the window's zone. Across daylight-saving changes a window keeps its
wall-clock times (so it is an hour shorter or longer that night); a time the clock skips (02:30
when clocks jump from 02:00 to 03:00) means the moment of the jump, and a time the clock shows
twice (02:30 when clocks fall back) means its first occurrence. A window is one continuous period
from its start to its end, so on the night clocks fall back a window spanning 02:00 also covers the
repeated hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEK = timedelta(days=7)


def local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock of ``zone`` first shows ``day clock``.

    A wall time skipped by a daylight-saving jump maps to the instant of the jump.
    """
    local = datetime.combine(day, clock, tzinfo=zone)  # fold=0: the first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In a gap: the instant lies between the two readings of the offset; find the jump.
    low, high = sorted((local.replace(fold=1).astimezone(UTC), instant))
    after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One recurring window; ``days`` are indices 0=Monday … 6=Sunday (of the start time)."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str

    def intervals_around(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """The window's occurrences (UTC start, end) from the day before ``now`` to 8 days on."""
        zone = ZoneInfo(self.timezone)
        local_today = now.astimezone(zone).date()
        out = []
        for offset in range(-1, 9):
            day = local_today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day if self.end > self.start else day + timedelta(days=1)
            start = local_instant(day, self.start, zone)
            end = local_instant(end_day, self.end, zone)
            if end > start:  # a window wholly inside a skipped hour never opens
                out.append((start, end))
        return out


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """Whether deploying is allowed at ``now`` and, if not, when it next is.

    ``closes_at`` is ``None`` when open with no end in sight (no windows, or windows that cover
    the whole week); ``timezone`` is the zone of the window that opens next or closes next.
    """

    open_now: bool
    next_open: datetime | None
    closes_at: datetime | None
    timezone: str | None = None
    always: bool = False

    def describe(self) -> str:
        """Short human text: ``open until …``, ``waits for window at …`` (UTC and local)."""
        if self.open_now:
            if self.closes_at is None:
                return "any time" if self.always else "open now (windows cover the whole week)"
            return f"open until {self._moment(self.closes_at)}"
        if self.next_open is None:
            return "no window in the next week"
        return f"waits for window at {self._moment(self.next_open)}"

    def _moment(self, moment: datetime) -> str:
        text = f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if self.timezone and self.timezone != "UTC":
            local = moment.astimezone(ZoneInfo(self.timezone))
            text += f" ({local:%a %H:%M} {self.timezone})"
        return text


ALWAYS = WindowStatus(open_now=True, next_open=None, closes_at=None, always=True)


def window_status(windows: Sequence[WindowSpec], now: datetime) -> WindowStatus:
    """Evaluate ``windows`` at ``now`` (an aware datetime). No windows means always open.

    Adjacent or overlapping windows (Friday ``20:00``–``24:00`` then Saturday ``00:00``–``06:00``)
    make one open period; ``closes_at`` is the end of that period.
    """
    if not windows:
        return ALWAYS
    if now.tzinfo is None:
        raise ValueError("window_status needs an aware datetime (e.g. datetime.now(UTC))")
    intervals = sorted((start, end, w.timezone) for w in windows
                       for start, end in w.intervals_around(now))
    closes: datetime | None = None
    zone: str | None = None
    for start, end, tz in intervals:
        if start <= now < end and (closes is None or end > closes):
            closes, zone = end, tz
    if closes is not None:
        for start, end, tz in intervals:  # sorted by start: one pass follows a chain
            if start <= closes < end:
                closes, zone = end, tz
        if closes - now >= WEEK:  # open for a whole week: the windows leave no gap
            return WindowStatus(open_now=True, next_open=None, closes_at=None)
        return WindowStatus(open_now=True, next_open=None, closes_at=closes, timezone=zone)
    upcoming = [(start, tz) for start, _, tz in intervals if start > now]
    if not upcoming:
        return WindowStatus(open_now=False, next_open=None, closes_at=None)
    first, zone = min(upcoming)
    return WindowStatus(open_now=False, next_open=first, closes_at=None, timezone=zone)


def parse_days(days: Sequence[str] | str) -> frozenset[int]:
    """``["mon", "fri"]``, ``"mon-fri"``, ``"mon,wed"``, ``"daily"``, ``"weekdays"``,
    ``"weekends"`` → indices (0 = Monday).

    Raises ValueError naming the word it did not understand, or when no day is given.
    """
    items = [days] if isinstance(days, str) else list(days)
    words = [part for raw in items for part in str(raw).split(",")]
    out: set[int] = set()
    for word in words:
        item = word.strip().lower()
        if item in ("daily", "all", "*", "every day", "everyday"):
            out |= set(range(7))
        elif item == "weekdays":
            out |= set(range(5))
        elif item in ("weekend", "weekends"):
            out |= {5, 6}
        elif "-" in item:
            first, _, last = item.partition("-")
            a, b = _day_index(first), _day_index(last)
            out |= {(a + i) % 7 for i in range((b - a) % 7 + 1)}
        else:
            out.add(_day_index(item))
    if not out:
        raise ValueError("no days given; write e.g. daily, mon-fri or [sat, sun]")
    return frozenset(out)


def _day_index(name: str) -> int:
    word = name.strip().lower()
    for index, full in enumerate(FULL_DAY_NAMES):
        if len(word) >= 3 and full.startswith(word):  # mon, mond, monday
            return index
    raise ValueError(f"'{name.strip()}' is not a weekday; use mon, tue, wed, thu, fri, sat, sun")


def now_utc() -> datetime:
    """The current time, aware, in UTC (the only impure helper here; shells call it)."""
    return datetime.now(UTC)
