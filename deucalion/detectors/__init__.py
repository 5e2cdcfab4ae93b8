"""Detectors: each cycle, one (time, value) per series in; scores, alerts and why, out.

- ``Detector``: the one interface (``deucalion.detectors.base`` documents it)::

      detector = AnomalyDetector(budget=1.0)   # false alerts per series per 10,000 points
      scores = detector.update({key: (time, value), ...})   # once per cycle
      for why in detector.alerts():            # Explanation: series, kind, observed, band
          ...

  ``update`` also takes arrays (one row per series) for vectorised callers; ``explain(key)``,
  ``forget(keys)`` and ``score_series(values)`` (one series in a notebook: a list, an array or
  a pandas Series; ``counter=True`` scores a counter's rate) complete it.
- ``AnomalyDetector``: the default. Spikes, level shifts inside the range, changes of
  variance, trend or daily or weekly pattern, stuck series and records, each calibrated per
  series to one false-alert ``budget``.
- ``RangeDetector`` (``deucalion.detectors.nab``): records and far-out values only.
- Window detectors (``score(block)`` on a window of each series, vectorised): ``RobustZScore``
  (median/MAD), ``EWMAZScore``, ``SeasonalBaseline`` (same time yesterday or last week),
  ``Threshold``; adapters ``SklearnDetector`` (any scikit-learn outlier detector) and
  ``RiverDetector`` (River's online anomaly detectors). Subclass ``Detector`` and implement
  ``score(block)`` or ``update_rows`` to write your own.
- ``DetectorObserver``: the one ready observer, any detector (default
  ``AnomalyDetector(budget=budget)``) over its desired metrics, counters as rates; returns
  ``Scores`` (every score exported, alerts explained). ``RangeObserver`` is it with a
  ``RangeDetector``.

Needs NumPy (``pip install 'deucalion[ml]'``); names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes

if TYPE_CHECKING:
    from deucalion.detectors.adapters import RiverDetector, SklearnDetector
    from deucalion.detectors.anomaly import AnomalyDetector
    from deucalion.detectors.base import Detector, Explanation
    from deucalion.detectors.nab import RangeDetector, RangeObserver
    from deucalion.detectors.observer import AlertPolicy, DetectorObserver
    from deucalion.detectors.statistical import (
        EWMAZScore,
        RobustZScore,
        SeasonalBaseline,
        Threshold,
    )

__all__ = [
    "AlertPolicy",
    "AnomalyDetector",
    "Detector",
    "DetectorObserver",
    "EWMAZScore",
    "Explanation",
    "RangeDetector",
    "RangeObserver",
    "RiverDetector",
    "RobustZScore",
    "SeasonalBaseline",
    "SklearnDetector",
    "Threshold",
]

_LAZY = {
    "AlertPolicy": "deucalion.detectors.observer",
    "AnomalyDetector": "deucalion.detectors.anomaly",
    "Explanation": "deucalion.detectors.base",
    "RangeDetector": "deucalion.detectors.nab",
    "RangeObserver": "deucalion.detectors.nab",
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
