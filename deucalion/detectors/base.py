"""The detector interface: a window of series in, one anomaly score per series out."""

from __future__ import annotations

import abc
from collections.abc import Sequence

try:
    import numpy as np
except ImportError as exc:
    from deucalion._extras import missing_extra

    raise missing_extra("numpy", "deucalion.detectors") from exc

from deucalion.history.vectors import Block

__all__ = ["Detector", "robust_scale_floor"]

#: Consistency constants: for normal data, 1.4826 x MAD and 1.2533 x mean absolute
#: deviation estimate the standard deviation.
MAD_TO_SIGMA = 1.4826


class Detector(abc.ABC):
    """Scores the newest point of each series of a ``Block`` against the points before it.

    ``score(block)`` returns a float64 array with one score per row of ``block``: 0 or more,
    larger is more anomalous, NaN when the detector cannot tell (too few points, or no newest
    point: a gap). Each detector documents its scale; ``threshold`` is the score past which its
    ready observer (``DetectorObserver``) alerts unless told otherwise.

    Detectors are small objects in the style of scikit-learn: hyper-parameters are set in
    ``__init__`` and stored under their own names, learned state lives in attributes ending in
    ``_``, nothing happens at import. A stateless detector (the statistical ones here) gives
    the same scores for the same block, live or replayed; a stateful one (River, a fitted
    scikit-learn model) expects one ``score`` call per cycle.
    """

    #: The default alerting threshold of this detector's scores.
    threshold: float = 6.0

    @abc.abstractmethod
    def score(self, block: Block) -> np.ndarray:
        """One score per series of ``block`` (see the class docstring for the range)."""

    def score_series(self, values: Sequence[float], times: Sequence[float] | None = None) -> float:
        """The score of the last of ``values`` (one series, oldest first) against the others;
        ``times`` default to one second apart."""
        v = np.asarray(values, dtype=np.float64).reshape(1, -1)
        t = (
            np.arange(v.shape[1], dtype=np.float64)
            if times is None
            else np.asarray(times, dtype=np.float64)
        ).reshape(1, -1)
        return float(self.score(Block("series", [("", "{}")], t, v))[0])

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


def typical_step(
    history: np.ndarray, level: np.ndarray | None = None, *, last: int = 40, jitter: float = 0.05
) -> np.ndarray:
    """Median size of the steps between consecutive points of each row, over the last
    ``last`` points: the resolution a series moves by (0 when it never moved).

    Steps of at most ``jitter`` times the series' ``level`` are not steps: a counter that
    grows by the same amount every scrape has rates that wobble with the scrape times only,
    and those wobbles would pass for its resolution. A median, so that the jump of an anomaly
    already in the history does not raise it.
    """
    recent = history[:, -last:]
    if recent.shape[1] < 2:
        return np.zeros(len(history))
    with np.errstate(all="ignore"):
        steps = np.abs(np.diff(recent, axis=1)).astype(np.float32)
        least = 0.0 if level is None else (jitter * np.abs(level)).astype(np.float32)[:, None]
        steps[~(steps > least)] = np.inf  # no step, a wobble or a gap: sorted last
        steps.sort(axis=1)
        count = np.isfinite(steps).sum(axis=1)
        low = np.maximum((count - 1) // 2, 0)[:, None]
        high = np.maximum(count // 2, 0)[:, None]
        middle = (np.take_along_axis(steps, low, 1) + np.take_along_axis(steps, high, 1)) / 2
        return np.where(count > 0, middle[:, 0].astype(np.float64), 0.0)


def robust_scale_floor(
    history: np.ndarray,
    level: np.ndarray,
    *,
    relative: float,
    absolute: float,
    step_floor: bool,
    resolution: np.ndarray | None = None,
) -> np.ndarray:
    """The smallest scale a z-score may divide by, per row.

    A series that sits still most of the time (a counter that moves in 0.01 s steps, a gauge
    that is 8 nearly always) has a MAD of 0 or near it, and dividing by it turns one ordinary
    step into a z-score of hundreds. The floor is the largest of: the series' typical step
    (``step_floor``, see ``typical_step``; for a series that did not move in the window, the
    typical step of the other series of its metric, which share its units), the block's
    ``resolution`` when known, ``relative`` times its level, and ``absolute``.
    """
    with np.errstate(all="ignore"):
        floor = np.maximum(relative * np.abs(level), absolute)
        if resolution is not None:
            floor = np.maximum(floor, np.where(np.isfinite(resolution), resolution, 0.0))
        if step_floor:
            steps = typical_step(history, np.where(np.isfinite(level), level, 0.0))
            moved = steps[steps > 0]
            if moved.size:
                steps = np.where(steps > 0, steps, np.median(moved))
            floor = np.maximum(floor, steps)
    return np.where(np.isnan(floor), absolute, floor)


def row_medians(
    values: np.ndarray, gaps: np.ndarray | None = None, *, overwrite: bool = False
) -> np.ndarray:
    """The median of each row, NaN ignored (NaN for a row without values).

    Rows without NaN (the usual case) go through one ``np.partition`` (in place with
    ``overwrite``); rows with gaps are sorted (NaN sorts last) and read at their own middle.
    ``gaps``, when known, says which rows hold a NaN.
    """
    n, points = values.shape
    out = np.full(n, np.nan)
    if points == 0 or n == 0:
        return out
    if gaps is None:
        gaps = np.isnan(values).any(axis=1)
    any_gaps = bool(gaps.any())
    lo, hi = (points - 1) // 2, points // 2
    kth = (lo, hi) if lo != hi else lo
    # Every row is partitioned (NaN goes last, no error) and the rows with gaps are then done
    # again: selecting the full rows first would copy them all.
    if overwrite:
        rows = values
        rows.partition(kth, axis=1)
    else:
        rows = np.partition(values, kth, axis=1)
    out[:] = (rows[:, lo] + rows[:, hi]) / 2
    if any_gaps:
        rows = np.sort(values[gaps], axis=1)
        count = (~np.isnan(rows)).sum(axis=1)
        low = np.maximum((count - 1) // 2, 0)[:, None]
        high = np.maximum(count // 2, 0)[:, None]
        with np.errstate(invalid="ignore"):
            middle = (np.take_along_axis(rows, low, 1) + np.take_along_axis(rows, high, 1)) / 2
        out[gaps] = np.where(count > 0, middle[:, 0], np.nan)
    return out
