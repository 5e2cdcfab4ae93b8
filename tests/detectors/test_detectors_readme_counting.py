"""README's word on what a user counts: the budget counts alert starts (``alerts()``), not
points at the threshold, and says so; a counter fed to an online detector by a loop of one's
own goes through the public ``deucalion.history.CounterRates``, as README shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deucalion.detectors import AnomalyDetector

README = (Path(__file__).parent.parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_budget_counts_alert_starts_and_readme_says_so() -> None:
    """At budget 10 in Gaussian noise the alert starts (entries of ``alerts()``) keep the
    budget, while the points scoring at the threshold or more are many more (an episode
    scores high for several points): README's "One budget." and ``score_series`` say which
    one the budget counts (a user counting points saw about twice it, and nothing said why)."""
    rng = np.random.default_rng(2601)
    series, points = 40, 3000
    values = rng.normal(size=(points, series))
    detector = AnomalyDetector(budget=10)
    starts = at_threshold = 0
    for i, row in enumerate(values):
        scores = detector.update(row, times=np.full(series, 1.78e9 + 60.0 * i))
        starts += len(detector.alerts())
        at_threshold += int((scores >= detector.threshold).sum())
    per_10k = starts / (series * points) * 10_000
    assert per_10k <= 2 * 10, per_10k
    assert at_threshold >= 1.3 * starts, (at_threshold, starts)
    budget = README.split("**One budget.**", 1)[1].split("\n\n", 1)[0]
    assert "alert starts" in budget and "`alerts()`" in budget, budget[:400]
    notebook = README.split("`score_series(values, times=None)` complete it", 1)[1][:1200]
    assert "no\nalerts" in notebook or "no alerts" in notebook, notebook


def test_a_counter_fed_by_hand_scores_as_score_series_scores_it() -> None:
    """README: a loop of one's own hands ``update`` a counter's rate from
    ``deucalion.history.CounterRates`` (``rate, step = rates.update(key, t, total)``), as
    ``DetectorObserver`` and ``score_series(counter=True)`` do; it was named in README but
    only importable from an internal module. Its scores are ``score_series``'s, and a
    restart scores NaN, no alert."""
    from deucalion.history import CounterRates

    rng = np.random.default_rng(2602)
    times = 1.78e9 + 15.0 * np.arange(1500)
    totals = np.cumsum(rng.poisson(150, 1500)).astype(float)
    totals[1000:] -= totals[999]  # a restart: counted from 0 again
    rates, detector = CounterRates(), AnomalyDetector()
    by_hand = []
    for t, total in zip(times, totals, strict=True):
        rate, step = rates.update("reqs", t, total)
        by_hand.append(detector.update({"reqs": (t, rate)}, {"reqs": step})["reqs"])
        assert not detector.alerts()
    expected = AnomalyDetector().score_series(totals, times, counter=True)
    np.testing.assert_array_equal(np.array(by_hand), expected)
    assert np.isnan(by_hand[1000])
