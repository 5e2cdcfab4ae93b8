"""``Window``: the recent past of every series an observer sees, in NumPy arrays.

Layout. Values sit in one float64 matrix, a row per series and a column per cycle; scrape
times in a second, small matrix, a row per *target* (all series of a target share the time of
its scrape). Columns are written left to right; when the matrix is full, the newest
``points - 1`` columns are moved to the front (every ``slack`` cycles), so the window is always
one contiguous run of columns and reading it is one copy, never a per-series loop. Memory:
8 bytes per point and series, times per target, ``slack`` columns of headroom (an eighth), rows
grown by a quarter at a time, and a fixed cost per series for its key and index entries
(measured in ``benchmarks/bench_history.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

try:
    import numpy as np
except ImportError as exc:
    from deucalion._extras import missing_extra

    raise missing_extra("numpy", "deucalion.history.Window") from exc

from deucalion.errors import OutsideNewDataError, UsageError
from deucalion.history.functions import PromQLFunctions
from deucalion.history.vectors import Block, InstantVector, SeriesRef

if TYPE_CHECKING:
    import pandas

__all__ = ["Window"]

#: ``(target URL, sample name, series key)``: one series in a window.
SeriesId = tuple[str, str, str]

_INITIAL_POINTS = 64  # capacity of a window bounded by time only, before it grows
_INITIAL_ROWS = 64


class _MetricRows:
    """The rows of one metric of one target, and the last cycle's key order (a fast path:
    a target usually lists the same series in the same order every cycle)."""

    __slots__ = ("by_key", "last_keys", "last_rows")

    def __init__(self) -> None:
        self.by_key: dict[str, int] = {}
        self.last_keys: tuple[str, ...] | None = None
        self.last_rows: np.ndarray | None = None


class Window(PromQLFunctions):
    """The last ``points`` cycles (or the last ``seconds``) of every series added to it.

    Keep one as an observer's attribute and call ``add(targets_data_dict)`` once per cycle in
    ``new_data``; points are stamped with each target's scrape time (``dc.data_time(target)``),
    so a window filled live and one filled in a replay are the same. A series absent from a
    cycle has a gap there (NaN), never a zero; a series absent for ``forget_after`` seconds (by
    default: once it has no point left in the window) is forgotten, so label churn cannot make
    a window grow without bound.

    Read it back as arrays (``block``, ``series``, ``latest``), as a pandas DataFrame
    (``frame``), or through PromQL's functions (``rate``, ``increase``,
    ``histogram_quantile``, evaluated as Prometheus evaluates them; see
    ``deucalion.history.functions``).
    """

    def __init__(
        self,
        points: int | None = None,
        *,
        seconds: float | None = None,
        forget_after: float | None = None,
        slack: int | None = None,
    ) -> None:
        if points is None and seconds is None:
            raise UsageError(
                "Window needs points=N (the last N cycles), seconds=T (the last T seconds), or both"
            )
        if points is not None and (not isinstance(points, int) or points < 2):
            raise UsageError(f"Window points must be an integer of 2 or more, not {points!r}")
        if seconds is not None and not (isinstance(seconds, int | float) and seconds > 0):
            raise UsageError(f"Window seconds must be a positive number, not {seconds!r}")
        if forget_after is not None and not (
            isinstance(forget_after, int | float) and forget_after > 0
        ):
            raise UsageError(
                f"Window forget_after must be a positive number of seconds, not {forget_after!r}"
            )
        self.points = points
        self.seconds = None if seconds is None else float(seconds)
        self.forget_after = None if forget_after is None else float(forget_after)
        self._capacity = points if points is not None else _INITIAL_POINTS
        self._slack = slack if slack is not None else max(8, self._capacity // 8)
        width = self._capacity + self._slack
        self._values = np.full((_INITIAL_ROWS, width), np.nan)
        self._times = np.full((4, width), np.nan)
        self._pos = 0  # next column to write
        self._adds = 0
        self._newest = -math.inf
        # Series rows.
        self._rows: dict[str, dict[str, _MetricRows]] = {}  # metric -> target -> rows
        self._row_ids: list[SeriesId | None] = [None] * _INITIAL_ROWS
        self._row_target = np.zeros(_INITIAL_ROWS, dtype=np.int64)
        self._seen_add = np.zeros(_INITIAL_ROWS, dtype=np.int64)
        self._seen_time = np.full(_INITIAL_ROWS, np.nan)
        self._alive = np.zeros(_INITIAL_ROWS, dtype=bool)
        self._free_rows: list[int] = list(range(_INITIAL_ROWS - 1, -1, -1))
        self._used = 0
        # Targets.
        self._targets: dict[str, int] = {}
        self._target_names: list[str | None] = [None] * 4
        self._target_seen_add = np.zeros(4, dtype=np.int64)
        self._target_time = np.full(4, np.nan)
        self._free_targets: list[int] = [3, 2, 1, 0]

    # -- adding -----------------------------------------------------------------------------

    def add(
        self,
        targets_data: Mapping[str, Mapping[str, Mapping[str, float]]],
        time: float | Mapping[str, float] | None = None,
    ) -> None:
        """Add one cycle: ``targets_data`` is what ``new_data`` receives.

        Each target's points are stamped with ``time`` (a number, or one per target URL), by
        default with its scrape time, ``dc.data_time(target)``, which is known inside
        ``new_data``. Values that are not numbers are kept as NaN (no sample).
        """
        stamps = _stamps(targets_data, time)
        if self._pos == self._values.shape[1]:
            self._compact()
        column = self._pos
        for target, samples in targets_data.items():
            stamp = stamps[target]
            t = self._target_row(target)
            self._times[t, column] = stamp
            self._target_seen_add[t] = self._adds
            self._target_time[t] = stamp
            if stamp > self._newest:
                self._newest = stamp
            for metric, series in samples.items():
                if not series:
                    continue
                rows = self._series_rows(target, t, metric, series)
                self._values[rows, column] = _floats(series)
                self._seen_add[rows] = self._adds
                self._seen_time[rows] = stamp
        self._pos += 1
        self._adds += 1
        self._forget()

    def _target_row(self, target: str) -> int:
        t = self._targets.get(target)
        if t is None:
            if not self._free_targets:
                self._grow_targets()
            t = self._free_targets.pop()
            self._targets[target] = t
            self._target_names[t] = target
        return t

    def _series_rows(
        self, target: str, t: int, metric: str, series: Mapping[str, float]
    ) -> np.ndarray:
        by_target = self._rows.get(metric)
        if by_target is None:
            by_target = self._rows[metric] = {}
        entry = by_target.get(target)
        if entry is None:
            entry = by_target[target] = _MetricRows()
        keys = tuple(series)
        if keys == entry.last_keys and entry.last_rows is not None:
            return entry.last_rows
        by_key = entry.by_key
        rows = []
        for key in keys:
            row = by_key.get(key)
            if row is None:
                row = by_key[key] = self._new_row((target, metric, key), t)
            rows.append(row)
        entry.last_keys = keys
        entry.last_rows = np.array(rows, dtype=np.int64)
        return entry.last_rows

    def _new_row(self, ident: SeriesId, t: int) -> int:
        if not self._free_rows:
            self._grow_rows()
        row = self._free_rows.pop()
        self._row_ids[row] = ident
        self._row_target[row] = t
        self._alive[row] = True
        self._used += 1
        return row

    def _grow_rows(self) -> None:
        old = self._values.shape[0]
        # By a quarter, not double: the matrix is most of a window's memory.
        new = old + max(_INITIAL_ROWS, old // 4)
        self._values = np.vstack(
            [self._values, np.full((new - old, self._values.shape[1]), np.nan)]
        )
        self._row_ids.extend([None] * (new - old))
        self._row_target = np.concatenate([self._row_target, np.zeros(new - old, np.int64)])
        self._seen_add = np.concatenate([self._seen_add, np.zeros(new - old, np.int64)])
        self._seen_time = np.concatenate([self._seen_time, np.full(new - old, np.nan)])
        self._alive = np.concatenate([self._alive, np.zeros(new - old, bool)])
        self._free_rows.extend(range(new - 1, old - 1, -1))

    def _grow_targets(self) -> None:
        old = self._times.shape[0]
        new = old * 2
        self._times = np.vstack([self._times, np.full((new - old, self._times.shape[1]), np.nan)])
        self._target_names.extend([None] * (new - old))
        self._target_seen_add = np.concatenate(
            [self._target_seen_add, np.zeros(new - old, np.int64)]
        )
        self._target_time = np.concatenate([self._target_time, np.full(new - old, np.nan)])
        self._free_targets.extend(range(new - 1, old - 1, -1))

    def _compact(self) -> None:
        """Move the newest columns to the front (the matrix is full)."""
        keep = self._capacity - 1
        if self.points is None and self.seconds is not None:
            # Bounded by time only: keep every column still inside the window, growing when
            # the cycles come faster than the capacity foresaw.
            column_time = np.nanmax(np.where(np.isnan(self._times), -np.inf, self._times), axis=0)
            inside = int((column_time > self._newest - self.seconds).sum())
            if inside > keep:
                self._capacity = max(2 * self._capacity, inside + 1)
                self._slack = max(8, self._capacity // 8)
                keep = inside
        width = self._capacity + self._slack
        start = self._pos - keep
        values = np.full((self._values.shape[0], width), np.nan)
        values[:, :keep] = self._values[:, start : self._pos]
        times = np.full((self._times.shape[0], width), np.nan)
        times[:, :keep] = self._times[:, start : self._pos]
        self._values, self._times = values, times
        self._pos = keep

    def _forget(self) -> None:
        """Drop series (and targets) that left the window or were absent too long."""
        stale = self._stale(self._seen_add, self._seen_time) & self._alive
        for row in np.flatnonzero(stale).tolist():
            ident = self._row_ids[row]
            assert ident is not None
            target, metric, key = ident
            by_target = self._rows[metric]
            entry = by_target[target]
            del entry.by_key[key]
            entry.last_keys = entry.last_rows = None
            if not entry.by_key:
                del by_target[target]
                if not by_target:
                    del self._rows[metric]
            self._values[row] = np.nan
            self._row_ids[row] = None
            self._alive[row] = False
            self._free_rows.append(row)
            self._used -= 1
        stale_targets = self._stale(self._target_seen_add, self._target_time)
        for t in np.flatnonzero(stale_targets).tolist():
            name = self._target_names[t]
            if name is None:
                continue
            if any(name in by_target for by_target in self._rows.values()):
                continue  # a series of it is still kept (forget_after longer than the window)
            del self._targets[name]
            self._target_names[t] = None
            self._times[t] = np.nan
            self._target_time[t] = np.nan
            self._free_targets.append(t)

    def _stale(self, seen_add: np.ndarray, seen_time: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            if self.points is not None:
                # Seen in add number A, a series' last point leaves the window after add
                # A + points.
                stale = self._adds - seen_add > self.points
            else:
                stale = seen_time <= self._newest - (self.seconds or math.inf)
            if self.forget_after is not None:
                stale |= seen_time < self._newest - self.forget_after
        return np.asarray(stale)

    # -- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of series kept."""
        return self._used

    def __contains__(self, ident: object) -> bool:
        if not (isinstance(ident, tuple) and len(ident) == 3):
            return False
        target, metric, key = ident
        entry = self._rows.get(metric, {}).get(target)
        return entry is not None and key in entry.by_key

    def __iter__(self) -> Iterator[SeriesId]:
        """Every series kept, as ``(target, metric, series key)``."""
        for metric, by_target in self._rows.items():
            for target, entry in by_target.items():
                for key in entry.by_key:
                    yield target, metric, key

    def metrics(self) -> list[str]:
        """The sample names with at least one series kept."""
        return list(self._rows)

    def targets(self) -> list[str]:
        """The targets kept."""
        return list(self._targets)

    @property
    def newest_time(self) -> float:
        """The newest scrape time added (NaN before the first ``add``)."""
        return self._newest if self._adds else math.nan

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (values, times and per-series bookkeeping)."""
        return int(
            self._values.nbytes
            + self._times.nbytes
            + self._row_target.nbytes
            + self._seen_add.nbytes
            + self._seen_time.nbytes
        )

    def _columns(self) -> slice:
        span = self._capacity if self.points is not None else self._pos
        return slice(max(0, self._pos - span), self._pos)

    def _select(self, metric: str, target: str | None) -> tuple[list[SeriesRef], np.ndarray]:
        by_target = self._rows.get(metric, {})
        if target is not None:
            by_target = {target: by_target[target]} if target in by_target else {}
        keys: list[SeriesRef] = []
        rows: list[int] = []
        for url, entry in by_target.items():
            keys.extend((url, key) for key in entry.by_key)
            rows.extend(entry.by_key.values())
        return keys, np.array(rows, dtype=np.int64)

    def block(self, metric: str, target: str | None = None) -> Block:
        """Every series of sample ``metric`` (of one target, or all) over the window."""
        keys, rows = self._select(metric, target)
        columns = self._columns()
        values = self._values[rows, columns]
        times = self._times[self._row_target[rows], columns]
        if self.seconds is not None and len(keys):
            newest = self._target_time[self._row_target[rows]]
            with np.errstate(invalid="ignore"):
                old = times <= (newest - self.seconds)[:, None]
            values[old] = np.nan
        times[np.isnan(values)] = np.nan
        return Block(metric, keys, times, values)

    def series(self, target: str, metric: str, series: str = "{}") -> tuple[np.ndarray, np.ndarray]:
        """``(times, values)`` of one series, oldest first, only the points it has (a gap
        is a jump in ``times``). Empty arrays for a series the window does not hold."""
        entry = self._rows.get(metric, {}).get(target)
        row = entry.by_key.get(series) if entry is not None else None
        if row is None:
            return np.empty(0), np.empty(0)
        block = Block(
            metric,
            [(target, series)],
            self._times[[self._row_target[row]], self._columns()],
            self._values[[row], self._columns()],
        )
        if self.seconds is not None:
            old = block.times[0] <= self._target_time[self._row_target[row]] - self.seconds
            block.values[0, old] = np.nan
        keep = ~np.isnan(block.values[0])
        return block.times[0][keep], block.values[0][keep]

    def latest(self, metric: str, target: str | None = None) -> InstantVector:
        """The newest cycle's value of each series of ``metric`` (NaN where it had none)."""
        keys, rows = self._select(metric, target)
        if self._pos == 0:
            return InstantVector(metric, keys, np.full(len(keys), np.nan))
        return InstantVector(metric, keys, self._values[rows, self._pos - 1].copy())

    def frame(self, metric: str, target: str | None = None) -> pandas.DataFrame:
        """``metric`` as a pandas DataFrame: a row per scrape (a UTC ``DatetimeIndex``), a
        column per series, NaN in gaps. Columns are series keys for one target, else
        ``(target, series key)`` pairs. Needs pandas (``pip install 'deucalion[ml]'``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            from deucalion._extras import missing_extra

            raise missing_extra("pandas", "Window.frame()") from exc
        block = self.block(metric, target)
        frames = []
        targets = [target] if target is not None else list(dict.fromkeys(t for t, _ in block.keys))
        for url in targets:
            index = [i for i, (t, _) in enumerate(block.keys) if t == url]
            if not index:
                continue
            with np.errstate(all="ignore"):
                when = np.nanmax(
                    np.where(np.isnan(block.times[index]), -np.inf, block.times[index]), axis=0
                )
            keep = np.isfinite(when)
            columns: Any = [block.keys[i][1] for i in index]
            if target is None:
                columns = pd.MultiIndex.from_tuples(
                    [block.keys[i] for i in index], names=["target", "series"]
                )
            frames.append(
                pd.DataFrame(
                    block.values[index][:, keep].T,
                    index=pd.to_datetime(when[keep], unit="s", utc=True).rename("time"),
                    columns=columns,
                )
            )
        if not frames:
            return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="time"))
        return frames[0] if len(frames) == 1 else pd.concat(frames, axis=1).sort_index()

    def _scrape_times(self, metric: str, target: str | None) -> np.ndarray:
        """Each series' target's newest scrape time, in the order ``block`` gives them."""
        return np.asarray(self._target_time[self._row_target[self._select(metric, target)[1]]])

    def __repr__(self) -> str:
        bound = ", ".join(
            f"{k}={v!r}"
            for k, v in (("points", self.points), ("seconds", self.seconds))
            if v is not None
        )
        return f"<Window {bound}: {len(self)} series, {len(self._targets)} target(s)>"


def _stamps(
    targets_data: Mapping[str, Any], time: float | Mapping[str, float] | None
) -> dict[str, float]:
    """Each target's time stamp for ``Window.add``."""
    if time is None:
        from deucalion.observer import data_time

        try:
            return {target: float(data_time(target)) for target in targets_data}
        except RuntimeError:
            raise OutsideNewDataError(
                "Window.add() without time= must be called inside new_data, where the "
                "data's scrape time (dc.data_time()) is known; elsewhere pass "
                "time=<Unix seconds>"
            ) from None
    if isinstance(time, Mapping):
        missing = [t for t in targets_data if t not in time]
        if missing:
            raise UsageError(f"Window.add(): no time given for target(s) {missing}")
        return {target: float(time[target]) for target in targets_data}
    return {target: float(time) for target in targets_data}


def _floats(series: Mapping[str, float]) -> np.ndarray:
    """The values of ``series`` as float64; anything that is not a number becomes NaN."""
    try:
        return np.fromiter(series.values(), dtype=np.float64, count=len(series))
    except (TypeError, ValueError):
        return np.array([_float(v) for v in series.values()], dtype=np.float64)


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
