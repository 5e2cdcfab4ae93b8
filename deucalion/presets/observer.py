"""``PresetObserver``: a preset's signals computed, scored and grouped into incidents.

Each cycle, per target: the raw samples join a window; every signal of the preset is computed
from it (``deucalion.history``'s Prometheus-exact ``rate`` and ``histogram_quantile``); the
signal values join a second window, and one detector per signal scores each series' newest
value against its own past. A score counts only in the direction that hurts and only for a
move larger than the signal's floor (see ``Signal``).

Alerts are per incident, not per series: a target's incident opens when a signal stays past
the threshold for ``for_cycles`` cycles, gathers every signal that moves while it is open,
and ends after ``quiet_cycles`` cycles with none past the threshold. While open it is one
alert labelled ``severity``, ``preset`` and ``signal`` (the signal that opened it, so the
alert keeps its identity); its annotations name the signal that moved most, its observed
value, the expected band and the start time, and list the others.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from deucalion.alerting.alerts import Alert, Scores, SeriesScore
from deucalion.detectors.base import Detector, row_medians
from deucalion.detectors.statistical import RobustZScore
from deucalion.history.window import Window
from deucalion.observer import MetricsObserver, TargetsData
from deucalion.presets.signals import Query, Signal, SignalValues

__all__ = ["DetectorFactory", "PresetObserver", "robust_detector"]

log = logging.getLogger("deucalion.presets")

#: Builds the detector of one signal, given the alerting threshold (the seam the detectors of
#: ``deucalion.detectors`` plug into).
DetectorFactory = Callable[[Signal, float], Detector]


def robust_detector(signal: Signal, threshold: float) -> Detector:
    """A robust z-score (median and MAD of the signal's past) whose scale never falls below
    the signal's floor and relative floor divided by ``threshold``: a move smaller than the
    floor never scores past the threshold."""
    return RobustZScore(
        min_points=60,
        relative_floor=signal.relative / threshold,
        absolute_floor=max(signal.floor / threshold, 1e-12),
        step_floor=False,
        threshold=threshold,
    )


@dataclass
class _Moved:
    """One signal series past the threshold this cycle."""

    signal: Signal
    series: str
    score: float
    value: float
    lower: float
    upper: float

    @property
    def name(self) -> str:
        return self.signal.name + ("" if self.series == "{}" else self.series)


@dataclass
class _Incident:
    started: float
    opener: _Moved
    top: _Moved
    members: dict[str, float] = field(default_factory=dict)  # name -> highest score
    quiet: int = 0


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


class PresetObserver(MetricsObserver):
    """A ready observer over a preset's derived signals (see the module docstring).

    ``signals``: what it watches. ``threshold`` is the score past which a signal moves (robust
    standard deviations, and the floors as described); ``for_cycles`` how long it must stay
    there before an incident opens; ``quiet_cycles`` how long an incident outlives its last
    moving signal. ``history`` is the number of past cycles a signal is judged against;
    ``rate_points`` the scrape intervals a ``rate`` spans (at 1 s scrapes, ``rate(x[5s])``).
    ``detector`` builds one detector per signal (default ``robust_detector``). ``announce``
    prints each incident as it opens (``deucalion demo``).

    It returns ``Scores``: every signal's score (0 for a move in the harmless direction), value
    and expected band are exported (``deucalion_series_anomaly_score`` and its companions,
    ``metric`` = the signal), and one alert per target per incident is sent.
    """

    def __init__(
        self,
        preset: str,
        signals: Iterable[Signal],
        *,
        desired_metrics: Iterable[str] | None = None,
        threshold: float = 6.0,
        for_cycles: int = 4,
        quiet_cycles: int = 30,
        history: int = 600,
        rate_points: int = 5,
        detector: DetectorFactory = robust_detector,
        labels: Mapping[str, str] | None = None,
        announce: bool = False,
    ) -> None:
        signals = tuple(signals)
        needs = {m for s in signals for m in s.needs}
        super().__init__(set(desired_metrics) if desired_metrics is not None else needs | {"up"})
        if not signals:
            raise ValueError(f"preset {preset}: no signals to watch")
        if not (isinstance(for_cycles, int) and for_cycles >= 1):
            raise ValueError(f"for_cycles must be a positive integer, not {for_cycles!r}")
        if not (isinstance(history, int) and history >= 10):
            raise ValueError(f"history must be an integer of 10 or more, not {history!r}")
        self.observer_name = f"preset-{preset}"
        self.preset = preset
        self.signals = signals
        self.threshold = float(threshold)
        self.for_cycles = for_cycles
        self.quiet_cycles = quiet_cycles
        self.rate_points = rate_points
        self.labels = dict(labels or {})
        self.announce = announce
        self.detectors = {s.name: detector(s, self.threshold) for s in signals}
        self.raw: Window | None = None  # sized once the scrape interval is known
        self.values = Window(history + 1)
        self.interval_: float | None = None
        self.last_time_: float | None = None
        self.steps_: list[float] = []
        self.held_: dict[tuple[str, str, str], int] = {}
        self.incidents_: dict[str, _Incident] = {}
        self.silent_: set[str] = set()  # targets told that none of the signals is there

    # -- signals ------------------------------------------------------------------------------

    def _learn_interval(self) -> float:
        """The scrape interval: the median of the last steps between cycles' data times."""
        from deucalion.observer import data_time

        now = data_time()
        if self.last_time_ is not None and now > self.last_time_:
            self.steps_ = [*self.steps_[-15:], now - self.last_time_]
            self.interval_ = statistics.median(self.steps_)
        self.last_time_ = now
        return self.interval_ or 1.0

    def compute(self, data: TargetsData) -> dict[str, dict[str, SignalValues]]:
        """Add this cycle's samples to the raw window and compute every signal per target:
        ``{target: {signal: {series: value}}}``."""
        interval = self._learn_interval()
        if self.raw is None:
            # Room for the longest range a signal reads (a file system's fill trend).
            self.raw = Window(seconds=660.0, forget_after=900.0)
        self.raw.add(data)
        range_seconds = self.rate_points * interval + interval / 2
        out: dict[str, dict[str, SignalValues]] = {}
        for target in data:
            query = Query(self.raw, target, range_seconds)
            values: dict[str, SignalValues] = {}
            for signal in self.signals:
                try:
                    computed = signal.compute(query)
                except (ArithmeticError, ValueError):
                    computed = {}
                finite = {k: v for k, v in computed.items() if math.isfinite(v)}
                if finite:
                    values[signal.name] = finite
            out[target] = values
            self._say_if_silent(target, values, data.get(target, {}))
        return out

    def _say_if_silent(
        self, target: str, values: Mapping[str, SignalValues], samples: Mapping[str, object]
    ) -> None:
        """Log once per target when it serves none of what the preset looks for."""
        if values or target in self.silent_:
            return
        up = samples.get("up")
        served = {m for m in samples if m not in ("up", "scrape_duration_seconds")}
        if isinstance(up, Mapping) and up.get("{}") == 1.0 and not served:
            self.silent_.add(target)
            log.warning(
                "preset %s: %s serves none of the metrics it watches (looked for %s); "
                "`deucalion presets show %s --target URL` lists what it would watch",
                self.preset,
                target,
                ", ".join(sorted(self.desired_metrics - {"up"})),
                self.preset,
            )

    # -- scoring ------------------------------------------------------------------------------

    def score(self, signal: Signal) -> list[_Moved]:
        """Score the newest value of each series of ``signal``: one entry per scored series,
        its score 0 when it moved in the harmless direction."""
        block = self.values.block(signal.name)
        if not len(block):
            return []
        scores = self.detectors[signal.name].score(block)
        newest = block.values[:, -1]
        median = row_medians(block.values[:, :-1])
        out = []
        with np.errstate(all="ignore"):
            deviation = newest - median
            half = np.where(scores > 0, np.abs(deviation) / scores * self.threshold, np.nan)
        for i, (target, series) in enumerate(block.keys):
            score = float(scores[i])
            if math.isnan(score):
                continue
            dev = float(deviation[i])
            if (signal.direction == "up" and dev < 0) or (signal.direction == "down" and dev > 0):
                score = 0.0
            width = float(half[i])
            out.append(
                _Moved(
                    signal,
                    f"{target}\x00{series}",
                    score,
                    float(newest[i]),
                    max(0.0, float(median[i]) - width),  # every signal is 0 or more
                    float(median[i]) + width,
                )
            )
        return out

    # -- the cycle ----------------------------------------------------------------------------

    def new_data(self, targets_data_dict: TargetsData) -> Scores:
        """Compute, score and group this cycle's signals; export every score, alert once per
        target per incident."""
        from deucalion.observer import data_time

        computed = self.compute(targets_data_dict)
        self.values.add(computed)
        now = data_time()
        scores: list[SeriesScore] = []
        moved: dict[str, list[_Moved]] = {}
        held: dict[tuple[str, str, str], int] = {}
        for signal in self.signals:
            for item in self.score(signal):
                target, _, series = item.series.partition("\x00")
                item.series = series
                scores.append(
                    SeriesScore(
                        target,
                        signal.name,
                        series,
                        item.score,
                        value=item.value,
                        lower=item.lower,
                        upper=item.upper,
                    )
                )
                if item.score > self.threshold:
                    key = (target, signal.name, series)
                    count = held[key] = self.held_.get(key, 0) + 1
                    if count >= self.for_cycles:
                        moved.setdefault(target, []).append(item)
        self.held_ = held
        alerts = [
            alert
            for target in set(moved) | set(self.incidents_)
            if (alert := self._incident(target, moved.get(target, []), now)) is not None
        ]
        return Scores(scores=tuple(scores), alerts=tuple(alerts))

    def _incident(self, target: str, moved: list[_Moved], now: float) -> Alert | None:
        incident = self.incidents_.get(target)
        if incident is None:
            if not moved:
                return None
            top = max(moved, key=lambda m: m.score)
            started = now - (self.for_cycles - 1) * (self.interval_ or 0.0)
            incident = self.incidents_[target] = _Incident(started, top, top)
            if self.announce:
                alert = self._alert(target, incident)
                print(
                    f"{datetime.fromtimestamp(now, UTC):%H:%M:%S}  anomaly  {target}: "
                    f"{alert.annotations['summary']}",
                    flush=True,
                )
        if moved:
            incident.quiet = 0
            for item in moved:
                if item.score > incident.members.get(item.name, -math.inf):
                    incident.members[item.name] = item.score
                if item.score >= incident.top.score or item.name == incident.top.name:
                    incident.top = item
        else:
            incident.quiet += 1
            if incident.quiet >= self.quiet_cycles:
                del self.incidents_[target]
                return None
        return self._alert(target, incident)

    def _alert(self, target: str, incident: _Incident) -> Alert:
        top = incident.top
        started = datetime.fromtimestamp(incident.started, UTC).isoformat(timespec="seconds")
        others = sorted(
            (n for n in incident.members if n != top.name), key=lambda n: -incident.members[n]
        )
        unit = top.signal.unit
        summary = (
            f"{top.name} is {_number(top.value)} {unit}, expected {_number(top.lower)} to "
            f"{_number(top.upper)}, since {started}"
        )
        description = f"{top.signal.help}: moved most in this incident (score {top.score:.3g})"
        if others:
            description += "; moved with it: " + ", ".join(others)
        return Alert(
            labels={
                **self.labels,
                "severity": incident.opener.signal.severity,
                "preset": self.preset,
                "signal": incident.opener.signal.name,
            },
            annotations={
                "summary": summary,
                "description": description,
                "signal": top.name,
                "value": _number(top.value),
                "expected_lower": _number(top.lower),
                "expected_upper": _number(top.upper),
                "started": started,
                "signals": ",".join([top.name, *others]),
            },
            target=target,
            score=top.score,
        )
