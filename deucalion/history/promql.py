"""Counters and histograms as Prometheus computes them: ``rate``, ``increase``,
``histogram_quantile``.

The rules are PromQL's (``promql/functions.go``'s ``extrapolatedRate`` and ``quantile.go``'s
``bucketQuantile``), written again over NumPy arrays so that thousands of series are done at
once:

- ``rate``/``increase`` use the samples in the range ``(at - range, at]``; fewer than two give
  NaN (Prometheus gives no result). A drop in value is a counter reset: the value before it is
  added back. The result is extrapolated towards the range's ends, by the distance to each end
  when that is under 1.1 average sample intervals and by half an interval otherwise, and never
  to before the counter's extrapolated zero.
- ``bucket_quantile`` sorts buckets by upper bound, needs a ``+Inf`` bucket and two buckets at
  least, sums buckets of equal bound, makes counts monotonic (a lower count than a bucket below
  takes that bucket's count), and interpolates linearly inside the bucket the rank falls in.

A sample whose value is NaN counts as no sample (a gap), as Prometheus's staleness markers do:
a target that exposes NaN for a counter has no rate for that moment rather than poisoning the
whole range. Functions never raise on NaN, infinities, gaps or short series: they return NaN.

A counter's increase between two consecutive samples (PromQL's ``irate`` on each pair) has one
rule, ``counter_increase``: a value lower than the one before it is a reset, after which the
counter counted up from zero, so the increase is the new value itself, as Prometheus counts it.
Two readers use it: ``Window.interval_rates`` over a window's arrays (what a user reads as
``irate``, and what window detectors score), and ``CounterRates`` sample by sample (what online
detectors are fed), which withholds the one interval that holds a reset (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - exercised without the ml extra
    from deucalion._extras import missing_extra

    raise missing_extra("numpy", "deucalion.history") from exc

from deucalion.errors import UsageError

__all__ = [
    "CounterRates",
    "bucket_quantile",
    "counter_increase",
    "extrapolated_rate",
    "increase",
    "rate",
]

# PromQL's threshold: a sample within 1.1 average intervals of a range's end is taken to mean
# the series covers the whole range.
EXTRAPOLATION_THRESHOLD = 1.1

_Values = TypeVar("_Values", float, np.ndarray)


def extrapolated_rate(
    times: np.ndarray,
    values: np.ndarray,
    range_seconds: float,
    at: float | np.ndarray,
    *,
    is_rate: bool,
) -> np.ndarray:
    """``rate`` (``is_rate``) or ``increase`` of each row of ``values`` over ``range_seconds``
    ending at ``at`` (a time, or one per row).

    ``times`` and ``values`` are ``[series, points]`` (``times`` may also be one row shared by
    all), oldest point first; NaN in either marks no sample. Returns one float per row, NaN
    where there are fewer than two samples in the range.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[None, :]
    times = np.broadcast_to(np.asarray(times, dtype=np.float64), values.shape)
    n, points = values.shape
    at_rows = np.broadcast_to(np.asarray(at, dtype=np.float64), (n,))
    start = at_rows - range_seconds
    with np.errstate(all="ignore"):
        present = ~np.isnan(times) & ~np.isnan(values)
        present &= (times > start[:, None]) & (times <= at_rows[:, None])
        count = present.sum(axis=1)
        ok = count >= 2
        first = np.argmax(present, axis=1)
        last = points - 1 - np.argmax(present[:, ::-1], axis=1)
        rows = np.arange(n)
        first_t, last_t = times[rows, first], times[rows, last]
        first_v, last_v = values[rows, first], values[rows, last]
        result = last_v - first_v
        # Counter resets: each sample lower than the sample before it in the range adds that
        # earlier value back (the counter restarted from zero in between).
        index = np.where(present, np.arange(points), -1)
        before = np.maximum.accumulate(index, axis=1)
        previous = np.empty_like(before)
        previous[:, 0] = -1
        previous[:, 1:] = before[:, :-1]
        previous_v = np.take_along_axis(values, np.maximum(previous, 0), axis=1)
        resets = present & (previous >= 0) & (values < previous_v)
        result += np.where(resets, previous_v, 0.0).sum(axis=1)

        sampled = last_t - first_t
        average = sampled / np.maximum(count - 1, 1)
        threshold = average * EXTRAPOLATION_THRESHOLD
        to_start = first_t - start
        to_end = at_rows - last_t
        to_start = np.where(to_start >= threshold, average / 2, to_start)
        # A counter cannot go below zero: extrapolate at most to where it would reach zero.
        to_zero = sampled * (first_v / result)
        counter_zero = (result > 0) & (first_v >= 0) & (to_zero < to_start)
        to_start = np.where(counter_zero, to_zero, to_start)
        to_end = np.where(to_end >= threshold, average / 2, to_end)
        factor = (sampled + to_start + to_end) / sampled
        if is_rate:
            factor = factor / range_seconds
        result = result * factor
    return np.where(ok, result, np.nan)


