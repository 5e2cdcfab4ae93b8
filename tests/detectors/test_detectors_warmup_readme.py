"""What README says a score is during an online detector's warm-up, checked on the
detectors: 0, not NaN; ``RangeDetector`` from its 577th value (a new user saw a spike of 20
standard deviations at the 250th score 0, and README said nothing of its warm-up)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from deucalion.detectors import AnomalyDetector, RangeDetector

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _spike_scores(detector: RangeDetector | AnomalyDetector, at: int, n: int = 600) -> np.ndarray:
    values = np.random.default_rng(7).normal(20.0, 2.0, n)
    values[at] = 20.0 + 20 * 2.0  # 20 standard deviations
    return np.asarray(detector.score_series(values))


def test_range_detector_scores_from_its_577th_value_as_readme_says() -> None:
    readme = _flat(README)
    assert "so it scores from the 577th value" in readme
    assert "a spike of 20 standard deviations at the 250th value too" in readme
    assert RangeDetector().warmup == 576
    at_250 = _spike_scores(RangeDetector(), 249)
    assert at_250[249] == 0.0 and not np.isnan(at_250[:576]).any()
    assert _spike_scores(RangeDetector(), 575)[575] == 0.0  # the 576th value: still learning
    assert _spike_scores(RangeDetector(), 576)[576] >= 0.5  # the 577th: scored, and alerts
    assert _spike_scores(RangeDetector(warmup=100), 249)[249] >= 0.5  # README's way out


def test_an_online_detector_scores_0_not_nan_in_warm_up_as_readme_says() -> None:
    readme = _flat(README)
    assert "Until then its score is 0, not NaN (NaN is only for a point without a value)" in readme
    assert "While a series warms up they score it 0, not NaN" in readme
    for detector in (AnomalyDetector(), RangeDetector()):
        scores = detector.score_series([1.0, 3.0, math.nan, 2.0, 50.0])
        assert scores[2] != scores[2]  # no value: NaN
        assert [scores[i] for i in (0, 1, 3, 4)] == [0.0] * 4, type(detector).__name__
