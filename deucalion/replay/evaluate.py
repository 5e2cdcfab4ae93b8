"""Evaluate a backtest against labelled anomaly windows.

Labels are a JSON object mapping a series (or a CSV file's name, which is its target) to its
anomaly windows, ``{"machine_temp.csv": [["2024-01-02 10:00", "2024-01-02 12:00"], ...]}``,
times as Unix seconds or ISO 8601. A key names, in order of preference, a series as outputs
name it (``target metric{labels}``), a ``metric{labels}`` of any target, or a target.

Detections are the backtest's alerts about the series (or, with ``threshold``, its scores at or
above it), as *events*: an alert span, or a run of consecutive steps scoring at or above the
threshold. Per series and in total:

- a window is *detected* when an event starts in it (from its start to its end, both
  included): an event already firing when the window starts, such as an alert kept firing
  after an earlier anomaly (``DetectorObserver``'s ``keep_firing_for``, 300 s), detects
  nothing in it; *recall* = detected windows / windows;
- an event is *true* when it starts in a window; *precision* = true events / events;
- *F1* is their harmonic mean;
- *time to detection* of a detected window = the start of its first event in it minus the
  window's start.

The NAB score (``deucalion.replay.nab``) is computed at every step the labelled series was
handed to the observer (its kept values; ``backtest --labels`` keeps them), so a window the
observer wrote nothing for is a missed window, never a dropped one; a labelled series with no
row at all gets no NAB score (``Evaluation.nab_error``), since leaving out its windows would
flatter the score. It is computed twice (an observer that never alerted has 0 windows found
by its alerts):

- *alerts as detections* (``Evaluation.nab_alerts``): one detection per alert about the
  series, at the row of its start (the first row at or after it), none elsewhere, as
  ``benchmarks/bench_detection.py`` scores a detector that decides its own alerts. An alert
  kept firing past its window is one false positive (if it started outside every window), not
  one per row it fires; an alert already firing when a window starts detects nothing in it,
  as in the table. No threshold: the observer chose its alerts.
- *scores swept* (``Evaluation.nab``): the scores at each row (a step without one is no
  detection), or, when the observer exported no scores, its alerts as 1 at each row while they
  fire; NAB's threshold is swept for the whole set (the best one, as NAB reports it), unless
  ``threshold`` is given: then every score at or above it is a detection, so a threshold
  chosen on one labelled set (the one a sweep printed) can be applied to another, unseen one.
  This is NAB's method for a detector that only scores; a detector whose score stays high
  while an anomaly goes on (``AnomalyDetector``'s, for a frozen series, for hundreds of rows
  past the window) pays a false positive for each such row at any threshold that finds the
  window, so its alerts are the fairer measure of it.
"""

from __future__ import annotations

import bisect
import importlib
import itertools
import json
import math
import numbers
import os
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deucalion.errors import ConfigError
from deucalion.replay.results import AlertSpan, BacktestResult, alert_about, names_series
from deucalion.replay.sources import HistoryError, parse_time

__all__ = ["Evaluation", "SeriesEvaluation", "evaluate", "load_windows", "read_output"]

Window = tuple[float, float]


#: Labelled windows as ``load_windows`` returns them, or as a user may give them: a labels
#: file's path, or ``{series: [(start, end), ...]}`` with times as a labels file has them.
WindowsLike = str | os.PathLike[str] | Mapping[str, Sequence[Sequence[Any]]]


def load_windows(path: str | os.PathLike[str]) -> dict[str, list[Window]]:
    """The labelled windows of a JSON file, ``{series: [[start, end], ...]}`` with times in
    Unix seconds or ISO 8601, as Unix seconds: ``{series: [(start, end), ...]}``, each
    series' windows in time order (``ConfigError`` for a file that is none, or windows that
    end before they start or overlap)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the labels {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    return _parsed_windows(raw, f"{path}: ")


def as_windows(windows: WindowsLike) -> dict[str, list[Window]]:
    """Labelled windows in Unix seconds from what ``evaluate`` and ``plot`` accept: a labels
    file's path (read by ``load_windows``), or a mapping of series to ``(start, end)`` pairs
    whose times are Unix seconds, ISO 8601 strings or datetimes (naive ones are UTC)."""
    if isinstance(windows, str | os.PathLike):
        return load_windows(windows)
    if not isinstance(windows, Mapping):
        raise ConfigError(
            f"windows: a {type(windows).__name__} is not labelled windows: give a labels "
            'file\'s path or a mapping of each series to its windows, {"series": [(start, '
            "end), ...]}"
        )
    return _parsed_windows(windows, "windows: ")


def _moment(value: object, where: str) -> float:
    """Unix seconds from a time as a labels file or a caller gives it."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, str) or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        try:
            return parse_time(value if isinstance(value, str) else repr(float(value)), where)
        except HistoryError as exc:
            raise ConfigError(str(exc)) from None
    raise ConfigError(
        f"{where}time {value!r:.60} is a {type(value).__name__}: give Unix seconds, an ISO "
        "8601 string (2024-05-01T12:00:00Z) or a datetime"
    )


