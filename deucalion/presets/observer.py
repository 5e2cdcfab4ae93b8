"""``PresetObserver``: a preset's signals computed, scored and grouped into incidents.

Each cycle, per target: the raw samples join a window; every signal of the preset is computed
from it (``deucalion.history``'s Prometheus-exact ``rate`` and ``histogram_quantile``); the
signal values update the preset's detector (``deucalion.detectors``' one interface: an online
update per cycle, scores calibrated to a false-alert budget, explanations with the expected
band), one update per cycle for every signal series of every target. A series *moves* when
its score reaches the detector's threshold in the direction that hurts and it is beyond the
band it had then by more than the signal's floors (see ``Signal``), on that cycle or within
``ARM_CYCLES`` after (a ramp passes its floors after the detector saw it start), and keeps
moving until it has been back inside the band it left for its signal's ``back_cycles`` in a
row (1, or 2 for a signal of a handful of requests: a cycle back is then a dip, which does not
count towards the move).

Alerts are per incident, not per series: a target's incident opens when a signal has moved
for ``for_cycles`` cycles (a signal with ``Signal.alone``, for that many unless a signal
without it moves too) and gathers every signal that moves while it is open (its
*members*). It lasts while the condition that raised it lasts: while a member is still away
from the band it had when the incident opened (by its floors, in the direction that hurts),
whatever the detector now scores it; a detector takes a lasting new level for its new
normal within minutes, so a score falling is not the incident ending. It resolves when every
member has been back in that band for ``quiet_cycles`` cycles. Two bounds keep an incident
that never ends (a permanent new level) from swallowing every later one: a member that has
stayed away for ``settle_cycles`` cycles in a row without the detector scoring it at its
threshold holds a level the detector has taken for the normal, and no longer holds the
incident; and an incident resolves after ``max_cycles`` cycles whatever its members do. The
alert says which rule will end it (``until``) and, on its last cycle, which one did
(``ended``); a member that ended it is not the start of a new incident until the detector
scores it at its threshold again, and for ``RECOVERY_CYCLES`` after it a series moving back
towards the band it had before it, and into it, is recovering, not moving.

An incident does not swallow a later one: a series starting to move ``NEWS_CYCLES`` or more
after the incident's last news (a member joining, or scored at the threshold again), and not
one of those holding it open, ends it (``superseded``) and opens an incident of its own, as
soon as it may open one. An incident opened on a target with fewer than ``YOUNG_CYCLES``
cycles of history says so in its description (the detector's bands are rough then).

While open an incident is one alert labelled ``severity``, ``preset`` and ``signal`` (the
signal that opened it, so the alert keeps its identity); its annotations name the signal that
moved most, its observed value and the expected band at the incident's highest score, and
the start time, and list the others. An incident whose label set would be that of an alert
still firing (the one it supersedes, on its last cycle) or resolved less than
``EPISODE_SECONDS`` ago is labelled ``episode`` as well (``2``, ``3``, ...: the smallest
number whose label set is neither; the first has no label), as ``DetectorObserver``'s alerts
are: Alertmanager tells a receiver nothing of a label set firing again before it has flushed
its resolve (within its ``group_interval``, 5 m by default), so a second burst a minute after
the first reached no one.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from deucalion.alerting.alerts import Alert, Scores, SeriesScore
from deucalion.detectors.anomaly import AnomalyDetector
from deucalion.detectors.base import Detector
from deucalion.detectors.observer import KEEP_FIRING_FOR
from deucalion.errors import UsageError
from deucalion.history.window import Window
from deucalion.observer import MetricsObserver, TargetsData
from deucalion.presets.incidents import (
    BACK,
    Band,
    Incident,
    IncidentCycles,
    Moved,
    Recovery,
    beyond,
    clamped,
    hurts,
    incident_alert,
    member_name,
    openers,
)
from deucalion.presets.signals import Query, Signal, SignalValues, SilentTargets

__all__ = ["DetectorFactory", "PresetObserver", "budget_detector"]

Key = tuple[str, str, str]  # a signal series: (signal, target, series)


log = logging.getLogger("deucalion.presets")

#: Builds the preset's detector, given the false alerts it may raise per series per 10,000
#: cycles: one detector, updated once per cycle with every signal series of every target
#: (the seam the detectors of ``deucalion.detectors`` plug into).
DetectorFactory = Callable[[float], Detector]


def budget_detector(budget: float) -> Detector:
    """The default: ``AnomalyDetector`` (spikes, level shifts, variance, trends, ...) allowed
    ``budget`` false alerts per series per 10,000 cycles."""
    return AnomalyDetector(budget=budget)


#: The detector's false alerts per signal series per 10,000 cycles, per unit of the preset's
#: ``budget`` (false alerts per *target* per 10,000 cycles). A detector event (a score at its
#: threshold, in either direction) becomes a preset alert only when the move is in the
#: direction that hurts, past the signal's floors (in the signal's units), for ``for_cycles``:
#: the floors, not the threshold, keep ordinary moves out. The threshold must then sit below
#: what the detector can say of a large move of a bursty signal: a series' record of ordinary
#: bursts caps its score near ``-log10`` of their rate, so on a shared machine a fork storm six
#: times every ordinary fork rate scored 3.46 and a 450 MB/s write storm 2.9 to 3.2, under a
#: threshold of 3.5 however far they went. 10 per series (threshold 3.0, "ordinary data does
#: this about once in 1,000 cycles"): on bench_liveops' first recording's ordinary stretches
#: the detector had 335 events on 26 series in 2,428 cycles at 3.0 (213 at 3.5), of which one
#: became a preset alert (one at 3.5), and the preset found 5 of 5 incidents instead of 3.
#: Chosen on that recording among 3, 10 and 30 (30: four false alerts instead of one); the
#: second recording, checked after, found 5 of 5 instead of 3 with its 3 false alerts (real
#: unlabelled events) unchanged.
SERIES_BUDGET = 10.0
#: Seconds after which a series no longer seen is forgotten.
FORGET_AFTER = 900.0
#: Cycles of raw samples kept: a rate spans a few of the last ones, a latency quantile or an
#: error ratio of a quiet service or route up to ``WIDEST_SECONDS`` (64 points: 63 s at 1 s
#: scrapes). 8 bytes a point: 576 bytes a series with the window's slack, 448 more than at 8
#: points (0.4 MB more for a target serving 1,000 of the preset's series). A rate reads only
#: the points within its range: its values are the same as with 8 points.
RAW_POINTS = 64
#: Cycles of raw samples kept by a preset none of whose signals widen (``Signal.widens``):
#: a rate spans a few of the last ones (at 64, node-exporter on a large machine cost 25 %
#: more CPU a cycle and four times the memory, for nothing: its rates read no more of them).
RATE_POINTS_KEPT = 8
#: The longest range a latency quantile or an error ratio widens to (from the rate's,
#: doubling) while its series has fewer requests than it needs (``http_service.MIN_REQUESTS``,
#: ``RATIO_REQUESTS``): ``WIDEST_SECONDS``
#: or ``WIDEST_SCRAPES`` scrape intervals, the longer, within what ``RAW_POINTS`` holds (12.7 s
#: at 200 ms scrapes). A median over a range moves once half its requests are slow, so the
#: widest lags a regression by up to 30 cycles at 1 s scrapes and at 15 s alike (60 s; 450 s),
#: as long as an incident's ``quiet_cycles``; at 1 s scrapes 5 requests a minute get a latency.
#: A service at a few requests a second widens little (2 a second: 4 s at 1 s scrapes).
WIDEST_SECONDS = 60.0
WIDEST_SCRAPES = 30
#: The shortest range of a rate, in seconds: at sub-second scrapes, ``rate_points`` intervals
#: count a handful of requests, whose error ratio or latency quantile is noise (a scrape
#: without a failed request ends a move: at 200 ms scrapes an error ratio from 0 to 50 % went
#: unseen). From 0.75 s scrapes the rate spans ``rate_points`` intervals as before. (At 200 ms
#: it reads 8 scrapes; under about 190 ms, when 8 were kept, it read only those: it now spans
#: the 1.5 s.)
MIN_RATE_SECONDS = 1.5
#: Seconds of history kept for the metrics a trend is read from (``Signal.trend``).
TREND_SECONDS = 660.0


#: Cycles after the detector scored a series at its threshold during which the series may still
#: pass its floors against the band it left then: a ramp (memory filled in seconds, a run queue
#: growing) is rare to the detector at its start, while still under its floors, and is the
#: detector's ongoing episode, scored low, by the time it is past them.
ARM_CYCLES = 30
#: Cycles after an incident ends during which a series moving back to the band it had before
#: the incident is recovering, not moving (a request rate that a latency regression held down,
#: coming back to its level: news to a detector that took the low rate for the normal).
RECOVERY_CYCLES = 300
#: Cycles between two snapshots of what the detector has learned of each series that is not
#: moving nor part of an incident. An incident that ends with its members back in their bands
#: (a burst, not a new normal) is unlearned: its members' detector state is put back to the
#: older of the last two snapshots (this many cycles before the newer, itself taken before
#: the member moved; a series with one snapshot only, its first or its first since it was
#: last unlearned, is put back to that one), so that a burst does not become the series'
#: habit. The detector takes a burst for what the series does (its recent extremes, its
#: record of events): an error ratio that went from 2 % to 50 % for a minute, twice in four
#: minutes, then scored 0 on the same burst for hours. Each series' two snapshots take about
#: 14 KB (7 KB in a checkpoint), the detector's weekly profile among them.
SNAPSHOT_CYCLES = 60
#: Cycles after an incident's last news (a member joining, or scored at the threshold again)
#: from which a series starting to move is an incident of its own, not a member: an incident
#: is held open by its members' levels as long as they stay away, and one opened by a young
#: detector's rough band, or by a level that is the new normal, would otherwise swallow every
#: incident for up to ``settle_cycles``. Five minutes at 1 s scrapes: longer than an incident's
#: effects take to spread (a CPU burn's retransmits came 112 cycles in on recording 1).
NEWS_CYCLES = 120
#: Seconds after an incident's alert resolved before a new incident of the same target and
#: opener signal takes its label set again (else it is labelled with another ``episode``):
#: Alertmanager tells a receiver nothing of a label set firing again before it has flushed the
#: resolve, at its next ``group_interval`` (5 m by default; ``DetectorObserver``'s
#: ``keep_firing_for``, for the same reason). Label sets are reused, the smallest ``episode``
#: first, so a signal flapping for hours makes no more of them than incidents end in this time.
EPISODE_SECONDS = KEEP_FIRING_FOR
#: Explanation kinds whose band is one of the value: the others are bands of an average (a
#: level's, the recent average's: a few times narrower than a value's), a variance, a slope or
#: a run of repeats, and a series keeps its last value band while they are the most surprising
#: (judged against a level's band, values moved in and out of it from one scrape to the next).
_VALUE_BANDS = frozenset({"spike", "out_of_range", "score"})


@dataclass
class _Move:
    """A series moving: the band it left, the floor it must stay beyond, its highest score."""

    low: float
    high: float
    least: float
    held: int = 0
    peak: float = 0.0
    kind: str = ""  # the detector's anomaly kind at the highest score
    back: int = 0  # cycles in a row it has been back inside the band it left


@dataclass
class _Armed:
    """A series the detector scored at its threshold: the band it left then, the cycle it may
    pass its floors by, and its highest score and its kind since."""

    band: tuple[float, float, float]
    until: int
    score: float
    kind: str


def _starting(
    armed_: dict[tuple[str, str, str], _Armed],
    key: tuple[str, str, str],
    signal: Signal,
    value: float,
    band: Band,
    score: tuple[float, float, str],
    cycle: int,
) -> _Move | None:
    """The move a series not moving starts this cycle, if it does: out of the band it left
    when the detector last scored it at its threshold on the side that hurts, this cycle or
    ``ARM_CYCLES`` ago at most, by more than its floors (a ramp passes them after the detector
    saw it start); None if it does not. ``armed_`` holds the series armed, ``score`` is this
    cycle's score, the detector's threshold and the anomaly kind, ``cycle`` the observer's."""
    score_now, threshold, kind = score
    armed = armed_.get(key)
    if armed is not None and armed.until < cycle:
        del armed_[key]
        armed = None
    if score_now >= threshold and hurts(signal, value, band[0], band[1]):
        if armed is None:
            armed = armed_[key] = _Armed(band, 0, score_now, kind)
        armed.until = cycle + ARM_CYCLES
        if score_now > armed.score:
            armed.score, armed.kind = score_now, kind
    if armed is None or not beyond(signal, value, *armed.band):
        return None
    del armed_[key]
    return _Move(*armed.band, peak=armed.score, kind=armed.kind)


