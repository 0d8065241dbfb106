"""Series: gaps and read errors apart, windows on the time grid."""

import math

import numpy as np
import pytest

from rollwave.analysis import Series, SeriesError
from rollwave.analysis.series import aligned_errors, aligned_totals


def test_of_keeps_gaps_and_errors_apart() -> None:
    s = Series.of([1.0, None, 3.0, 4.0], step=60, errors=[3])
    assert math.isnan(s.values[1])
    assert not s.errors[1]
    assert math.isnan(s.values[3])
    assert s.errors[3]
    assert s.readable().tolist() == [1.0, 3.0]
    assert s.readable_count == 2
    assert s.error_count == 1
    assert s.trailing_errors() == 1
    assert s.total() == 4.0


def test_window_is_half_open_on_the_grid() -> None:
    s = Series.of(range(10), start=100, step=10)
    w = s.window(120, 150)
    assert w.values.tolist() == [2.0, 3.0, 4.0]
    assert w.start == 120
    assert len(s.window(0, 100)) == 0
    assert len(s.window(150, 120)) == 0


def test_from_samples_buckets_and_marks_failed_reads() -> None:
    s = Series.from_samples([(0, 1.0), (65, 2.0), (70, 3.0)], start=0, end=240, step=60,
                            failed=[130])
    assert len(s) == 4
    assert s.values[1] == 3.0  # the last sample of a bucket wins
    assert s.errors[2]
    assert math.isnan(s.values[3])
    assert not s.errors[3]


def test_bad_step_is_an_error_with_a_hint() -> None:
    with pytest.raises(SeriesError) as err:
        Series(start=0, step=0, values=np.zeros(2), errors=np.zeros(2, dtype=bool))
    assert err.value.hint


def test_aligned_totals_drop_steps_missing_on_either_side() -> None:
    errors = Series.of([1, 2, None, 4])
    requests = Series.of([10, None, 30, 40])
    assert aligned_totals(errors, requests) == (5.0, 50.0)


def test_aligned_errors_counts_trailing_failures_of_any_series() -> None:
    a = Series.of([1, 2, 3, 4], errors=[3])
    b = Series.of([1, 2, 3, 4], errors=[2])
    assert aligned_errors(a, b) == (2, 2)