def _parsed_windows(raw: object, prefix: str) -> dict[str, list[Window]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{prefix}write an object mapping each series to its windows, "
            '{"series": [[start, end], ...]}'
        )
    windows: dict[str, list[Window]] = {}
    for key, pairs in raw.items():
        where = f"{prefix}{key}: "
        if (
            isinstance(pairs, str | bytes)
            or not isinstance(pairs, Sequence)
            or not all(
                isinstance(p, Sequence) and not isinstance(p, str | bytes) and len(p) == 2
                for p in pairs
            )
        ):
            raise ConfigError(f"{where}windows must be a list of [start, end] pairs")
        parsed = [(_moment(a, where), _moment(b, where)) for a, b in pairs]
        bad = [w for w in parsed if w[1] < w[0]]
        if bad:
            raise ConfigError(f"{where}window {bad[0]} ends before it starts")
        order = sorted(range(len(parsed)), key=parsed.__getitem__)
        for a, b in itertools.pairwise(order):
            if parsed[b][0] <= parsed[a][1]:  # as NAB's scoring would refuse them
                raise ConfigError(
                    f"{where}windows {_shown(pairs[a])} and {_shown(pairs[b])} overlap; merge "
                    "them into one"
                )
        windows[str(key)] = [parsed[i] for i in order]
    return windows


def _shown(pair: Sequence[Any]) -> str:
    return json.dumps(
        [v if isinstance(v, int | float | str) else str(v) for v in pair], ensure_ascii=False
    )


@dataclass
class SeriesEvaluation:
    """The numbers for one labelled series."""

    name: str
    windows: int = 0
    detected: int = 0
    events: int = 0
    true_events: int = 0
    detection_delays: list[float] = field(default_factory=list)
    """Seconds from each detected window's start to its detection."""

    @property
    def precision(self) -> float:
        """True events / events (1.0 when there is no event: nothing was wrongly reported)."""
        return self.true_events / self.events if self.events else 1.0

    @property
    def recall(self) -> float:
        """Detected windows / windows (1.0 when there is no window)."""
        return self.detected / self.windows if self.windows else 1.0

    @property
    def f1(self) -> float:
        """The harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Evaluation:
    """Per-series and overall numbers, and NAB's scores per profile."""

    series: list[SeriesEvaluation]
    total: SeriesEvaluation
    nab: dict[str, Any] = field(default_factory=dict)
    """Per NAB profile: its ``SweepResult`` (normalised score, threshold, ...) of the scores,
    swept (or at ``nab_threshold``); of the alerts as 1 while firing without scores."""
    nab_alerts: dict[str, Any] = field(default_factory=dict)
    """Per NAB profile: its ``SweepResult`` with the alerts as the detections, one at the row
    of each alert's start (empty when the backtest has no alert)."""
    nab_threshold: float | None = None
    """The threshold NAB was scored at when one was given (else each profile's best, swept)."""
    nab_from_firing: bool = False
    """``nab`` is of the alerts as 1 while firing (the observer exported no scores)."""
    nab_note: str = ""
    nab_error: str = ""
    """Why no NAB score is given although one was asked for (a labelled series without rows):
    the command exits non-zero."""

    def report(self) -> str:
        """A table for the terminal."""
        rows = [*self.series, self.total]
        # Names in full: the end of a long one (its labels) is what tells it from the next.
        width = max(6, *(len(one.name) for one in rows))
        lines = [
            f"{'series':<{width}} {'windows':>7} {'found':>5} {'events':>6} {'prec':>5} "
            f"{'recall':>6} {'F1':>5} {'TTD median':>10}"
        ]
        for one in rows:
            delay = (
                f"{statistics.median(one.detection_delays):.0f}s" if one.detection_delays else "-"
            )
            lines.append(
                f"{one.name:<{width}} {one.windows:>7} {one.detected:>5} "
                f"{one.events:>6} {one.precision:>5.2f} {one.recall:>6.2f} "
                f"{one.f1:>5.2f} {delay:>10}"
            )
        if self.nab or self.nab_alerts:
            scored = next(iter((self.nab or self.nab_alerts).values())).windows
            line = f"NAB: scored {scored} of {self.total.windows} labelled windows"
            if scored < self.total.windows:
                line += (
                    f" ({self.total.windows - scored} lie in NAB's probationary period, the "
                    "first 15% of a series' rows, or outside the replayed time)"
                )
            lines.append(line)
        for profile, sweep in self.nab_alerts.items():
            lines.append(
                f"NAB {profile}, alerts as detections: {sweep.score:.1f} ({sweep.detected}/"
                f"{sweep.windows} windows detected, {_false_positives(sweep.false_positives)}: "
                "alerts started outside the windows)"
            )
        if self.nab_from_firing:
            what, fired = "alerts firing, row by row, swept", "rows firing"
        elif self.nab_threshold is None:
            what, fired = "scores swept", "rows scored past it"
        else:
            what, fired = "scores at the given threshold", "rows scored past it"
        how = "best threshold" if self.nab_threshold is None else "threshold"
        for profile, sweep in self.nab.items():
            lines.append(
                f"NAB {profile}, {what}: {sweep.score:.1f} ({how} "
                f"{shown_threshold(sweep.threshold)}, {sweep.detected}/{sweep.windows} windows "
                f"detected, {_false_positives(sweep.false_positives)}: {fired} outside the "
                "windows)"
            )
        if self.nab_error:
            lines.append(f"NAB score refused: {self.nab_error}")
        if self.nab_note:
            lines.append(self.nab_note)
        return "\n".join(lines)


