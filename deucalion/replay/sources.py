"""Sources of history: one interface that yields cycles, whatever stored the data.

A ``HistorySource`` yields ``Cycle``s, each what one live cycle would have handed the
observers: the cycle's scrape time, each target's scrape time and each target's samples
``{target: {sample_name: {series: value}}}``. A recording (``deucalion.replay.recording``), a
Prometheus server over a time range (``deucalion.replay.prometheus``) and CSV files (here) are
sources; ``open_source`` picks one from what ``deucalion backtest --from`` names. A source for
another monitoring system is any object with the ``cycles`` method (see README, "Other
monitoring systems").

CSV: either one series per file (``timestamp,value``; the file's name is the target, the
sample is ``value`` unless ``metric`` says otherwise, the series ``{}``), or one tidy table
(``timestamp,target,metric,labels,value``, ``labels`` a series key such as ``{cpu="0"}`` or
empty). Timestamps are Unix seconds or ISO 8601 (UTC unless they say otherwise). Each series'
rows are replayed in file order, as NAB reads its files, the series merged by time: a timestamp
that repeats or steps back (a clock set back an hour) is a cycle of its own, counted and warned
about once a file, never merged or dropped; a gap (a series without a row at some time) leaves
that series out of that cycle, as a target that stopped exposing it would.
"""

from __future__ import annotations

import csv
import heapq
import logging
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from deucalion.errors import HistoryError
from deucalion.history.labels import series_labels
from deucalion.observer import TargetsData

__all__ = [
    "CSVSource",
    "Cycle",
    "HistoryError",
    "HistorySource",
    "SourceStats",
    "parse_time",
]

log = logging.getLogger(__name__)


class Cycle(NamedTuple):
    """One cycle of history, as a live cycle hands it to observers."""

    time: float
    """The cycle's scrape time (Unix seconds): what ``deucalion.data_time()`` answers."""
    target_times: dict[str, float]
    """Each target's own scrape time: what ``deucalion.data_time(target)`` answers."""
    samples: TargetsData
    """``{target: {sample_name: {series: value}}}``: every sample the source has, ``up``
    included when it has it; a backtest selects each observer's desired ones."""
    target_labels: Mapping[str, Mapping[str, str]] | None = None
    """Each target's labels (``job``, ``instance``, ...) when the source knows them: alerts
    about a target carry them, as live."""


@dataclass
class SourceStats:
    """What a source noted while reading, counted by kind (for the summary): ``warnings``
    for what it read as it came or repaired, ``errors`` for history that is not whole (a
    damaged file, an answer Prometheus said was partial), which fail the command."""

    warnings: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    """What each error said, for the summary."""

    def warn(self, kind: str, message: str, count: int = 1) -> None:
        """Count ``count`` problems of ``kind`` and log ``message`` once for them."""
        self.warnings[kind] += count
        log.warning("%s", message)

    def fail(self, kind: str, message: str, count: int = 1) -> None:
        """Count ``count`` errors of ``kind`` and log ``message`` once for them."""
        self.errors[kind] += count
        self.messages.append(message)
        log.error("%s", message)


@runtime_checkable
class HistorySource(Protocol):
    """Anything that yields history as cycles, in the order the history holds them (oldest
    first; a source notes in ``stats`` the cycles that go back in time).

    ``metrics`` are the desired metrics (names or families; ``None``: everything), which a
    source may use to read less; ``start`` and ``end`` (Unix seconds, inclusive) bound the
    range; ``step`` is the time between cycles for sources that sample (a Prometheus range),
    ignored by sources that have cycles of their own. ``stats`` counts what was skipped.

    A source that knows cheaply how far through its history it is may also have
    ``read_fraction() -> float | None`` (0 to 1, None while unknown): the backtest's progress
    then shows a percentage and the time left without ``start`` and ``end``. Recordings (bytes
    of the file read) and CSV files (rows replayed) have it.
    """

    stats: SourceStats

    def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        """The cycles of history, oldest first."""
        ...


