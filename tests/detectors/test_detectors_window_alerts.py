"""The ready observer's alerts with a window detector: README says they carry `kind`,
`observed` and `expected_range`, as the default detector's do; they carried only "... is
anomalous" and "score ... above 6 for 1 cycles"."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deucalion.alerting import Alert
from deucalion.detectors import (
    Detector,
    DetectorObserver,
    EWMAZScore,
    RobustZScore,
    SeasonalBaseline,
    Threshold,
)
from deucalion.observer import handing_data

URL = "http://h:1/metrics"


def _alerts(observer: DetectorObserver, values: Any, step: float = 15.0) -> list[Alert]:
    """The alerts raised (not those kept firing after: keep_firing_for) over ``values``."""
    alerts: list[Alert] = []
    for i, x in enumerate(values):
        with handing_data(1767225600.0 + step * i, {}):
            result = observer.new_data({URL: {"g": {"{}": float(x)}}})
        alerts += [alert for alert in result.alerts if alert.score is not None]
    return alerts


def _noise(n: int) -> np.ndarray:
    return 10.0 + np.random.default_rng(3).normal(size=n)


@pytest.mark.parametrize(
    ("detector", "options"),
    [(RobustZScore(), {}), (EWMAZScore(), {}), (RobustZScore(), {"threshold": 4.0})],
    ids=["RobustZScore", "EWMAZScore", "RobustZScore at 4"],
)
def test_a_z_score_alert_says_what_was_observed_and_expected(
    detector: Detector, options: dict[str, Any]
) -> None:
    values = _noise(200)
    values[150] = 30.0
    observer = DetectorObserver(detector, {"g"}, for_cycles=1, **options)
    (alert,) = _alerts(observer, values)
    notes = alert.annotations
    threshold = options.get("threshold", 6.0)
    assert notes["kind"] == "score" and notes["observed"] == "30"
    low, high = (float(x) for x in notes["expected_range"].split(" .. "))
    assert 0 < low < 10 < high < 20  # about the median give or take `threshold` scales
    assert notes["summary"] == f"g on {URL} is anomalous"
    assert notes["description"].startswith(f"g on {URL} is anomalous. The value is 30, expected")
    assert f"above {threshold:g} for 1 cycles" in notes["description"]
    assert type(detector).__name__ in notes["description"]
    assert float(notes["score"]) == pytest.approx(alert.score, rel=1e-5)
    assert alert.score is not None and alert.score > threshold
    # the band is the detector's: its edges score the threshold exactly
    z = (30 - (low + high) / 2) / ((high - low) / 2) * threshold
    assert z == pytest.approx(alert.score, rel=1e-4)


def test_a_threshold_alert_gives_its_bound_open_on_the_other_side() -> None:
    """`Threshold(above=20)` on 25: the bound, not the window's range."""
    values = np.array([1.0, 2.0, 3.0, 25.0])
    (alert,) = _alerts(DetectorObserver(Threshold(above=20), {"g"}, for_cycles=1), values)
    assert alert.annotations["expected_range"] == "-inf .. 20"
    assert alert.annotations["description"] == (
        f"g on {URL} is anomalous. The value is 25, expected at most 20 "
        "(score 5 above 0 for 1 cycles; Threshold)."
    )
    (alert,) = _alerts(DetectorObserver(Threshold(below=5), {"g"}, for_cycles=1), [9, 8, 1])
    assert "expected at least 5 (score 4 above 0" in alert.annotations["description"]


def test_a_seasonal_alert_is_against_the_value_a_period_ago() -> None:
    period = 40
    values = 10 + 5 * np.sin(2 * np.pi * np.arange(3 * period) / period) + _noise(3 * period) / 50
    values[-1] += 8
    detector = SeasonalBaseline(period=period * 15.0)
    observer = DetectorObserver(detector, {"g"}, for_cycles=1, points=200)
    (alert,) = _alerts(observer, values)
    low, high = (float(x) for x in alert.annotations["expected_range"].split(" .. "))
    assert low < values[-1 - period] < high < values[-1]


def test_a_held_alert_counts_its_cycles_in_the_description() -> None:
    values = _noise(200)
    values[150:153] = 30.0
    alerts = _alerts(DetectorObserver(RobustZScore(), {"g"}, for_cycles=3), values)
    assert [a.annotations["description"].split(" for ")[-1] for a in alerts] == [
        "3 cycles; RobustZScore)."
    ]
