"""AnomalyDetector at its default budget on anomalies a new user would call obvious, made the
way a user would make them (not with ``benchmarks.corpus``, and with other seeds): each kind
after a history of 2,000 points at 5-minute steps (a broken daily pattern after three days),
in Gaussian noise, a counter's rate in ticks, heavy-tailed noise or a daily pattern. Each is
found within 150 points in at least 9 of 10 series, at any scale; pure noise stays quiet."""

from __future__ import annotations

import numpy as np
import pytest

from deucalion.detectors import AnomalyDetector

STEP = 300.0
DAY = 288  # points a day at 5-minute steps
SERIES = 10
HISTORY = 2000
WITHIN = 150


def _noise(kind: str, rng: np.random.Generator, points: int) -> tuple[np.ndarray, float]:
    """Normal data of ``kind`` ([series, points]) and its standard deviation."""
    shape = (SERIES, points)
    if kind == "gaussian":
        return rng.standard_normal(shape), 1.0
    if kind == "heavy":  # Student's t, 3 degrees of freedom, scaled to a variance of 1
        return rng.standard_t(3, shape) / np.sqrt(3), 1.0
    if kind == "ticks":  # a counter's per-second rate, read in ticks of 0.01 s every 15 s
        return rng.poisson(5.0, shape) * 0.01 / 15, np.sqrt(5.0) * 0.01 / 15
    assert kind == "daily"  # a daily wave of 5 noise units, and Gaussian noise
    phase = rng.uniform(0, 2 * np.pi, (SERIES, 1))
    wave = 5 * np.sin(2 * np.pi * np.arange(points) / DAY + phase)
    return wave + rng.standard_normal(shape), 1.0


def _series(anomaly: str, noise: str, seed: int) -> tuple[np.ndarray, int]:
    """Ten series of ``noise`` with one ``anomaly`` each, and the point it starts at."""
    rng = np.random.default_rng(seed)
    start = 3 * DAY if anomaly == "seasonal" else HISTORY
    points = start + (DAY + 100 if anomaly == "seasonal" else 400)
    values, sd = _noise(noise, rng, points)
    sign = rng.choice([-1, 1], (SERIES, 1))
    after = np.arange(points - start)[None, :]
    if anomaly == "spike":
        values[:, start] += 10 * sd * sign[:, 0]
    elif anomaly == "level_shift":
        values[:, start:] += 5 * sd * sign
    elif anomaly == "variance":  # five times the standard deviation
        mean = values[:, :start].mean(axis=1, keepdims=True)
        values[:, start:] = mean + 5 * (values[:, start:] - mean)
    elif anomaly == "seasonal":  # the wave gone for a day, the values inside its range
        values[:, start : start + DAY] = rng.standard_normal((SERIES, DAY))
    elif anomaly == "stuck":
        values[:, start : start + 300] = values[:, start - 1 : start]
    else:
        assert anomaly == "trend"
        values[:, start:] += 0.05 * sd * sign * after
    if noise != "ticks":  # a user's units: any scale, any offset
        scale = 10.0 ** rng.uniform(-2, 5, (SERIES, 1))
        values = scale * (20 + values)
    return values, start


def _alerting(values: np.ndarray) -> np.ndarray:
    detector = AnomalyDetector()
    alerts = np.zeros(values.shape, dtype=bool)
    for i in range(values.shape[1]):
        detector.update(values[:, i], times=np.full(len(values), 1.7e9 + STEP * i))
        alerts[:, i] = detector.alerting_
    return alerts


@pytest.mark.parametrize(
    ("anomaly", "noise"),
    [
        ("spike", "gaussian"),
        ("spike", "ticks"),
        ("spike", "daily"),
        ("level_shift", "gaussian"),
        ("level_shift", "heavy"),
        ("level_shift", "ticks"),
        ("level_shift", "daily"),
        ("variance", "gaussian"),
        ("variance", "ticks"),
        ("seasonal", "daily"),
        ("stuck", "gaussian"),
        ("stuck", "heavy"),
        ("stuck", "ticks"),
        ("trend", "gaussian"),
        ("trend", "heavy"),
        ("trend", "ticks"),
        ("trend", "daily"),
    ],
)
def test_an_obvious_anomaly_is_found_soon(anomaly: str, noise: str) -> None:
    """A spike of 10 standard deviations, a level shift of 5, the standard deviation times 5,
    a daily wave gone for a day, a series frozen for 300 points, a slope of 0.05 standard
    deviations a point: at least 9 of 10 series alert within 150 points of the start."""
    values, start = _series(anomaly, noise, seed=2026 + 31 * len(anomaly) + len(noise))
    alerts = _alerting(values)
    found = alerts[:, start : start + WITHIN].any(axis=1).mean()
    assert found >= 0.9, f"found {found:.2f}"


@pytest.mark.parametrize("noise", ["gaussian", "heavy", "ticks", "daily"])
def test_pure_noise_stays_quiet(noise: str) -> None:
    """Ten series of 6,000 points of normal data: fewer false alerts than twice the budget
    (1 per series per 10,000 points) allows, heavy-tailed noise's young tails given twice
    that (they learn how heavy the noise is from its first far values)."""
    rng = np.random.default_rng(4048 + len(noise))
    values, _ = _noise(noise, rng, 6000)
    if noise != "ticks":
        values = 10.0 ** rng.uniform(-2, 5, (SERIES, 1)) * (20 + values)
    alerts = _alerting(values)
    per_10k = alerts.sum() / (SERIES * 6000) * 10_000
    assert per_10k <= (4.0 if noise == "heavy" else 2.0), f"{per_10k:.2f} per 10,000"
