"""The range detector on synthetic series, and its ready observer without a server."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deucalion.detectors.nab import RangeDetector, RangeObserver
from deucalion.observer import handing_data


def _noisy(n: int, seed: int, level: float = 50.0, noise: float = 2.0) -> np.ndarray:
    return level + noise * np.random.default_rng(seed).standard_normal(n)


def _run(detector: RangeDetector, series: np.ndarray) -> np.ndarray:
    """Scores of each point of one or more series (columns), fed one time step at a time."""
    matrix = series.reshape(len(series), -1)
    return np.array([detector.update(row) for row in matrix])


def test_a_spike_is_detected_at_once_and_explained() -> None:
    """A spike far above a noisy level is the top score, at once, and named a record."""
    values = _noisy(1000, seed=1)
    values[700] = 90.0
    scores = _run(RangeDetector(), values)[:, 0]
    assert scores[700] > 0.9
    assert scores.argmax() == 700
    assert not (scores[701:] >= 0.5).any()  # quiet after the alert
    detector = RangeDetector()
    _run(detector, values[:701])
    why = detector.explain(0)
    assert why.component == "record"
    assert why.observed == 90.0
    assert why.expected_low < 50 < why.expected_high < 90


def test_a_level_shift_is_detected_at_its_start() -> None:
    """A drop of the level to a band never seen is detected within a few points of the shift."""
    values = _noisy(1200, seed=2)
    values[800:] -= 30.0
    scores = _run(RangeDetector(), values)[:, 0]
    alerts = np.flatnonzero(scores[800:] >= 0.5) + 800
    assert len(alerts) >= 1
    assert alerts[0] <= 803


def test_recent_component_sees_a_shift_inside_an_old_record_range() -> None:
    """After an early spike sets the record, a later shift out of the recent band still fires."""
    values = _noisy(2000, seed=3, noise=0.5)
    values[350] = 200.0  # an old record: nothing below 200 is a record after it
    values[1500:] += 20.0
    detector = RangeDetector()
    scores = _run(detector, values)[:, 0]
    late = np.flatnonzero(scores[1000:] >= 0.5) + 1000
    assert late.tolist()[:1] == [1500]
    fresh = RangeDetector()
    _run(fresh, values[:1501])
    assert fresh.explain(0).component == "recent"


def test_noisy_flat_series_stay_quiet() -> None:
    """Gaussian noise: only its rare new records alert, fewer and fewer as the series ages."""
    series = np.stack([_noisy(5000, seed=s) for s in range(20)], axis=1)
    alerts = _run(RangeDetector(), series) >= 0.5
    # A new record after n values comes with probability 1/n: ln(5000/576) = 2.2 expected.
    assert alerts.sum(axis=0).mean() <= 3.5
    assert alerts[-1000:].sum(axis=0).mean() <= 0.5


def test_record_step_factor_quiets_noise_but_not_a_spike() -> None:
    """With record_step_factor=2 noise records mostly pass unreported; a spike still alerts."""
    series = np.stack([_noisy(5000, seed=s) for s in range(20)], axis=1)
    plain = (_run(RangeDetector(), series) >= 0.5).sum()
    stepped = (_run(RangeDetector(record_step_factor=2), series) >= 0.5).sum()
    assert stepped * 3 < plain
    values = _noisy(3000, seed=5)
    values[2500] = 70.0
    scores = _run(RangeDetector(record_step_factor=2), values)[:, 0]
    assert scores[2500] >= 0.5


def test_scores_are_in_unit_interval_and_zero_during_warmup() -> None:
    """Scores stay in [0, 1], and are 0 for the first ``warmup`` values; no value, no score."""
    values = np.concatenate([_noisy(400, seed=4), [1e12, -1e12, math.nan, 7.0]])
    scores = _run(RangeDetector(warmup=50), values)[:, 0]
    assert math.isnan(scores[-2])
    scores = np.delete(scores, -2)
    assert np.all((scores >= 0) & (scores <= 1))
    assert not scores[:50].any()


def test_series_are_independent_and_may_be_added_or_missing() -> None:
    """A spike in one series leaves the others at 0; a NaN is no value; new series join."""
    detector = RangeDetector(warmup=10)
    for i in range(50):
        detector.update([1.0 + 0.01 * (i % 3), 5.0 + 0.1 * (i % 5)])
    scores = detector.update([1.0, math.nan, 3.0])
    assert scores[0] == 0.0 and math.isnan(scores[1]) and scores[2] == 0.0
    scores = detector.update([9.0, 5.1, 3.0])
    assert scores[0] > 0.5 and scores[1] == 0.0


def test_bad_options_are_clear_errors() -> None:
    """A window too short or a threshold outside (0, 1] is refused, saying what to give."""
    with pytest.raises(ValueError, match="window=1"):
        RangeDetector(window=1)
    with pytest.raises(ValueError, match="threshold=2"):
        RangeDetector(threshold=2)
    with pytest.raises(ValueError, match="record_step_factor=-1"):
        RangeDetector(record_step_factor=-1)


def _feed(
    observer: RangeObserver, cycle: int, data: dict[str, dict[str, dict[str, float]]]
) -> list[object]:
    """The alerts ``observer`` raises this cycle (not those it keeps firing: no score)."""
    with handing_data(1000.0 + 15 * cycle, {}):
        return [alert for alert in observer.new_data(data).alerts if alert.score is not None]


def test_observer_alerts_with_kind_expected_range_and_value() -> None:
    """A gauge spike gives one alert labelled by metric and series, annotated with why."""
    observer = RangeObserver({"queue_depth"}, warmup=20)
    target = "http://a:9100/metrics"
    for cycle in range(60):
        value = 40.0 + (cycle % 4)
        assert _feed(observer, cycle, {target: {"queue_depth": {'{q="x"}': value}}}) == []
    alerts = _feed(observer, 60, {target: {"queue_depth": {'{q="x"}': 400.0}}})
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.labels == {"metric": "queue_depth", "series": '{q="x"}'}  # type: ignore[attr-defined]
    notes = alert.annotations  # type: ignore[attr-defined]
    assert notes["kind"] == "record"
    assert notes["observed"] == "400"
    low, high = (float(v) for v in notes["expected_range"].split(" .. "))
    assert low < 40 and 43 < high < 400
    assert alert.target == target  # type: ignore[attr-defined]
    assert observer.scores()[(target, "queue_depth", '{q="x"}')] > 0.5


def test_observer_scores_counters_by_their_rate() -> None:
    """A counter growing steadily is quiet; a jump in its rate alerts; a reset does not."""
    observer = RangeObserver({"requests_total"}, warmup=20)
    total = 0.0
    fired = []
    for cycle in range(100):
        total = 0.0 if cycle == 50 else total + (10.0 + cycle % 3) * 15
        if cycle == 90:
            total += 100 * 15
        alerts = _feed(observer, cycle, {"t": {"requests_total": {"{}": total}}})
        fired += [cycle] * len(alerts)
    assert fired == [90]


def test_observer_forgets_series_absent_for_forget_after_calls() -> None:
    """Series that stop appearing are dropped from the detector; the others keep their state."""
    observer = RangeObserver({"g"}, warmup=5, forget_after=20)
    for cycle in range(30):
        series = {'{pod="a"}': 1.0 + cycle % 2, '{pod="b"}': 5.0 + cycle % 3}
        if cycle < 5:
            series['{pod="gone"}'] = 3.0
        _feed(observer, cycle, {"t": {"g": series}})
    assert set(observer.scores()) == {("t", "g", '{pod="a"}'), ("t", "g", '{pod="b"}')}
    assert observer.detector.n_series_ == 2
    alerts = _feed(observer, 30, {"t": {"g": {'{pod="a"}': 1.5, '{pod="b"}': 50.0}}})
    assert [a.labels["series"] for a in alerts] == ['{pod="b"}']  # type: ignore[attr-defined]


def test_a_record_within_the_resolution_is_not_an_anomaly() -> None:
    """Values that move in steps of 0.02: one step above the highest scores below the
    threshold with that resolution (and above it without); three steps are past it."""
    idle = [0.02, 0.04, 0.06, 0.04] * 10
    with_resolution, without = RangeDetector(warmup=20), RangeDetector(warmup=20)
    for value in idle:
        with_resolution.update([value], [0.02])
        without.update([value])
    assert without.update([0.08])[0] >= 0.5
    assert with_resolution.update([0.08], [0.02])[0] < 0.5
    assert with_resolution.update([0.14], [0.02])[0] >= 0.5


def test_observer_reads_a_counters_ticks_as_its_rates_resolution() -> None:
    """CPU seconds counted in ticks of 0.01 s, scraped every 0.5 s: idle moves 1 to 3 ticks a
    scrape, so a scrape of 4 ticks is quiet; a burn of 40 ticks alerts at once."""
    observer = RangeObserver({"process_cpu_seconds_total"}, warmup=20)
    total, fired = 100.0, []
    ticks = [1, 2, 3, 2] * 15 + [4] + [2] * 5 + [40]
    for cycle, tick in enumerate(ticks):
        total = round(total + 0.01 * tick, 2)
        with handing_data(1000.0 + 0.5 * cycle, {}):
            result = observer.new_data({"t": {"process_cpu_seconds_total": {"{}": total}}})
            alerts = list(result.alerts)
        fired += [tick] * len(alerts)
    assert fired == [40]
