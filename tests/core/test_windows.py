"""Maintenance windows: next opening across DST, wrap past midnight, adjacency, day names."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwave.core.model import Window
from rollwave.core.windows import (
    ALWAYS,
    WindowSpec,
    local_instant,
    parse_days,
    window_status,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def spec(days: str, start: str, end: str, tz: str = "UTC") -> WindowSpec:
    return Window(days=days, start=start, end=end, timezone=tz).spec("UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_no_windows_is_always_open() -> None:
    status = window_status([], at("2026-11-25T10:00:00+00:00"))
    assert status is ALWAYS
    assert status.open_now
    assert status.next_open is None
    assert status.describe() == "any time"


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_status([spec("daily", "01:00", "02:00")], datetime(2026, 1, 1))


@pytest.mark.parametrize(("now", "open_now", "edge"), [
    ("2026-11-25T21:59:59+00:00", False, "2026-11-25T22:00:00+00:00"),   # Wednesday evening
    ("2026-11-25T22:00:00+00:00", True, "2026-11-26T04:00:00+00:00"),    # start inclusive
    ("2026-11-26T03:59:00+00:00", True, "2026-11-26T04:00:00+00:00"),    # past midnight
    ("2026-11-26T04:00:00+00:00", False, "2026-11-26T22:00:00+00:00"),   # end exclusive
    ("2026-11-28T02:00:00+00:00", True, "2026-11-28T04:00:00+00:00"),    # Fri night into Sat
    ("2026-11-28T22:00:00+00:00", False, "2026-11-30T22:00:00+00:00"),   # no Sat/Sun start
])
def test_wrap_past_midnight_belongs_to_the_start_day(now: str, open_now: bool,
                                                     edge: str) -> None:
    status = window_status([spec("mon-fri", "22:00", "04:00")], at(now))
    assert status.open_now is open_now
    assert (status.closes_at if open_now else status.next_open) == at(edge)


def test_next_open_in_another_zone() -> None:
    status = window_status([spec("daily", "22:00", "23:00", "Asia/Tokyo")],
                           at("2026-11-25T10:00:00+00:00"))
    assert not status.open_now
    assert status.next_open == at("2026-11-25T13:00:00+00:00")
    assert status.describe() == ("waits for window at 2026-11-25 13:00 UTC "
                                 "(Wed 22:00 Asia/Tokyo)")


def test_half_hour_offsets() -> None:
    status = window_status([spec("daily", "16:00", "17:00", "Asia/Kathmandu")],  # +05:45
                           at("2026-11-25T10:00:00+00:00"))
    assert status.next_open == at("2026-11-25T10:15:00+00:00")


# --- DST -------------------------------------------------------------------------------------


def test_local_instant_in_a_spring_forward_gap_is_the_jump() -> None:
    jump = at("2026-03-29T01:00:00+00:00")  # 02:00 CET -> 03:00 CEST
    for clock in (time(2, 0), time(2, 30), time(2, 59)):
        assert local_instant(date(2026, 3, 29), clock, BERLIN) == jump
    assert local_instant(date(2026, 3, 29), time(1, 59), BERLIN) == at(
        "2026-03-29T00:59:00+00:00")
    assert local_instant(date(2026, 3, 29), time(3, 0), BERLIN) == jump


def test_local_instant_in_a_fall_back_repeat_is_the_first_occurrence() -> None:
    assert local_instant(date(2026, 10, 25), time(2, 30), BERLIN) == at(
        "2026-10-25T00:30:00+00:00")
    assert local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == at(
        "2026-11-01T05:30:00+00:00")


def test_windows_keep_wall_clock_times_across_dst() -> None:
    nightly = spec("daily", "22:00", "04:00", "Europe/Berlin")
    # winter (CET, +01:00) and summer (CEST, +02:00) starts differ in UTC by an hour
    winter = window_status([nightly], at("2026-03-27T12:00:00+00:00"))
    summer = window_status([nightly], at("2026-03-30T12:00:00+00:00"))
    assert winter.next_open == at("2026-03-27T21:00:00+00:00")
    assert summer.next_open == at("2026-03-30T20:00:00+00:00")
    # the night of the change is an hour shorter: 22:00 CET to 04:00 CEST
    during = window_status([nightly], at("2026-03-28T23:00:00+00:00"))
    assert during.closes_at == at("2026-03-29T02:00:00+00:00")


def test_next_open_across_the_fall_back_change() -> None:
    early = spec("sun", "01:30", "02:30", "America/New_York")
    # Saturday noon: next is Sunday 01:30 EDT (the first 01:30)
    status = window_status([early], at("2026-10-31T16:00:00+00:00"))
    assert status.next_open == at("2026-11-01T05:30:00+00:00")
    assert status.describe().endswith("(Sun 01:30 America/New_York)")


def test_a_window_inside_the_skipped_hour_never_opens_that_day() -> None:
    skipped = spec("sun", "02:10", "02:50", "Europe/Berlin")
    status = window_status([skipped], at("2026-03-28T12:00:00+00:00"))
    assert status.next_open == at("2026-04-05T00:10:00+00:00")


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                           timezones=st.just(UTC)),
       start=st.integers(0, 23 * 4), length=st.integers(1, 24 * 4 - 1),
       tz=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney",
                           "Asia/Kolkata", "UTC", "America/Santiago"]))
def test_next_open_is_really_the_next_open_moment(moment: datetime, start: int, length: int,
                                                  tz: str) -> None:
    """Property: when closed, the window is closed up to next_open and open just after it;
    when open, it is open up to closes_at and closed at it."""
    begin = time(start // 4, (start % 4) * 15)
    finish_minutes = (start * 15 + length * 15) % (24 * 60)
    finish = time(finish_minutes // 60, finish_minutes % 60)
    window = WindowSpec(days=frozenset(range(7)), start=begin, end=finish, timezone=tz)
    status = window_status([window], moment)
    step = timedelta(minutes=1)
    if status.open_now:
        if status.closes_at is not None:
            assert status.closes_at > moment
            assert window_status([window], status.closes_at - step).open_now
            assert not window_status([window], status.closes_at).open_now
    else:
        assert status.next_open is not None
        assert status.next_open > moment
        assert window_status([window], status.next_open).open_now
        assert not window_status([window], status.next_open - step).open_now
        assert status.next_open - moment <= timedelta(days=2)


# --- adjacency and 24:00 ---------------------------------------------------------------------


def test_adjacent_windows_make_one_period() -> None:
    windows = [spec("fri", "20:00", "24:00"), spec("sat", "00:00", "06:00"),
               spec("sat", "06:00", "07:00")]
    status = window_status(windows, at("2026-11-27T21:00:00+00:00"))
    assert status.open_now
    assert status.closes_at == at("2026-11-28T07:00:00+00:00")


def test_overlapping_windows_take_the_latest_end() -> None:
    windows = [spec("fri", "22:00", "23:00"), spec("fri", "21:00", "01:00")]
    status = window_status(windows, at("2026-11-27T22:30:00+00:00"))
    assert status.closes_at == at("2026-11-28T01:00:00+00:00")


def test_a_gap_of_one_minute_ends_the_period() -> None:
    windows = [spec("fri", "20:00", "23:59"), spec("sat", "00:00", "06:00")]
    status = window_status(windows, at("2026-11-27T21:00:00+00:00"))
    assert status.closes_at == at("2026-11-27T23:59:00+00:00")


def test_a_whole_week_of_windows_is_always_open() -> None:
    status = window_status([spec("daily", "00:00", "24:00", "Europe/Berlin")],
                           at("2026-03-29T01:30:00+00:00"))
    assert status.open_now
    assert status.closes_at is None
    assert "whole week" in status.describe()
    split = [spec("mon-thu", "00:00", "24:00"), spec("fri-sun", "00:00", "24:00")]
    assert window_status(split, at("2026-11-25T10:00:00+00:00")).closes_at is None


def test_24_00_ends_the_day() -> None:
    status = window_status([spec("wed", "18:00", "24:00")], at("2026-11-25T23:59:00+00:00"))
    assert status.open_now
    assert status.closes_at == at("2026-11-26T00:00:00+00:00")


# --- model validation of windows --------------------------------------------------------------


@pytest.mark.parametrize(("body", "fragment"), [
    ({"start": "25:00", "end": "01:00"}, "not a time of day"),
    ({"start": "10:60", "end": "11:00"}, "not a time of day"),
    ({"start": "24:30", "end": "01:00"}, "not a time of day"),
    ({"start": "24:00", "end": "02:00"}, "cannot start at 24:00"),
    ({"start": "10", "end": "11:00"}, "HH:MM"),
    ({"start": "10:00", "end": "10:00"}, "never be open"),
    ({"start": "10:00", "end": "11:00", "days": "funday"}, "not a weekday"),
    ({"start": "10:00", "end": "11:00", "days": []}, "no days"),
    ({"start": "10:00", "end": "11:00", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"start": "10:00", "end": "11:00", "timezone": "../../etc/passwd"}, "unknown time zone"),
    ({"start": "10:00", "end": "11:00", "zone": "UTC"}, "Extra inputs"),
])
def test_bad_windows_are_refused(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Window.model_validate(body)


@pytest.mark.parametrize(("days", "expected"), [
    ("daily", {0, 1, 2, 3, 4, 5, 6}),
    ("weekdays", {0, 1, 2, 3, 4}),
    ("weekends", {5, 6}),
    ("mon-fri", {0, 1, 2, 3, 4}),
    ("fri-mon", {4, 5, 6, 0}),         # ranges wrap around the week
    ("mon,wed", {0, 2}),
    (["Monday", "TUE", "thurs"], {0, 1, 3}),
    ("sun", {6}),
])
def test_parse_days(days: str | list[str], expected: set[int]) -> None:
    assert parse_days(days) == frozenset(expected)


@pytest.mark.parametrize("days", ["monkey", "mo", "", "mon-funday", [], ["tue", "x"]])
def test_parse_days_refuses_what_it_does_not_understand(days: str | list[str]) -> None:
    with pytest.raises(ValueError, match=r"weekday|no days"):
        parse_days(days)
