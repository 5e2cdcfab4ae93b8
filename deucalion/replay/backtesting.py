"""Backtest: an unchanged observer run over history, as fast as it goes.

Each cycle of a ``HistorySource`` goes through what a live cycle goes through: the observer's
desired samples are selected as live (``deucalion.observer.Selection``), handed to the
observer in its own worker process by the dispatch worker (``deucalion.dispatch``) with
``deucalion.data_time()`` answering the recorded scrape times, and what ``new_data`` returns is
interpreted by the same function as live (``deucalion.alerting.alerts``). Alerts are collected,
not sent: their start and end are those Alertmanager would have seen, as the alert lifecycle
(``deucalion.alerting.lifecycle``) produces them on the data's clock. Calls run one after
another, each waiting for the previous result, so no cycle is dropped.

What it returns is a ``deucalion.replay.results.BacktestResult``. Scores, alerts and errors are
written as they come (JSON lines, or CSV for a ``.csv`` output),
so a run stopped half-way leaves what it did.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from deucalion.alerting.alerts import (
    SeriesScore,
    alert_labels,
    interpret_result,
    label_problems,
    merge_advice,
)
from deucalion.alerting.lifecycle import AlertLifecycle, Payload, rfc3339
from deucalion.dispatch import CallOutcome, ObserverWorker
from deucalion.errors import ConfigError
from deucalion.observer import SYNTHETIC_METRICS, MetricsObserver, Selection, TargetsData, name_of
from deucalion.replay.opening import open_source
from deucalion.replay.results import (
    AlertSpan,
    BacktestResult,
    RowWriter,
    names_series,
    series_name,
)
from deucalion.replay.sources import Cycle, HistoryError, HistorySource
from deucalion.targets import Target

__all__ = ["backtest", "backtest_async", "read_values"]

log = logging.getLogger(__name__)

#: Series whose values a result keeps for plotting when none are named.
DEFAULT_KEPT_SERIES = 6

#: The data's clock of the backtest running in this task, for its alerts' log lines.
_HISTORY_CLOCK: ContextVar[Callable[[], float] | None] = ContextVar("_HISTORY_CLOCK", default=None)


class _HistoryTime(logging.Filter):
    """Adds to the alert lifecycle's lines logged by a backtest (``-v``) when in the history
    the alert fired or resolved: the line's own time is the wall clock's, which says nothing
    of a week replayed in seconds. Lines of live runs (no backtest in their task) pass as
    they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        clock = _HISTORY_CLOCK.get()
        if clock is not None:
            # Formatted here, whatever the line's args (none, a tuple, a mapping): appending a
            # placeholder to the format would break a line with a literal "%" and no args.
            record.msg = f"{record.getMessage()} at {rfc3339(clock())} in the history"
            record.args = ()
        return True


logging.getLogger("deucalion.alerting.lifecycle").addFilter(_HistoryTime())


# --- the run ----------------------------------------------------------------------------------


