"""Scoring detections the way the Numenta Anomaly Benchmark (NAB) does.

The method, as NAB publishes it (Lavin & Ahmad 2015, and numenta/NAB's sweeper):

- Each file has labelled anomaly *windows* ``[start, end]`` (inclusive). A point is a detection
  when its anomaly score is ``>= threshold``.
- The first 15 % of each file (at most 750 points) is a *probationary period*: detectors are
  learning, nothing there is scored, and a window lying in it does not count.
- A window with no detection costs ``fn``, whether or not the detector wrote rows for it (a
  window inside the file's time span with no row at all is missed too).
- Rows pair timestamps and scores by position, in file order: a timestamp that repeats or
  steps back is a row of its own, as NAB reads its files. A detected window earns
  ``tp * S(position of its earliest detection) / S(-1)``, where ``S(x) = 2 / (1 + e^(5x)) - 1``
  is the scaled sigmoid and the position runs from -1 (first point) towards 0 (just after the
  last): an early detection earns nearly ``tp``, a late one less. Further detections in the same
  window add nothing.
- A detection outside every window costs ``fp`` times ``-S(distance past the previous window's
  end, in window widths)``: a detection just after a window costs little, one far from any window
  (or before the first) the full ``fp``. Every such point counts, so a detector that keeps firing
  pays for each point.
- One threshold for the whole set is chosen by sweeping every distinct score and keeping the
  best raw total. The raw total is normalised so that the *null* detector (never fires) scores 0
  and the *perfect* detector (fires at the first point of every window) scores 100.
  ``score_at_threshold`` scores the set at a threshold given instead, one chosen on another set
  (``deucalion evaluate --threshold``), which is how a detector is judged on data it was not
  tuned on.

Three cost *profiles* weigh the outcomes: ``standard``, ``reward_low_FP_rate`` (false positives
cost twice as much) and ``reward_low_FN_rate`` (missed windows cost twice as much).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from deucalion.errors import UsageError

__all__ = [
    "PROFILES",
    "LabelledSeries",
    "Profile",
    "SweepResult",
    "evaluate",
    "file_scores",
    "load_labelled_directory",
    "probationary_length",
    "scaled_sigmoid",
    "score_at_threshold",
    "sweep",
]

Timestamp = float | datetime | str


@dataclass(frozen=True)
class Profile:
    """NAB's weights for a true positive, a false positive and a false negative (a missed window).

    ``tn`` is part of NAB's published profiles but weighs nothing in its score.
    """

    tp: float
    fp: float
    fn: float
    tn: float = 1.0


PROFILES: Mapping[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}
"""The three cost profiles NAB reports, under the names it uses."""

PROBATIONARY_FRACTION = 0.15
_PROBATIONARY_CAP_ROWS = 5000  # NAB caps the period at 15 % of 5000 rows = 750 points


def scaled_sigmoid(position: float) -> float:
    """NAB's weight for a detection at ``position`` relative to a window.

    -1 is a window's first point (0.9866), 0 just past its end (0), positive values lie after
    the window in window widths (1 gives -0.9866); from 3 on it is -1.
    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probationary_length(rows: int, fraction: float = PROBATIONARY_FRACTION) -> int:
    """How many leading points of a file of ``rows`` points NAB leaves unscored."""
    return int(min(math.floor(fraction * rows), fraction * _PROBATIONARY_CAP_ROWS))


def _seconds(stamp: Timestamp) -> float:
    if isinstance(stamp, datetime):
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    if isinstance(stamp, str):
        try:
            return float(stamp)  # Unix seconds, as deucalion's CSV sources take them
        except ValueError:
            return _seconds(datetime.fromisoformat(stamp.strip()))
    return float(stamp)


@dataclass(frozen=True)
class LabelledSeries:
    """One file of the benchmark: its timestamps, a detector's scores and the labelled windows.

    ``timestamps`` (seconds, datetimes or ISO strings) pair with ``scores`` by position, in
    file order as NAB pairs them: a timestamp may repeat or step back. ``windows`` are
    ``(start, end)`` pairs, inclusive, in the same units; a window with no row inside the
    rows' time span is a missed window.
    """

    name: str
    timestamps: Sequence[Timestamp]
    scores: Sequence[float]
    windows: Sequence[tuple[Timestamp, Timestamp]] = ()

    def __post_init__(self) -> None:
        if len(self.timestamps) != len(self.scores):
            raise UsageError(
                f"{self.name}: {len(self.timestamps)} timestamps but {len(self.scores)} scores;"
                " give one score per timestamp"
            )