def _widest(interval: float, points: int) -> float:
    """The longest range a latency quantile or an error ratio widens to at scrapes
    ``interval`` seconds apart (``WIDEST_SECONDS``, ``WIDEST_SCRAPES``), within what a raw
    window of ``points`` holds."""
    held = (points - 1) * interval + interval / 2
    return min(max(WIDEST_SECONDS, WIDEST_SCRAPES * interval), held)


def _band_now(move: _Move | None, band: tuple[float, float] | None, signal: Signal) -> Band | None:
    """A series' band now (the one its ``move`` left, if it is moving, else its last ``band``),
    with the floor a value must be beyond it by; None before it has one."""
    if move is not None:
        return (move.low, move.high, move.least)
    low, high = band if band is not None else (math.nan, math.nan)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return (low, high, max(signal.floor, signal.relative * abs((low + high) / 2)))


class Snapshots:
    """What the detector had learned of each series at the last two snapshots taken while it
    was quiet (see ``SNAPSHOT_CYCLES``): an incident that ended with its members back in their
    bands is unlearned, its members put back to the older."""

    def __init__(self) -> None:
        self.learned: dict[Key, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}

    def take(self, detector: Detector, keys: Iterable[Key]) -> None:
        """Snapshot ``keys`` now; the last snapshot becomes the older."""
        for key, state in detector.snapshot(keys).items():
            self.learned[key] = (self.learned.get(key, (state, state))[1], state)

    def unlearn(self, detector: Detector, keys: Iterable[Key]) -> None:
        """Put back ``keys``' older snapshots (each used once)."""
        detector.restore({key: self.learned.pop(key)[0] for key in keys if key in self.learned})

    def forget(self, key: Key) -> None:
        self.learned.pop(key, None)


