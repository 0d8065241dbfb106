"""Maintenance windows: when an instance may be deployed, in the customer's own time zone.

A window is a set of weekdays plus a local start and end time; an end before the start wraps past
midnight (``22:00``–``04:00`` on Friday runs into Saturday morning). An instance with no windows
may be deployed at any time. All functions are pure: ``now`` is always passed in, aware, in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One recurring window; ``days`` are indices 0=Monday … 6=Sunday (of the start time)."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str

    def _intervals_around(self, now: datetime) -> list[tuple[datetime, datetime]]:
        zone = ZoneInfo(self.timezone)
        local_today = now.astimezone(zone).date()
        out = []
        for offset in range(-1, 9):
            day = local_today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            start = datetime.combine(day, self.start, tzinfo=zone)
            end_day = day if self.end > self.start else day + timedelta(days=1)
            end = datetime.combine(end_day, self.end, tzinfo=zone)
            out.append((start.astimezone(UTC), end.astimezone(UTC)))
        return out


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """Whether deploying is allowed at ``now`` and, if not, when it next is."""

    open_now: bool
    next_open: datetime | None
    closes_at: datetime | None

    def describe(self) -> str:
        if self.open_now:
            if self.closes_at is None:
                return "any time"
            return f"open until {self.closes_at:%Y-%m-%d %H:%M} UTC"
        if self.next_open is None:
            return "no window in the next week"
        return f"waits for window at {self.next_open:%Y-%m-%d %H:%M} UTC"


ALWAYS = WindowStatus(open_now=True, next_open=None, closes_at=None)


def window_status(windows: Sequence[WindowSpec], now: datetime) -> WindowStatus:
    """Evaluate ``windows`` at ``now`` (aware datetime). No windows means always open."""
    if not windows:
        return ALWAYS
    intervals = sorted(iv for w in windows for iv in w._intervals_around(now))
    closes: datetime | None = None
    for start, end in intervals:
        if start <= now < end:
            closes = end if closes is None else max(closes, end)
    if closes is not None:
        # adjacent or overlapping windows extend the open period
        for start, end in intervals:
            if start <= closes < end:
                closes = end
        return WindowStatus(open_now=True, next_open=None, closes_at=closes)
    upcoming = [start for start, _ in intervals if start > now]
    return WindowStatus(open_now=False, next_open=min(upcoming) if upcoming else None,
                        closes_at=None)


def parse_days(days: Sequence[str] | str) -> frozenset[int]:
    """``["mon", "fri"]``, ``"mon-fri"``, ``"daily"``, ``"weekdays"``, ``"weekends"`` → indices.

    Raises ValueError naming the word it did not understand.
    """
    items = [days] if isinstance(days, str) else list(days)
    out: set[int] = set()
    for raw in items:
        item = str(raw).strip().lower()
        if item in ("daily", "all", "*", "every day"):
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
    return frozenset(out)


def _day_index(name: str) -> int:
    short = name.strip().lower()[:3]
    if short not in DAY_NAMES or not name.strip().lower().startswith(short):
        raise ValueError(f"'{name}' is not a weekday; use mon, tue, wed, thu, fri, sat, sun")
    return DAY_NAMES.index(short)


def now_utc() -> datetime:
    """The current time, aware, in UTC (the only impure helper here; shells call it)."""
    return datetime.now(UTC)