@dataclass
class _Point:
    score: float
    weight: float  # NAB's sweep score: the signed reward if this point is a detection
    window: int  # index into the set's windows, or -1 outside every window


@dataclass
class _Prepared:
    points: list[_Point] = field(default_factory=list)
    windows: int = 0  # windows scored: with a scored point, or missed for want of a row


def _window_ranges(
    name: str, times: Sequence[float], spans: Sequence[tuple[float, float]]
) -> tuple[list[tuple[int, int]], list[float]]:
    """Each window's first and last row, by position; and the ends of the windows that have
    no row although they lie inside the rows' time span (missed, whatever the detector did).

    Rows are taken in file order, as NAB pairs them: a timestamp that repeats or steps back
    (a clock set back an hour) is a row of its own. A window's rows run from the first row whose
    time lies in it to the last; a window wholly before the first row or after the last is
    outside the data and dropped, as NAB's labeller drops it.
    """
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start <= end:
            raise UsageError(f"{name}: labelled windows overlap; merge them")
    ranges: list[tuple[int, int]] = []
    empty: list[float] = []
    if not times:
        return ranges, empty
    ordered = all(a <= b for a, b in itertools.pairwise(times))
    first, last = min(times), max(times)
    for start, end in spans:
        if ordered:
            lo = bisect.bisect_left(times, start)
            hi = bisect.bisect_right(times, end) - 1
        else:
            inside = [i for i, t in enumerate(times) if start <= t <= end]
            lo, hi = (inside[0], inside[-1]) if inside else (0, -1)
        if lo > hi:
            if start <= last and end >= first:
                empty.append(end)
        elif ranges and lo <= ranges[-1][1]:
            # Only a clock stepping back brings two windows' rows together: they are one.
            ranges[-1] = (min(lo, ranges[-1][0]), max(hi, ranges[-1][1]))
        else:
            ranges.append((lo, hi))
    ranges.sort()
    return ranges, empty


def _prepare(series: LabelledSeries, profile: Profile, first_window: int) -> _Prepared:
    """Each scored point's reward if it were a detection, and which window it lies in."""
    times = [_seconds(t) for t in series.timestamps]
    spans = sorted((_seconds(a), _seconds(b)) for a, b in series.windows)
    ranges, empty = _window_ranges(series.name, times, spans)
    probation = probationary_length(len(times))
    prepared = _Prepared()
    counted: dict[int, int] = {}  # local window index -> set-wide index
    current = 0  # the next or current window
    previous_end: int | None = None
    previous_width = 0.0
    for i, score in enumerate(series.scores):
        while current < len(ranges) and ranges[current][1] < i:
            lo, hi = ranges[current]
            previous_end, previous_width = hi, hi - lo + 1.0
            current += 1
        inside = current < len(ranges) and ranges[current][0] <= i
        if inside:
            lo, hi = ranges[current]
            width = hi - lo + 1.0
            weight = scaled_sigmoid(-(hi - i + 1) / width) * profile.tp / _MAX_TP
        elif previous_end is None:
            weight = -profile.fp
        else:
            # NAB divides by (width - 1); a one-point window puts every later FP at full cost.
            past = (i - previous_end) / (previous_width - 1) if previous_width > 1 else 3.0
            weight = scaled_sigmoid(past) * profile.fp
        if i < probation:
            continue
        window = -1
        if inside:
            window = counted.setdefault(current, first_window + len(counted))
        prepared.points.append(_Point(float(score), weight, window))
    prepared.windows = len(counted)
    # A window without a row cannot be detected: it is missed (it costs fn in every sweep),
    # unless it ends inside the probationary period, where nothing counts.
    scored_from = times[probation] if probation < len(times) else math.inf
    prepared.windows += sum(1 for end in empty if end >= scored_from)
    return prepared


@dataclass(frozen=True)
class SweepResult:
    """A set's NAB score under one profile at one threshold.

    ``score`` is normalised (null detector 0, perfect 100); ``raw`` is NAB's unnormalised sum;
    ``detected``/``windows`` count windows; ``false_positives`` counts detections outside them.
    """

    profile: str
    threshold: float
    score: float
    raw: float
    windows: int
    detected: int
    false_positives: int


