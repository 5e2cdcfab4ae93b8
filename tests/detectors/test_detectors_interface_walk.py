"""The README's one detector interface, used as a new user would from its words alone."""

from __future__ import annotations

import numpy as np
import pytest

from deucalion.detectors import AnomalyDetector, DetectorObserver
from deucalion.errors import UsageError, UsageTypeError


def _learned(detector: AnomalyDetector, keys: list[object]) -> None:
    noise = np.random.default_rng(11).normal(10.0, 1.0, (300, len(keys)))
    for i, row in enumerate(noise):
        detector.update({key: (60.0 * i, float(x)) for key, x in zip(keys, row, strict=True)})


@pytest.mark.parametrize("key", ["cpu", ("http://h:9100/metrics", "node_load1", "{}")])
def test_forget_given_one_key_forgets_that_series_not_the_parts_of_its_name(key: object) -> None:
    """README: `forget(keys)`. `forget("cpu")` iterated the string and forgot series "c", "p"
    and "u" (none), silently keeping "cpu"; so did an observer's (target, metric, series)."""
    detector = AnomalyDetector()
    _learned(detector, [key, "load"])
    detector.forget(key)  # type: ignore[arg-type]
    assert list(detector.rows_) == ["load"] and detector.n_series_ == 1
    with pytest.raises(KeyError):
        detector.explain(key)  # type: ignore[arg-type]
    detector.forget(["load", "never-seen"])
    assert detector.rows_ == {} and detector.n_series_ == 0


def test_a_large_step_alerts_once_on_its_first_point_as_a_spike() -> None:
    """README: a single large value is a `spike`, and so is a step large enough to alert on
    its first point (it said a step "is a `level_shift`", which a user stepping a series by 40
    noise units never saw): one alert, and the new level becomes the normal."""
    values = np.random.default_rng(4).normal(10.0, 1.0, 1500)
    values[1200:] += 40.0
    detector = AnomalyDetector()
    fired = []
    for i, x in enumerate(values):
        detector.update({"cpu": (60.0 * i, float(x))})
        fired += [(i, why.kind) for why in detector.alerts()]
    assert fired == [(1200, "spike")]


def test_explaining_a_key_it_does_not_hold_says_what_it_holds() -> None:
    """`explain("nope")` said only "holds no series 'nope'": a user who mistyped a key, or
    gave an observer's (target, metric, series) with the series written another way, was
    left to guess the keys."""
    detector = AnomalyDetector()
    with pytest.raises(KeyError, match="holds none yet: update it with that key first"):
        detector.explain("cpu")
    key = ("http://h:9100/metrics", "node_load1", "{}")
    detector.update({"cpu": (0.0, 1.0), "load": (0.0, 2.0), key: (0.0, 3.0)})
    with pytest.raises(KeyError, match=r"holds no series 'cpu '; did you mean 'cpu'\?"):
        detector.explain("cpu ")
    with pytest.raises(KeyError, match=r"did you mean \('http://h:9100/metrics', 'node_load1'"):
        detector.explain_quickly(("http://h:9100/metrics", "node_load1", ""))
    with pytest.raises(KeyError, match=r"'nope' \(it holds 3: 'cpu', 'load', \("):
        detector.explain("nope")


def test_a_key_it_does_not_hold_never_quotes_a_target_s_secret() -> None:
    """The keys named back (the one asked for, the closest held) may quote a target's URL:
    its token shows as ***."""
    detector = AnomalyDetector()
    held = ("http://h:9100/metrics?token=s3cr3t", "node_load1", "{}")
    detector.update({held: (0.0, 1.0)})
    with pytest.raises(KeyError) as raised:
        detector.explain(("http://h:9100/metrics?token=s3cr3t", "node_load1", ""))
    assert "s3cr3t" not in str(raised.value) and "token=***" in str(raised.value)