def parse_time(text: str, where: str = "") -> float:
    """Unix seconds from ``text``: a number of seconds (or milliseconds when larger than
    1e11), or an ISO 8601 date and time (UTC unless it carries an offset)."""
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise HistoryError(f"{where}timestamp {text!r} is not a finite time")
        return number / 1000.0 if abs(number) > 1e11 else number
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HistoryError(
            f"{where}timestamp {text!r} is neither Unix seconds nor an ISO 8601 "
            "date and time (2024-05-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_TIDY = ("timestamp", "target", "metric", "labels", "value")
#: A sample's name, as a CSV's second column may give it.
_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class CSVSource:
    """History from CSV files: one series per file, or tidy tables (see the module's docstring).

    ``paths`` are files or directories (every ``*.csv`` in one and in its folders, named by
    their path under it: ``realMine/x.csv``). ``metric`` names the sample of
    one-series-per-file CSVs. All rows are read at once: CSV data sets fit in memory, and
    merging the series by time needs it. Files are UTF-8 (a byte order mark is fine).
    """

    def __init__(self, paths: str | Path | Iterable[str | Path], *, metric: str = "value") -> None:
        if isinstance(paths, str | Path):
            paths = [paths]
        files: list[Path] = []
        self.names: dict[Path, str] = {}
        for path in map(Path, paths):
            if path.is_dir():
                # Its files and its folders' (NAB's layout: data/<category>/<file>.csv), each
                # named (its target) by its path under the directory, as NAB's labels name it.
                inside = sorted(path.glob("*/*.csv"))
                self.names.update((f, f.relative_to(path).as_posix()) for f in inside)
                found = sorted(path.glob("*.csv")) + inside
                if not found:
                    raise HistoryError(
                        f"{path}: no *.csv file in this directory or its subdirectories"
                    )
                files.extend(found)
            elif path.is_file():
                files.append(path)
            else:
                raise HistoryError(f"{path}: no such file or directory")
        self.files = files
        self.metric = metric
        self.stats = SourceStats()
        self._rows_total = self._rows_read = 0

    def read_fraction(self) -> float | None:
        """The share of the rows replayed so far, 0 to 1 (None before they are read)."""
        return self._rows_read / self._rows_total if self._rows_total else None

    def _rows(self, path: Path) -> Iterator[tuple[int, float, str, str, str, float]]:
        """``(line, time, target, sample, series, value)`` of every row of ``path``."""
        try:
            with path.open("rb") as handle:
                yield from self._parse(path, csv.reader(_text_lines(path, handle)))
        except OSError as exc:
            raise HistoryError(f"cannot read {path}: {exc.strerror or exc}") from None

    def _parse(
        self, path: Path, reader: Iterator[list[str]]
    ) -> Iterator[tuple[int, float, str, str, str, float]]:
        given = [h.strip() for h in next(reader, [])]
        header = [h.lower() for h in given]
        tidy = all(column in header for column in _TIDY)
        sample = self.metric
        if not tidy and header[:1] == ["timestamp"] and len(header) == 2 and header[1] != "value":
            # `timestamp,cpu` (a named pandas Series' to_csv): the column names the sample,
            # unless --csv-metric names it.
            if not _SAMPLE_NAME.fullmatch(given[1]):
                raise HistoryError(
                    f"{path}: the header is {','.join(given)!r}: its second column names the "
                    f"sample, and {given[1]!r} is no metric name (letters, digits, _ and :)"
                )
            sample = given[1] if self.metric == "value" else self.metric
            header[1] = "value"
        if not tidy and header[:2] != ["timestamp", "value"]:
            raise HistoryError(
                f"{path}: the header is {','.join(given)!r}; write either "
                "'timestamp,value' (one series per file; or 'timestamp,NAME', the sample's "
                "name) or 'timestamp,target,metric,labels,value' (a tidy table)"
            )
        column = {name: header.index(name) for name in _TIDY if name in header}
        checked: set[tuple[str, str, str]] = set()  # a tidy table's keys already checked
        for lineno, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            where = f"{path}:{lineno}: "
            if len(row) > len(header):
                # A decimal-comma export (1,5) splits each value in two: reading the first
                # field would replay 1 for 1.5, silently.
                raise HistoryError(
                    f"{where}{len(row)} columns, more than the header's {len(header)}: write "
                    "decimals with a point (1.5, not 1,5), quote a field that holds a comma, or "
                    "name every column in the header"
                )
            try:
                time = parse_time(row[column["timestamp"]], where)
                text = row[column["value"]].strip()
                value = math.nan if text == "" else float(text)
                if tidy:
                    labels = row[column["labels"]].strip() or "{}"
                    target, sample = row[column["target"]], row[column["metric"]]
                else:
                    labels = "{}"
                    target = self.names.get(path, path.name)
            except IndexError:
                raise HistoryError(
                    f"{where}{len(row)} columns, fewer than the header's {len(header)}"
                ) from None
            except ValueError:
                raise HistoryError(
                    f"{where}value {row[column['value']]!r} is not a number"
                ) from None
            if tidy and (target, sample, labels) not in checked:
                _check_key(where, target, sample, labels)
                checked.add((target, sample, labels))
            yield lineno, time, target, sample, labels, value

    def _series(self) -> list[_Rows]:
        """Each series' rows in file order, with what repeats or steps back noted once a file."""
        series: dict[tuple[str, str, str], _Rows] = {}
        for path in self.files:
            repeats = steps_back = 0
            first_repeat = first_back = ""
            for lineno, time, target, sample, labels, value in self._rows(path):
                rows = series.get((target, sample, labels))
                if rows is None:
                    rows = series[target, sample, labels] = _Rows(target, sample, labels)
                elif time == rows.times[-1]:
                    repeats += 1
                    first_repeat = first_repeat or f"{path}:{lineno}"
                elif time < rows.times[-1]:
                    steps_back += 1
                    first_back = first_back or f"{path}:{lineno}"
                rows.times.append(time)
                rows.values.append(value)
            # Kept as they come, row by row, as NAB reads its files: a clock set back an hour
            # repeats an hour of timestamps, and each of those rows is data.
            if repeats:
                self.stats.warn(
                    "repeated_timestamps",
                    f"{path}: {repeats} row(s) repeat the timestamp of the row before them in "
                    f"their series (the first at {first_repeat}); each is replayed as a cycle "
                    "of its own, in file order",
                    repeats,
                )
            if steps_back:
                self.stats.warn(
                    "timestamps_stepping_back",
                    f"{path}: {steps_back} row(s) go back in time in their series (the first "
                    f"at {first_back}); replayed in file order, so data_time() goes back too",
                    steps_back,
                )
        return list(series.values())

    async def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        """The rows as cycles: each series' rows in file order, the series merged by time; a
        cycle holds every series whose next row has the cycle's time."""
        series = self._series()
        if not series:
            raise HistoryError(f"{', '.join(map(str, self.files))}: no rows")
        self._rows_total = sum(len(rows.times) for rows in series)
        self._rows_read = 0
        heads = [(rows.times[0], k) for k, rows in enumerate(series)]
        heapq.heapify(heads)
        position = [0] * len(series)
        while heads:
            time = heads[0][0]
            due: list[int] = []
            while heads and heads[0][0] == time:
                due.append(heapq.heappop(heads)[1])
            samples: TargetsData = {}
            for k in due:
                rows = series[k]
                i = position[k]
                samples.setdefault(rows.target, {}).setdefault(rows.sample, {})[rows.labels] = (
                    rows.values[i]
                )
                position[k] = i + 1
                if i + 1 < len(rows.times):
                    heapq.heappush(heads, (rows.times[i + 1], k))
            self._rows_read += len(due)
            if (start is not None and time < start) or (end is not None and time > end):
                continue
            yield Cycle(time, dict.fromkeys(samples, time), samples)


def _check_key(where: str, target: str, sample: str, labels: str) -> None:
    """Refuse a tidy row's target, metric or labels that name no series, naming the row."""
    if not target.strip():
        raise HistoryError(f"{where}the target is empty; name the target the row is about")
    if not _SAMPLE_NAME.fullmatch(sample):
        raise HistoryError(
            f"{where}metric {sample!r} is no metric name (letters, digits, _ and :, not "
            "starting with a digit)"
        )
    try:
        series_labels(labels)
    except ValueError as exc:
        raise HistoryError(
            f"{where}labels {labels!r} are not a series key such as "
            f'{{cpu="0",mode="idle"}}: '
            f"{str(exc).rpartition(' is not a series key: ')[2]}"
        ) from None


def _text_lines(path: Path, handle: Iterable[bytes]) -> Iterator[str]:
    """The file's lines as text: UTF-8, a byte order mark (spreadsheets write one) dropped;
    a line that is not UTF-8 is an error naming it. Decoded a line at a time, so the error
    names the very line."""
    for lineno, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise HistoryError(
                f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start : exc.start + 1]!r}); "
                "save the file as UTF-8 (iconv -f cp1252 -t utf-8 turns a Windows export "
                "into it)"
            ) from None


@dataclass
class _Rows:
    """One series of a CSV source: its rows' times and values, in file order."""

    target: str
    sample: str
    labels: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
