"""PromQL's functions over a ``Window``: ``rate``, ``increase``, ``histogram_quantile``, and
the per-interval rates of counters, evaluated as Prometheus evaluates them.

``PromQLFunctions`` is what ``Window`` reads its series through to evaluate them: a window's
storage (which row is which series, how columns are kept) is ``deucalion.history.window``'s;
the arithmetic is ``deucalion.history.promql``'s.
"""

from __future__ import annotations

import math

import numpy as np

from deucalion.errors import UsageError
from deucalion.history.labels import series_labels, without_label
from deucalion.history.promql import bucket_quantile, counter_increase, extrapolated_rate
from deucalion.history.vectors import Block, InstantVector, SeriesRef

__all__ = ["PromQLFunctions"]


class PromQLFunctions:
    """PromQL's functions over the series a subclass keeps (``Window`` is the one)."""

    def block(self, metric: str, target: str | None = None) -> Block:
        """Every kept series of ``metric`` (of ``target``, when given), as arrays."""
        raise NotImplementedError

    def latest(self, metric: str, target: str | None = None) -> InstantVector:
        """The newest value of every series of ``metric``."""
        raise NotImplementedError

    def _scrape_times(self, metric: str, target: str | None) -> np.ndarray:
        """Each series' target's newest scrape time, in the order ``block`` gives them."""
        raise NotImplementedError

    def rate(
        self,
        metric: str,
        range_seconds: float,
        *,
        at: float | None = None,
        target: str | None = None,
    ) -> InstantVector:
        """PromQL's ``rate(metric[range])`` for every series of ``metric``, at ``at`` (default:
        each target's newest scrape time). NaN where the range holds fewer than two samples."""
        return self._extrapolated(metric, range_seconds, at, target, is_rate=True)

    def increase(
        self,
        metric: str,
        range_seconds: float,
        *,
        at: float | None = None,
        target: str | None = None,
    ) -> InstantVector:
        """PromQL's ``increase(metric[range])`` (see ``rate``)."""
        return self._extrapolated(metric, range_seconds, at, target, is_rate=False)

    def _extrapolated(
        self,
        metric: str,
        range_seconds: float,
        at: float | None,
        target: str | None,
        *,
        is_rate: bool,
    ) -> InstantVector:
        if not (isinstance(range_seconds, int | float) and range_seconds > 0):
            raise UsageError(
                f"the range must be a positive number of seconds, not {range_seconds!r}"
            )
        block = self.block(metric, target)
        if not len(block):
            return InstantVector(metric, [], np.empty(0))
        when: float | np.ndarray = at if at is not None else self._scrape_times(metric, target)
        values = extrapolated_rate(
            block.times, block.values, float(range_seconds), when, is_rate=is_rate
        )
        return InstantVector(metric, block.keys, values)

    def histogram_quantile(
        self,
        q: float,
        metric: str,
        *,
        range_seconds: float | None = None,
        at: float | None = None,
        target: str | None = None,
    ) -> InstantVector:
        """PromQL's ``histogram_quantile(q, rate(metric_bucket[range]))`` per histogram (its
        series without ``le``); without ``range_seconds``, of the buckets' newest values
        (``histogram_quantile(q, metric_bucket)``). ``metric`` is the family name or the
        ``_bucket`` sample name. Series whose ``le`` is not a number are left out, as
        Prometheus does; a histogram without a ``+Inf`` bucket gives NaN."""
        name = metric if metric.endswith("_bucket") else metric + "_bucket"
        if range_seconds is None:
            counts = self.latest(name, target)
        else:
            counts = self.rate(name, range_seconds, at=at, target=target)
        groups: dict[SeriesRef, list[tuple[float, float]]] = {}
        for (url, key), count in counts.items():
            if math.isnan(count):
                continue  # no sample (or no rate) for this bucket: it is missing
            try:
                le = series_labels(key).get("le")
                bound = float(le) if le is not None else None
            except ValueError:
                bound = None
            if bound is None or math.isnan(bound):
                continue
            groups.setdefault((url, without_label(key, "le")), []).append((bound, count))
        keys = list(groups)
        values = np.array([bucket_quantile(q, groups[k]) for k in keys], dtype=np.float64)
        return InstantVector(metric.removesuffix("_bucket"), keys, values)

    def interval_rates(
        self, metric: str, target: str | None = None, *, withhold_resets: bool = False
    ) -> Block:
        """Per-second increase of each counter of ``metric`` between consecutive samples, at
        the later sample's place: PromQL's ``irate`` on each pair, whose reset rule is
        ``deucalion.history.promql.counter_increase`` (after a drop the counter counted from
        zero). The first sample, and gaps, are NaN. The block's ``resolution`` is, per counter,
        the smallest change between its increments (else its smallest increment) over its
        median scrape interval: the step its rates move by, whatever the scrape times' wobble
        (0 for a counter that never moved).

        ``CounterRates``, which feeds online detectors sample by sample, applies the same rule
        but gives NaN for the interval holding a reset, where this gives Prometheus's value: an
        online detector cannot forget the false dip a restart makes (the counts between the last
        scrape and the restart are lost), while a window drops it with its oldest point and is
        read as PromQL, beside a dashboard's ``irate``. ``withhold_resets=True`` gives NaN there
        too, as ``CounterRates`` does: for a detector, which would score the dip as the newest
        point."""
        block = self.block(metric, target)
        values, times = block.values, block.times
        n, points = values.shape
        out = np.full_like(values, np.nan)
        if points < 2 or n == 0:
            return Block(metric, block.keys, times, out)
        with np.errstate(all="ignore"):
            present = ~np.isnan(values)
            index = np.where(present, np.arange(points), -1)
            before = np.maximum.accumulate(index, axis=1)
            previous = np.full_like(before, -1)
            previous[:, 1:] = before[:, :-1]
            safe = np.maximum(previous, 0)
            previous_v = np.take_along_axis(values, safe, axis=1)
            previous_t = np.take_along_axis(times, safe, axis=1)
            increase = counter_increase(previous_v, values)
            elapsed = times - previous_t
            ok = present & (previous >= 0) & (elapsed > 0)
            if withhold_resets:
                ok &= ~(values < previous_v)
            out[ok] = increase[ok] / elapsed[ok]
            # The smallest change between consecutive increments (a CPU counter's 0.01 s tick),
            # else, for a counter that grew by the same amount every time, that amount.
            steps = np.where(ok, increase, np.nan)
            changes = np.abs(np.diff(steps, axis=1)) if points > 2 else np.empty((n, 0))
            # Changes below a billionth of the increments are the float rounding of the
            # subtraction, not a change.
            noise = 1e-9 * np.nanmax(np.where(ok, np.abs(increase), 0.0), axis=1, initial=0.0)
            smallest = np.where(changes > noise[:, None], changes, np.inf).min(
                axis=1, initial=np.inf
            )
            smallest = np.where(
                np.isfinite(smallest),
                smallest,
                np.where(ok & (increase > 0), increase, np.inf).min(axis=1),
            )
            # The median interval, gaps left out (sorted last), without nanmedian's warning
            # for a series with no interval at all.
            spans = np.sort(np.where(ok, elapsed, np.inf), axis=1)
            count = ok.sum(axis=1)
            interval = np.take_along_axis(spans, (np.maximum(count - 1, 0) // 2)[:, None], axis=1)[
                :, 0
            ]
            interval = np.where(count > 0, interval, np.nan)
            resolution = np.where(np.isfinite(smallest) & (interval > 0), smallest / interval, 0.0)
        return Block(metric, block.keys, np.where(ok, times, np.nan), out, resolution)
