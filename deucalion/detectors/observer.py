"""The one ready observer: any ``Detector`` watching metrics, scores exported, alerts explained.

``DetectorObserver(detector, desired_metrics)`` updates the detector each cycle with every
series of its desired metrics (counters as per-second rates, through
``deucalion.history.promql.CounterRates``) and returns ``Scores``: every series' score is
exported as ``deucalion_series_anomaly_score``, and the series the detector alerts on become
alerts whose annotations name the series, the anomaly kind, the observed value and the expected
band. An online detector (``AnomalyDetector``, the default; ``RangeDetector``) decides its
alerts itself; a window detector's scores alert once held past its threshold for ``for_cycles``
cycles (``AlertPolicy``). An alert keeps firing while its series scores at the threshold or
more (a window detector's: above it, as ``AlertPolicy`` alerts), its anomaly going on (a frozen
gauge until it moves), and for ``keep_firing_for`` seconds of the data's time after the last
such cycle, as a Prometheus rule's ``keep_firing_for`` does: an alert resolved a cycle after
it fired reaches no receiver, since Alertmanager notifies a new group of alerts only after its
``group_wait`` (30 s by default) and only if one still fires.
An anomaly raised once the earlier one had ended (its alert only kept firing, or resolved
within ``keep_firing_for``) is a new alert, labelled ``episode``: Alertmanager would tell no one
of it under the earlier one's labels.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from deucalion._redact import redact_url

try:
    import numpy as np
except ImportError as exc:  # a plain install: say what to install, in one line
    from deucalion._extras import missing_extra

    raise missing_extra("numpy", "deucalion.detectors") from exc
from deucalion.alerting.alerts import Alert, Scores, SeriesScore
from deucalion.detectors.base import Detector, Explanation, refusing_unknown_keywords
from deucalion.errors import UsageError, UsageTypeError
from deucalion.history.promql import CounterRates
from deucalion.history.vectors import Block
from deucalion.history.window import Window
from deucalion.observer import MetricsObserver, TargetsData, data_time, handing_data

__all__ = ["COUNTER_SUFFIXES", "AlertPolicy", "DetectorObserver"]

#: Sample names with these endings are counters: detectors see their per-second rate.
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")

_Key = tuple[str | None, str, str]

#: Seconds an alert keeps firing after the last cycle that raised it (``keep_firing_for``):
#: past Alertmanager's default ``group_wait`` (30 s) and ``group_interval`` (5 m), so a receiver
#: hears of it whether it starts a group or joins one.
KEEP_FIRING_FOR = 300.0
#: The label of an alert raised while an earlier one of its series was only kept firing (or
#: within ``keep_firing_for`` of its resolve): the smallest number (2, 3, ...) whose label set
#: is neither firing nor resolved within ``keep_firing_for``, so that Alertmanager tells of it.
EPISODE = "episode"


class AlertPolicy:
    """Alerts on a series whose score has been above ``threshold`` for ``for_cycles``
    consecutive cycles; the alert resolves the first cycle its score is not (or it has none).

    Alerts carry the labels ``metric`` and ``series`` (the series key) besides ``labels``, so
    two series never share a label set; the target's labels are added by deucalion.
    """

    @refusing_unknown_keywords()
    def __init__(
        self,
        threshold: float,
        for_cycles: int = 3,
        *,
        labels: Mapping[str, str] | None = None,
        detector: str = "",
    ) -> None:
        if not isinstance(for_cycles, int) or for_cycles < 1:
            raise UsageError(
                f"AlertPolicy: for_cycles must be a positive integer, not {for_cycles!r}"
            )
        if not (isinstance(threshold, int | float) and not math.isnan(threshold)):
            raise UsageError(f"AlertPolicy: threshold must be a number, not {threshold!r}")
        self.threshold = float(threshold)
        self.for_cycles = for_cycles
        self.labels = dict(labels or {})
        self.detector = detector
        self.held_: dict[_Key, int] = {}

    def evaluate(
        self,
        scores: Iterable[SeriesScore],
        explain: Callable[[list[SeriesScore]], list[Explanation]] | None = None,
    ) -> Scores:
        """This cycle's ``Scores``: all of ``scores``, and an alert for each series held past
        the threshold. ``explain``, given, explains the series that alert (one
        ``Explanation`` per ``SeriesScore``, as ``Detector.explain_block`` gives them): their
        alerts are annotated as ``DetectorObserver``'s are, with ``kind``, ``observed`` and
        ``expected_range``."""
        scores = list(scores)
        held: dict[_Key, int] = {}
        alerting: list[tuple[SeriesScore, int]] = []
        for item in scores:
            if not item.score > self.threshold:
                continue
            key = (item.target, item.metric, item.series)
            count = held[key] = self.held_.get(key, 0) + 1
            if count >= self.for_cycles:
                alerting.append((item, count))
        self.held_ = held  # series below the threshold, or absent, start again from zero
        whys: list[Explanation | None] = [None] * len(alerting)
        if explain is not None and alerting:
            whys = list(explain([item for item, _ in alerting]))
        alerts = [
            self._alert(item, count, why) for (item, count), why in zip(alerting, whys, strict=True)
        ]
        return Scores(scores=tuple(scores), alerts=tuple(alerts))

    def _alert(self, item: SeriesScore, cycles: int, why: Explanation | None = None) -> Alert:
        name = item.metric + ("" if item.series == "{}" else item.series)
        where = f" on {redact_url(item.target)}" if item.target else ""
        held = f"score {item.score:.4g} above {self.threshold:g} for {cycles} cycles"
        if why is None:
            annotations = {
                "summary": f"{name}{where} is anomalous",
                "description": held + (f" ({self.detector})" if self.detector else ""),
                "score": f"{item.score:.6g}",
            }
        else:
            about = held + (f"; {self.detector}" if self.detector else "")
            annotations = _annotations(why, name, where, about)
        return Alert(
            labels={**self.labels, "metric": item.metric, "series": item.series},
            annotations=annotations,
            target=item.target,
            score=item.score,
        )


class DetectorObserver(MetricsObserver):
    """The ready observer: ``detector`` (default: ``AnomalyDetector(budget=budget)``, ``budget``
    false alerts per series per 10,000 cycles, 1 by default) scores every series of
    ``desired_metrics`` each cycle. ``budget`` and ``kinds`` (the anomaly kinds it looks for)
    are the default detector's, so they can be set where no detector can be built
    (``kwargs: {budget: 0.5, kinds: [spike, stuck]}`` under ``observers:``).

    Each metric's series are handed over as values, a counter as its per-second rate between
    scrapes (judged by the name: ``COUNTER_SUFFIXES``, or listed in ``counters``). Returns
    ``Scores``: every score is exported as ``deucalion_series_anomaly_score``.

    An online detector is updated with each series' ``(scrape time, value)`` and decides which
    series alert, at ``threshold`` when given (it sets the detector's own; ``for_cycles`` is
    for window detectors); a series absent for ``forget_after`` cycles is forgotten, so memory stays
    bounded when series come and go. A window detector is handed a ``Window`` of ``points``
    cycles (or ``seconds``) per metric, and a series alerts once its score stays above
    ``threshold`` (default: the detector's) for ``for_cycles`` cycles in a row.

    Called by hand (a test, a notebook), ``with deucalion.data_at(t):`` gives the data its
    time; without it, consecutive calls are taken as one second apart (``_hand_time``).
    """

    @refusing_unknown_keywords()
    def __init__(
        self,
        detector: Detector | None = None,
        desired_metrics: Iterable[str] = (),
        *,
        threshold: float | None = None,
        for_cycles: int = 3,
        points: int | None = 120,
        seconds: float | None = None,
        counters: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        forget_after: int = 1000,
        budget: float | None = None,
        keep_firing_for: float = KEEP_FIRING_FOR,
        kinds: Sequence[str] | str | None = None,
    ) -> None:
        if type(self) is DetectorObserver:  # a subclass's author is told by the base class
            if not isinstance(desired_metrics, str):
                desired_metrics = list(desired_metrics)  # read once: an iterator is checked too
            _check_metrics_given(detector, desired_metrics)
        super().__init__(desired_metrics)
        if budget is not None and threshold is not None:
            # Each sets the default detector's threshold (log10(10,000 / budget)): given both,
            # the budget was dropped without a word.
            raise UsageError(
                f"DetectorObserver: budget={budget!r} and threshold={threshold!r} both set the "
                "default detector's threshold: give one"
            )
        if detector is None:
            from deucalion.detectors.anomaly import AnomalyDetector

            # (kinds=None is every kind, as the detector's own default.)
            detector = (
                AnomalyDetector(kinds=kinds)
                if budget is None
                else AnomalyDetector(budget=budget, kinds=kinds)
            )
        else:
            for name, value in (("budget", budget), ("kinds", kinds)):
                if value is not None:
                    raise UsageError(
                        f"{name}={value!r} is the default detector's: give it to your detector "
                        f"instead ({type(detector).__name__}({name}=...) where it takes one)"
                    )
        if not isinstance(detector, Detector):
            raise UsageTypeError(
                f"DetectorObserver needs a deucalion.detectors.Detector, not "
                f"{type(detector).__name__}; wrap a scikit-learn estimator in "
                "SklearnDetector or a River model in RiverDetector"
            )
        if not isinstance(forget_after, int) or forget_after < 1:
            raise UsageError(f"forget_after={forget_after!r}: give a number of cycles, 1 or more")
        if not (
            isinstance(keep_firing_for, int | float)
            and not isinstance(keep_firing_for, bool)
            and 0 <= keep_firing_for < math.inf
        ):
            raise UsageError(
                f"keep_firing_for={keep_firing_for!r}: give the seconds an alert keeps firing "
                "after the last cycle that raised it, 0 or more (0: it resolves at once)"
            )
        if threshold is not None and detector.online:
            # An online detector decides itself which series alert, at its own threshold: the
            # one given here (a threshold a NAB sweep chose, say) is that one, not a second.
            detector.threshold = float(threshold)
        self.detector = detector
        self.window = Window(points, seconds=seconds)
        self.counters = frozenset(counters)
        self.labels = dict(labels or {})
        self.forget_after = forget_after
        self.rates = CounterRates()
        self.last_seen: dict[_Key, int] = {}
        self.calls = 0
        self.keep_firing_for = float(keep_firing_for)
        #: The alert of each series still firing, and the data time of the cycle that raised
        #: it last.
        self.firing_: dict[_Key, tuple[Alert, float]] = {}
        self.policy = AlertPolicy(
            detector.threshold if threshold is None else threshold,
            for_cycles,
            labels=labels,
            detector=type(detector).__name__,
        )

    def is_counter(self, metric: str) -> bool:
        """Whether ``metric`` is scored as a per-second rate."""
        return metric in self.counters or metric.endswith(COUNTER_SUFFIXES)

    def block(self, metric: str) -> Block:
        """What the detector is handed for ``metric``: rates for counters, where an interval
        holding a reset (a restarted service) is NaN, not the false dip it makes."""
        if self.is_counter(metric):
            return self.window.interval_rates(metric, withhold_resets=True)
        return self.window.block(metric)

    def new_data(self, targets_data_dict: TargetsData) -> Scores:
        """Score every series of the cycle; alert on those the detector alerts on (an online
        detector) or held past the threshold (a window detector), and on those it did within
        the last ``keep_firing_for`` seconds."""
        now = _cycle_time()
        if now is None:
            # Called by hand (a test, a notebook) the data has no time: the observer's own
            # clock gives it one (``_hand_time``), and each call's alerts are its own, as there
            # is no Alertmanager to hold them for.
            with handing_data(self._hand_time(), {}):
                return self._score(targets_data_dict)
        self.__dict__["_latest"] = max(self.__dict__.get("_latest", now), now)
        return self._keep_firing(self._score(targets_data_dict), now)

    def _hand_time(self) -> float:
        """The time of data handed by hand, without ``deucalion.data_at``: one second after
        the latest this observer was handed (by hand, by ``data_at`` or live), 0 (1970) at
        first. Calls a few microseconds apart would otherwise make a counter's rate per
        microsecond (a steady 15 per call read as a rate of thousands) and its step noise: per
        call, rates are consistent. (From the wall clock, a few calls by hand then a replay
        of last month's rows with ``data_at`` had every row dropped as late.)"""
        latest = self.__dict__.get("_latest")
        now = 0.0 if latest is None else latest + 1.0
        self.__dict__["_latest"] = now
        return now

    def _keep_firing(self, result: Scores, now: float) -> Scores:
        """``result`` with the alerts raised within ``keep_firing_for`` seconds before ``now``
        that it does not raise again (without a score: they export none, and a backtest's
        scores stay the detector's). A firing alert whose series still scores at the threshold
        or more is raised again by this cycle: its anomaly goes on (a frozen gauge, whose
        detector is quiet after its one alert while its score keeps growing, fires until it
        moves, not ``keep_firing_for`` seconds).

        An alert raised after the series' earlier one was only kept firing (its anomaly ended:
        a cycle neither raised it nor scored it at the threshold), or resolved less than
        ``keep_firing_for`` ago, is a new anomaly, and a new alert: the earlier one resolves,
        and this one is labelled with its ``episode``: the smallest number whose label set is
        neither firing nor resolved within ``keep_firing_for`` (2, 3, ... while alerts follow
        each other closely; a flapping series reuses a few, not one per alert). With the
        earlier one's labels, a jump 250 s after a spike joined the spike's alert and no
        receiver heard of it: Alertmanager notifies again of a group it told of only when a
        label set it did not tell of fires (a new ``startsAt`` of the same labels is merged
        into the alert, and one firing again before Alertmanager flushed its resolve is not
        notified either)."""
        ended: set[_Key] = self.__dict__.setdefault("_ended", set())
        # Each series' episodes resolved within keep_firing_for, and when: Alertmanager tells
        # no one of a label set firing again until it has flushed its resolve (within its
        # group_interval, 5 m by default), so an alert raised meanwhile takes another episode.
        resolved: dict[_Key, dict[int, float]] = self.__dict__.setdefault("_resolved_at", {})
        for key in list(resolved):
            resolved[key] = {
                e: at for e, at in resolved[key].items() if now - at < self.keep_firing_for
            }
            if not resolved[key]:
                del resolved[key]

        def labelled(alert: Alert, key: _Key) -> Alert:
            if key in self.firing_ and key not in ended:  # its anomaly goes on: the same alert
                return _with_episode(alert, _episode_of(self.firing_[key][0]))
            busy = set(resolved.get(key, ()))
            if key in self.firing_:  # kept firing, its anomaly ended: it resolves now
                busy.add(_episode_of(self.firing_[key][0]))
            # The smallest free: a flapping series reuses a few label sets, not one per alert.
            return _with_episode(alert, min(set(range(1, len(busy) + 2)) - busy))

        alerts = tuple(labelled(alert, _key_of(alert)) for alert in result.alerts)
        raised = {_key_of(alert): (alert, now) for alert in alerts}
        # Past the threshold as what raised the alert judges it: an online detector alerts at
        # its threshold or more, AlertPolicy above it (at a threshold of 0, Threshold's, each
        # series scoring 0 inside its bounds kept its alert firing for ever).
        online = self.detector.online
        threshold = self.detector.threshold if online else self.policy.threshold
        going_on = {
            (item.target, item.metric, item.series)
            for item in result.scores
            if item.score > threshold or (online and item.score == threshold)
        }
        calm = {
            (item.target, item.metric, item.series)
            for item in result.scores
            if math.isfinite(item.score) and (item.target, item.metric, item.series) not in going_on
        }
        previous = self.firing_
        self.firing_ = {
            key: (alert, now if key in going_on else since)
            for key, (alert, since) in previous.items()
            if key not in raised and (key in going_on or now - since < self.keep_firing_for)
        }
        for key, (alert, _) in previous.items():
            after = raised.get(key) or self.firing_.get(key)
            if after is None or _episode_of(after[0]) != _episode_of(alert):
                resolved.setdefault(key, {})[_episode_of(alert)] = now
        # Kept firing with its series under the threshold: its anomaly ended, and the next the
        # detector raises on the series is another (though the series went back over first).
        ended.intersection_update(self.firing_)
        # (Ended by a score under the threshold: a cycle without one, a missed scrape, is not
        # the anomaly's end.)
        ended.update(key for key in self.firing_ if key in calm)
        kept = tuple(dataclasses.replace(alert, score=None) for alert, _ in self.firing_.values())
        self.firing_.update(raised)
        return Scores(scores=result.scores, alerts=(*alerts, *kept))

    def _score(self, targets_data_dict: TargetsData) -> Scores:
        if self.detector.online:
            return self._update_online(targets_data_dict)
        # Called by hand (a test, a notebook), the data has no scrape time: stamped now, as
        # the online path stamps it, not refused.
        self.window.add(targets_data_dict, {t: _scrape_time(t) for t in targets_data_dict})
        metrics = dict.fromkeys(m for samples in targets_data_dict.values() for m in samples)
        scores: list[SeriesScore] = []
        scored: dict[str, tuple[Block, np.ndarray]] = {}
        for metric in metrics:
            block = self.block(metric)
            if not len(block):
                continue
            values = np.asarray(self.detector.score(block), dtype=np.float64)
            scored[metric] = (block, values)
            for (target, series), value in zip(block.keys, values.tolist(), strict=True):
                if not math.isnan(value):
                    scores.append(SeriesScore(target, metric, series, value))
        return self.policy.evaluate(scores, lambda items: self._explain_window(items, scored))

    def _explain_window(
        self, items: list[SeriesScore], scored: Mapping[str, tuple[Block, np.ndarray]]
    ) -> list[Explanation]:
        """The explanations of a window detector's alerting series, from its band
        (``expected_band``) at the policy's threshold, one metric's block at a time."""
        why: dict[_Key, Explanation] = {}
        for metric in dict.fromkeys(item.metric for item in items):
            block, values = scored[metric]
            wanted = {(i.target, i.series) for i in items if i.metric == metric}
            rows = [row for row, key in enumerate(block.keys) if key in wanted]
            explained = self.detector.explain_block(block, rows, values, self.policy.threshold)
            for found in explained:
                target, series = cast("tuple[str, str]", found.series)
                why[(target, metric, series)] = dataclasses.replace(
                    found, series=(target, metric, series)
                )
        return [why[(item.target, item.metric, item.series)] for item in items]

    def _update_online(self, targets_data_dict: TargetsData) -> Scores:
        self.calls += 1
        if self.calls % max(1, self.forget_after // 10) == 0:
            self._forget_absent()
        cycle: dict[_Key, tuple[float, float]] = {}
        resolution: dict[_Key, float] = {}
        for target, samples in targets_data_dict.items():
            now = _scrape_time(target)
            for metric, series in samples.items():
                counter = self.is_counter(metric)
                for labels, raw in series.items():
                    key = (target, metric, labels)
                    self.last_seen[key] = self.calls
                    if counter:
                        value, step = self.rates.update(key, now, raw)
                        if step > 0:
                            resolution[key] = step
                    else:
                        value = raw
                    cycle[key] = (now, value)
        if not cycle:
            return Scores()
        scores = self.detector.update(cycle, resolution)
        return Scores(
            scores=tuple(
                SeriesScore(key[0], key[1], key[2], score)
                for key, score in scores.items()
                if not math.isnan(score)
            ),
            alerts=tuple(self.explained_alert(why) for why in self.detector.alerts()),
        )

    def scores(self) -> dict[_Key, float]:
        """Each series' last score, keyed by (target, metric, series) (online detectors)."""
        return {key: self.detector.explain(key).score for key in self.last_seen}

    def _forget_absent(self) -> None:
        oldest = self.calls - self.forget_after
        absent = [key for key, seen in self.last_seen.items() if seen < oldest]
        for key in absent:
            del self.last_seen[key]
            self.rates.forget(key)
            self.firing_.pop(key, None)  # a series gone has nothing left to fire about
            self.__dict__.get("_resolved_at", {}).pop(key, None)
        self.detector.forget(absent)

    def explained_alert(self, why: Explanation) -> Alert:
        """The alert for one explained series: labelled by metric and series, annotated with
        the anomaly kind, the observed value and the expected band, in words for a chat."""
        target, metric, labels = cast("_Key", why.series)
        name = metric + ("" if labels == "{}" else labels)
        where = f" on {redact_url(target)}" if target else ""  # no token in a chat
        return Alert(
            labels={**self.labels, "metric": metric, "series": labels},
            annotations=_annotations(
                why,
                name,
                where,
                f"score {why.score:.3g}; {type(self.detector).__name__}",
                rate=self.is_counter(metric),
            ),
            target=target,
            score=float(why.score),
        )


def _annotations(
    why: Explanation, name: str, where: str, about: str, rate: bool = False
) -> dict[str, str]:
    """An explained alert's annotations, in words for a chat: ``summary``, ``description``
    (ending with ``about``: the score and the detector, or how long it was held),
    ``kind``, ``observed``, ``expected_range`` (when the detector says) and ``score``. Of a
    counter (``rate``), the detector judged its per-second rate, and the words say so."""
    kind = why.kind.replace("_", " ")
    low, high = why.expected_low, why.expected_high
    expected = f"{low:.6g} .. {high:.6g}"
    # A detector of one's own may not say what it expected: no "expected nan .. nan"; a
    # bound on one side only (Threshold(above=20)) reads "at most 20".
    known = math.isfinite(low) or math.isfinite(high)
    if known and not math.isfinite(low):
        words = f"at most {high:.6g}"
    elif known and not math.isfinite(high):
        words = f"at least {low:.6g}"
    else:
        words = expected
    what = _OBSERVED.get(why.kind, "value")
    if rate:  # a counter's total is no value it had: "The value is 41.6" of a _total read so
        what = _OF_A_RATE.get(why.kind, "per-second rate")
    # A window detector's explanation names no kind of its own ("score"): it is anomalous.
    summary = f"{name}{where} is anomalous" if why.kind == "score" else f"{name}{where}: {kind}"
    return {
        "summary": summary,
        "description": (
            f"{summary}. The {what} is {why.observed:.6g}"
            + (f", expected {words}" if known else "")
            + f" ({about})."
        ),
        "kind": why.kind,
        "observed": f"{why.observed:.6g}",
        **({"expected_range": expected} if known else {}),
        "score": f"{why.score:.6g}",
    }


#: What an explanation's ``observed`` is, per anomaly kind, in an alert's words.
_OBSERVED = {
    "level_shift": "recent level",
    "seasonal": "recent level",  # against the time of day's value
    "variance": "recent typical change between points",
    "trend": "recent slope per point",
    "stuck": "run of points at one value",
}
#: The same, for a counter: what the detector judged was its per-second rate.
_OF_A_RATE = {
    **_OBSERVED,
    "level_shift": "recent per-second rate",
    "seasonal": "recent per-second rate",  # against the time of day's value
    "variance": "recent typical change of its per-second rate between points",
    "trend": "recent slope of its per-second rate per point",
    "stuck": "run of points at one per-second rate",  # (the rate repeats, not the total)
}


def _check_metrics_given(detector: object, desired_metrics: str | list[str]) -> None:
    """Refuse metric names given where the detector goes (``DetectorObserver({"x"})``: a
    ``UsageTypeError``), or none at all (a ``UsageError``), saying how to give them: the base
    class's message (a ``ConfigError``) speaks to a subclass's author
    (``super().__init__(desired_metrics)``), not to a user of the ready observer, whose bad
    argument is a ``ValueError`` or ``TypeError`` as any other."""
    names = isinstance(detector, str)
    if isinstance(detector, list | tuple | set | frozenset):
        names = bool(detector) and all(isinstance(item, str) for item in detector)
    if names:
        raise UsageTypeError(
            f"DetectorObserver: {detector!r} was given as the detector, its first argument: "
            f"name the metrics, DetectorObserver(desired_metrics={detector!r})"
        )
    if desired_metrics:
        return
    raise UsageError(
        "DetectorObserver desires no metrics: name them, "
        "DetectorObserver(desired_metrics={'node_load1'}) (under observers: in the config, "
        "desired_metrics: [node_load1]; on the command line, --metrics node_load1)"
    )


def _episode_of(alert: Alert) -> int:
    """The ``episode`` ``alert`` is labelled with: 1 without the label."""
    shown = alert.labels.get(EPISODE, "1")
    return int(shown) if shown.isdigit() else 1


def _with_episode(alert: Alert, episode: int) -> Alert:
    """``alert`` labelled with ``episode``; the first has no label, so an alert's identity is
    as before unless an anomaly follows another within ``keep_firing_for``."""
    if episode == 1:
        return alert
    return dataclasses.replace(alert, labels={**alert.labels, EPISODE: str(episode)})


def _key_of(alert: Alert) -> _Key:
    return (alert.target, alert.labels.get("metric", ""), alert.labels.get("series", ""))


def _cycle_time() -> float | None:
    """The data's time this cycle (its scrape time, or a replay's recorded time); None when
    the caller hands none, as by hand in a notebook."""
    try:
        return data_time()
    except RuntimeError:
        return None


def _scrape_time(target: str) -> float:
    """The data's scrape time; the wall clock only where the caller hands none."""
    try:
        return data_time(target)
    except RuntimeError:
        return time.time()
