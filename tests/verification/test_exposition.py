"""Parsing a scrape into plain data."""

from __future__ import annotations

import pytest

from rollwave.errors import VerificationError
from rollwave.verification.exposition import ExpositionError, parse_exposition
from tests.verification.support import exposition


def test_samples_are_keyed_by_name_and_sorted_labels() -> None:
    text = exposition({("/api/work", "200"): 40, ("/api/work", "500"): 2},
                      buckets={"/api/work": {0.1: 30, float("inf"): 42}}, start=1234.5)
    scrape = parse_exposition(text, at=5.0)
    assert scrape.at == 5.0
    assert scrape.series("demo_requests_total") == {
        (("route", "/api/work"), ("status", "200")): 40.0,
        (("route", "/api/work"), ("status", "500")): 2.0,
    }
    assert scrape.series("demo_request_duration_seconds_bucket")[
        (("le", "+Inf"), ("route", "/api/work"))] == 42.0
    assert scrape.process_start == 1234.5


def test_declared_metric_without_samples_is_known_but_empty() -> None:
    scrape = parse_exposition(exposition())
    assert scrape.declares("demo_requests_total")
    assert scrape.declares("demo_request_duration_seconds_bucket")
    assert scrape.series("demo_requests_total") == {}
    assert not scrape.declares("http_requests_total")


def test_keep_filters_samples_but_not_declarations_or_start_time() -> None:
    text = exposition({("/api/work", "200"): 1}, extra="other_gauge 3\n")
    scrape = parse_exposition(text, keep={"other_gauge"})
    assert scrape.series("demo_requests_total") == {}
    assert scrape.declares("demo_requests_total")
    assert scrape.series("other_gauge") == {(): 3.0}
    assert scrape.process_start == 1000.0


def test_nan_samples_are_dropped() -> None:
    scrape = parse_exposition("a_gauge NaN\nb_gauge 2\n")
    assert scrape.series("a_gauge") == {}
    assert scrape.series("b_gauge") == {(): 2.0}


@pytest.mark.parametrize("text", ["<html><body>Hello</body></html>", "a b c", "x{ 1"])
def test_garbage_is_an_exposition_error(text: str) -> None:
    with pytest.raises(ExpositionError, match="not a Prometheus text exposition") as info:
        parse_exposition(text)
    assert isinstance(info.value, VerificationError)
    assert info.value.hint
