"""Adapters for the libraries data scientists already use: scikit-learn and River.

``SklearnDetector`` wraps any estimator with ``fit`` and ``decision_function`` or
``score_samples`` (``IsolationForest``, ``LocalOutlierFactor(novelty=True)``, ``OneClassSVM``),
trained on the window once it holds ``fit_after`` cycles, and again every ``refit_every``.
``RiverDetector`` wraps an online anomaly detector (``learn_one``/``score_one``: River's
``HalfSpaceTrees`` and friends), one copy per series, each learning its series point by point.
Neither library is imported here: the estimator is yours.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from deucalion.detectors.base import MAD_TO_SIGMA, Detector, robust_scale_floor, row_medians
from deucalion.errors import UsageError, UsageTypeError
from deucalion.history.vectors import Block

__all__ = ["RiverDetector", "SklearnDetector"]


class SklearnDetector(Detector):
    """A scikit-learn outlier detector scoring each series' last ``lags`` points.

    Each series is scaled by its own median and MAD (with ``RobustZScore``'s floors), so one
    estimator, fitted on the lag vectors of all series of a metric, serves all of them. The
    estimator is fitted the first time the block holds ``fit_after`` points (on the whole
    block: "the first N cycles"), and refitted on the block every ``refit_every`` calls when
    set ("a sliding window"). ``fit(block)`` fits it by hand.

    Each metric (``block.metric``) gets its own copy of the estimator, fitted on its series.

    Scores: ``-decision_function`` when the estimator has one (above 0: an outlier by the
    estimator's own boundary, so the default ``threshold`` is 0), else ``-score_samples`` (set
    ``threshold`` yourself). NaN before the first fit and for series with a gap in their last
    ``lags`` points. One call per cycle.
    """

    threshold = 0.0

    def __init__(
        self,
        estimator: Any,
        *,
        lags: int = 1,
        fit_after: int = 60,
        refit_every: int | None = None,
        max_samples: int = 10_000,
        threshold: float = 0.0,
        random_state: int = 0,
    ) -> None:
        if not hasattr(estimator, "fit") or not (
            hasattr(estimator, "decision_function") or hasattr(estimator, "score_samples")
        ):
            raise UsageTypeError(
                f"SklearnDetector needs an estimator with fit() and "
                f"decision_function() or score_samples(); "
                f"{type(estimator).__name__} has not (LocalOutlierFactor needs "
                "novelty=True)"
            )
        if not isinstance(lags, int) or lags < 1:
            raise UsageError(f"SklearnDetector: lags must be a positive integer, not {lags!r}")
        self.estimator = estimator
        self.lags = lags
        self.fit_after = fit_after
        self.refit_every = refit_every
        self.max_samples = max_samples
        self.threshold = threshold
        self.random_state = random_state
        self.estimators_: dict[str, Any] = {}
        """The fitted copy of ``estimator`` per metric."""
        self.since_fit_: dict[str, int] = {}

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        """Each row as robust z-scores of its own median and MAD."""
        with np.errstate(all="ignore"):
            median = row_medians(values)
            mad = row_medians(np.abs(values - median[:, None]))
            floor = robust_scale_floor(
                values, median, relative=0.01, absolute=1e-9, step_floor=True
            )
            scale = np.maximum(MAD_TO_SIGMA * mad, floor)
            scaled: np.ndarray = (values - median[:, None]) / scale[:, None]
        return scaled

    def fit(self, block: Block) -> SklearnDetector:
        """Fit a copy of the estimator on every lag vector in ``block`` (at most
        ``max_samples``), for ``block.metric``."""
        scaled = self._scaled(block.values)
        if scaled.shape[1] < self.lags:
            raise UsageError(
                f"SklearnDetector.fit: the block holds {scaled.shape[1]} points, "
                f"fewer than lags={self.lags}"
            )
        windows = np.lib.stride_tricks.sliding_window_view(scaled, self.lags, axis=1)
        samples = windows.reshape(-1, self.lags)
        samples = samples[np.isfinite(samples).all(axis=1)]
        if len(samples) == 0:
            raise UsageError("SklearnDetector.fit: the block holds no complete lag vector")
        if len(samples) > self.max_samples:
            rng = np.random.default_rng(self.random_state)
            samples = samples[rng.choice(len(samples), self.max_samples, replace=False)]
        estimator = copy.deepcopy(self.estimator)
        estimator.fit(samples)
        self.estimators_[block.metric] = estimator
        self.since_fit_[block.metric] = 0
        return self

    def score(self, block: Block) -> np.ndarray:
        """The estimator's outlier score of each series' last ``lags`` points."""
        metric = block.metric
        fitted = metric in self.estimators_
        since = self.since_fit_[metric] = self.since_fit_.get(metric, 0) + 1
        points = int(np.isfinite(block.values).sum(axis=1).max(initial=0))
        due = (not fitted and points >= max(self.fit_after, self.lags)) or (
            fitted and self.refit_every is not None and since >= self.refit_every
        )
        if due:
            try:
                self.fit(block)
            except ValueError:
                pass  # nothing complete to learn from yet: the next cycle tries again
        scores = np.full(len(block), np.nan)
        estimator = self.estimators_.get(metric)
        if estimator is None or block.values.shape[1] < self.lags:
            return scores
        features = self._scaled(block.values)[:, -self.lags :]
        ok = np.isfinite(features).all(axis=1)
        if not ok.any():
            return scores
        if hasattr(estimator, "decision_function"):
            raw = -np.asarray(estimator.decision_function(features[ok]), dtype=np.float64)
        else:
            raw = -np.asarray(estimator.score_samples(features[ok]), dtype=np.float64)
        scores[ok] = raw
        return scores


class RiverDetector(Detector):
    """A River online anomaly detector, one copy per series (``model.clone()``).

    Each cycle, each series' newest value (as ``{"value": x}``, with ``lags > 1`` also
    ``{"lag1": ..., ...}``) is scored with ``score_one`` and then learned with ``learn_one``.
    Scores are the model's own (``HalfSpaceTrees``: 0 to 1, high is anomalous; it wants
    features in [0, 1], so put a ``preprocessing.MinMaxScaler()`` in front); NaN for the first
    ``warmup`` points of a series and for gaps. Copies of series that leave the block are
    dropped. One call per cycle.
    """

    threshold = 0.9

    def __init__(
        self, model: Any, *, lags: int = 1, warmup: int = 30, threshold: float = 0.9
    ) -> None:
        if not (
            hasattr(model, "learn_one") and hasattr(model, "score_one") and hasattr(model, "clone")
        ):
            raise UsageTypeError(
                f"RiverDetector needs a River anomaly detector (learn_one, "
                f"score_one, clone), not {type(model).__name__}"
            )
        self.model = model
        self.lags = lags
        self.warmup = warmup
        self.threshold = threshold
        self.models_: dict[tuple[str, str, str], Any] = {}
        """The copy of ``model`` per series: ``(metric, target, series key)``."""
        self.learned_: dict[tuple[str, str, str], int] = {}

    def score(self, block: Block) -> np.ndarray:
        """Score, then learn, each series' newest value."""
        scores = np.full(len(block), np.nan)
        values = block.values
        if values.shape[1] == 0:
            return scores
        for i, (target, series) in enumerate(block.keys):
            key = (block.metric, target, series)
            row = values[i, -self.lags :]
            x = float(row[-1])
            if not math.isfinite(x):
                continue
            features = {"value": x}
            for lag in range(1, min(self.lags, len(row))):
                past = float(row[-1 - lag])
                if math.isfinite(past):
                    features[f"lag{lag}"] = past
            model = self.models_.get(key)
            if model is None:
                model = self.models_[key] = self.model.clone()
            learned = self.learned_.get(key, 0)
            if learned >= self.warmup:
                scores[i] = float(model.score_one(features))
            model.learn_one(features)
            self.learned_[key] = learned + 1
        # A series that left the window (forgotten by it) is forgotten here too.
        present = {(block.metric, target, series) for target, series in block.keys}
        for key in [k for k in self.models_ if k[0] == block.metric and k not in present]:
            del self.models_[key]
            self.learned_.pop(key, None)
        return scores