def _false_positives(count: int) -> str:
    return f"{count} false positive{'' if count == 1 else 's'}"


def shown_threshold(threshold: float) -> str:
    """``threshold`` in 6 significant digits, rounded down: given back as ``--threshold``, it
    admits every score the printed one stood for (rounded to nearest, it could shut out the
    very score a sweep chose)."""
    if not math.isfinite(threshold) or threshold == 0:
        return f"{threshold:g}"
    shown = float(f"{threshold:.6g}")
    if shown > threshold:
        digits = 5 - math.floor(math.log10(abs(threshold)))
        shown = math.floor(threshold * 10**digits) / 10**digits
    return f"{shown:.6g}"


def _spans_for(key: str, alerts: Iterable[AlertSpan], last: float) -> list[Window]:
    spans = []
    for alert in alerts:
        if alert_about(alert.labels, alert.target, key):
            spans.append((alert.start, alert.end if alert.end is not None else last))
    return sorted(spans)


def _score_events(points: Sequence[tuple[float, float]], threshold: float) -> list[Window]:
    events: list[Window] = []
    run: list[float] = []
    for when, score in points:
        if score >= threshold:
            run.append(when)
        elif run:
            events.append((run[0], run[-1]))
            run = []
    if run:
        events.append((run[0], run[-1]))
    return events


def _judge(name: str, windows: Sequence[Window], events: Sequence[Window]) -> SeriesEvaluation:
    """An event detects the windows it starts in: one already firing when a window starts (an
    alert kept firing after an earlier anomaly, ``keep_firing_for``) detects nothing in it."""
    out = SeriesEvaluation(name, windows=len(windows), events=len(events))
    for start, _ in events:
        if any(w_start <= start <= w_end for w_start, w_end in windows):
            out.true_events += 1
    for w_start, w_end in windows:
        hits = [start for start, _ in events if w_start <= start <= w_end]
        if hits:
            out.detected += 1
            out.detection_delays.append(min(hits) - w_start)
    return out


