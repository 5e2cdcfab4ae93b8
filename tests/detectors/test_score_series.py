"""The notebook helper, as README's "Writing a detector" offers it: `score_series(values)` of
one series, every point's score, from a list, a NumPy array or a pandas Series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from deucalion.detectors import AnomalyDetector, RangeDetector


def _noise(seed: int, n: int, level: float = 10.0, spread: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(level, spread, n)


def test_a_second_series_scored_by_the_same_detector_is_scored_as_a_new_one() -> None:
    """One detector, two series in turn (the natural notebook loop): the second was fed on top
    of the first's state (its largest score at its first point, 15 instead of at its spike)."""
    first = _noise(1, 1500)
    second = _noise(2, 1500, level=1000.0, spread=50.0)
    second[1200] = 2000.0
    for kind in (AnomalyDetector, RangeDetector):
        detector = kind()
        detector.score_series(first)
        again = detector.score_series(second)
        alone = kind().score_series(second)
        np.testing.assert_allclose(again, alone)
        assert int(np.nanargmax(again)) == 1200, kind


def test_a_pandas_series_gives_a_series_on_its_index_timed_by_it() -> None:
    """A Series with a DatetimeIndex: the scores come back on that index (to plot or join),
    and the index is the data's time, as passing it as times= does."""
    index = pd.date_range("2026-01-01", periods=1500, freq="15s", tz="UTC")
    values = _noise(3, 1500)
    values[1300] = 40.0
    scores = AnomalyDetector().score_series(pd.Series(values, index=index, name="cpu"))
    assert isinstance(scores, pd.Series)
    assert scores.index.equals(index) and scores.name == "cpu"
    assert scores.idxmax() == index[1300]
    timed = AnomalyDetector().score_series(values, times=index)
    np.testing.assert_allclose(scores.to_numpy(), timed)
    naive = pd.Series(values, index=index.tz_localize(None))  # naive times are UTC
    np.testing.assert_allclose(AnomalyDetector().score_series(naive).to_numpy(), timed)


def test_nan_constant_and_short_series_never_raise() -> None:
    with_gaps = [math.nan, 1.0, 2.0, math.nan, 3.0] * 20
    scores = AnomalyDetector().score_series(with_gaps)
    assert len(scores) == 100 and math.isnan(scores[0]) and math.isnan(scores[3])
    assert list(AnomalyDetector().score_series([5.0] * 300)) == [0.0] * 300
    assert len(AnomalyDetector().score_series([1.0, 2.0])) == 2
    assert len(AnomalyDetector().score_series([])) == 0


def test_a_counter_is_scored_as_its_rate_with_a_restart_no_alert() -> None:
    """A `_total` counter as a user exports it from Prometheus: its raw values climb, and
    scored raw a burst of 20 times its rate barely moved them (4, under the threshold);
    `counter=True` scores the rate, as DetectorObserver does, and a restart is no score."""
    rng = np.random.default_rng(5)
    per_step = rng.poisson(3, 3000).astype(float)
    per_step[2500:2520] += 60
    counter = np.cumsum(per_step)
    counter[1000:] -= counter[999]  # the service restarted
    times = np.arange(3000) * 15.0
    detector = AnomalyDetector()
    scores = detector.score_series(counter, times, counter=True)
    assert math.isnan(scores[0]) and math.isnan(scores[1000])
    assert np.nanmax(scores[:2500]) < detector.threshold
    assert 2500 <= int(np.nanargmax(scores)) < 2520 and np.nanmax(scores) > detector.threshold


def test_the_ready_observers_threshold_is_its_online_detectors() -> None:
    """DetectorObserver(threshold=X) with the default AnomalyDetector: X was kept for window
    detectors only and silently ignored, so a threshold chosen by a NAB sweep changed nothing."""
    from deucalion.detectors import DetectorObserver
    from deucalion.observer import handing_data

    def alerts(threshold: float | None) -> list[float]:
        observer = DetectorObserver(desired_metrics={"queue_depth"}, threshold=threshold)
        rng = np.random.default_rng(6)
        fired: list[float] = []
        for cycle in range(500):
            value = 400.0 if cycle == 450 else 40.0 + rng.normal()
            with handing_data(1000.0 + 15 * cycle, {}):
                result = observer.new_data({"http://a/metrics": {"queue_depth": {"{}": value}}})
            # Raised this cycle (those kept firing after it carry no score).
            fired += [float(alert.score) for alert in result.alerts if alert.score is not None]
        return fired

    (score,) = alerts(None)
    assert alerts(score + 1) == []


def test_a_table_is_refused_and_its_columns_are_scored_one_by_one() -> None:
    """A DataFrame of several series was flattened into one and scored as that; it is refused
    saying how, and `frame.apply(detector.score_series)` scores each column as its own."""
    import pytest

    index = pd.date_range("2026-01-01", periods=1200, freq="5min")
    a, b = _noise(7, 1200), _noise(8, 1200, level=500.0, spread=20.0)
    b[1100] = 900.0
    frame = pd.DataFrame({"a": a, "b": b}, index=index)
    detector = AnomalyDetector()
    with pytest.raises(ValueError, match="one series"):
        detector.score_series(frame)
    scores = frame.apply(detector.score_series)
    assert scores["b"].idxmax() == index[1100]
    np.testing.assert_allclose(scores["b"].to_numpy(), AnomalyDetector().score_series(b, index))


def test_times_as_iso_strings_as_a_csv_holds_them() -> None:
    """`score_series(values, times=df["timestamp"])` of a CSV read without parse_dates:
    ISO 8601 strings raised "could not convert string to float"; they are times, and a
    string that is no time is named."""
    import pytest

    index = pd.date_range("2026-01-01", periods=600, freq="1min", tz="UTC")
    values = _noise(4, 600)
    by_index = AnomalyDetector().score_series(values, times=index)
    as_text = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in index]
    np.testing.assert_allclose(AnomalyDetector().score_series(values, times=as_text), by_index)
    with pytest.raises(ValueError, match="'yesterday' is neither seconds nor ISO 8601"):
        AnomalyDetector().score_series(values[:2], times=["yesterday", "today"])
