"""AnomalyDetector's runs of repeats (``stuck``): a young series' coincidental repeats are no
run, and a run's alert counts its points."""

from __future__ import annotations

import numpy as np
import pytest

from deucalion.detectors import AnomalyDetector


def _stuck_series(detector: AnomalyDetector, values: np.ndarray) -> set[int]:
    """Feed ``values`` ([points, series]) a minute apart; return the series alerting stuck."""
    stuck: set[int] = set()
    for i, row in enumerate(values):
        detector.update(row, times=np.full(len(row), 1.78e9 + 60.0 * i))
        stuck |= {int(why.series) for why in detector.alerts() if why.kind == "stuck"}
    return stuck


@pytest.mark.parametrize("budget", [10.0, 30.0])
def test_a_young_count_s_first_repeat_is_no_stuck_alert(budget: float) -> None:
    """Counts of sd 14 (Poisson, mean 200) repeat their value at about 3 % of their points: a
    young series' first repeat is no run. Its chain's prior counted for nothing, the chain's
    start rate was 0 until then and the repeat scored 3.1: at budget 10, 21 of 40 series
    alerted ``stuck`` in their first 400 points."""
    rng = np.random.default_rng(4)
    counts = rng.poisson(200, size=(400, 40)).astype(float)
    stuck = _stuck_series(AnomalyDetector(budget=budget), counts)
    assert len(stuck) <= 2, f"{len(stuck)} of 40 series alerted stuck"


def test_counts_after_a_still_start_repeat_without_alerting() -> None:
    """A series still for 100 points, then counts (Poisson, mean 20: a value repeats at about
    6 % of the points). The first move starts the series over; it had set the chance that a
    run goes on to 0, and each repeat of a run of two or three cost two decades: 4 of 40
    alerted ``stuck`` at budget 1."""
    rng = np.random.default_rng(4)
    counts = rng.poisson(20, size=(1100, 40)).astype(float)
    counts[:100] = 20.0
    stuck = _stuck_series(AnomalyDetector(), counts)
    assert len(stuck) <= 1, f"{len(stuck)} of 40 series alerted stuck"


def test_a_stuck_alert_counts_the_points_at_the_value() -> None:
    """A series frozen at its last value alerts ``stuck``, observing the points at one value
    (the last ordinary point and the repeats after it), against a band of runs from one point
    (no repeat) to the longest that would not alert. Counted in repeats, nine equal points read
    "the run of points at one value is 8, expected 0 .. 7"."""
    rng = np.random.default_rng(8)
    series = 20
    values = 100 + 5 * rng.normal(size=(1100, series))
    values[1000:] = values[999]
    detector = AnomalyDetector()
    right = found = 0
    for i, row in enumerate(values):
        detector.update(row, times=np.full(series, 1.78e9 + 60.0 * i))
        for why in detector.alerts():
            if i >= 1000 and why.kind == "stuck":
                found += 1
                points = i - 998  # 999 .. i
                band = (why.expected_low, why.expected_high)
                right += why.observed == points and band[0] == 1 and band[1] < points
    assert found >= 0.8 * series and right == found, (found, right)