def evaluate(
    result: BacktestResult,
    windows: WindowsLike,
    *,
    threshold: float | None = None,
    profiles: Iterable[str] | None = None,
) -> Evaluation:
    """Score ``result``'s detections against the labelled ``windows`` (see the module): a
    labels file's path, or ``{series: [(start, end), ...]}`` with times in Unix seconds, ISO
    8601 or datetimes, as ``as_windows`` reads them."""
    windows = as_windows(windows)
    if result.last_time is None:
        raise ConfigError("the backtest has no steps to evaluate")
    per_series: list[SeriesEvaluation] = []
    labelled: list[tuple[str, list[float], list[float], Sequence[Window]]] = []
    unmatched = []
    rowless = []
    by_scores = []  # labelled series whose steps are known only from their scores
    by_alerts: list[tuple[str, list[float], list[float], Sequence[Window]]] = []
    any_scored = False
    for key, spans in windows.items():
        scored = [n for n in result.scores if names_series(key, n)]
        valued = [n for n in result.values if names_series(key, n)]
        points = sorted(p for n in scored for p in result.scores[n])
        alerts = _spans_for(key, result.alerts, result.last_time)
        events = alerts if threshold is None else _score_events(points, threshold)
        if not scored and not events and not valued:
            unmatched.append(key)
        per_series.append(_judge(key, spans, events))
        rows = _rows(result, valued, scored)
        if not valued and rows:
            by_scores.append(key)
        if rows:  # (no alert at all is 0 windows found, not no line)
            by_alerts.append((key, rows, _alert_starts(rows, alerts), spans))
        if not rows:
            rowless.append(key)
        elif scored:
            any_scored = True
            labelled.append((key, rows, _scores_at(rows, result, scored), spans))
        else:
            labelled.append((key, rows, [_firing(t, events) for t in rows], spans))
    if unmatched:
        raise ConfigError(
            f"labelled series {', '.join(unmatched)} match no series, target or "
            "alert of the backtest: replay the history that holds them (a labels file "
            "for more files than --from replays: keep only theirs), or name them as the "
            "outputs do (target, "
            "'metric{labels}' or 'target metric{labels}'); an output written without "
            "--labels names only the series that scored or alerted (and those of --series)"
        )
    total = SeriesEvaluation("total")
    for one in per_series:
        total.windows += one.windows
        total.detected += one.detected
        total.events += one.events
        total.true_events += one.true_events
        total.detection_delays += one.detection_delays
    evaluation = Evaluation(per_series, total)
    if rowless:
        # Scoring without them would drop their windows, and the score would look better.
        evaluation.nab_error = (
            f"the backtest has no rows of {', '.join(rowless)} (neither a value nor a score "
            "at any step), so their windows could not be counted: backtest again with "
            "--labels (or --series naming them), which keeps their values in the output"
        )
    else:
        # A threshold applies to scores: alerts (1 while firing) are swept as they come.
        fixed = threshold if any_scored else None
        evaluation.nab_from_firing = bool(labelled) and not any_scored
        _nab(evaluation, labelled, profiles, fixed, by_alerts)
        if by_scores and evaluation.nab:
            evaluation.nab_note = (
                f"NAB rows of {', '.join(by_scores)}: the steps they were scored at (the "
                "backtest kept no values of them); if the observer scores only now and then, "
                "backtest with --labels, which keeps every step of the labelled series"
            )
    return evaluation


def _rows(result: BacktestResult, valued: Sequence[str], scored: Sequence[str]) -> list[float]:
    """The steps NAB scores a labelled series at: every step the series was handed to the
    observer (its kept values, in step order), whether or not the observer scored it then.
    Without kept values, the steps of its scores."""
    if valued:
        longest = max(valued, key=lambda n: len(result.values[n]))
        return [t for t, _ in result.values[longest]]
    if len(scored) == 1:
        return [t for t, _ in result.scores[scored[0]]]
    return sorted({t for n in scored for t, _ in result.scores[n]})


def _scores_at(rows: Sequence[float], result: BacktestResult, scored: Sequence[str]) -> list[float]:
    """The score at each row: the highest of the series' scores at that step, 0 (no
    detection) at a step without one. Scores pair with rows in step order, so a time that
    repeats pairs its n-th score with its n-th row."""
    out: list[float | None] = [None] * len(rows)
    for name in scored:
        at: dict[float, deque[int]] = {}
        for i, when in enumerate(rows):
            at.setdefault(when, deque()).append(i)
        for when, score in result.scores[name]:
            free = at.get(when)
            if not free:
                continue
            i = free.popleft()
            if math.isfinite(score):
                before = out[i]
                out[i] = score if before is None else max(before, score)
    # No score is no detection: the lowest score there is (0 for the usual scores >= 0).
    floor = min([0.0, *(s for s in out if s is not None)])
    return [floor if s is None else s for s in out]


