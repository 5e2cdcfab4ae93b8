"""Defects in ``deucalion/detectors/anomaly.py`` found by following README's "Writing a
detector" and "Detection quality" as a new user, on synthetic series of one's own (seeds and
magnitudes of this file only). Each is marked as an expected failure (strict): the fix belongs
to the detector's owner, and turns its test green, which fails this file until the mark is
taken off."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from deucalion.detectors import AnomalyDetector, Explanation


def _alerts_after(history: np.ndarray, value: float) -> list:
    """The explained alerts of a detector that learned ``history`` (a row per series, 15 s
    apart), then saw ``value`` in every series."""
    detector = AnomalyDetector()
    for i in range(history.shape[1]):
        detector.update(history[:, i], times=15.0 * i)
    detector = copy.deepcopy(detector)
    detector.update(np.full(history.shape[0], value), times=15.0 * history.shape[1])
    return detector.alerts()


def test_a_spike_alert_s_observed_value_lies_outside_its_expected_band() -> None:
    """README: an alert explains itself with "observed" and "expected_range" ("The value is 8,
    expected -10.7 .. 10.19" was read, score 11.4). A value that alerted as a spike lies
    outside the band it is said to have been expected in."""
    history = np.random.default_rng(4100).normal(0.0, 1.0, (12, 1500))
    inside = total = 0
    for value in (6.0, 8.0, 10.0):
        for why in _alerts_after(history, value):
            total += 1
            inside += why.expected_low <= why.observed <= why.expected_high
    assert total >= 12
    assert inside == 0, f"{inside} of {total} alerts have their value inside the expected band"


def _first_kinds(shift: float, scale: float, seed: int) -> list[str]:
    """The kind of the first alert of each of 30 Gaussian series whose last 800 of 3,000
    points are shifted by ``shift`` and scaled by ``scale`` (None counted out)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, (30, 3000))
    values[:, 2200:] = values[:, 2200:] * scale + shift
    detector = AnomalyDetector()
    first: dict[int, str] = {}
    for i in range(values.shape[1]):
        detector.update(values[:, i], times=60.0 * i)
        if i >= 2200:
            for why in detector.alerts():
                first.setdefault(int(why.series), why.kind)
    return list(first.values())


def test_a_level_shift_s_first_alert_is_named_level_shift() -> None:
    """README's kinds: a `level_shift` is what a reader acts on when the level steps; its
    first alert used to be named for the slope the step makes at first (trend) as often as
    not. Most first alerts of a level shift carry its name."""
    level = _first_kinds(2.0, 1.0, 5502)
    assert level.count("level_shift") > len(level) / 2, level


def test_a_ramp_s_first_alert_is_named_trend() -> None:
    """README's kinds: a `trend` is a slope far from the usual; a ramp of 0.03 noise units
    per point used to be named for the level it had moved by the time it alerted
    (level_shift, 22 of 24 first alerts on the corpus' training seed). Most first alerts of
    a ramp carry its name, and their observed lies outside their band."""
    rng = np.random.default_rng(5503)
    values = rng.normal(0.0, 1.0, (30, 3000))
    values[:, 2200:] += rng.choice([-1.0, 1.0], (30, 1)) * 0.03 * np.arange(800)
    detector = AnomalyDetector()
    first: dict[int, Explanation] = {}
    for i in range(values.shape[1]):
        detector.update(values[:, i], times=60.0 * i)
        if i >= 2200:
            for why in detector.alerts():
                first.setdefault(int(why.series), why)
    kinds = [why.kind for why in first.values()]
    assert len(kinds) >= 20 and kinds.count("trend") > len(kinds) / 2, kinds
    for why in first.values():
        assert not why.expected_low <= why.observed <= why.expected_high, why


@pytest.mark.xfail(
    strict=True,
    reason="anomaly.py: a tripled variance's first alert is named spike (14 of 24 here; "
    "variance 4, level_shift 6): a spike after steps grown of late is now named variance "
    "(the evidence of grown steps), but 7 of these 24 first alerts come at the change's "
    "first, second or third point, where one large value is all there is and no rule can "
    "tell it from a spike, and 6 are named level_shift (past the threshold, persistent); "
    "so most cannot carry the name from the values up to the alert alone",
)
def test_a_tripled_variance_s_first_alert_is_named_variance() -> None:
    """README's kinds: a change of `variance` (steps much larger than usual); the alert's
    `kind` is what a reader acts on. Most first alerts of a tripled variance should carry
    its name."""
    variance = _first_kinds(0.0, 3.0, 5501)
    assert variance.count("variance") > len(variance) / 2, variance
