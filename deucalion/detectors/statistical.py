"""Statistical detectors: robust z-score, EWMA z-score, seasonal baseline, fixed threshold.

All are stateless (a block in, scores out) and vectorised over series: no Python loop per
series. Their scores are in standard deviations (z-scores), except ``Threshold``'s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deucalion.detectors.base import MAD_TO_SIGMA, Detector, robust_scale_floor, row_medians
from deucalion.errors import UsageError
from deucalion.history.vectors import Block

__all__ = ["EWMAZScore", "RobustZScore", "SeasonalBaseline", "Threshold"]


def _check_positive(owner: str, name: str, value: float) -> None:
    if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
        raise UsageError(f"{owner}: {name} must be a positive number, not {value!r}")


class RobustZScore(Detector):
    """``|x - median| / (1.4826 MAD)`` of the newest point against the points before it.

    The median and the MAD (median absolute deviation) ignore outliers in the history, so a
    past spike does not hide the next one. ``scale`` never falls below a floor (see
    ``robust_scale_floor``): the series' typical step (``step_floor``), ``relative_floor``
    times its median, and ``absolute_floor``, so that series which barely move do not give
    z-scores of hundreds for one ordinary step. Scores are z-scores (0 or more); NaN with fewer
    than ``min_points`` past points or no newest point.
    """

    threshold = 6.0

    def __init__(
        self,
        *,
        window: int | None = None,
        min_points: int = 10,
        relative_floor: float = 0.01,
        absolute_floor: float = 1e-9,
        step_floor: bool = True,
        threshold: float = 6.0,
    ) -> None:
        if window is not None and (not isinstance(window, int) or window < 2):
            raise UsageError(
                f"RobustZScore: window must be an integer of 2 or more, not {window!r}"
            )
        if not isinstance(min_points, int) or min_points < 1:
            raise UsageError(
                f"RobustZScore: min_points must be a positive integer, not {min_points!r}"
            )
        self.window = window
        self.min_points = min_points
        self.relative_floor = relative_floor
        self.absolute_floor = absolute_floor
        self.step_floor = step_floor
        self.threshold = threshold

    def score(self, block: Block) -> np.ndarray:
        """Robust z-score of each series' newest point."""
        scores = np.full(len(block), np.nan)
        fitted = self._fitted(block)
        if fitted is None:
            return scores
        offset, _, scale, ok, finite = fitted
        with np.errstate(all="ignore"):
            z = np.abs(offset) / scale
            # An infinite newest value against a finite past is as anomalous as it gets.
            z = np.where(finite, z, np.where(np.isfinite(offset), math.inf, np.nan))
        scores[ok] = z[ok]
        return scores

    def expected_band(
        self, block: Block, threshold: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The median of each series' past points, give or take ``threshold`` scales."""
        return _band(len(block), self._fitted(block), self.threshold, threshold)

    def _fitted(
        self, block: Block
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Per series: the median of its past points less its newest, that median, the scale,
        whether it can be scored and whether its newest value is finite; None when none can."""
        values = block.values
        n, points = values.shape
        if points < 2 or n == 0:
            return None
        newest = values[:, -1]
        history = values[:, -(self.window + 1) : -1] if self.window else values[:, :-1]
        with np.errstate(all="ignore"):
            finite = np.isfinite(newest)
            # Centred on the newest value, the differences are small numbers that float32
            # holds well, and float32 halves the time of the two partitions.
            centred = np.empty(history.shape, dtype=np.float32)
            np.subtract(
                history, np.where(finite, newest, 0.0)[:, None], out=centred, casting="unsafe"
            )
            gaps = np.asarray(np.isnan(centred).any(axis=1))
            ok = ~np.isnan(newest)
            if gaps.any():
                count = (~np.isnan(history[gaps])).sum(axis=1)
                ok[gaps] &= count >= self.min_points
            if history.shape[1] < self.min_points:
                ok[:] = False
            if not ok.any():
                return None
            # Every row is computed and the rows that cannot be scored masked at the end:
            # selecting rows first would copy the whole history.
            # In place: the median of absolute deviations below needs the values, not their
            # order, so it reuses the buffer the partition reordered.
            offset = row_medians(centred, gaps, overwrite=True)
            np.subtract(centred, offset.astype(np.float32)[:, None], out=centred)
            np.abs(centred, out=centred)
            mad = row_medians(centred, gaps, overwrite=True)
            median = np.where(finite, newest, 0.0) + offset  # of the history
            floor = robust_scale_floor(
                history,
                median,
                relative=self.relative_floor,
                absolute=self.absolute_floor,
                step_floor=self.step_floor,
                resolution=block.resolution,
            )
            scale = np.maximum(MAD_TO_SIGMA * mad, floor)
        return offset, median, scale, ok, finite


def _band(
    n: int,
    fitted: tuple[Any, ...] | None,
    own: float,
    threshold: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``centre`` give or take ``threshold`` (default ``own``) times ``scale`` per series,
    from ``fitted`` (``_, centre, scale, ok, ...``), NaN where it cannot be scored."""
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    if fitted is None:
        return low, high
    _, centre, scale, ok = fitted[:4]
    width = (own if threshold is None else threshold) * scale
    with np.errstate(all="ignore"):
        low[ok], high[ok] = (centre - width)[ok], (centre + width)[ok]
    return low, high


class EWMAZScore(Detector):
    """``|x - mean| / std`` with an exponentially weighted mean and standard deviation.

    Point ``k`` cycles before the newest weighs ``(1 - alpha) ** k``; gaps weigh nothing. Reacts
    faster than ``RobustZScore`` to a level that drifts, and is more sensitive to a past spike:
    a jump enters the weighted variance at once, so a jump of 10 standard deviations that
    lasts scores about 9, then 3 (use it with ``for_cycles=1`` in ``DetectorObserver``).
    The scale has the same floors as ``RobustZScore``. Scores are z-scores; NaN with fewer than
    ``min_points`` past points.
    """

    threshold = 6.0

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        min_points: int = 10,
        relative_floor: float = 0.01,
        absolute_floor: float = 1e-9,
        step_floor: bool = True,
        threshold: float = 6.0,
    ) -> None:
        if not (isinstance(alpha, int | float) and 0 < alpha < 1):
            raise UsageError(
                f"EWMAZScore: alpha must be between 0 and 1 (exclusive), not {alpha!r}"
            )
        self.alpha = alpha
        self.min_points = min_points
        self.relative_floor = relative_floor
        self.absolute_floor = absolute_floor
        self.step_floor = step_floor
        self.threshold = threshold

    def score(self, block: Block) -> np.ndarray:
        """EWMA z-score of each series' newest point."""
        scores = np.full(len(block), np.nan)
        fitted = self._fitted(block)
        if fitted is None:
            return scores
        _, mean, scale, ok, newest = fitted
        with np.errstate(all="ignore"):
            z = np.abs(newest - mean) / scale
        scores[ok] = z[ok]
        return scores

    def expected_band(
        self, block: Block, threshold: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The weighted mean of each series' past points, give or take ``threshold``
        scales."""
        return _band(len(block), self._fitted(block), self.threshold, threshold)

    def _fitted(
        self, block: Block
    ) -> tuple[None, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Per series: the weighted mean, the scale, whether it can be scored, and its newest
        value (after a None, as ``RobustZScore._fitted``); None when no series can be."""
        values = block.values
        n, points = values.shape
        if points < 2 or n == 0:
            return None
        newest, history = values[:, -1], values[:, :-1]
        ages = np.arange(points - 2, -1, -1, dtype=np.float64)
        with np.errstate(all="ignore"):
            present = np.isfinite(history)
            weights = np.where(present, (1.0 - self.alpha) ** ages, 0.0)
            total = weights.sum(axis=1)
            filled = np.where(present, history, 0.0)
            mean = (weights * filled).sum(axis=1) / total
            variance = (weights * (filled - mean[:, None]) ** 2).sum(axis=1) / total
            floor = robust_scale_floor(
                history,
                mean,
                relative=self.relative_floor,
                absolute=self.absolute_floor,
                step_floor=self.step_floor,
                resolution=block.resolution,
            )
            scale = np.maximum(np.sqrt(variance), floor)
        ok = ~np.isnan(newest) & (present.sum(axis=1) >= self.min_points)
        return None, mean, scale, ok, newest


class SeasonalBaseline(Detector):
    """The newest point against the same time one or more ``period`` ago (a day:
    ``86400``; a week: ``604800``), when the window holds it.

    The baseline is the median of the points within ``tolerance`` seconds of ``t - k period``
    for ``k = 1 .. seasons``; the scale is the series' typical step, with the same floors as
    ``RobustZScore``. Scores are in those units; NaN until the window reaches one period back
    (give the observer's window ``seconds`` of at least ``period`` plus ``tolerance``).
    """

    threshold = 6.0

    def __init__(
        self,
        period: float = 86400.0,
        *,
        seasons: int = 1,
        tolerance: float | None = None,
        relative_floor: float = 0.01,
        absolute_floor: float = 1e-9,
        threshold: float = 6.0,
    ) -> None:
        _check_positive("SeasonalBaseline", "period", period)
        if tolerance is not None:
            _check_positive("SeasonalBaseline", "tolerance", tolerance)
        self.period = float(period)
        self.seasons = seasons
        self.tolerance = tolerance
        self.relative_floor = relative_floor
        self.absolute_floor = absolute_floor
        self.threshold = threshold

    def score(self, block: Block) -> np.ndarray:
        """Seasonal score of each series' newest point."""
        fitted = self._fitted(block)
        if fitted is None:
            return np.full(len(block), np.nan)
        _, baseline, floor, ok, newest = fitted
        with np.errstate(all="ignore"):
            z = np.abs(newest - baseline) / floor
        return np.where(ok, z, np.nan)

    def expected_band(
        self, block: Block, threshold: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The baseline of each series (its points a period ago), give or take ``threshold``
        scales."""
        return _band(len(block), self._fitted(block), self.threshold, threshold)

    def _fitted(
        self, block: Block
    ) -> tuple[None, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Per series: the baseline, the scale, whether it can be scored and its newest value
        (after a None, as ``RobustZScore._fitted``); None when the block is too short."""
        values, times = block.values, block.times
        n, points = values.shape
        if points < 2 or n == 0:
            return None
        newest, now = values[:, -1], times[:, -1]
        history, past = values[:, :-1], times[:, :-1]
        with np.errstate(all="ignore"):
            tolerance = self.tolerance
            if tolerance is None:
                # One scrape interval either side: the point nearest the same moment.
                # (np.nanmedian warns on all-NaN, which -W error turns into an exception.)
                steps = np.diff(times, axis=1)
                steps = steps[~np.isnan(steps)]
                tolerance = float(np.median(steps)) if points > 2 and steps.size else 1.0
                tolerance = tolerance if math.isfinite(tolerance) else 1.0
            near = np.zeros(history.shape, dtype=bool)
            for k in range(1, self.seasons + 1):
                near |= np.abs(past - (now - k * self.period)[:, None]) <= tolerance
            same_time = np.where(near & ~np.isnan(history), history, np.nan)
            baseline = row_medians(same_time)
            floor = robust_scale_floor(
                history,
                baseline,
                relative=self.relative_floor,
                absolute=self.absolute_floor,
                step_floor=True,
                resolution=block.resolution,
            )
        ok = ~(np.isnan(newest) | np.isnan(baseline))
        return None, baseline, floor, ok, newest


class Threshold(Detector):
    """A fixed bound: the score is how far the newest value lies beyond ``above`` or below
    ``below`` (in the series' units), 0 within them. The default ``threshold`` is 0: any
    excess alerts."""

    threshold = 0.0

    def __init__(
        self, *, above: float | None = None, below: float | None = None, threshold: float = 0.0
    ) -> None:
        if above is None and below is None:
            raise UsageError("Threshold needs above=, below= or both")
        self.above = above
        self.below = below
        self.threshold = threshold

    def score(self, block: Block) -> np.ndarray:
        """Excess of each series' newest value beyond the bounds."""
        newest = block.latest
        with np.errstate(invalid="ignore"):
            excess = np.zeros(len(newest))
            if self.above is not None:
                excess = np.maximum(excess, newest - self.above)
            if self.below is not None:
                excess = np.maximum(excess, self.below - newest)
        return np.where(np.isnan(newest), np.nan, excess)

    def expected_band(
        self, block: Block, threshold: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The bounds ``below`` .. ``above``, each widened by ``threshold`` (0 by default):
        -inf or inf on a side without one."""
        excess = self.threshold if threshold is None else threshold
        n = len(block)
        low = np.full(n, -math.inf if self.below is None else self.below - excess)
        high = np.full(n, math.inf if self.above is None else self.above + excess)
        return low, high