def _current_signals(observer: PresetObserver) -> None:
    """An observer restored from a checkpoint that watched a preset's built-in signals
    (``signals_of_``, set by ``preset_observer``) takes this version's: their definitions
    (floors, limits) are code, not what was learned, and pickled with the observer they kept
    a fix from applying until its checkpoint was dropped. Signals of the user's are kept, and
    so are signals whose metrics or windows changed (the observer's windows were sized for
    them). (A checkpoint from before ``signals_of_`` keeps its signals.)"""
    signals_of = observer.__dict__.get("signals_of_")
    if signals_of is None:
        return
    current = signals_of(observer.preset)
    if _inputs(current) == _inputs(observer.signals):
        observer.signals = current
        observer.by_name = {s.name: s for s in current}


def _current_options(observer: PresetObserver) -> None:
    """A built-in preset restored from a checkpoint takes this version's own defaults
    (``preset_options``) for the options its user did not give (``given_``, set by
    ``preset_observer``): node-exporter's 6 cycles reached no sidecar whose checkpoint was
    made at 3. Without ``given_``, it takes them where it has the generic default
    (``PresetObserver``'s), which a user who gave nothing has. (A checkpoint from before
    ``options_of_`` keeps its options.)"""
    options_of = observer.__dict__.get("options_of_")
    if options_of is None:
        return
    import inspect

    given = observer.__dict__.get("given_")
    generic = inspect.signature(PresetObserver.__init__).parameters
    for name, value in options_of(observer.preset).items():
        old = getattr(observer, name, None)
        if (name not in given) if given is not None else old == generic[name].default:
            setattr(observer, name, value)


