"""Detectors: windows of series in, one anomaly score per series out; and ready observers.

- ``Detector``: the interface. ``score(block)`` takes a ``deucalion.history.Block`` (series
  of one metric over a window) and returns a float64 array, one score per series: 0 or more,
  larger is more anomalous, NaN when it cannot tell. ``threshold`` is the score past which its
  ready observer alerts by default. Write your own by subclassing it.
- Statistical, vectorised over series: ``RobustZScore`` (median/MAD), ``EWMAZScore``,
  ``SeasonalBaseline`` (same time yesterday or last week), ``Threshold``.
- Adapters: ``SklearnDetector`` (any scikit-learn outlier detector), ``RiverDetector`` (River's
  online anomaly detectors).
- ``DetectorObserver``: any detector as a ready ``MetricsObserver`` (a window, counters as
  rates, scores exported, alerts once a score is held past the threshold: ``AlertPolicy``).

Needs NumPy (``pip install 'deucalion[ml]'``); names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes

if TYPE_CHECKING:
    from deucalion.detectors.adapters import RiverDetector, SklearnDetector
    from deucalion.detectors.base import Detector
    from deucalion.detectors.observer import AlertPolicy, DetectorObserver
    from deucalion.detectors.statistical import (
        EWMAZScore,
        RobustZScore,
        SeasonalBaseline,
        Threshold,
    )

__all__ = [
    "AlertPolicy",
    "Detector",
    "DetectorObserver",
    "EWMAZScore",
    "RiverDetector",
    "RobustZScore",
    "SeasonalBaseline",
    "SklearnDetector",
    "Threshold",
]

_LAZY = {
    "AlertPolicy": "deucalion.detectors.observer",
    "Detector": "deucalion.detectors.base",
    "DetectorObserver": "deucalion.detectors.observer",
    "EWMAZScore": "deucalion.detectors.statistical",
    "RiverDetector": "deucalion.detectors.adapters",
    "RobustZScore": "deucalion.detectors.statistical",
    "SeasonalBaseline": "deucalion.detectors.statistical",
    "SklearnDetector": "deucalion.detectors.adapters",
    "Threshold": "deucalion.detectors.statistical",
}

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
