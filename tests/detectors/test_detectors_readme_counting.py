"""README's word on what a user counts: the budget counts alert starts (``alerts()``), not
points at the threshold, and says so."""

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
