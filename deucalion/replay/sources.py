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
empty). Timestamps are Unix seconds or ISO 8601 (UTC unless they say otherwise). Rows are sorted
by time; a repeated ``(series, timestamp)`` keeps its last value and is counted and warned
about; a gap (a series without a row at some time) leaves that series out of that cycle, as a
target that stopped exposing it would.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from deucalion.errors import HistoryError
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
    """What a source skipped or repaired while reading, counted by kind (for the summary)."""

    warnings: Counter[str] = field(default_factory=Counter)

    def warn(self, kind: str, message: str, count: int = 1) -> None:
        """Count ``count`` problems of ``kind`` and log ``message`` once for them."""
        self.warnings[kind] += count
        log.warning("%s", message)


@runtime_checkable
class HistorySource(Protocol):
    """Anything that yields history as cycles, in increasing time.

    ``metrics`` are the desired metrics (names or families; ``None``: everything), which a
    source may use to read less; ``start`` and ``end`` (Unix seconds, inclusive) bound the
    range; ``step`` is the time between cycles for sources that sample (a Prometheus range),
    ignored by sources that have cycles of their own. ``stats`` counts what was skipped.
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


class CSVSource:
    """History from CSV files: one series per file, or tidy tables (see the module's docstring).

    ``paths`` are files or directories (every ``*.csv`` in one). ``metric`` names the sample of
    one-series-per-file CSVs. All rows are read at once: CSV data sets fit in memory, and
    sorting them needs it.
    """

    def __init__(self, paths: str | Path | Iterable[str | Path], *, metric: str = "value") -> None:
        if isinstance(paths, str | Path):
            paths = [paths]
        files: list[Path] = []
        for path in map(Path, paths):
            if path.is_dir():
                found = sorted(path.glob("*.csv"))
                if not found:
                    raise HistoryError(f"{path}: no *.csv file in this directory")
                files.extend(found)
            elif path.is_file():
                files.append(path)
            else:
                raise HistoryError(f"{path}: no such file or directory")
        self.files = files
        self.metric = metric
        self.stats = SourceStats()

    def _rows(self, path: Path) -> Iterator[tuple[float, str, str, str, float]]:
        """``(time, target, sample, series, value)`` of every row of ``path``."""
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [h.strip().lower() for h in next(reader, [])]
            tidy = all(column in header for column in _TIDY)
            if not tidy and header[:2] != ["timestamp", "value"]:
                raise HistoryError(
                    f"{path}: the header is {','.join(header)!r}; write either "
                    "'timestamp,value' (one series per file) or "
                    "'timestamp,target,metric,labels,value' (a tidy table)"
                )
            column = {name: header.index(name) for name in _TIDY if name in header}
            for lineno, row in enumerate(reader, start=2):
                if not row or not "".join(row).strip():
                    continue
                where = f"{path}:{lineno}: "
                try:
                    time = parse_time(row[column["timestamp"]], where)
                    text = row[column["value"]].strip()
                    value = math.nan if text == "" else float(text)
                    if tidy:
                        labels = row[column["labels"]].strip() or "{}"
                        target, sample = row[column["target"]], row[column["metric"]]
                    else:
                        labels, target, sample = "{}", path.name, self.metric
                except IndexError:
                    raise HistoryError(
                        f"{where}{len(row)} columns, fewer than the header's {len(header)}"
                    ) from None
                except ValueError:
                    raise HistoryError(
                        f"{where}value {row[column['value']]!r} is not a number"
                    ) from None
                if not (labels.startswith("{") and labels.endswith("}")):
                    raise HistoryError(
                        f"{where}labels {labels!r} are not a series key such as "
                        '{cpu="0",mode="idle"}'
                    )
                yield time, target, sample, labels, value

    def _table(self) -> dict[float, dict[str, dict[str, dict[str, float]]]]:
        table: dict[float, dict[str, dict[str, dict[str, float]]]] = {}
        for path in self.files:
            duplicates = unsorted = 0
            last = -math.inf
            for time, target, sample, series, value in self._rows(path):
                if time < last:
                    unsorted += 1
                last = max(last, time)
                per_series = (
                    table.setdefault(time, {}).setdefault(target, {}).setdefault(sample, {})
                )
                if series in per_series:
                    duplicates += 1
                per_series[series] = value
            if duplicates:
                self.stats.warn(
                    "duplicate_timestamps",
                    f"{path}: {duplicates} row(s) repeat a "
                    "series at a timestamp it already has; the last value is kept",
                    duplicates,
                )
            if unsorted:
                # Sorting is what the reader does anyway; it is said because a CSV written out of
                # order often means two files were concatenated.
                self.stats.warnings["unsorted_rows"] += unsorted
                log.info("%s: %d row(s) are out of time order; sorted", path, unsorted)
        return table

    async def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        """One cycle per distinct timestamp, with every series that has a row at it."""
        table = self._table()
        if not table:
            raise HistoryError(f"{', '.join(map(str, self.files))}: no rows")
        for time in sorted(table):
            if (start is not None and time < start) or (end is not None and time > end):
                continue
            samples = table[time]
            yield Cycle(time, dict.fromkeys(samples, time), samples)
