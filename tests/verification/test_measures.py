"""Derivations from counters and histograms, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollwave.verification.exposition import Scrape, parse_exposition
from rollwave.verification.measures import (
    INF,
    MeasureSpec,
    count_above,
    error_ratio,
    histogram_quantile,
    increase,
    interval,
    intervals,
    quantile_ms,
    request_rate,
    totals,
    window_series,
)
from tests.verification.support import exposition

SPEC = MeasureSpec()
OK = ("/api/work", "200")
ERR = ("/api/work", "500")


def scrape(at: float, ok: float, err: float, *, start: float | None = 1000.0,
           buckets: dict[float, float] | None = None, extra: str = "") -> Scrape:
    text = exposition({OK: ok, ERR: err}, buckets={"/api/work": buckets} if buckets else None,
                      start=start, extra=extra)
    return parse_exposition(text, at=at)


# --- counters ---------------------------------------------------------------------------------


def test_increase_between_two_scrapes() -> None:
    assert increase({(("s", "1"),): 10.0}, {(("s", "1"),): 25.0}) == {(("s", "1"),): 15.0}


def test_a_dropped_counter_restarted_at_zero() -> None:
    assert increase({(): 150.0}, {(): 20.0}) == {(): 20.0}


def test_a_new_series_started_at_zero_and_a_vanished_one_adds_nothing() -> None:
    before = {(("status", "200"),): 10.0, (("status", "404"),): 3.0}
    after = {(("status", "200"),): 12.0, (("status", "500"),): 4.0}
    assert increase(before, after) == {(("status", "200"),): 2.0, (("status", "500"),): 4.0}


def test_a_restarted_process_resets_every_series_even_when_values_grew() -> None:
    assert increase({(): 2.0}, {(): 5.0}, restarted=True) == {(): 5.0}


def test_error_ratio_and_rate_over_a_window() -> None:
    scrapes = [scrape(0, 1000, 10), scrape(10, 1344, 166), scrape(20, 1344, 166)]
    window = totals(intervals(scrapes, SPEC))
    # 344 ok + 156 errors in the first interval, nothing in the second.
    assert window.requests == 500
    assert window.errors == 156
    assert error_ratio(window) == pytest.approx(0.312)
    assert window.span == 20
    assert request_rate(window) == pytest.approx(25.0)


def test_counter_reset_in_the_middle_of_the_window() -> None:
    scrapes = [scrape(0, 100, 10), scrape(5, 150, 12),
               # the process restarted: new start time, counters from zero
               scrape(10, 20, 1, start=2000.0), scrape(15, 40, 1, start=2000.0)]
    parts = intervals(scrapes, SPEC)
    assert [p.restarted for p in parts] == [False, True, False]
    window = totals(parts)
    assert window.requests == (50 + 2) + (20 + 1) + 20
    assert window.errors == 2 + 1
    assert window.restarts == 1


def test_counter_reset_without_a_start_time_is_seen_as_a_drop() -> None:
    scrapes = [scrape(0, 100, 10, start=None), scrape(5, 30, 2, start=None)]
    window = totals(intervals(scrapes, SPEC))
    assert (window.requests, window.errors, window.restarts) == (32, 2, 0)


def test_no_traffic_has_no_ratio_and_a_zero_rate() -> None:
    scrapes = [scrape(0, 10, 0), scrape(5, 10, 0)]
    window = totals(intervals(scrapes, SPEC))
    assert window.requests == 0
    assert error_ratio(window) is None
    assert request_rate(window) == 0.0
    assert quantile_ms(0.95, window, SPEC) is None


def test_empty_window_has_no_rate() -> None:
    assert request_rate(totals([])) is None


def test_excluded_routes_and_match_filters() -> None:
    text0 = exposition({OK: 0, ERR: 0, ("/health", "503"): 0, ("/metrics", "200"): 0})
    text1 = exposition({OK: 90, ERR: 10, ("/health", "503"): 50, ("/metrics", "200"): 3})
    a, b = parse_exposition(text0, at=0), parse_exposition(text1, at=5)
    default = interval(a, b, SPEC)
    assert (default.requests, default.errors) == (100, 10)
    everything = interval(a, b, MeasureSpec(exclude={}))
    assert (everything.requests, everything.errors) == (153, 60)
    health_only = interval(a, b, MeasureSpec(match={"route": "/health"}, exclude={}))
    assert (health_only.requests, health_only.errors) == (50, 50)


def test_other_metric_and_status_label_names() -> None:
    def text(ok: float, err: float) -> str:
        return (f'http_requests_total{{code="200",handler="/"}} {ok}\n'
                f'http_requests_total{{code="503",handler="/"}} {err}\n')

    spec = MeasureSpec(requests_metric="http_requests_total", status_label="code",
                       error_status="5..|429")
    part = interval(parse_exposition(text(0, 0)), parse_exposition(text(8, 2), at=1), spec)
    assert (part.requests, part.errors, part.status_labelled) == (10, 2, True)


# --- histograms -------------------------------------------------------------------------------

BUCKETS = {0.05: 0.0, 0.1: 50.0, 0.25: 90.0, 0.5: 100.0, INF: 100.0}


@pytest.mark.parametrize(("q", "expected"), [
    (0.5, 0.1),            # rank 50 ends the 0.1 bucket exactly
    (0.25, 0.075),         # rank 25: half way through (0.05, 0.1]
    (0.9, 0.25),
    (0.95, 0.375),         # rank 95: half way through (0.25, 0.5]
    (0.99, 0.475),         # rank 99: nine tenths through (0.25, 0.5]
    (1.0, 0.5),
])
def test_histogram_quantile_interpolates_like_promql(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.95, {0.1: 10.0, 0.2: 20.0, INF: 100.0}) == 0.2


def test_first_bucket_starts_at_zero() -> None:
    assert histogram_quantile(0.5, {0.1: 100.0, INF: 100.0}) == pytest.approx(0.05)


def test_quantile_edge_cases() -> None:
    assert histogram_quantile(0.5, {0.1: 5.0}) is None                     # no +Inf bucket
    assert histogram_quantile(0.5, {INF: 5.0}) is None                     # one bucket
    assert histogram_quantile(0.5, {0.1: 0.0, INF: 0.0}) is None           # no observations
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(-0.1, BUCKETS) == -math.inf
    assert histogram_quantile(1.5, BUCKETS) == math.inf
    assert histogram_quantile(math.nan, BUCKETS) is None
    assert histogram_quantile(0.5, {-1.0: 10.0, 0.0: 20.0, INF: 20.0}) == -1.0


def test_non_monotonic_buckets_are_made_monotonic() -> None:
    torn = {0.1: 60.0, 0.25: 50.0, INF: 100.0}
    assert histogram_quantile(0.55, torn) == histogram_quantile(0.55, {0.1: 60.0, 0.25: 60.0,
                                                                      INF: 100.0})


def test_bucket_deltas_with_a_bucket_missing_from_the_later_scrape() -> None:
    before = scrape(0, 0, 0, buckets={0.1: 10.0, 0.5: 20.0, INF: 20.0})
    after = scrape(5, 0, 0, buckets={0.1: 30.0, INF: 60.0})  # the 0.5 bucket is missing
    window = totals(intervals([before, after], SPEC))
    assert window.buckets == {0.1: 20.0, INF: 40.0}
    assert quantile_ms(0.5, window, SPEC) == pytest.approx(100.0)   # 20 of 40 below 0.1 s
    assert quantile_ms(0.95, window, SPEC) == pytest.approx(100.0)  # in +Inf: highest bound


def test_latency_in_milliseconds_from_bucket_deltas_across_routes() -> None:
    def text(a: float, b: float) -> str:
        rows = []
        for route, count in (("/a", a), ("/b", b)):
            rows += [f'demo_request_duration_seconds_bucket{{le="0.1",route="{route}"}} {count}',
                     f'demo_request_duration_seconds_bucket{{le="0.2",route="{route}"}} {count}',
                     f'demo_request_duration_seconds_bucket{{le="+Inf",route="{route}"}} {count}']
        return "\n".join(rows) + "\n"

    # 100 old observations per route before the window must not count.
    first, second = parse_exposition(text(100, 100)), parse_exposition(text(150, 150), at=5)
    window = totals(intervals([first, second], SPEC))
    assert window.buckets == {0.1: 100.0, 0.2: 100.0, INF: 100.0}
    assert quantile_ms(0.5, window, SPEC) == pytest.approx(50.0)
    assert quantile_ms(0.5, window, MeasureSpec(latency_scale=1.0)) == pytest.approx(0.05)


def test_count_above_matches_interpolation() -> None:
    assert count_above(0.375, BUCKETS) == pytest.approx((5.0, 100.0))
    assert count_above(0.05, BUCKETS) == pytest.approx((100.0, 100.0))
    assert count_above(0.0, BUCKETS) == pytest.approx((100.0, 100.0))
    assert count_above(0.5, BUCKETS) == (0.0, 100.0)       # at the highest finite bound
    assert count_above(0.1, {0.1: 0.0, INF: 0.0}) is None


@given(
    counts=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6),
    q=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    threshold=st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
)
def test_quantile_above_threshold_iff_share_above_exceeds_one_minus_q(
        counts: list[int], q: float, threshold: float) -> None:
    bounds = [0.1 * 2 ** i for i in range(len(counts))]
    cumulative, running = {}, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        cumulative[bound] = running
    cumulative[INF] = running + 1
    value = histogram_quantile(q, cumulative)
    above = count_above(threshold, cumulative)
    assert value is not None
    assert above is not None
    share = above[0] / above[1]
    if abs(value - threshold) > 1e-9 and abs(share - (1 - q)) > 1e-9:
        assert (value > threshold) == (share > 1 - q)


# --- time series --------------------------------------------------------------------------------


def test_window_series_has_one_point_per_interval() -> None:
    inf_bucket = {0.01: 0.0, 0.1: 0.0, INF: 0.0}
    scrapes = [
        scrape(0, 0, 0, buckets=inf_bucket),
        scrape(5, 45, 5, buckets={0.01: 50.0, 0.1: 50.0, INF: 50.0}),
        scrape(10, 45, 5, buckets={0.01: 50.0, 0.1: 50.0, INF: 50.0}),
        scrape(15, 75, 25, buckets={0.01: 50.0, 0.1: 100.0, INF: 100.0}),
    ]
    series = window_series(scrapes)
    assert set(series) == {"error_ratio", "p95_latency_ms", "p99_latency_ms", "request_rate"}
    assert [p.at for p in series["error_ratio"]] == [5, 10, 15]
    assert [p.value for p in series["error_ratio"]] == [pytest.approx(0.1), None,
                                                        pytest.approx(0.4)]
    assert [p.count for p in series["error_ratio"]] == [50, 0, 50]
    assert [p.value for p in series["request_rate"]] == [10.0, 0.0, 10.0]
    assert series["p95_latency_ms"][1].value is None
    assert series["p95_latency_ms"][2].value == pytest.approx(95.5)
    assert series["p95_latency_ms"][2].to_dict() == {"at": 15, "value": pytest.approx(95.5),
                                                     "count": 50.0}


def test_window_series_without_histogram_leaves_latency_out() -> None:
    series = window_series([scrape(0, 0, 0), scrape(5, 10, 0)])
    assert set(series) == {"error_ratio", "request_rate"}
    assert window_series([scrape(0, 0, 0)]) == {"error_ratio": (), "request_rate": ()}
