"""`new_data` called by hand: with `deucalion.data_at(t)` the data is as of `t`; without it,
the ready observer's consecutive calls are one second apart, never the microseconds between
two calls of a loop."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

import deucalion as dc
from deucalion.detectors import DetectorObserver, RangeDetector, RobustZScore

URL = "http://app:8080/metrics"
KEY = (URL, "requests_total", "{}")


def test_a_steady_counter_by_hand_is_a_steady_rate_per_call() -> None:
    """A counter rising exactly 15 per call, by hand, was stamped with the wall clock: its
    rate was 15 over the microseconds between two calls, and it alerted as a "level shift
    ... 19211.4" per second. Consecutive calls are one second apart: 15 per second, quiet."""
    observer = DetectorObserver(desired_metrics={"requests_total"})
    alerts = []
    for i in range(400):
        alerts += observer.new_data({URL: {"requests_total": {"{}": 15.0 * i}}}).alerts
    assert alerts == []
    # the observer's own clock: 0 at the first call, a second per call since
    assert observer.detector.explain(KEY).time == 399.0
    rates = DetectorObserver(RangeDetector(), {"requests_total"})  # explains by the rate
    for i in range(3):
        rates.new_data({URL: {"requests_total": {"{}": 15.0 * i}}})
    assert rates.detector.explain(KEY).observed == 15.0


def test_calls_by_hand_then_a_replay_with_data_at_lose_no_row() -> None:
    """A few calls by hand (trying the observer out), then last month's rows with data_at,
    then by hand again: every row is scored. (Stamped from the wall clock, the calls by hand
    were later than every row of the replay, and each row was dropped as late.)"""
    observer = DetectorObserver(desired_metrics={"g"})
    for i in range(5):
        observer.new_data({URL: {"g": {"{}": float(i)}}})
    start = 1767225600.0
    for i in range(40):
        with dc.data_at(start + 60.0 * i):
            scores = observer.new_data({URL: {"g": {"{}": float(i % 3)}}}).scores
        assert len(scores) == 1 and scores[0].score == scores[0].score  # scored, not NaN
    observer.new_data({URL: {"g": {"{}": 1.0}}})
    assert observer.detector.explain((URL, "g", "{}")).time == start + 60.0 * 39 + 1.0


def test_a_window_detector_by_hand_sees_points_a_second_apart() -> None:
    observer = DetectorObserver(RobustZScore(), {"g"})
    for i in range(5):
        observer.new_data({URL: {"g": {"{}": float(i)}}})
    times = observer.window.block("g").times[0]
    assert list(np.diff(times)) == [1.0] * 4


def test_data_at_hands_data_as_of_its_time() -> None:
    """README: `with dc.data_at(t): observer.new_data(data)`; the counter's rate is per
    second of those times (15 per 15 s), not per call."""
    observer = DetectorObserver(RangeDetector(), {"requests_total"})
    start = 1767225600.0
    for i in range(50):
        with dc.data_at(start + 15.0 * i):
            assert dc.data_time() == dc.data_time(URL) == start + 15.0 * i
            observer.new_data({URL: {"requests_total": {"{}": 15.0 * i}}})
    why = observer.detector.explain(KEY)
    assert (why.time, why.observed) == (start + 15.0 * 49, 1.0)
    with pytest.raises(RuntimeError):
        dc.data_time()  # only while data is handed


def test_data_at_takes_datetimes_and_per_target_times() -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with dc.data_at(when, {URL: "2026-01-01T00:00:05Z", "http://b/m": dt.datetime(2026, 1, 1)}):
        assert dc.data_time() == 1767225600.0
        assert dc.data_time(URL) == 1767225605.0
        assert dc.data_times()["http://b/m"] == 1767225600.0  # naive: UTC


@pytest.mark.parametrize("when", ["yesterday", None, math.nan, True])
def test_data_at_refuses_what_is_not_a_time(when: object) -> None:
    refused = pytest.raises(ValueError, match=r"data_at: time=.* is not a time: give Unix seconds")
    with refused, dc.data_at(when):  # type: ignore[arg-type]
        pass


def test_data_at_is_public() -> None:
    assert "data_at" in dc.__all__ and dc.data_at is dc.observer.data_at