def _learn_interval(observer: PresetObserver) -> float:
    """The scrape interval: the median of the last steps between cycles' data times."""
    from deucalion.observer import data_time

    now = data_time()
    if observer.last_time_ is not None and now > observer.last_time_:
        observer.steps_ = [*observer.steps_[-15:], now - observer.last_time_]
        observer.interval_ = statistics.median(observer.steps_)
    observer.last_time_ = now
    return observer.interval_ or 1.0


def _inputs(signals: Iterable[Signal]) -> tuple[object, ...]:
    """What an observer's windows and metrics are sized for: each signal's name, metrics,
    trend metrics and whether it widens."""
    return tuple(sorted((s.name, s.needs, s.trend, s.widens) for s in signals))


def _forget_gone(
    observer: PresetObserver, computed: Mapping[str, Mapping[str, SignalValues]], now: float
) -> None:
    """Series not seen for ``FORGET_AFTER`` seconds (a target gone, a device removed) are
    dropped from the detectors, so churn cannot grow them without bound."""
    for target, signals in computed.items():
        for name, values in signals.items():
            for series in values:
                observer.seen_[name, target, series] = now
    if now - observer.swept_ < FORGET_AFTER / 10:
        return
    observer.swept_ = now
    gone = [key for key, seen in observer.seen_.items() if now - seen > FORGET_AFTER]
    for key in gone:
        del observer.seen_[key]
        observer.bands_.pop(key, None)
        observer.moving_.pop(key, None)
        observer.armed_.pop(key, None)
        observer.learned_.forget(key)
    observer.detector.forget(gone)
    for target in {t for _, t, _ in gone} - set(computed):
        observer.incidents_.pop(target, None)
        observer.recovering_.pop(target, None)
        observer.__dict__.get("episodes_", {}).pop(target, None)
        observer.history_.pop(target, None)
        observer.__dict__.get("signal_state_", {}).pop(target, None)