def _prepare_set(series: Iterable[LabelledSeries], profile: Profile) -> tuple[list[_Point], int]:
    points: list[_Point] = []
    windows = 0
    for one in series:
        prepared = _prepare(one, profile, windows)
        points.extend(prepared.points)
        windows += prepared.windows
    return points, windows


def _normalised(raw: float, windows: int, profile: Profile) -> float:
    null = -profile.fn * windows
    perfect = profile.tp * windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


def _sweep_points(
    points: list[_Point], windows: int, profile: Profile
) -> list[tuple[float, float, int, int]]:
    """(threshold, raw, detected windows, false positives) for every distinct threshold."""
    best_in_window = [-profile.fn] * windows
    raw = -profile.fn * windows
    detected = 0
    false_positives = 0
    rows = [(math.inf, raw, 0, 0)]
    ordered = sorted(points, key=lambda p: p.score, reverse=True)
    for k, point in enumerate(ordered):
        if point.window < 0:
            raw += point.weight
            false_positives += 1
        else:
            before = best_in_window[point.window]
            if before == -profile.fn:
                detected += 1
            if point.weight > before:
                raw += point.weight - before
                best_in_window[point.window] = point.weight
        # A threshold admits every point scoring at least it: record only after the last tie.
        if k + 1 == len(ordered) or ordered[k + 1].score != point.score:
            rows.append((point.score, raw, detected, false_positives))
    return rows


def score_at_threshold(
    series: Iterable[LabelledSeries], threshold: float, profile: str = "standard"
) -> SweepResult:
    """The set's NAB score when every point scoring ``>= threshold`` is a detection."""
    weights = PROFILES[profile]
    points, windows = _prepare_set(series, weights)
    row = (math.inf, -weights.fn * windows, 0, 0)
    for candidate in _sweep_points(points, windows, weights):
        if candidate[0] < threshold:
            break
        row = candidate
    return SweepResult(
        profile, threshold, _normalised(row[1], windows, weights), row[1], windows, row[2], row[3]
    )


def file_scores(
    series: Iterable[LabelledSeries], threshold: float, profile: str = "standard"
) -> dict[str, SweepResult]:
    """Each file's own NAB score at one ``threshold`` (the set's, from ``sweep``), by name."""
    return {one.name: score_at_threshold([one], threshold, profile) for one in series}


def sweep(series: Iterable[LabelledSeries], profile: str = "standard") -> SweepResult:
    """The best single threshold for the whole set under ``profile``, and its score.

    Every distinct score is tried (and "never fire"); ties keep the highest threshold.
    """
    weights = PROFILES[profile]
    points, windows = _prepare_set(series, weights)
    best = max(_sweep_points(points, windows, weights), key=lambda row: row[1])
    return SweepResult(
        profile,
        best[0],
        _normalised(best[1], windows, weights),
        best[1],
        windows,
        best[2],
        best[3],
    )


def evaluate(
    series: Iterable[LabelledSeries], profiles: Iterable[str] = tuple(PROFILES)
) -> dict[str, SweepResult]:
    """NAB's report: each profile's best threshold over the whole set, and its score."""
    files = list(series)
    return {name: sweep(files, name) for name in profiles}


def load_labelled_directory(
    directory: str | Path,
) -> dict[str, tuple[list[float], list[float], list[tuple[float, float]]]]:
    """Read a NAB-style folder: ``*.csv`` of ``timestamp,value`` and ``windows.json``.

    Returns, per file name, its timestamps (seconds, UTC), values and windows. A file missing
    from ``windows.json`` is an error: an unlabelled file would count every detection as false.
    """
    folder = Path(directory)
    labels_path = folder / "windows.json"
    try:
        labels = json.loads(labels_path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{labels_path} is missing: a labelled folder needs windows.json beside its CSVs"
        ) from None
    files: dict[str, tuple[list[float], list[float], list[tuple[float, float]]]] = {}
    for path in sorted(folder.glob("*.csv")):
        if path.name not in labels:
            raise UsageError(f"{path} has no entry in {labels_path}; add one (an empty list)")
        times: list[float] = []
        values: list[float] = []
        # utf-8-sig: a byte order mark (spreadsheets write one) is no part of the header.
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                for row in csv.DictReader(handle):
                    times.append(_seconds(row["timestamp"]))
                    values.append(float(row["value"]))
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8") from None
        windows = [(_seconds(a), _seconds(b)) for a, b in labels[path.name]]
        files[path.name] = (times, values, windows)
    return files
