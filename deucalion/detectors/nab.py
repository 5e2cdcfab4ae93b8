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
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deucalion.alerting.alerts import Alert
from deucalion.observer import MetricsObserver, TargetsData, data_time

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("deucalion.detectors.nab needs NumPy: pip install deucalion[ml]") from exc

__all__ = ["COMPONENTS", "RESOLUTION_STEPS", "Explanation", "RangeDetector", "RangeObserver"]

#: How many steps of a series' resolution a record must clear to score 0.5 (see ``update``).
RESOLUTION_STEPS = 2.0

COMPONENTS = ("record", "recent")
"""The components of ``RangeDetector``, as an ``Explanation`` names them."""


@dataclass(frozen=True)
class Explanation:
    """Why a series scored what it did at its last update.

    ``component`` is the component with the larger score (``"record"`` or ``"recent"``);
    ``expected_low``/``expected_high`` the range its score is 0.5 at the edges of; ``observed``
    the value. ``score`` is the series' score (0 while warming up or quiet).
    """

    component: str
    expected_low: float
    expected_high: float
    observed: float
    score: float


class RangeDetector:
    """Scores each new value of many series against the ranges they had (see the module doc).

    ``update(values)`` takes one value per series (NaN: no value this time) and returns one
    score per series in [0, 1]. Series are rows, in the order of ``values``; a longer ``values``
    adds series at the end.
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
            raise ValueError(f"window={window}: give at least 2 values")
        if record_tolerance <= 0 or recent_tolerance <= 0:
            raise ValueError("record_tolerance and recent_tolerance must be positive")
        if record_step_factor < 0:
            raise ValueError(f"record_step_factor={record_step_factor}: give 0 or more")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold={threshold}: give a score in (0, 1]")
        self.window = window
        self.record_tolerance = record_tolerance
        self.recent_tolerance = recent_tolerance
        self.threshold = threshold
        self.quiet_for = quiet_for
        self.warmup = window if warmup is None else warmup
        self.record_step_factor = record_step_factor
        self.n_series_ = 0
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
        self.recent_ = self.recent_[rows]
        for name, _ in _PER_SERIES:
            setattr(self, name, getattr(self, name)[rows])
        self.n_series_ = len(rows)

    def update(
        self, values: Sequence[float] | Any, resolution: Sequence[float] | Any = None
    ) -> Any:
        """Score one new value per series, then learn it; returns the scores (a NumPy array).

        ``resolution`` (optional, one per series, 0 for none) is the smallest change the
        series' values can show: a counter's rate moves in steps of its counter's increment per
        interval. A record then scores 0.5 (the default threshold) when it clears the old one by
        ``RESOLUTION_STEPS`` such steps, so a rate one tick above its highest is no anomaly.
        """
        x = np.asarray(values, dtype=float).reshape(-1)
        if x.shape[0] > self.n_series_:
            self._grow(x.shape[0])
        elif x.shape[0] < self.n_series_:
            x = np.concatenate([x, np.full(self.n_series_ - x.shape[0], math.nan)])
        steps = np.zeros(self.n_series_)
        if resolution is not None:
            given = np.nan_to_num(np.asarray(resolution, dtype=float).reshape(-1))
            steps[: given.shape[0]] = given[: self.n_series_]
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
        return scores

    def explain(self, row: int) -> Explanation:
        """Which component decided series ``row``'s last score, its expected range and value."""
        return Explanation(
            component=COMPONENTS[int(self.component_[row])],
            expected_low=float(self.expected_low_[row]),
            expected_high=float(self.expected_high_[row]),
            observed=float(self.observed_[row]),
            score=float(self.scores_[row]),
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


def _scrape_time(target: str) -> float:
    """The data's scrape time; the wall clock only where the caller hands none (older workers)."""
    try:
        return data_time(target)
    except RuntimeError:
        return time.time()


_COUNTER = re.compile(r"_(total|count|sum|bucket)$")

SeriesKey = tuple[str, str, str]


class RangeObserver(MetricsObserver):
    """A ready observer: a ``RangeDetector`` over every series of its desired metrics.

    Gauges are scored as they are; counters (``_total``, ``_count``, ``_sum``, ``_bucket``) by
    their per-second rate between the data's scrape times (a reset starts the rate again),
    with the rate's resolution: the smallest increase the counter has shown, over the interval
    (a rate known only to a tick of its counter sets no record by one tick). Each
    series whose score reaches ``threshold`` gives one alert, labelled with its metric and series
    and annotated with the component that fired, the expected range and the observed value.
    A series absent for ``forget_after`` calls is forgotten, so that memory stays bounded when
    series come and go (pods, label values). Other keyword options are ``RangeDetector``'s.
    """

    def __init__(
        self, desired_metrics: Iterable[str], *, forget_after: int = 1000, **options: Any
    ) -> None:
        super().__init__(desired_metrics)
        if forget_after < 1:
            raise ValueError(f"forget_after={forget_after}: give a number of calls, 1 or more")
        self.forget_after = forget_after
        self.detector = RangeDetector(**options)
        self.rows: dict[SeriesKey, int] = {}
        self.last_seen: dict[SeriesKey, int] = {}
        self.last_counter: dict[SeriesKey, tuple[float, float]] = {}
        self.counter_step: dict[SeriesKey, float] = {}
        """Per counter, the smallest increase it has shown between two calls."""
        self.calls = 0

    def new_data(self, targets_data_dict: TargetsData) -> list[Alert]:
        """Score each series' new value; alert on those at or above the threshold."""
        self.calls += 1
        if self.calls % max(1, self.forget_after // 10) == 0:
            self._forget_absent()
        values: list[float] = [math.nan] * len(self.rows)
        resolution: list[float] = [0.0] * len(self.rows)
        for target, samples in targets_data_dict.items():
            now = _scrape_time(target)
            for metric, series in samples.items():
                counter = _COUNTER.search(metric) is not None
                for labels, raw in series.items():
                    key = (target, metric, labels)
                    self.last_seen[key] = self.calls
                    row = self.rows.setdefault(key, len(self.rows))
                    if row == len(values):
                        values.append(math.nan)
                        resolution.append(0.0)
                    if counter:
                        values[row], resolution[row] = self._counter_rate(key, raw, now)
                    else:
                        values[row] = raw
        if not values:
            return []
        scores = self.detector.update(values, resolution)
        alerts = []
        for key, row in self.rows.items():
            if scores[row] >= self.detector.threshold:
                alerts.append(self._alert(key, self.detector.explain(row)))
        return alerts

    def scores(self) -> dict[SeriesKey, float]:
        """Each series' last score, keyed by (target, metric, series)."""
        return {key: float(self.detector.scores_[row]) for key, row in self.rows.items()}

    def _forget_absent(self) -> None:
        oldest = self.calls - self.forget_after
        absent = [key for key, seen in self.last_seen.items() if seen < oldest]
        if not absent:
            return
        for key in absent:
            del self.last_seen[key]
            self.last_counter.pop(key, None)
            self.counter_step.pop(key, None)
            self.rows.pop(key)
        self.detector.keep(list(self.rows.values()))
        self.rows = {key: row for row, key in enumerate(self.rows)}

    def _counter_rate(self, key: SeriesKey, raw: float, now: float) -> tuple[float, float]:
        """The counter's rate since its last value, and the rate's resolution: the smallest
        increase the counter has shown (CPU seconds grow in ticks of 0.01 s, packets in ones)
        over this interval."""
        previous = self.last_counter.get(key)
        self.last_counter[key] = (now, raw)
        if previous is None or now <= previous[0] or raw < previous[1]:
            return math.nan, 0.0  # first sight, or a reset: no rate this time
        increase, seconds = raw - previous[1], now - previous[0]
        smallest = self.counter_step.get(key, math.inf)
        if 0 < increase < smallest:
            smallest = self.counter_step[key] = increase
        return increase / seconds, (smallest / seconds if math.isfinite(smallest) else 0.0)

    def _alert(self, key: SeriesKey, why: Explanation) -> Alert:
        target, metric, labels = key
        name = metric + ("" if labels == "{}" else labels)
        expected = f"{why.expected_low:.6g} .. {why.expected_high:.6g}"
        return Alert(
            labels={"metric": metric, "series": labels},
            annotations={
                "summary": f"{name} is outside its expected range",
                "description": (
                    f"{name} is {why.observed:.6g}, outside the {why.component} range "
                    f"{expected} (score {why.score:.3f})"
                ),
                "component": why.component,
                "expected_range": expected,
                "observed": f"{why.observed:.6g}",
            },
            target=target,
            score=round(why.score, 4),
        )