def _resolve_episodes(observer: PresetObserver, now: float) -> None:
    """The label sets of incidents that ended on the last cycle resolve now (their alert is
    no longer sent); those resolved ``EPISODE_SECONDS`` ago or more are free again."""
    targets = observer.__dict__.setdefault("episodes_", {})
    for target, episodes in list(targets.items()):
        for key, resolved in list(episodes.items()):
            if resolved == math.inf:
                episodes[key] = now
            elif now - resolved >= EPISODE_SECONDS:
                del episodes[key]
        if not episodes:
            del targets[target]


def _quiet_keys(observer: PresetObserver, items: Iterable[Moved]) -> list[Key]:
    """The series scored this cycle that are neither moving, nor armed, nor part of an
    incident: what the detector learned of them is theirs."""
    busy = {key for incident in observer.incidents_.values() for key in incident.settled}
    busy |= observer.moving_.keys() | observer.armed_.keys()
    return [item.key for item in items if item.key not in busy]


class PresetObserver(MetricsObserver):
    """A ready observer over a preset's derived signals (see the module docstring).

    ``signals``: what it watches. ``budget`` is the false alerts per target per 10,000 cycles of
    ordinary load it may raise: its detector allows ``SERIES_BUDGET`` times as many per signal
    series, of which the floors keep few (see ``SERIES_BUDGET``); a signal moves when its
    detector scores it at its threshold or more, in the direction that hurts and by more than
    its floors. ``for_cycles`` is how long it must keep moving before an incident opens (a
    signal's ``alone`` cycles, if it has one, when no signal without one moves with it);
    ``quiet_cycles`` how long every signal of an incident must be back in the band it had when
    the incident opened before it resolves; ``settle_cycles`` how long a signal away from that
    band without the detector scoring it may hold an incident open (its new level is then the
    normal); ``max_cycles`` the longest an incident lasts (see the module docstring).
    ``rate_points`` is
    the scrape intervals a ``rate`` spans, plus half of one (at 1 s scrapes, ``rate(x[2s])``:
    a rate over many intervals turns a step into a ramp, which hides it from a detector),
    and ``MIN_RATE_SECONDS`` at least.
    ``detector`` builds the detector of every signal (default ``budget_detector``). ``announce``
    prints each incident as it opens (``deucalion demo``).

    It returns ``Scores``: every signal's score (0 for a move in the harmless direction), value
    and expected band are exported (``deucalion_series_anomaly_score`` and its companions,
    ``metric`` = the signal; a signal holding an incident open, at its highest score of the
    incident and its band before it, so a rule on the score fires as long as the alert), and
    one alert per target per incident is sent.
    """

    def __init__(
        self,
        preset: str,
        signals: Iterable[Signal],
        *,
        desired_metrics: Iterable[str] | None = None,
        budget: float = 1.0,
        for_cycles: int = 3,
        quiet_cycles: int = 30,
        settle_cycles: int = 600,
        max_cycles: int = 3600,
        rate_points: float = 1.5,
        detector: DetectorFactory = budget_detector,
        labels: Mapping[str, str] | None = None,
        announce: bool = False,
    ) -> None:
        signals = tuple(signals)
        needs = {m for s in signals for m in s.needs}
        super().__init__(set(desired_metrics) if desired_metrics is not None else needs | {"up"})
        if not signals:
            raise UsageError(f"preset {preset}: no signals to watch")
        for option, cycles in (
            ("for_cycles", for_cycles),
            ("quiet_cycles", quiet_cycles),
            ("settle_cycles", settle_cycles),
            ("max_cycles", max_cycles),
        ):
            if not (isinstance(cycles, int) and not isinstance(cycles, bool) and cycles >= 1):
                raise UsageError(f"{option} must be a positive integer, not {cycles!r}")
        if not (isinstance(budget, int | float) and budget > 0):
            raise UsageError(f"budget must be a positive number, not {budget!r}")
        self.observer_name = f"preset-{preset}"
        self.preset = preset
        self.signals = signals
        #: Where its built-in signals come from (``preset_observer`` sets it; see ``__setstate__``).
        self.signals_of_: Callable[[str], tuple[Signal, ...]] | None = None
        #: Its preset's own defaults and the options its maker gave (``preset_observer``).
        self.options_of_: Callable[[str], Mapping[str, object]] | None = None
        self.given_: frozenset[str] | None = None
        self.budget = float(budget)
        self.for_cycles = for_cycles
        self.quiet_cycles = quiet_cycles
        self.settle_cycles = settle_cycles
        self.max_cycles = max_cycles
        self.rate_points = rate_points
        self.labels = dict(labels or {})
        self.announce = announce
        # Per signal series: the floors, not the threshold, keep most events from alerting.
        self.detector = detector(self.budget * SERIES_BUDGET)
        self.by_name = {s.name: s for s in signals}
        self.raw_points = RAW_POINTS if any(s.widens for s in signals) else RATE_POINTS_KEPT
        self.raw = Window(self.raw_points, forget_after=900.0)
        # The few metrics a trend is read from keep minutes of history, the others seconds.
        self.trend_metrics = frozenset(m for s in signals for m in s.trend)
        self.slow = Window(seconds=TREND_SECONDS, forget_after=900.0)
        self.interval_: float | None = None
        self.last_time_: float | None = None
        self.steps_: list[float] = []
        self.moving_: dict[tuple[str, str, str], _Move] = {}
        self.armed_: dict[tuple[str, str, str], _Armed] = {}
        self.cycle_ = 0  # cycles seen (``new_data`` calls)
        self.bands_: dict[tuple[str, str, str], tuple[float, float]] = {}
        self.incidents_: dict[str, Incident] = {}
        self.recovering_: dict[str, Recovery] = {}  # per target, after an incident
        #: Per target: the label sets of its incidents' alerts that a new incident may not take
        #: (``EPISODE_SECONDS``), as (opener signal, episode), and when each resolved (data
        #: time; ``math.inf`` on its incident's last cycle, while its alert is still sent).
        self.episodes_: dict[str, dict[tuple[str, int], float]] = {}
        self.history_: dict[str, int] = {}  # per target: cycles it had signals
        self.seen_: dict[tuple[str, str, str], float] = {}
        self.learned_ = Snapshots()  # what the detector had learned before an incident
        self.swept_ = -math.inf
        self.silent_ = SilentTargets(preset, signals)  # says where no signal is computed

    # -- signals ------------------------------------------------------------------------------

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore a checkpoint, with this version's built-in signals (``_current_signals``)."""
        self.__dict__.update(state)
        _current_signals(self)
        _current_options(self)

    def compute(self, data: TargetsData) -> dict[str, dict[str, SignalValues]]:
        """Add this cycle's samples to the raw window and compute every signal per target:
        ``{target: {signal: {series: value}}}``."""
        interval = _learn_interval(self)
        self.raw.add(data)
        if self.trend_metrics:
            self.slow.add(
                {
                    target: {m: v for m, v in samples.items() if m in self.trend_metrics}
                    for target, samples in data.items()
                }
            )
        range_seconds = max(self.rate_points * interval + interval / 2, MIN_RATE_SECONDS)
        out: dict[str, dict[str, SignalValues]] = {}
        for target in data:
            widest = _widest(interval, self.raw_points)
            query = Query(
                self.raw,
                target,
                range_seconds,
                slow=self.slow,
                widest=widest,
                interval=interval,
                # (setdefault: an observer checkpointed before signals kept a state has none)
                state=self.__dict__.setdefault("signal_state_", {}).setdefault(target, {}),
            )
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
            self.silent_.see(target, values, data.get(target, {}))
        return out

    # -- scoring ------------------------------------------------------------------------------

    def score(self, values: Mapping[tuple[str, str, str], float], now: float) -> list[Moved]:
        """Update the detector with this cycle's ``values`` (``{(signal, target, series):
        value}``) and judge each series: one entry per scored series.

        A series starts moving when the detector scores it at its threshold or more, in the
        direction that hurts and beyond the signal's floors around the expected band; it keeps
        moving, judged against that band, until it is back inside. Its entry's score is the
        highest of the move (0 for a move in the harmless direction), ``held`` the cycles it
        has moved. A series out of its band by less than the floors, or on the harmless side,
        scores 0: what is exported is what could alert.
        """
        detector = self.detector
        scores = detector.update({key: (now, value) for key, value in values.items()})
        out = []
        for key, score in scores.items():
            if math.isnan(score):
                continue
            fresh = score
            signal = self.by_name[key[0]]
            value = values[key]
            why = detector.explain_quickly(key)
            low, high = why.expected_low, why.expected_high
            if why.kind in _VALUE_BANDS and math.isfinite(low) and math.isfinite(high):
                self.bands_[key] = (low, high)
            else:
                # The band of a variance, a slope or a run is not a value's: the last one is.
                low, high = self.bands_.get(key, (math.nan, math.nan))
            moving = self.moving_.get(key)
            least = max(signal.floor, signal.relative * abs((low + high) / 2))
            if moving is None and math.isfinite(low):
                started = _starting(
                    self.armed_,
                    key,
                    signal,
                    value,
                    (low, high, least),
                    (score, detector.threshold, why.kind),
                    self.cycle_,
                )
                recovery = self.recovering_.get(key[1])
                if started is not None and recovery and recovery.until >= self.cycle_:
                    started = (
                        None
                        if recovery.covers(key, signal, value, (started.low, started.high))
                        else started
                    )
                if started is not None:
                    moving = self.moving_[key] = started
            elif moving is not None:
                away = beyond(signal, value, moving.low, moving.high, moving.least)
                moving.back = 0 if away else moving.back + 1
                if moving.back >= signal.back_cycles:
                    del self.moving_[key]
                    moving = None
            if moving is not None:
                if not moving.back:  # a cycle of a dip does not count towards the move
                    moving.kind = why.kind if score > moving.peak else moving.kind
                    moving.held += 1
                    moving.peak = max(moving.peak, score)
                low, high, score = moving.low, moving.high, moving.peak
            elif not (math.isfinite(low) and beyond(signal, value, low, high, least)):
                # Inside the band, out of it on the harmless side or by less than the floors,
                # or no band yet: a move that cannot alert is not exported as a high score
                # (a rule on the exported score then agrees with the preset's own alerts).
                score = 0.0
            out.append(
                Moved(
                    signal,
                    key[1],
                    key[2],
                    score,
                    value,
                    *clamped(signal, low, high),
                    moving.held if moving is not None else 0,
                    fresh,
                    moving.kind if moving is not None else why.kind,
                )
            )
        return out

    # -- the cycle ----------------------------------------------------------------------------

    def new_data(self, targets_data_dict: TargetsData) -> Scores:
        """Compute, score and group this cycle's signals; export every score, alert once per
        target per incident."""
        from deucalion.observer import data_time

        self.cycle_ += 1  # every cycle, a target down included: ARM_CYCLES counts cycles
        computed = self.compute(targets_data_dict)
        now = data_time()
        _resolve_episodes(self, now)
        moved: dict[str, list[Moved]] = {}
        judged: dict[str, dict[tuple[str, str, str], Moved]] = {}
        values = {
            (name, target, series): value
            for target, signals in computed.items()
            for name, by_series in signals.items()
            for series, value in by_series.items()
        }
        items = self.score(values, now) if values else []
        for target in computed:
            self.history_[target] = self.history_.get(target, 0) + 1
        for item in items:
            judged.setdefault(item.target, {})[item.key] = item
            if item.held >= self.for_cycles:
                moved.setdefault(item.target, []).append(item)
        _forget_gone(self, computed, now)
        if self.cycle_ % SNAPSHOT_CYCLES == 0:
            self.learned_.take(self.detector, _quiet_keys(self, items))
        alerts = [
            alert
            for target in set(moved) | set(self.incidents_)
            for alert in self._incident(target, moved.get(target, []), judged.get(target, {}), now)
        ]
        # A signal holding an incident open is exported as the alert sees it: at its highest
        # score of the incident, against its band before it (a rule on the exported score then
        # fires as long as the preset's alert).
        held: dict[tuple[str, str, str], tuple[float, float, float]] = {}
        for incident in self.incidents_.values():
            for key in incident.away:
                low, high, _ = incident.before[key]
                name = member_name(key)
                held[key] = (incident.members.get(name, 0.0), low, high)
        scores = []
        for item in items:
            score, lower, upper = item.score, item.lower, item.upper
            if item.key in held:
                peak, low, high = held[item.key]
                score, lower, upper = max(score, peak), *clamped(item.signal, low, high)
            scores.append(
                SeriesScore(
                    item.target,
                    item.signal.name,
                    item.series,
                    score,
                    value=item.value,
                    lower=lower,
                    upper=upper,
                )
            )
        return Scores(scores=tuple(scores), alerts=tuple(alerts))

    def _band(self, key: tuple[str, str, str]) -> Band | None:
        return _band_now(self.moving_.get(key), self.bands_.get(key), self.by_name[key[0]])

    def _incident(
        self,
        target: str,
        moved: list[Moved],
        judged: Mapping[tuple[str, str, str], Moved],
        now: float,
    ) -> list[Alert]:
        """This cycle's alerts of ``target``: its incident's (none while it is held back),
        and the last of one that ended this cycle."""
        out: list[Alert] = []
        incident = self.incidents_.get(target)
        if incident is not None and (
            news := incident.superseded_by(moved, self.cycle_, NEWS_CYCLES)
        ):
            # Moves long after the incident's last news, or more severe than it, are an
            # incident of their own once they may open one; meanwhile they do not join it.
            moved = [m for m in moved if m.key not in {n.key for n in news}]
            if ready := openers(news):
                why = incident.superseded_why(ready, self.cycle_)
                out.append(self._end(target, incident, why, keep={m.key for m in ready}))
                incident, moved = None, ready
        if incident is None:
            moved = openers(moved)
            if not moved:
                return out
            incident = self._open(target, moved, judged, now)
        incident.cycles += 1
        incident.absorb(moved, self.cycle_, self.detector.threshold)
        for item in moved:
            if item.key not in incident.before and (band := self._band(item.key)) is not None:
                incident.before[item.key] = band  # a series born during the incident
        ended = incident.judge(judged, self.detector.threshold, self._cycles())
        if ended is not None:
            out.append(self._end(target, incident, ended))
        else:
            out.append(self._alert(target, incident))
        return out

    def _open(
        self,
        target: str,
        moved: list[Moved],
        judged: Mapping[tuple[str, str, str], Moved],
        now: float,
    ) -> Incident:
        top = max(moved, key=lambda m: m.score)
        lasted = max(self.for_cycles, *(m.held for m in moved))
        started = now - (lasted - 1) * (self.interval_ or 0.0)
        before = {key: band for key in judged if (band := self._band(key)) is not None}
        incident = self.incidents_[target] = Incident(
            started, top, top, before, self.cycle_, self.cycle_, self.history_.get(target, 0)
        )
        # Alertmanager tells alerts apart by their labels: one with the labels of an alert
        # still firing, or resolved within its group_interval, is merged into it, and no
        # receiver hears of it. The smallest episode whose label set is neither.
        taken = self.__dict__.setdefault("episodes_", {}).get(target, {})
        name = top.signal.name
        incident.episode = next(n for n in itertools.count(1) if (name, n) not in taken)
        if self.announce:
            alert = self._alert(target, incident)
            print(
                f"{datetime.fromtimestamp(now, UTC):%H:%M:%S}  anomaly  "
                f"{alert.annotations['summary']}",
                flush=True,
            )
        return incident

    def _end(
        self,
        target: str,
        incident: Incident,
        ended: str,
        keep: frozenset[tuple[str, str, str]] | set[tuple[str, str, str]] = frozenset(),
    ) -> Alert:
        """End ``incident``: its last alert. Its members start no new incident until the
        detector scores them again (but those in ``keep``, which open the next one)."""
        for key in incident.settled:
            if key not in keep:
                self.moving_.pop(key, None)
        del self.incidents_[target]
        if ended.startswith(BACK):
            self.learned_.unlearn(self.detector, incident.settled)
        self.recovering_[target] = Recovery(self.cycle_ + RECOVERY_CYCLES, incident.before)
        # Its label set is sent this cycle, resolved on the next (``_resolve_episodes``).
        episodes = self.__dict__.setdefault("episodes_", {}).setdefault(target, {})
        episodes[incident.opener.signal.name, incident.episode] = math.inf
        return self._alert(target, incident, ended=ended)

    def _cycles(self) -> IncidentCycles:
        return IncidentCycles(self.quiet_cycles, self.settle_cycles, self.max_cycles)

    def _alert(self, target: str, incident: Incident, ended: str | None = None) -> Alert:
        return incident_alert(
            target,
            incident,
            preset=self.preset,
            labels=self.labels,
            by_name=self.by_name,
            cycles=self._cycles(),
            ended=ended,
        )