def _firing(when: float, events: Sequence[Window]) -> float:
    return 1.0 if any(start <= when <= end for start, end in events) else 0.0


def _alert_starts(rows: Sequence[float], alerts: Sequence[Window]) -> list[float]:
    """1 at the row of each alert's start (the first row, in step order, at or after it), 0
    elsewhere: an alert is one detection however long it fires. One starting after the last
    row is outside the rows, as a window there would be."""
    out = [0.0] * len(rows)
    ordered = all(a <= b for a, b in itertools.pairwise(rows))
    for start, _ in alerts:
        if ordered:
            i = bisect.bisect_left(rows, start)
        else:
            i = next((i for i, when in enumerate(rows) if when >= start), len(rows))
        if i < len(rows):
            out[i] = 1.0
    return out


def _nab(
    evaluation: Evaluation,
    labelled: list[tuple[str, list[float], list[float], Sequence[Window]]],
    profiles: Iterable[str] | None,
    threshold: float | None = None,
    by_alerts: Sequence[tuple[str, list[float], list[float], Sequence[Window]]] = (),
) -> None:
    try:
        nab: Any = importlib.import_module("deucalion.replay.nab")
    except ImportError:
        evaluation.nab_note = "NAB score: not available in this version"
        return
    if not labelled:
        evaluation.nab_note = "NAB score: the backtest has neither scores nor alerts to score"
        return
    series = [
        nab.LabelledSeries(name, times, scores, list(spans))
        for name, times, scores, spans in labelled
    ]
    chosen = tuple(profiles) if profiles is not None else tuple(nab.PROFILES)
    if by_alerts:
        # The observer's own decisions: each alert's start is a detection, nothing to sweep.
        starts = [
            nab.LabelledSeries(name, times, detections, list(spans))
            for name, times, detections, spans in by_alerts
        ]
        evaluation.nab_alerts = {p: nab.score_at_threshold(starts, 1.0, p) for p in chosen}
    if threshold is None:
        evaluation.nab = dict(nab.evaluate(series, chosen))
    else:
        evaluation.nab_threshold = threshold
        evaluation.nab = {p: nab.score_at_threshold(series, threshold, p) for p in chosen}


def read_output(path: str | Path) -> BacktestResult:
    """A backtest's result as its output file (JSON lines or CSV) holds it: scores, alerts,
    errors and the values of the series it kept (the labelled ones, or ``--series``)."""
    from deucalion.replay.results import series_name

    path = Path(path)
    result = BacktestResult(observer=path.name)
    times: list[float] = []
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        if path.suffix == ".csv":
            import csv

            rows: Iterable[dict[str, Any]] = (
                {k: (v if v != "" else None) for k, v in row.items()}
                for row in csv.DictReader(handle)
            )
        else:
            rows = (json.loads(line) for line in handle if line.strip())
        try:
            for row in rows:
                kind = row.get("kind")
                if kind == "score":
                    when = float(row["time"])
                    times.append(when)
                    name = series_name(
                        row.get("target") or "", row.get("metric"), row.get("series")
                    )
                    result.scores.setdefault(name, []).append((when, float(row["score"])))
                    if row.get("value") is not None:  # a derived series' value (a preset's)
                        result.values.setdefault(name, []).append((when, float(row["value"])))
                elif kind == "value":
                    when = float(row["time"])
                    times.append(when)
                    name = series_name(
                        row.get("target") or "", row.get("metric"), row.get("series")
                    )
                    result.values.setdefault(name, []).append((when, float(row["value"])))
                elif kind == "alert":
                    labels, notes = row["labels"], row.get("annotations") or {}
                    if isinstance(labels, str):
                        labels = json.loads(labels)
                    if isinstance(notes, str):
                        notes = json.loads(notes)
                    end = row.get("end")
                    result.alerts.append(
                        AlertSpan(
                            dict(labels),
                            dict(notes),
                            row.get("target"),
                            float(row["start"]),
                            None if end is None else float(end),
                            row.get("startsAt") or "",
                            row.get("endsAt") or "",
                        )
                    )
                    times.append(float(row["start"]))
                elif kind == "error":
                    result.errors += 1
                    times.append(float(row["time"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} is not a backtest output: {type(exc).__name__}: {exc}"
            ) from None
    if times:
        result.first_time, result.last_time = min(times), max(times)
    result.steps = max(
        (len(points) for points in (*result.scores.values(), *result.values.values())), default=0
    )
    return result
