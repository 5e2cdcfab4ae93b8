"""Derived signals: what a preset watches, computed from a target's raw series each cycle.

A ``Signal`` is one health signal of a target (CPU busy fraction, a route's error ratio, ...):
a function of the target's recent samples that gives one value per series of the signal
(``{}`` for a node-wide signal, ``{device="sda"}`` per device, ``{route="/api"}`` per route),
plus what makes a move of it worth an alert: the direction that hurts and the smallest change
that matters, in the signal's own units.

``Query`` is what a signal's function reads: PromQL's ``rate``, ``sum by``, ``deriv`` and
``histogram_quantile`` over one target's part of a ``deucalion.history.Window``, with the
counters' rates computed by ``deucalion.history``'s Prometheus-exact functions.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np

from deucalion._redact import redact_url
from deucalion.history.labels import series_key, series_labels
from deucalion.history.promql import bucket_quantile, extrapolated_rate
from deucalion.history.vectors import Block
from deucalion.history.window import Window

__all__ = [
    "SILENT_CYCLES",
    "Direction",
    "Query",
    "Signal",
    "SignalValues",
    "SilentTargets",
    "labels_of",
    "looked_for",
]

#: The direction in which a signal's move hurts.
Direction = Literal["up", "down", "both"]
#: One cycle's values of a signal on one target: ``{series key: value}``.
SignalValues = dict[str, float]

_LABELS: dict[str, dict[str, str]] = {}
_MAX_LABEL_CACHE = 100_000


def labels_of(key: str) -> dict[str, str]:
    """The labels of series key ``key``, remembered (a cycle parses the same keys again)."""
    labels = _LABELS.get(key)
    if labels is None:
        try:
            labels = series_labels(key)
        except ValueError:
            labels = {}
        if len(_LABELS) >= _MAX_LABEL_CACHE:
            _LABELS.clear()  # bounded: label churn cannot grow it without end
        _LABELS[key] = labels
    return labels


#: Label matchers: label name -> a regular expression the whole value must match (a name
#: starting with ``!`` must not match), as PromQL's ``=~`` and ``!~``.
Matchers = Mapping[str, str]


def _matches(labels: Mapping[str, str], where: Matchers | None) -> bool:
    if not where:
        return True
    for name, pattern in where.items():
        negated = name.startswith("!")
        value = labels.get(name.lstrip("!"), "")
        if bool(re.fullmatch(pattern, value)) == negated:
            return False
    return True


class Query:
    """PromQL over one target's part of a window, at the target's newest scrape.

    ``range_seconds`` is the range of ``rate`` (``rate(x[range])``). Every method returns
    ``{series key of the by-labels: value}``; a series without a value (too few samples, a
    gap) is left out, as Prometheus leaves it out of a result. One ``Query`` serves one target
    for one cycle. ``widest`` is the longest range a signal of a few requests may widen its
    own to (a latency quantile, an error ratio: see ``deucalion.presets.http_service``), at
    most what ``window`` holds; by default ``range_seconds`` (no widening).
    """

    def __init__(
        self,
        window: Window,
        target: str,
        range_seconds: float,
        *,
        slow: Window | None = None,
        widest: float | None = None,
        interval: float | None = None,
        state: dict[object, object] | None = None,
    ) -> None:
        self.window = window
        #: Minutes of the metrics a trend is read from (``deriv``); else ``window``.
        self.slow = slow if slow is not None else window
        self.target = target
        self.range_seconds = range_seconds
        self.widest = max(widest or range_seconds, range_seconds)
        #: The scrape interval, when known (``sampled``).
        self.interval = interval
        #: What signals keep of the target from cycle to cycle (the totals an error ratio's
        #: usual ratio is read from): the observer's, per target; a fresh one by default.
        self.state: dict[object, object] = {} if state is None else state
        #: What the signals of one cycle share (the instrumentation found, the routes).
        self.memo: dict[object, object] = {}

    def sampled(self, range_seconds: float) -> float:
        """The seconds the samples within a range of ``range_seconds`` span, one scrape every
        ``interval``: a rate times it is the increase counted between them (a count of
        requests), where the rate's increase is extrapolated to the range's ends (by 25 % at
        a rate's range of 2.5 intervals). Without an interval, the range."""
        if not self.interval:
            return range_seconds
        return max(math.ceil(range_seconds / self.interval - 1e-9) - 1, 1) * self.interval

    def has(self, metric: str) -> bool:
        """Whether the target has served ``metric`` within the window."""
        return len(self.window.block(metric, self.target)) > 0

    def rate(
        self,
        metric: str,
        by: Iterable[str] = (),
        where: Matchers | None = None,
        *,
        range_seconds: float | None = None,
    ) -> SignalValues:
        """``sum by (by) (rate(metric{where}[range]))``."""
        seconds = range_seconds or self.range_seconds
        key = f"rate:{metric}:{seconds}"
        items = self.memo.get(key)
        if items is None:  # several signals read one counter's rates (CPU modes)
            vector = self.window.rate(metric, seconds, target=self.target)
            items = self.memo[key] = list(vector.items())
        return _sum_by(items, tuple(by), where)  # type: ignore[arg-type]

    def gauge(
        self, metric: str, by: Iterable[str] = (), where: Matchers | None = None
    ) -> SignalValues:
        """``sum by (by) (metric{where})`` of the newest values."""
        return _sum_by(self.window.latest(metric, self.target).items(), tuple(by), where)

    def mean(
        self, metric: str, seconds: float, by: Iterable[str] = (), where: Matchers | None = None
    ) -> SignalValues:
        """``sum by (by) (avg_over_time(metric{where}[seconds]))`` over the points held (a
        gauge sampled at one instant is noisy: a run queue's length, say): the slow window's,
        for a metric a signal keeps there (``Signal.trend``), else the last scrapes'."""
        block = self.slow.block(metric, self.target)
        if not len(block):
            block = self.window.block(metric, self.target)
        if not len(block):
            return {}
        newest = np.nanmax(block.times) if np.isfinite(block.times).any() else math.nan
        means = []
        with np.errstate(all="ignore"):
            keep = (block.times > newest - seconds) & np.isfinite(block.values)
            for i in range(len(block)):
                values = block.values[i][keep[i]]
                means.append(float(values.mean()) if len(values) else math.nan)
        return _sum_by(zip(block.keys, means, strict=True), tuple(by), where)

    def count(
        self, metric: str, by: Iterable[str] = (), where: Matchers | None = None
    ) -> SignalValues:
        """``count by (by) (metric{where})`` of the series with a newest value."""
        counted: dict[str, float] = {}
        for (_, key), value in self.window.latest(metric, self.target).items():
            labels = labels_of(key)
            if math.isnan(value) or not _matches(labels, where):
                continue
            group = series_key({k: labels.get(k, "") for k in by})
            counted[group] = counted.get(group, 0.0) + 1.0
        return counted

    def deriv(
        self, metric: str, seconds: float, by: Iterable[str] = (), where: Matchers | None = None
    ) -> SignalValues:
        """``sum by (by) (deriv(metric{where}[seconds]))``: the least-squares slope per second
        of each gauge over the range, as PromQL's ``deriv`` (NaN with fewer than 2 samples)."""
        block = self.slow.block(metric, self.target)
        if not len(block):
            return {}
        newest = np.nanmax(block.times) if np.isfinite(block.times).any() else math.nan
        slopes = []
        with np.errstate(all="ignore"):
            inside = block.times > newest - seconds
            for i in range(len(block)):
                keep = inside[i] & np.isfinite(block.values[i])
                if keep.sum() < 2:
                    slopes.append(math.nan)
                    continue
                t = block.times[i][keep] - newest  # as Prometheus: times relative to the end
                v = block.values[i][keep]
                t_mean = t.mean()
                cov = ((t - t_mean) * (v - v.mean())).sum()
                var = ((t - t_mean) ** 2).sum()
                slopes.append(float(cov / var) if var > 0 else math.nan)
        return _sum_by(zip(block.keys, slopes, strict=True), tuple(by), where)

    def kept_slope(
        self,
        metric: str,
        seconds: float,
        span: float,
        kept: float,
        by: Iterable[str] = (),
        where: Matchers | None = None,
        *,
        covered: float,
    ) -> SignalValues:
        """The fall per second each gauge kept up over a share ``kept`` of the range: of the
        slopes over ``span`` seconds ending at each sample within the last ``seconds`` (from
        the newest sample at least ``span`` before it), the fall that a share ``kept`` of them
        reach or pass (their ``1 - kept`` quantile; 0.8: 80 % of the spans fell at least this
        fast; negative when most rose). One step moves only the spans holding it (``span`` of
        the range), so it is no fall kept up however large; a steady fall is in every span. A
        series whose samples within the range span less than ``covered`` seconds (a young
        watch, a series new to it; at scrapes far apart, less by two intervals), or that gives
        fewer than 3 spans (scrapes over about ``seconds / 4`` apart), has none: no slope of
        less history."""
        block = self.slow.block(metric, self.target)
        if not len(block):
            return {}
        newest = np.nanmax(block.times) if np.isfinite(block.times).any() else math.nan
        falls = np.full(len(block), math.nan)
        with np.errstate(all="ignore"):
            inside = (block.times > newest - seconds) & np.isfinite(block.values)
            # The series sampled when the first was (a target's, none missing) are read at
            # once, the others one by one.
            same = (inside == inside[0]).all(axis=1)
            groups = [np.flatnonzero(same), *(np.array([i]) for i in np.flatnonzero(~same))]
            for group in groups:
                t = block.times[group[0]][inside[group[0]]]
                v = block.values[np.ix_(group, inside[group[0]])]
                # At scrapes a minute or more apart the range's samples span up to one
                # interval less than it: ``covered`` asks that much less of them (at 150 s,
                # 450 s of a 600 s range; asked 480 s, such a series never had a rate).
                step = float(np.median(np.diff(t))) if len(t) > 1 else math.inf
                if len(t) < 2 or t[-1] - t[0] < min(covered, seconds - 2 * step):
                    continue
                # For each sample, the newest one at least ``span`` before it.
                start = np.searchsorted(t, t - span, side="right") - 1
                ends = np.flatnonzero(start >= 0)
                # Fewer than 3 spans (scrapes over 150 s apart) cannot tell a fill kept up
                # from one write: no rate, as a young watch has none.
                if len(ends) >= 3:
                    s = start[ends]
                    fall = (v[:, s] - v[:, ends]) / (t[ends] - t[s])
                    falls[group] = np.quantile(fall, 1.0 - kept, axis=1)
        return _sum_by(zip(block.keys, falls.tolist(), strict=True), tuple(by), where)

    def quantile(
        self,
        q: float,
        bucket_metric: str,
        by: Iterable[str] = (),
        where: Matchers | None = None,
        *,
        range_seconds: float | None = None,
        only: Collection[str] | None = None,
    ) -> SignalValues:
        """``histogram_quantile(q, sum by (le, by) (rate(bucket_metric{where}[range])))``;
        ``only``: the series keys (of the by-labels) wanted, the others' buckets are not read
        (a quantile at a wider range is wanted for the few series lacking requests)."""
        summed = self._bucket_rates(
            bucket_metric, tuple(by), where, range_seconds or self.range_seconds, only
        )
        return {key: bucket_quantile(q, buckets.items()) for key, buckets in summed.items()}

    def _bucket_rates(
        self,
        metric: str,
        by: tuple[str, ...],
        where: Matchers | None,
        seconds: float,
        only: Collection[str] | None,
    ) -> dict[str, dict[float, float]]:
        """``sum by (le, by) (rate(metric{where}[seconds]))`` per series key of the by-labels
        (of those in ``only``), ``{key: {le: rate}}``. Each key's are computed once a cycle
        per range: the median and the 99th percentile read the same."""
        block = cast("Block | None", self.memo.get(("block", metric)))
        if block is None:  # read once a cycle, whatever the quantiles and ranges asked for
            block = self.memo["block", metric] = self.window.block(metric, self.target)
        if not len(block):
            return {}
        rows, bounds = self._buckets(metric, block, by, where)
        known = cast(
            "dict[str, dict[float, float]]",
            self.memo.setdefault(("bucket rates", metric, by, _key(where), seconds), {}),
        )
        wanted = [key for key in rows if only is None or key in only]
        missing = [key for key in wanted if key not in known]
        if missing:
            picked = np.concatenate([rows[key] for key in missing])
            # The newest sample of every series, not only of those read, as Prometheus
            # evaluates every series of a query at one time.
            at = float(np.nanmax(block.times)) if np.isfinite(block.times).any() else math.nan
            rates = extrapolated_rate(
                block.times[picked], block.values[picked], seconds, at, is_rate=True
            ).tolist()
            values = iter(rates)
            for key in missing:
                buckets: dict[float, float] = {}
                for i in rows[key].tolist():
                    value = next(values)
                    if not math.isnan(value):
                        buckets[bounds[i]] = buckets.get(bounds[i], 0.0) + value
                known[key] = buckets
        return {key: known[key] for key in wanted if known[key]}

    def _buckets(
        self, metric: str, block: Block, by: tuple[str, ...], where: Matchers | None
    ) -> tuple[dict[str, np.ndarray], dict[int, float]]:
        """The rows of ``block`` (a histogram's buckets) each series key of the by-labels
        sums, in the block's order, and each row's bound (``le``); rows without a bound or
        outside ``where`` are left out. Found once a cycle per grouping, not per quantile."""
        memo = ("buckets", metric, by, _key(where))
        cached = self.memo.get(memo)
        if cached is None:
            grouped: dict[str, list[int]] = {}
            bounds: dict[int, float] = {}
            for i, (_, key) in enumerate(block.keys):
                labels = labels_of(key)
                if not _matches(labels, where):
                    continue
                try:
                    bound = float(labels.get("le", "nan"))
                except ValueError:
                    continue
                if math.isnan(bound):
                    continue
                bounds[i] = bound
                grouped.setdefault(series_key({k: labels.get(k, "") for k in by}), []).append(i)
            rows = {key: np.array(kept, dtype=np.int64) for key, kept in grouped.items()}
            cached = self.memo[memo] = (rows, bounds)
        return cached  # type: ignore[return-value]


def _key(where: Matchers | None) -> tuple[tuple[str, str], ...]:
    """``where`` as a key of ``Query.memo``."""
    return tuple(sorted((where or {}).items()))


def _sum_by(
    items: Iterable[tuple[tuple[str, str], float]], by: tuple[str, ...], where: Matchers | None
) -> SignalValues:
    summed: dict[str, float] = {}
    for (_, key), value in items:
        if math.isnan(value):
            continue
        labels = labels_of(key)
        if not _matches(labels, where):
            continue
        group = series_key({k: labels.get(k, "") for k in by}) if by else "{}"
        summed[group] = summed.get(group, 0.0) + value
    return summed


def ratio(top: SignalValues, bottom: SignalValues, *, least: float = 0.0) -> SignalValues:
    """``top / bottom`` matched on series, as PromQL's ``/`` matches them: a series missing
    from either side is left out (a target not serving ``MemAvailable`` has no available
    fraction, not an empty memory), and so is one whose ``bottom`` is at most ``least``."""
    return {k: top[k] / b for k, b in bottom.items() if b > least and k in top}


def scalar(values: SignalValues) -> float:
    """The one value of a node-wide result (NaN when there is none)."""
    return values.get("{}", math.nan)


@dataclass(frozen=True)
class Signal:
    """One health signal a preset watches.

    ``compute(query)`` gives its values this cycle, ``{series key: value}`` (empty when the
    target does not serve what it needs). A move alerts only in ``direction`` and only when it
    exceeds both ``floor`` (in ``unit``) and ``relative`` times the signal's usual level (and
    passes ``limit``, if given): smaller moves are ordinary however unusual they are in standard
    deviations.
    ``severity`` labels the alert an incident led by this signal raises.
    """

    name: str
    help: str
    unit: str
    compute: Callable[[Query], SignalValues]
    needs: tuple[str, ...]
    direction: Direction = "up"
    floor: float = 0.0
    relative: float = 0.0
    limit: float | None = None
    """A value a move must also pass in the direction that hurts, whatever the band (a time
    to full under 12 h): where the alerting level is the same for every series, not a
    distance from the series' usual level."""
    severity: str = "warning"
    trend: tuple[str, ...] = ()
    """Metrics it reads more than the last few scrapes of (``Query.deriv``, ``Query.mean``
    over seconds): they are kept for minutes."""
    alone: int = 0
    """Cycles a move of this signal must last to open an incident on its own, when no signal
    of the target without one moves too (0: the observer's ``for_cycles``, as any other): for
    a utilisation or contention a busy machine passes through for seconds, which is news when
    it lasts or when what causes it (a throughput, a fork rate) moves with it."""
    back_cycles: int = 1
    """Cycles in a row a move must be back inside the band it left to end. 2 for a ratio or
    quantile of the requests within a rate's range: at a few requests a second, an error
    ratio swings to nothing and back from one scrape to the next while the service fails, and
    a scrape back is a dip (it does not count towards the move); 1 for a machine's signals,
    whose dips are the end (a dip kept their ordinary bursts moving, into false alerts)."""
    widens: bool = False
    """Whether it may read a quiet series over a range wider than the rate's (an HTTP
    service's latency quantile or error ratio of a few requests): its preset keeps a minute
    of raw samples (``RAW_POINTS``), the others the last few scrapes."""
    narrow: Callable[[Collection[str]], tuple[str, ...]] | None = None
    """Of ``needs``, those it looks for on a target that serves these metrics (an HTTP
    signal: its own metrics of the instrumentation the target serves); None: all of them."""
    lacking: Callable[[Mapping[str, Mapping[str, float]]], str | None] | None = None
    """Why it can have no value on a target serving these samples (``{metric: {series:
    value}}``) whatever the requests: what it needs beyond metric names (the error ratio
    needs a status label on the request counter); None when nothing is lacking."""

    def needs_on(self, metrics: Collection[str]) -> tuple[str, ...]:
        """The metrics it looks for on a target that serves ``metrics``."""
        return (self.narrow(metrics) if self.narrow else ()) or self.needs


#: Cycles a target that is up serves some of a preset's metrics without any signal before the
#: preset says so: a rate needs two scrapes, a quantile two of a histogram.
SILENT_CYCLES = 5
#: Metrics named when a target serves none of a preset's: its first signals' (the others
#: counted).
LOOKED_FOR_SHOWN = 3
#: Samples every target has, which no signal reads.
_SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

log = logging.getLogger("deucalion.presets")


def looked_for(signals: Iterable[Signal]) -> str:
    """What each of ``signals`` looks for, signals looking for the same metrics together:
    ``cpu_busy, cpu_steal look for node_cpu_seconds_total; load_per_core looks for ...``."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for signal in signals:
        groups.setdefault(signal.needs, []).append(signal.name)
    return "; ".join(
        f"{', '.join(names)} look{'s' if len(names) == 1 else ''} for {', '.join(needs)}"
        for needs, names in groups.items()
    )


def served_of(signals: Iterable[Signal], metrics: Iterable[str]) -> list[str]:
    """Which of ``metrics`` (a target's) some of ``signals`` look for, sorted."""
    needs = {m for signal in signals for m in signal.needs}
    return sorted(m for m in metrics if m in needs and m not in _SYNTHETIC)


def silence(preset: str, target: str, signals: Collection[Signal], served: list[str]) -> str:
    """Why preset ``preset`` computes no signal on ``target``, which serves ``served`` of the
    metrics its signals look for, and what each looks for."""
    shown = redact_url(target)
    if not served:
        # A count and a few names (each signal's first): the whole list, 30 names of
        # node-exporter's, was a 1,000-character line per target of a `record --all`
        # recording; `presets show` (named below) and `presets list` give them all.
        looked = sorted({m for signal in signals for m in signal.needs})
        first = list(dict.fromkeys(signal.needs[0] for signal in signals if signal.needs))
        few = ", ".join(first[:LOOKED_FOR_SHOWN])
        more = len(looked) - min(len(first), LOOKED_FOR_SHOWN)
        why = (
            f"{shown} serves none of the metrics it watches (looked for {few}"
            + (f" and {more} more" if more > 0 else "")
            + ")"
        )
    else:
        why = (
            f"{shown} serves {', '.join(served)} of the metrics it watches, too few for any of "
            f"its signals ({looked_for(signals)})"
        )
    show = f"`deucalion presets show {preset} --target URL` lists what it would watch"
    return f"preset {preset}: {why}; {show}"


class SilentTargets:
    """Says once per target that is up when a preset computes none of its signals there.

    A target serving none of the preset's metrics is named at once. One serving some is named
    after ``SILENT_CYCLES`` cycles in a row without a signal (its first cycles compute no rate
    yet), with what it serves and what each signal looks for; one whose signals come within
    those cycles is not. Once named, a target is not named again, whether it later gains its
    signals or loses them again: a target flapping would otherwise log every few cycles.
    """

    def __init__(self, preset: str, signals: Collection[Signal]) -> None:
        self.preset = preset
        self.signals = signals
        #: Targets named (or not to be named: ``deucalion presets show`` says it itself).
        self.told: set[str] = set()
        self.cycles: dict[str, int] = {}  # target -> cycles in a row up without a signal

    def see(self, target: str, values: Mapping[str, object], samples: Mapping[str, object]) -> None:
        """One cycle of ``target``: its ``samples`` and the signal ``values`` computed."""
        if target in self.told:
            return
        up = samples.get("up")
        if values or not (isinstance(up, Mapping) and up.get("{}") == 1.0):
            self.cycles.pop(target, None)  # down is no proof of anything missing
            return
        served = served_of(self.signals, samples)
        cycles = self.cycles[target] = self.cycles.get(target, 0) + 1
        if served and cycles < SILENT_CYCLES:
            return
        self.told.add(target)
        del self.cycles[target]
        log.warning("%s", silence(self.preset, target, self.signals, served))
