"""A range detector that does well on the Numenta Anomaly Benchmark, and its ready observer.

What it finds: a value outside the range a series has ever had, or far outside the range it had
recently. Most anomalies in real service metrics (NAB's labelled AWS CloudWatch files: CPU,
disk, network, request counts) are of these kinds: a spike higher than any before, a drop to a
level never seen, a level shift well out of the recent band. Two components, each comparing the
new value with a reference range ``[low, high]`` of width ``r``:

- ``record``: the range of every value since the series started. A value beyond it by more
  than ``record_tolerance * r`` is a record (NAB's HTM detector has the same "spatial anomaly"
  rule: a value beyond the largest or smallest seen).
- ``recent``: the range of the last ``window`` values. A value beyond it by more than
  ``recent_tolerance * r`` stands far out of the recent band even when an old record covers it.

The **score** of a component is ``e / (e + tolerance)`` where ``e`` is how far the value lies
outside the range, in range widths (0 inside): it is 0 inside the range, exactly 0.5 at the
edge of the *expected range* ``[low - tolerance * r, high + tolerance * r]``, and tends to 1 the
further out the value is. A series' score is the larger of the two, so one threshold (0.5 by
default) means "outside the expected range" for every series whatever its scale.

After a score reaches ``threshold`` the series is quiet for ``quiet_for`` values: scores no higher
than the one that alerted are 0, so an anomaly is reported once, at its start, as NAB rewards and
as an on-call engineer prefers, while a larger one still breaks through.
Nothing is scored during the first ``warmup`` values of a series (by default until its recent
window is full). A series whose values never varied has no scale to measure a departure by and
scores 0.

Costs: each update is O(window) time and memory per series (two floats for the record range,
``window`` floats for the recent one), vectorised with NumPy across all the series updated
together.

How the defaults were chosen (on nab-dev, NAB's 17 realAWSCloudwatch files, checked on its two
halves; benchmarks/results.md has the figures): the score plateaus for ``window`` from 576 to
1152 values, ``recent_tolerance`` from 0.5 to 2, ``quiet_for`` from 144 to 288, so the defaults
sit inside the plateau, not on a peak: ``window=576`` (two days of 5-minute points),
``recent_tolerance=1`` (a whole band width beyond the band), ``quiet_for=288`` (one day of
5-minute points, about NAB's window width), ``record_tolerance=0.005`` (half a percent of the
range: any clear record). ``warmup`` defaults to ``window``: the same NAB score as 300 (NAB does
not score its first 15 %), and a fifth fewer records of pure noise (they come at a rate of about
1/n after n values).

What it costs: in a series of independent noise every new record beyond half a percent of the
range is an alert, about ``ln(n / warmup)`` alerts over n values. That is the price of catching
the small records NAB labels as anomalies. ``record_step_factor`` (0 by default) trades some of
them for quiet: a record must then also exceed that multiple of the usual size of the series'
past records (an average over about its last five). Noise makes records of a similar, small
size; an anomaly one much larger than usual. With 2 a noise series makes about a tenth of the
alerts, and NAB's standard score on nab-dev falls from 65.6 to 62.2 (one window fewer found).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from deucalion.detectors.base import Detector, Explanation, refusing_unknown_keywords
from deucalion.detectors.observer import DetectorObserver
from deucalion.errors import UsageError

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("deucalion.detectors.nab needs NumPy: pip install deucalion[ml]") from exc

__all__ = ["COMPONENTS", "RESOLUTION_STEPS", "Explanation", "RangeDetector", "RangeObserver"]

#: How many steps of a series' resolution a record must clear to score 0.5 (see ``update``).
RESOLUTION_STEPS = 2.0

COMPONENTS = ("record", "recent")
"""The components of ``RangeDetector``, as an ``Explanation`` names them."""


class RangeDetector(Detector):
    """Scores each new value of many series against the ranges they had (see the module doc).

    A ``Detector`` (the one interface): ``update(values)`` takes one value per series (NaN: no
    value this time) and returns one score per series in [0, 1]. Series are rows, in the order
    of ``values``; a longer ``values`` adds series at the end. A series alerts when its score
    reaches ``threshold`` (its explanation's ``kind`` is ``record`` or ``recent``).
    """

    def __init__(
        self,
        *,
        window: int = 576,
        record_tolerance: float = 0.005,
        recent_tolerance: float = 1.0,
        threshold: float = 0.5,
        quiet_for: int = 288,
        warmup: int | None = None,
        record_step_factor: float = 0.0,
    ) -> None:
        if window < 2:
            raise UsageError(f"window={window}: give at least 2 values")
        if record_tolerance <= 0 or recent_tolerance <= 0:
            raise UsageError("record_tolerance and recent_tolerance must be positive")
        if record_step_factor < 0:
            raise UsageError(f"record_step_factor={record_step_factor}: give 0 or more")
        if not 0 < threshold <= 1:
            raise UsageError(f"threshold={threshold}: give a score in (0, 1]")
        self.window = window
        self.record_tolerance = record_tolerance
        self.recent_tolerance = recent_tolerance
        self.threshold = threshold
        self.quiet_for = quiet_for
        self.warmup = window if warmup is None else warmup
        self.record_step_factor = record_step_factor
        self.n_series_ = 0
        self.alerting_ = np.zeros(0, dtype=bool)
        self.recent_ = np.zeros((0, window))
        self.position_ = np.zeros(0, dtype=np.int64)
        self.count_ = np.zeros(0, dtype=np.int64)
        self.quiet_ = np.zeros(0, dtype=np.int64)
        self.quiet_level_ = np.zeros(0)
        self.record_step_ = np.zeros(0)
        self.low_ = np.zeros(0)
        self.high_ = np.zeros(0)
        # What the last update saw, for explanations.
        self.observed_ = np.zeros(0)
        self.scores_ = np.zeros(0)
        self.component_ = np.zeros(0, dtype=np.int64)
        self.expected_low_ = np.zeros(0)
        self.expected_high_ = np.zeros(0)

    def _grow(self, n: int) -> None:
        extra = n - self.n_series_
        self.recent_ = np.concatenate([self.recent_, np.zeros((extra, self.window))])
        for name, fill in _PER_SERIES:
            array = getattr(self, name)
            setattr(self, name, np.concatenate([array, np.full(extra, fill, dtype=array.dtype)]))
        self.n_series_ = n

    def keep(self, rows: Sequence[int] | Any) -> None:
        """Keep only the series at ``rows``, in that order, and forget the others."""
        rows = np.asarray(rows, dtype=np.int64)
        self.alerting_ = self.alerting_[rows] if len(self.alerting_) else self.alerting_
        self.recent_ = self.recent_[rows]
        for name, _ in _PER_SERIES:
            setattr(self, name, getattr(self, name)[rows])
        self.n_series_ = len(rows)

    def update_rows(self, times: Any, values: Any, resolution: Any) -> Any:
        """Score one new value per series, then learn it; returns the scores (a NumPy array).

        ``resolution`` (one per series, 0 for none) is the smallest change the series' values
        can show: a counter's rate moves in steps of its counter's increment per interval. A
        record then scores 0.5 (the default threshold) when it clears the old one by
        ``RESOLUTION_STEPS`` such steps, so a rate one tick above its highest is no anomaly.
        """
        x = np.asarray(values, dtype=float).reshape(-1)
        if x.shape[0] > len(self.count_):
            self.n_series_ = len(self.count_)
            self._grow(x.shape[0])
        steps = np.asarray(resolution, dtype=float)
        seen = np.isfinite(x)
        first = seen & (self.count_ == 0)
        self.recent_[first] = x[first, None]  # a new series' window starts full of its first value

        record_width = self.high_ - self.low_
        recent_high = self.recent_.max(axis=1)
        recent_low = self.recent_.min(axis=1)
        recent_width = recent_high - recent_low
        # A recent band flatter than a thousandth of the record range is measured in that.
        recent_width = np.maximum(
            recent_width, 1e-3 * np.where(seen & (self.count_ > 0), record_width, 0.0)
        )
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            record_out = _outside(x, self.low_, self.high_, record_width)
            recent_out = _outside(x, recent_low, recent_high, recent_width)
            # The record bar, in range widths: the fixed tolerance, or a multiple of the usual
            # size of this series' past records (noise makes small ones, an anomaly a big one).
            record_tolerance = np.maximum(
                self.record_tolerance,
                np.where(
                    record_width > 0,
                    self.record_step_factor
                    * self.record_step_
                    / np.where(record_width > 0, record_width, 1.0),
                    0.0,
                ),
            )
            # ... and never less than the resolution allows: RESOLUTION_STEPS steps of it.
            record_tolerance = np.maximum(
                record_tolerance,
                np.where(
                    record_width > 0,
                    RESOLUTION_STEPS * steps / np.where(record_width > 0, record_width, 1.0),
                    0.0,
                ),
            )
            record_score = record_out / (record_out + record_tolerance)
            recent_score = recent_out / (recent_out + self.recent_tolerance)
        scored = seen & (self.count_ >= self.warmup)
        record_score = np.where(scored, np.nan_to_num(record_score), 0.0)
        recent_score = np.where(scored, np.nan_to_num(recent_score), 0.0)
        component = (recent_score > record_score).astype(np.int64)
        scores = np.maximum(record_score, recent_score)
        scores = np.where((self.quiet_ > 0) & (scores <= self.quiet_level_), 0.0, scores)

        self.observed_ = x
        self.scores_ = scores
        self.component_ = component
        tolerance = np.where(component == 0, record_tolerance, self.recent_tolerance)
        low = np.where(component == 0, self.low_, recent_low)
        high = np.where(component == 0, self.high_, recent_high)
        width = np.where(component == 0, record_width, recent_width)
        self.expected_low_ = low - tolerance * width
        self.expected_high_ = high + tolerance * width

        with np.errstate(invalid="ignore"):
            step = np.maximum(np.maximum(x - self.high_, self.low_ - x), 0.0)
        record = seen & (self.count_ > 0) & (step > 0)
        self.record_step_[record] += _STEP_WEIGHT * (step[record] - self.record_step_[record])
        rows = np.nonzero(seen)[0]
        self.recent_[rows, self.position_[rows]] = x[rows]
        self.position_[rows] = (self.position_[rows] + 1) % self.window
        self.count_[rows] += 1
        self.low_ = np.where(seen, np.fmin(self.low_, x), self.low_)
        self.high_ = np.where(seen, np.fmax(self.high_, x), self.high_)
        alerted = scores >= self.threshold
        self.quiet_ = np.where(alerted, self.quiet_for, np.maximum(self.quiet_ - seen, 0))
        self.quiet_level_ = np.where(alerted, scores, self.quiet_level_)
        self.alerting_ = alerted
        return np.where(seen, scores, np.nan)

    def explain_row(self, row: int, series: Hashable = None) -> Explanation:
        """Which component decided series ``row``'s last score, its expected range and value."""
        return Explanation(
            kind=COMPONENTS[int(self.component_[row])],
            expected_low=float(self.expected_low_[row]),
            expected_high=float(self.expected_high_[row]),
            observed=float(self.observed_[row]),
            score=float(self.scores_[row]),
            series=series,
        )


# Each series' learned state besides its window, and what a new series starts with.
_PER_SERIES = (
    ("position_", 0),
    ("count_", 0),
    ("quiet_", 0),
    ("quiet_level_", 0.0),
    ("record_step_", 0.0),
    ("low_", math.inf),
    ("high_", -math.inf),
    ("observed_", math.nan),
    ("scores_", 0.0),
    ("component_", 0),
    ("expected_low_", math.nan),
    ("expected_high_", math.nan),
)

_STEP_WEIGHT = 0.2  # of the newest record in the usual record size: about the last five records


def _outside(x: Any, low: Any, high: Any, width: Any) -> Any:
    """How far ``x`` lies outside ``[low, high]``, in widths; 0 inside or without a width."""
    distance = np.maximum(np.maximum(x - high, low - x), 0.0)
    return np.where(width > 0, distance / np.where(width > 0, width, 1.0), 0.0)


class RangeObserver(DetectorObserver):
    """A ready observer: ``DetectorObserver`` with a ``RangeDetector`` over every series of its
    desired metrics (kept for existing users; ``DetectorObserver()`` with the default
    ``AnomalyDetector`` honours a false-alert budget).

    Gauges are scored as they are; counters (``_total``, ``_count``, ``_sum``, ``_bucket``) by
    their per-second rate between the data's scrape times (a reset starts the rate again),
    with the rate's resolution: the counter's quantum (what its increases are multiples of: a
    request, a CPU tick of 0.01 s; about 0 for a float sum), over the interval (a rate known
    only to a tick of its counter sets no record by one tick; see ``CounterRates``). Each
    series whose score reaches ``threshold`` gives one alert, labelled with its metric and
    series and annotated with the component that fired (``kind``), the expected range and the
    observed value. A series absent for ``forget_after`` calls is forgotten, so that memory stays
    bounded when series come and go (pods, label values). Other keyword options are
    ``RangeDetector``'s. ``new_data`` returns ``Scores``.
    """

    @refusing_unknown_keywords(also=RangeDetector)
    def __init__(
        self, desired_metrics: Iterable[str], *, forget_after: int = 1000, **options: Any
    ) -> None:
        super().__init__(RangeDetector(**options), desired_metrics, forget_after=forget_after)
