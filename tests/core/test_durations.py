"""Durations as people write them, and their short human form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from rollwave.core.durations import MAX_SECONDS, Duration, format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25),
    ("1.5h", 5400), ("1h 30m", 5400), (" 45s ", 45), ("90", 90), ("0", 0), (0, 0),
    (45, 45), (2.5, 2.5), ("1d2h3m4s5ms", 93784.005), ("366d", MAX_SECONDS),
])
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "fragment"), [
    ("", "empty"), ("   ", "empty"), ("5x", "not a duration"), ("m5", "not a duration"),
    ("5m30", "not a duration"), ("-5s", "not a duration"), (-1, "negative"),
    (True, "number of seconds"), (None, "number of seconds"), ([1], "number of seconds"),
    (math.nan, "NaN"), (math.inf, "longer than a year"), ("367d", "longer than a year"),
    ("9" * 400, "longer than a year"), ("9" * 400 + "d", "longer than a year"),
    ("1e3s", "not a duration"), ("PT5M", "not a duration"),
])
def test_parse_refuses(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_duration(value)


def test_error_messages_do_not_echo_huge_input() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("x" * 100_000)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.25, "250ms"), (0.0001, "1ms"), (0.9996, "1s"), (1, "1s"), (59.6, "1m"),
    (90, "1m30s"), (3600, "1h"), (5400, "1h30m"), (86400 * 2 + 5, "2d5s"), (-90, "-1m30s"),
])
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=int(MAX_SECONDS)))
def test_format_then_parse_round_trips_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


class _Model(BaseModel):
    bake: Duration = 0.0


def test_pydantic_field_accepts_text_and_serialises_it_back() -> None:
    model = _Model.model_validate({"bake": "1h30m"})
    assert model.bake == 5400
    assert model.model_dump(mode="json") == {"bake": "1h30m"}
    with pytest.raises(ValidationError, match="not a duration"):
        _Model.model_validate({"bake": "soon"})