class _Progress:
    """A one-line progress bar on stderr for runs longer than a couple of seconds."""

    def __init__(self, enabled: bool, start: float | None, end: float | None) -> None:
        self.enabled = enabled
        self.start, self.end = start, end
        self._began = time.monotonic()
        self._shown = 0.0

    def update(self, steps: int, now: float, first: float) -> None:
        if not self.enabled:
            return
        wall = time.monotonic() - self._began
        if wall < 2.0 or wall - self._shown < 0.5:
            return
        self._shown = wall
        speed = (now - first) / wall if wall > 0 else 0.0
        text = f"{steps:,} steps, {speed:,.0f}x real time"
        if self.start is not None and self.end is not None and self.end > self.start:
            done = min(1.0, max(0.0, (now - self.start) / (self.end - self.start)))
            bar = "#" * int(30 * done)
            text = f"[{bar:<30}] {100 * done:3.0f}% {text}"
        sys.stderr.write(f"\r{text}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self._shown:
            sys.stderr.write("\n")


class _RecordedTarget:
    """One target's samples in a cycle of history, as selection reads a scrape result: the
    synthetic samples (``up``, ...) apart, so they are handed only when desired, as live."""

    __slots__ = ("_recorded", "url")

    def __init__(self, url: str, recorded: dict[str, dict[str, float]]) -> None:
        self.url = url
        self._recorded = recorded

    @property
    def target(self) -> _RecordedTarget:
        return self

    @property
    def samples(self) -> dict[str, dict[str, float]]:
        return {
            name: series for name, series in self._recorded.items() if name not in SYNTHETIC_METRICS
        }

    def with_synthetic(self) -> dict[str, dict[str, float]]:
        return self._recorded


def _select(selection: Selection, samples: TargetsData) -> TargetsData:
    """The observer's samples of one cycle, chosen by the selection live runs use."""
    return selection(_RecordedTarget(url, recorded) for url, recorded in samples.items()).data


class _Caller:
    """Calls the observer through its dispatch worker, one call at a time."""

    def __init__(self, observer: MetricsObserver, timeout: float | None) -> None:
        self.worker = ObserverWorker(observer, on_result=self._on_result, timeout=timeout)
        self._answer: asyncio.Future[CallOutcome] | None = None

    def _on_result(self, outcome: CallOutcome) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(outcome)

    async def call(self, data: TargetsData, cycle: Cycle) -> CallOutcome | None:
        """The outcome of ``new_data(data)``; None when the call cost the worker (it died or
        ran past the timeout: the dispatch worker logged it and started a new one)."""
        self._answer = answer = asyncio.get_running_loop().create_future()
        errors = self.worker.stats.errors
        self.worker.submit(data, cycle_time=cycle.time, target_times=cycle.target_times)
        while True:
            # The outcome of a call that cost its worker never reaches on_result: an error
            # counted with the worker idle again means that happened.
            done, _ = await asyncio.wait({answer}, timeout=0.2)
            if done:
                outcome: CallOutcome = answer.result()
                return outcome
            if self.worker.stats.errors > errors and not self.worker.busy:
                return None


class _Alerts:
    """The alert lifecycle on the data's clock, with each alert's span."""

    def __init__(
        self,
        observer: str,
        alert_name: str,
        resend_interval: float,
        lifetime: float,
        output: RowWriter,
        result: BacktestResult,
        keep_scores: bool,
    ) -> None:
        self.observer = observer
        self.alert_name = alert_name
        self.now = 0.0
        self.lifecycle = AlertLifecycle(
            resend_interval=resend_interval, lifetime=lifetime, clock=lambda: self.now
        )
        self.open: dict[frozenset[tuple[str, str]], AlertSpan] = {}
        self.output = output
        self.result = result
        self._targets: dict[str, Target] = {}
        self._sent: dict[frozenset[tuple[str, str]], Payload] = {}
        self.keep_scores = keep_scores
        self._merge_logged = False

    def observe(
        self,
        now: float,
        result: object,
        data: TargetsData,
        target_labels: Mapping[str, Mapping[str, str]] | None,
    ) -> None:
        self.now = now
        outcome = interpret_result(result, data)
        for problem in outcome.problems:
            log.error(
                "observer %s returned something deucalion cannot send: %s", self.observer, problem
            )
        firing: list[tuple[dict[str, str], dict[str, str]]] = []
        about: dict[frozenset[tuple[str, str]], str | None] = {}
        # Series the observer scored itself (dc.Scores): their alerts add no second row.
        scored: set[tuple[str, str | None, str]] = {
            (s.target or "", s.metric, s.series) for s in outcome.series_scores
        }
        for alert in outcome.alerts:
            target = None
            if alert.target is not None:
                target = self._targets.get(alert.target)
                known = (target_labels or {}).get(alert.target)
                if target is None or (known is not None and known != target.labels):
                    # A target that is no URL (a CSV file's name) is its own instance.
                    own = {} if "://" in alert.target else {"instance": alert.target}
                    target = self._targets[alert.target] = Target(alert.target, dict(known or own))
            labels = alert_labels(
                alert, alert_name=self.alert_name, observer=self.observer, target=target
            )
            annotations = dict(alert.annotations)
            problems = label_problems(labels) + label_problems(annotations, "annotation")
            if problems:
                log.error("observer %s: alert dropped: %s", self.observer, "; ".join(problems))
                continue
            firing.append((labels, annotations))
            key = frozenset(labels.items())
            if key in about and not self._merge_logged:
                # As live: one label set is one alert, so the last one wins; said once.
                self._merge_logged = True
                targets = {t for t in (about[key], alert.target) if t is not None}
                log.warning(
                    "observer %s returned alerts with the same labels as another in one "
                    "result: each label set is one alert, so they were merged (the last one "
                    "wins). %s (this is logged once)",
                    self.observer,
                    merge_advice(targets if len(targets) > 1 else ()),
                )
            about[key] = alert.target
            metric = alert.labels.get("metric")
            series = (alert.target or "", metric, alert.labels.get("series", "{}"))
            if alert.score is not None and metric is not None and series not in scored:
                # An alert that names its series (metric and series labels, as the demo's
                # observer's do) gives that series' score, unless the observer scored it.
                scored.add(series)
                self._score(now, *series, float(alert.score))
        self._track(self.lifecycle.update(self.observer, firing))
        for key in about.keys() - self.open.keys():
            payload = self._sent.get(key, {})
            self.open[key] = AlertSpan(
                dict(key),
                {},
                about[key],
                now,
                starts_at=payload.get("startsAt", ""),
                ends_at=payload.get("endsAt", ""),
            )
        for key in self.open.keys() - about.keys():
            span = self.open.pop(key)
            span.end = now
            span.ends_at = self._sent.pop(key, {}).get("endsAt", span.ends_at)
            self.result.alerts.append(span)
            self.output.write(span.as_row())
        for labels, annotations in firing:
            self.open[frozenset(labels.items())].annotations = annotations
        self._scores(now, outcome.scores, outcome.series_scores)

    def tick(self, now: float) -> None:
        """Re-sends due by time alone, as the live timer sends them."""
        self.now = now
        self._track(self.lifecycle.resend_due())

    def _track(self, payloads: list[Payload]) -> None:
        """Remember what Alertmanager last received of each alert."""
        for payload in payloads:
            key = frozenset(payload["labels"].items())
            self._sent[key] = payload
            span = self.open.get(key)
            if span is not None:
                span.ends_at = payload["endsAt"]

    def _scores(
        self, now: float, scores: Mapping[str | None, float], series_scores: Iterable[SeriesScore]
    ) -> None:
        for target, score in scores.items():
            self._score(now, target or "", None, None, score)
            if target:
                self.result.scored_targets.add(target)
        for one in series_scores:
            self._score(now, one.target or "", one.metric, one.series, one.score, one.value)
            if one.target:
                self.result.scored_targets.add(one.target)
            if self.keep_scores and math.isfinite(one.value):
                # A series the observer derived (a preset's signal) is in no source: its value
                # is known only from the score, and a plot draws it from there.
                name = series_name(one.target or "", one.metric, one.series)
                self.result.values.setdefault(name, []).append((now, float(one.value)))

    def _score(
        self,
        now: float,
        target: str,
        metric: str | None,
        series: str | None,
        score: float,
        value: float = math.nan,
    ) -> None:
        if self.keep_scores:
            self.result.scores.setdefault(series_name(target, metric, series), []).append(
                (now, float(score))
            )
        row = {
            "kind": "score",
            "time": now,
            "target": target,
            "metric": metric,
            "series": series,
            "score": float(score),
        }
        if math.isfinite(value):
            # A derived series' value (a preset's signal) is in no source: the row carries
            # it, so that `deucalion evaluate` of the output reads what the backtest had.
            row["value"] = float(value)
        self.output.write(row)

    def close(self) -> None:
        """Alerts still firing at the end are reported open (``end`` None)."""
        for span in self.open.values():
            self.result.alerts.append(span)
            self.output.write(span.as_row())
        self.open.clear()
        self.result.alerts.sort(key=lambda a: a.start)


async def backtest_async(
    observer: MetricsObserver,
    source: HistorySource | str | os.PathLike[str],
    *,
    start: float | None = None,
    end: float | None = None,
    step: float | None = None,
    output: str | Path | None = None,
    alert_name: str = "DeucalionAnomaly",
    resend_interval: float = 60.0,
    observer_timeout: float | None = None,
    keep_scores: bool = True,
    keep_series: Iterable[str] | None = None,
    progress: bool | None = None,
) -> BacktestResult:
    """``backtest`` inside a running event loop (see ``backtest``)."""
    if not isinstance(observer, MetricsObserver):
        raise ConfigError(
            f"backtest() takes a MetricsObserver instance, not {type(observer).__name__}"
        )
    if isinstance(source, str | os.PathLike):
        source = open_source(os.fspath(source))
    elif not callable(getattr(source, "cycles", None)):
        raise ConfigError(
            f"backtest() takes a HistorySource, or a recording, CSV files or a Prometheus URL "
            f"as a string or path, not {type(source).__name__}"
        )
    desired = frozenset(observer.desired_metrics)
    selection = Selection(desired)
    name = name_of(observer)
    result = BacktestResult(name, desired_metrics=sorted(desired - SYNTHETIC_METRICS))
    out = RowWriter(output)
    caller = _Caller(observer, observer_timeout)
    # The alerts' lifetime, as live: 4 x max(scrape interval, resend interval).
    lifetime = 4 * max(step or 15.0, resend_interval)
    alerts = _Alerts(name, alert_name, resend_interval, lifetime, out, result, keep_scores)
    kept = None if keep_series is None else list(keep_series)
    chosen: dict[str, bool] = {}
    bar = _Progress(sys.stderr.isatty() if progress is None else progress, start, end)
    began = time.monotonic()
    await caller.worker.start()
    clock = _HISTORY_CLOCK.set(lambda: alerts.now)
    try:
        async for cycle in source.cycles(desired, start, end, step):
            data = _select(selection, cycle.samples)
            if result.first_time is None:
                result.first_time = cycle.time
                if kept is None:
                    kept = sorted(
                        series_name(t, m, s)
                        for t, per_name in data.items()
                        for m, per_series in per_name.items()
                        for s in per_series
                        if m != "up"
                    )[:DEFAULT_KEPT_SERIES]
            result.last_time = cycle.time
            result.steps += 1
            result.samples += _count_samples(data)
            result.targets.update(data)
            _keep_values(result, data, cycle.time, kept, chosen, out)
            alerts.tick(cycle.time)
            outcome = await caller.call(data, cycle)
            if outcome is None or outcome.error is not None:
                result.errors += 1
                error = (
                    "its worker died or ran past the timeout"
                    if outcome is None
                    else f"{type(outcome.error).__name__}: {outcome.error}"
                )
                out.write({"kind": "error", "time": cycle.time, "error": error})
            else:
                alerts.observe(cycle.time, outcome.result, data, cycle.target_labels)
            bar.update(result.steps, cycle.time, result.first_time)
    except HistoryError as exc:
        if not result.steps:
            raise
        # Keep what was done: the steps so far are valid, and their outputs are written.
        result.failure = str(exc)
        log.error("backtest stopped after %d steps: %s", result.steps, exc)
    finally:
        _HISTORY_CLOCK.reset(clock)
        bar.close()
        alerts.close()
        out.close()
        result.wall_seconds = time.monotonic() - began
        stats = getattr(source, "stats", None)  # a source of one's own may not count
        if stats is not None:
            result.source_warnings.update(stats.warnings)
            result.source_errors.update(getattr(stats, "errors", {}))
            result.source_messages.extend(getattr(stats, "messages", ()))
        await caller.worker.close()
    return result


def _count_samples(data: TargetsData) -> int:
    """The samples of its desired metrics an observer is handed, the synthetic ones apart."""
    return sum(
        len(series)
        for samples in data.values()
        for name, series in samples.items()
        if name not in SYNTHETIC_METRICS
    )


def _keep_values(
    result: BacktestResult,
    data: TargetsData,
    now: float,
    kept: list[str] | None,
    chosen: dict[str, bool],
    out: RowWriter,
) -> None:
    """Keep the values of the kept series, and write them: evaluation counts a labelled
    series' steps from them, scored or not."""
    if not kept:
        return
    for target, per_name in data.items():
        for metric, per_series in per_name.items():
            for series, value in per_series.items():
                name = series_name(target, metric, series)
                keep = chosen.get(name)
                if keep is None:
                    keep = chosen[name] = any(names_series(k, name) for k in kept)
                if keep:
                    result.values.setdefault(name, []).append((now, value))
                    out.write(
                        {
                            "kind": "value",
                            "time": now,
                            "target": target,
                            "metric": metric,
                            "series": series,
                            "value": value,
                        }
                    )


async def read_values(
    source: HistorySource,
    desired: Iterable[str],
    keys: Iterable[str],
    *,
    start: float | None = None,
    end: float | None = None,
    step: float | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """The values of the series ``keys`` name (as ``names_series`` reads keys), read again
    from ``source`` as an observer desiring ``desired`` was handed them: for a plot of the
    series that scored highest, known only once the backtest is over. A key naming a target
    gives one series of it (the first by name)."""
    selection = Selection(frozenset(desired))
    wanted = list(dict.fromkeys(keys))
    chosen: dict[str, str] = {}  # key -> the series it draws
    values: dict[str, list[tuple[float, float]]] = {}
    async for cycle in source.cycles(selection.desired_metrics, start, end, step):
        data = _select(selection, cycle.samples)
        names = sorted(
            (series_name(t, m, s), value)
            for t, per_name in data.items()
            for m, per_series in per_name.items()
            if m not in SYNTHETIC_METRICS
            for s, value in per_series.items()
        )
        for name, value in names:
            for key in wanted:
                if chosen.get(key, name) == name and names_series(key, name):
                    chosen[key] = name
                    values.setdefault(name, []).append((cycle.time, value))
                    break
    return values


def backtest(
    observer: MetricsObserver, source: HistorySource | str | os.PathLike[str], **options: Any
) -> BacktestResult:
    """Run ``observer``, unchanged, over ``source``'s history; return what it did.

    ``source`` is a ``HistorySource`` or what ``open_source`` takes (a recording, CSV files, a
    Prometheus URL), as a string or a path. ``start``/``end`` (Unix seconds) bound the history
    and ``step`` samples a Prometheus range. ``output`` writes every score, alert and error as
    it comes (JSON lines; CSV for ``*.csv``). ``alert_name`` and ``resend_interval`` are
    Alertmanager's settings as live, and so is ``observer_timeout``. ``keep_scores`` keeps the
    scores in the result (turn it off for many series); ``keep_series`` names the series whose
    values are kept for plots (as ``names_series`` matches them; default: the first few).
    ``progress`` shows a progress bar on stderr (default: when stderr is a terminal).

    Blocks; inside a running event loop (a notebook) it runs in a thread of its own. Use
    ``await backtest_async(...)`` to run it on the caller's loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:
        # Run outside the except block: an error of the run must not carry "no running event
        # loop" chained in front of it.
        return asyncio.run(backtest_async(observer, source, **options))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deucalion-backtest") as pool:
        return pool.submit(asyncio.run, backtest_async(observer, source, **options)).result()