def rate(
    times: Iterable[float], values: Iterable[float], range_seconds: float, at: float | None = None
) -> float:
    """PromQL's ``rate(x[range])`` of one counter's samples, evaluated at ``at`` (default:
    the last sample's time). NaN with fewer than two samples in the range."""
    return _one(times, values, range_seconds, at, is_rate=True)


def increase(
    times: Iterable[float], values: Iterable[float], range_seconds: float, at: float | None = None
) -> float:
    """PromQL's ``increase(x[range])`` of one counter's samples (see ``rate``)."""
    return _one(times, values, range_seconds, at, is_rate=False)


def _one(
    times: Iterable[float],
    values: Iterable[float],
    range_seconds: float,
    at: float | None,
    *,
    is_rate: bool,
) -> float:
    t = np.asarray(list(times), dtype=np.float64)
    v = np.asarray(list(values), dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise UsageError(
            f"times and values must be two sequences of one length, not {t.shape} and {v.shape}"
        )
    if not range_seconds > 0:
        raise UsageError(f"the range must be a positive number of seconds, not {range_seconds!r}")
    if t.size == 0:
        return math.nan
    if at is None:
        at = float(np.nanmax(t)) if not np.isnan(t).all() else math.nan
    return float(extrapolated_rate(t, v, range_seconds, at, is_rate=is_rate)[0])


def counter_increase(previous: _Values, value: _Values) -> _Values:
    """How much a counter grew from ``previous`` to ``value``, by Prometheus's reset rule (its
    ``irate``'s, and ``rate``'s per pair): a value lower than the one before it means the
    counter was reset and counted up from zero since, so the increase is ``value`` itself.

    Floats or NumPy arrays alike (element by element); NaN in either gives NaN.
    """
    # ``previous * (value >= previous)`` is ``previous`` without a reset and 0 after one; one
    # expression rather than a branch, so that floats and arrays share it (and a NaN, which
    # compares false, stays NaN).
    increase: _Values = value - previous * (value >= previous)
    return increase


class CounterRates:
    """Each counter's rate between its consecutive samples, one sample at a time, as an online
    detector is fed.

    ``update(key, time, value)`` returns ``(rate, resolution)``: the increase since the key's
    previous sample (``counter_increase``, the rule ``Window.interval_rates`` uses) over the
    seconds between their scrape times, and the rate's resolution: the counter's quantum (what
    it counts in: 1 for requests or packets, 0.01 s for CPU seconds' ticks, about 0 for a float
    sum such as a histogram's ``_sum``) over this interval, 0 while none is known. A rate known
    only to a tick of its counter moves in steps of that resolution. NaN for the first sample, a
    NaN value, a time not after the previous one, and the interval that holds a reset.

    The quantum is learned as the greatest common divisor of the increases seen so far (0
    increases and withheld resets aside), by Euclid's algorithm with a tolerance for float
    round-off: an increase is a multiple of the quantum, and so is the difference of any two.
    Two increases of an integer counter, 160 and 173 say, give 1 at once, where the smallest
    increase (160) would take the rate's noise for its resolution; 0.37 and 0.41 CPU seconds
    give 0.01; a continuous counter's increases share no divisor, and the quantum falls within
    a few samples to the size of the round-off, about 0. The round-off is bounded, not guessed:
    an integer value below 2**53 is exact, another is within 2 ulps, and each step of Euclid
    adds its quotient times the divisor's bound. A counter whose increases are all one size
    (a heartbeat that counts 15 a scrape) has that size for quantum, as far as it shows.

    That last NaN is the one difference from ``interval_rates`` (and Prometheus's ``irate``),
    on purpose. Across a reset, Prometheus's rule gives only a lower bound: what was counted
    between the last scrape and the restart is lost, and the process counted for only part of
    the interval. An online detector learns from every value it is handed and cannot take one
    back, so that false dip would both alert (the default ``DetectorObserver`` alerted on a
    restart with it) and stay in what it learned. A window, by contrast, is read as PromQL (a
    user compares ``interval_rates`` with a dashboard's ``irate``) and drops the dip with its
    oldest point.
    """

    def __init__(self) -> None:
        self.last: dict[object, tuple[float, float]] = {}
        #: Each key's quantum and the bound on its round-off.
        self.quantum: dict[object, tuple[float, float]] = {}

    def update(self, key: object, time: float, value: float) -> tuple[float, float]:
        """The rate since ``key``'s previous sample, and its resolution (see the class doc)."""
        previous = self.last.get(key)
        if math.isnan(value) or math.isnan(time):
            return math.nan, 0.0
        self.last[key] = (time, value)
        if previous is None or time <= previous[0]:
            return math.nan, 0.0  # first sight, or no time between: no rate this time
        if value < previous[1]:
            return math.nan, 0.0  # a reset: Prometheus's increase is only a lower bound here
        increase, seconds = counter_increase(previous[1], value), time - previous[0]
        quantum = self.quantum.get(key)
        if 0 < increase < math.inf:
            exact = float(value).is_integer() and float(previous[1]).is_integer()
            error = 0.0 if exact and value < 2.0**53 else 2 * math.ulp(value)
            if quantum is not None:
                quantum = _common_divisor(*quantum, increase, error)
            self.quantum[key] = quantum = quantum or (increase, error)
        return increase / seconds, (quantum[0] / seconds if quantum is not None else 0.0)

    def forget(self, key: object) -> None:
        """Drop what is known of ``key`` (a series gone for good)."""
        self.last.pop(key, None)
        self.quantum.pop(key, None)


def _common_divisor(a: float, a_error: float, b: float, b_error: float) -> tuple[float, float]:
    """The greatest common divisor of ``a`` and ``b`` (both positive), each known to within its
    error, and the bound on the divisor's own error: Euclid's algorithm, a remainder within its
    error of 0 (or of the divisor) taken for 0. A hundred steps at most (the slowest case,
    consecutive Fibonacci numbers, takes under 80 from 2**53 down to 1); past them, the smaller
    number is taken."""
    if a < b:
        a, a_error, b, b_error = b, b_error, a, a_error
    for _ in range(100):
        if b <= b_error:
            return a, a_error
        remainder = math.fmod(a, b)
        error = a_error + math.floor(a / b) * b_error
        if b - remainder <= error + b_error:
            return b, b_error  # a remainder of almost b: a is a multiple of b, give or take
        a, a_error, b, b_error = b, b_error, remainder, error
    return b, b_error


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """PromQL's ``histogram_quantile(q, ...)`` of one classic histogram.

    ``buckets`` holds ``(upper_bound, cumulative_count)`` pairs in any order (a ``le`` of
    ``"+Inf"`` is ``float("inf")``). NaN without a ``+Inf`` bucket, with fewer than two buckets
    or no observations; ``-Inf`` for ``q < 0``, ``+Inf`` for ``q > 1``, as Prometheus answers.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(((float(b), float(c)) for b, c in buckets), key=lambda bc: bc[0])
    if not ordered or ordered[-1][0] != math.inf:
        return math.nan
    merged: list[list[float]] = []
    for bound, count in ordered:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    # Monotonic: a count below the highest count under it (float noise, or a scrape that caught
    # buckets mid-update) takes that count.
    highest = -math.inf
    for bucket in merged:
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * _divide(rank, count)


def _divide(a: float, b: float) -> float:
    """``a / b`` as Go divides floats: by zero gives an infinity or NaN, never an error."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b