def _first_alert_of_a_huge_value(values: np.ndarray) -> int:
    """The first index at which a value of 1,000 placed there alerts."""
    for at in range(len(values)):
        detector = AnomalyDetector()
        for i, x in enumerate(values[: at + 1]):
            detector.update({"a": (60.0 * i, 1000.0 if i == at else float(x))})
        if detector.alerts():
            return at
    raise AssertionError("never")


def test_warm_up_counts_30_values_from_the_first_move() -> None:
    """README said "a series is scored from its 30th value"; a huge 30th or 31st value of a
    noisy series did not alert (the series starts over at its first move, its second value),
    its 32nd did. A series still for 5 values starts over at its move, unscored."""
    noise = np.random.default_rng(1).normal(10.0, 1.0, 40)
    assert _first_alert_of_a_huge_value(noise) == 31  # its 32nd value
    still_then_noise = noise.copy()
    still_then_noise[:5] = 10.0
    assert _first_alert_of_a_huge_value(still_then_noise) == 35  # 30 values after its move


@pytest.mark.parametrize("metrics", [{"node_load1"}, "node_load1", ["a", "b"]])
def test_metric_names_given_as_the_detector_are_refused_saying_how_to_name_them(
    metrics: object,
) -> None:
    """`DetectorObserver({"node_load1"})` (the first argument is the detector) said "desires
    no metrics: pass the metric names its model needs to super().__init__(desired_metrics)",
    words for a subclass's author about a call the user never wrote."""
    with pytest.raises(UsageTypeError, match=r"given as the detector.*DetectorObserver\(desired_m"):
        DetectorObserver(metrics)  # type: ignore[arg-type]


def test_no_metrics_at_all_says_how_to_name_them() -> None:
    with pytest.raises(UsageError) as refused:
        DetectorObserver()
    assert "DetectorObserver(desired_metrics={'node_load1'})" in str(refused.value)
    assert "super().__init__" not in str(refused.value)
    # An iterator of names is read once, and kept.
    assert DetectorObserver(desired_metrics=iter(["x_total"])).desired_metrics == {"x_total"}


def test_a_budget_and_a_threshold_together_are_refused() -> None:
    """`DetectorObserver(desired_metrics=..., budget=0.5, threshold=5)` kept threshold 5 and
    dropped the budget without a word."""
    with pytest.raises(ValueError, match=r"budget=0.5 and threshold=5 both set .*: give one"):
        DetectorObserver(desired_metrics={"x"}, budget=0.5, threshold=5)
    assert DetectorObserver(desired_metrics={"x"}, budget=0.5).detector.threshold > 4.0


def test_update_takes_the_times_a_dataframe_s_rows_give() -> None:
    """`for t, row in frame.iterrows(): detector.update({"cpu": (t, row.cpu)})`: a pandas
    Timestamp (or a datetime, an ISO 8601 string) was refused as "not numbers", where
    score_series takes them all. The same points, timed either way, score the same."""
    import datetime as dt

    import pandas as pd

    values = np.random.default_rng(8).normal(10.0, 1.0, 400)
    values[350] = 40.0
    index = pd.date_range("2026-01-01", periods=400, freq="15s", tz="UTC")
    by_seconds, by_times = AnomalyDetector(), AnomalyDetector()
    forms = [lambda t: t, lambda t: t.to_pydatetime(), lambda t: t.isoformat()]
    fired = []
    for i, (when, x) in enumerate(zip(index, values, strict=True)):
        one = by_seconds.update({"cpu": (when.timestamp(), float(x))})
        other = by_times.update({"cpu": (forms[i % 3](when), x)})
        assert one == other
        fired += [(i, why.time) for why in by_times.alerts()]
    assert fired == [(350, index[350].timestamp())]
    by_times.update({"cpu": (dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.UTC), None)})
    with pytest.raises(ValueError, match=r"the time in Unix seconds .* a datetime .* ISO 8601"):
        by_times.update({"cpu": ("yesterday", 1.0)})
