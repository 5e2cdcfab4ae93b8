"""The one detector interface: each cycle, one (time, value) per series in; a score per series,
the series that alert and why, out.

Every detector is a ``Detector``. It is updated once per cycle, live or in a replay, and keeps
what it learned between updates:

- ``update(cycle)``: ``cycle`` maps each series' key (any hashable: ``(target, metric, series)``
  in an observer, a name in a notebook) to its ``(time, value)`` this cycle; returns
  ``{key: score}`` for the series in the cycle. A series absent from a cycle keeps its state;
  ``forget(keys)`` drops series for good. ``resolution={key: step}`` optionally gives the
  smallest change a series can show (a counter's rate moves in steps of its increment).
- ``update(values, resolution, times=...)``: the same on arrays, one row per series in a fixed
  order the caller keeps (row ``i`` is series ``i``; a longer array adds series; ``keep(rows)``
  drops the others). This is the vectorised path observers and benchmarks use.
- ``alerts()``: the series that alert at the last update, each an ``Explanation`` (its key,
  the anomaly ``kind``, the ``observed`` value, the expected band ``expected_low`` ..
  ``expected_high`` and the ``score``); ``explain(key)`` gives the same for any series.
- ``threshold``: the score at or above which a series alerts (a detector may also keep quiet
  after an alert, as ``AnomalyDetector`` does).

Two families implement it. *Online* detectors (``AnomalyDetector``, the default, and
``RangeDetector``) implement ``update_rows`` and keep per-series state in NumPy arrays. *Window*
detectors (``RobustZScore``, ``EWMAZScore``, ``SeasonalBaseline``, ``Threshold``, the
scikit-learn and River adapters, and subclasses written before the online interface) implement
``score(block)`` on a window of each series; ``update`` keeps that window for them
(``history_points`` values per series).

Example, in a notebook or a preset::

    from deucalion.detectors import AnomalyDetector

    detector = AnomalyDetector(budget=1.0)       # about 1 false alert per series per 10,000 points
    for t, cpu, mem in rows:
        scores = detector.update({"cpu": (t, cpu), "mem": (t, mem)})
        for why in detector.alerts():
            print(why.series, why.kind, why.observed, why.expected_low, why.expected_high)

``score_series(values, times)`` scores a whole series at once and returns every point's score.
"""

from __future__ import annotations

import abc
import copy
import difflib
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

from deucalion._redact import redact_text

try:
    import numpy as np
except ImportError as exc:
    from deucalion._extras import missing_extra

    raise missing_extra("numpy", "deucalion.detectors") from exc

from deucalion.history.vectors import Block

__all__ = ["Detector", "Explanation", "robust_scale_floor"]

#: Consistency constants: for normal data, 1.4826 x MAD and 1.2533 x mean absolute
#: deviation estimate the standard deviation.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Explanation:
    """Why a series scored what it did at its last update.

    ``kind`` names the anomaly (``AnomalyDetector``: ``spike``, ``level_shift``, ``variance``,
    ``trend``, ``seasonal``, ``stuck``, ``out_of_range``; ``RangeDetector``: ``record``,
    ``recent``; a window detector: ``score``). ``observed`` is what was judged (the value, or
    for a level shift the recent level, for a change of variance the recent typical change) and
    ``expected_low`` .. ``expected_high`` the band it was expected in. ``series`` is the key
    given to ``update`` (the row number on the array path).
    """

    kind: str
    expected_low: float
    expected_high: float
    observed: float
    score: float
    series: Hashable = None
    time: float = math.nan

    @property
    def component(self) -> str:
        """The former name of ``kind`` (``RangeDetector``'s component)."""
        return self.kind


_Key = TypeVar("_Key", bound=Hashable)


class Detector(abc.ABC):  # noqa: B024 - subclasses implement one of two methods
    """One detector of anomalies in many series, updated once per cycle (see the module doc).

    Subclasses implement either ``update_rows`` (online: per-series state updated in place) or
    ``score(block)`` (window: ``Detector`` keeps the last ``history_points`` values of each
    series and hands them over as a ``Block`` each update).

    Detectors are small objects in the style of scikit-learn: hyper-parameters are set in
    ``__init__`` and stored under their own names, learned state lives in attributes ending in
    ``_``, nothing happens at import.
    """

    #: The default alerting threshold of this detector's scores.
    threshold: float = 6.0
    #: How many values per series a window detector is handed by ``update``.
    history_points: int = 120

    # -- the window family ---------------------------------------------------------------------

    def score(self, block: Block) -> np.ndarray:
        """One score per series of ``block``: its newest point against the points before it
        (window detectors). 0 or more, larger is more anomalous, NaN when it cannot tell."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither score(block) nor update_rows()"
        )

    @property
    def online(self) -> bool:
        """Whether this detector keeps its own per-series state (implements ``update_rows``)."""
        return type(self).update_rows is not Detector.update_rows

    # -- the one interface ---------------------------------------------------------------------

    @overload
    def update(
        self,
        values: Mapping[Any, tuple[float, float]],
        resolution: Mapping[Any, float] | None = None,
        *,
        times: None = None,
    ) -> dict[Any, float]: ...

    @overload
    def update(self, values: Any, resolution: Any = None, *, times: Any = None) -> np.ndarray: ...

    def update(self, values: Any, resolution: Any = None, *, times: Any = None) -> Any:
        """Score this cycle's value of each series, then learn it.

        With a mapping ``{key: (time, value)}`` returns ``{key: score}``; with an array of
        values (one per row, NaN for none this cycle; ``times`` one per row or one for all,
        default: the update's number) returns an array of scores (NaN for rows without a value).
        """
        if isinstance(values, Mapping):
            return self._update_keyed(values, resolution)
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if x.shape[0] < self.n_series_:
            x = np.concatenate([x, np.full(self.n_series_ - x.shape[0], math.nan)])
        self.n_series_ = max(self.n_series_, x.shape[0])
        n = x.shape[0]
        steps = np.zeros(n)
        if resolution is not None:
            given = np.nan_to_num(np.asarray(resolution, dtype=np.float64).reshape(-1))
            steps[: min(n, given.shape[0])] = given[:n]
        self.updates_ = getattr(self, "updates_", 0) + 1
        if times is None:
            t = np.full(n, float(self.updates_))
        else:
            t = np.broadcast_to(np.asarray(times, dtype=np.float64).reshape(-1), (n,)).copy()
        return self._rows_updated(t, x, steps)

    def update_rows(self, times: np.ndarray, values: np.ndarray, resolution: np.ndarray) -> Any:
        """The vectorised update (online detectors override it): three float64 arrays with one
        entry per row; returns the scores and sets ``alerting_`` (a boolean per row).

        The default keeps a window per row for ``score(block)``.
        """
        return _WindowRows.of(self).update(times, values, resolution)

    def keep(self, rows: Sequence[int] | Any) -> None:
        """Keep only the series at ``rows``, in that order, and forget the others.

        A window detector's windows are kept for it. An online detector keeps its own state:
        one that holds per-series arrays overrides ``keep``; the default trims only what the
        base class keeps (the last update ``explain_row`` reads, and ``alerting_``), so that a
        forgotten series never lends its value to the one that takes its row.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self.online:
            last = self.__dict__.get("_last_update")
            if last is not None:
                self.__dict__["_last_update"] = tuple(np.asarray(a)[rows] for a in last)
            alerting = self.__dict__.get("alerting_")
            if isinstance(alerting, np.ndarray) and alerting.shape == (self.n_series_,):
                self.__dict__["alerting_"] = alerting[rows]
        else:
            _WindowRows.of(self).keep(rows)
        self.n_series_ = len(rows)

    def snapshot(self, keys: Iterable[_Key]) -> dict[_Key, dict[str, np.ndarray]]:
        """What each of ``keys`` (those held) has learned so far, for ``restore``: whatever it
        learns after is then unlearned. Empty for a detector that names no per-series state
        (``_series_axes``: the default)."""
        rows = self.__dict__.get("rows_", {})
        axes = self._series_axes()
        return {
            key: {
                name: np.take(getattr(self, name), rows[key], axis=axis).copy()
                for name, axis in axes.items()
            }
            for key in keys
            if key in rows and rows[key] < self.n_series_
        }

    def restore(self, states: Mapping[Any, Mapping[str, np.ndarray]]) -> None:
        """Put back each key's state as ``snapshot`` took it (a key no longer held is skipped):
        what the series learned since is unlearned."""
        rows = self.__dict__.get("rows_", {})
        axes = self._series_axes()
        for key, state in states.items():
            row = rows.get(key)
            if row is None or row >= self.n_series_:
                continue
            for name, value in state.items():
                getattr(self, name)[(slice(None),) * axes[name] + (row,)] = value

    def _series_axes(self) -> dict[str, int]:
        """An online detector's per-series arrays and the axis their series lie on, for
        ``snapshot`` and ``restore``: none by default."""
        return {}

    def forget(self, keys: Iterable[Hashable] | Hashable) -> None:
        """Forget the series ``keys`` (given to ``update`` as a mapping's keys); a key not held
        is ignored. One key may be given alone: a string, or a key the detector holds (a
        ``(target, metric, series)`` tuple), is that series, not the keys it is made of."""
        rows = self.__dict__.get("rows_", {})
        one = isinstance(keys, str | bytes) or _holds(rows, keys)
        many = [cast(Hashable, keys)] if one else cast("Iterable[Hashable]", keys)
        drop = {key for key in many if key in rows}
        if not drop:
            return
        kept = [key for key in rows if key not in drop]
        self.keep([rows[key] for key in kept])
        self.rows_ = {key: row for row, key in enumerate(kept)}

    def _update_keyed(
        self, cycle: Mapping[Any, tuple[float, float]], resolution: Mapping[Any, float] | None
    ) -> dict[Any, float]:
        # Read before any key is taken in: a bad pair must leave the detector as it was.
        try:
            pairs = np.array(list(cycle.values()), dtype=np.float64).reshape(len(cycle), 2)
        except (TypeError, ValueError):
            # Times as a DataFrame's rows give them (pandas Timestamps), datetimes or ISO 8601,
            # as score_series takes them: converted one by one, off the path of numbers.
            try:
                pairs = np.array(
                    [(_second_of(when), _value_of(value)) for when, value in cycle.values()],
                    dtype=np.float64,
                ).reshape(len(cycle), 2)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{type(self).__name__}.update: give each series as key: (time, value), "
                    "the time in seconds, a datetime or ISO 8601, the value a number, as in "
                    f"{{'cpu': (1700000000.0, 0.42)}}; got {dict(cycle)!r:.200}"
                ) from None
        rows: dict[Any, int] = self.__dict__.setdefault("rows_", {})
        for key in cycle:
            if key not in rows:
                rows[key] = len(rows)
        n = max(len(rows), self.n_series_)
        x = np.full(n, math.nan)
        t = np.full(n, math.nan)
        steps = np.zeros(n)
        index = np.fromiter((rows[key] for key in cycle), dtype=np.int64, count=len(cycle))
        t[index], x[index] = pairs[:, 0], pairs[:, 1]
        if resolution:
            for key, step in resolution.items():
                if key in rows:
                    steps[rows[key]] = step
        self.n_series_ = n
        scores = self._rows_updated(t, x, steps)
        return dict(zip(cycle, scores[index].tolist(), strict=True))

    def _rows_updated(self, times: np.ndarray, values: np.ndarray, steps: np.ndarray) -> Any:
        """``update_rows``, its last cycle kept for ``explain_row`` of an online detector of
        one's own that does not explain itself (under a private name: the base class claims
        no name a subclass might use; and only there: the others never read it, and it would
        weigh on every checkpoint)."""
        scores = self.update_rows(times, values, steps)
        if self._explained_by_last_update:
            self.__dict__["_last_update"] = (times, values, np.asarray(scores, dtype=np.float64))
        return scores

    @property
    def _explained_by_last_update(self) -> bool:
        """Whether ``explain_row`` explains a row by its last update (an online detector that
        does not override it)."""
        return self.online and type(self).explain_row is Detector.explain_row

    @property
    def n_series_(self) -> int:
        """How many series (rows) the detector holds."""
        return int(self.__dict__.get("_n_series", 0))

    @n_series_.setter
    def n_series_(self, n: int) -> None:
        self.__dict__["_n_series"] = n

    def alerts(self) -> list[Explanation]:
        """The series that alert at the last update, explained (keys when updated by mapping,
        rows otherwise)."""
        alerting = self.__dict__.get("alerting_")
        if alerting is None:
            return []
        names: dict[int, Any] = {row: key for key, row in self.__dict__.get("rows_", {}).items()}
        return [
            self.explain_row(int(row), names.get(int(row), int(row)))
            for row in np.flatnonzero(alerting)
        ]

    def explain(self, key: Hashable) -> Explanation:
        """Why series ``key`` (a mapping key, or a row number) scored what it did last."""
        return self.explain_row(self.row_of(key), key)

    def row_of(self, key: Hashable) -> int:
        """The row of series ``key`` (a mapping key, or a row number); KeyError if none."""
        rows = self.__dict__.get("rows_", {})
        if key in rows:
            return int(rows[key])
        if isinstance(key, int) and 0 <= key < self.n_series_:
            return key
        # Keys may quote a target's URL: its secret query parameters never reach an error.
        shown = redact_text(f"{key!r}{_held_hint(key, rows)}")
        raise KeyError(f"{type(self).__name__} holds no series {shown}")

    def explain_quickly(self, key: Hashable) -> Explanation:
        """``explain``, cheap enough to call for every series at every update (what the
        presets call); a detector whose ``explain`` searches overrides it with a rougher one."""
        return self.explain(key)

    def explain_row(self, row: int, series: Hashable = None) -> Explanation:
        """The explanation of row ``row`` (online detectors override it with their band; one
        that does not is explained by its last value and score, its band unknown: NaN)."""
        if self.online:
            times, values, scores = self.__dict__.get("_last_update", ((), (), ()))
            if row < len(scores):
                return Explanation(
                    "score",
                    math.nan,
                    math.nan,
                    float(values[row]),
                    float(scores[row]),
                    series,
                    float(times[row]),
                )
            return Explanation("score", math.nan, math.nan, math.nan, math.nan, series)
        window = _WindowRows.of(self)
        return window.explain(row, series)

    def score_series(
        self,
        values: Sequence[float] | Any,
        times: Sequence[float] | Any = None,
        *,
        counter: bool = False,
    ) -> Any:
        """Score one series in a notebook.

        ``values`` is a list, a NumPy array or a pandas Series (NaN: no value at that point);
        ``times`` its times, in seconds or as datetimes, default: a pandas Series' DatetimeIndex,
        else one second apart. An online detector is fed every value and gives every point's
        score: an array, or a Series on the same index for a Series (NaN where the value was).
        A window detector gives the score of the last value against the others (a float).

        ``counter=True`` scores a counter (``..._total``) as ``DetectorObserver`` does: as its
        per-second rate between points, NaN at the first point and across a reset.

        The series is scored as a new one: a detector that already holds series (an earlier
        call's included) scores it on a fresh copy of itself, and is left as it was.
        """
        index = None
        if type(values).__module__.split(".")[0] == "pandas" and hasattr(values, "index"):
            index = values.index
            if times is None and hasattr(index, "tz_localize"):  # a DatetimeIndex
                times = index
        v = np.asarray(values, dtype=np.float64)
        if v.ndim > 1 and max(v.shape) != v.size:
            raise ValueError(
                f"score_series scores one series, not a table of shape {v.shape}: score each "
                "column (frame.apply(detector.score_series)) or update() a row per cycle"
            )
        v = v.reshape(-1)
        t = np.arange(len(v), dtype=np.float64) if times is None else _seconds_of(times)
        if len(t) != len(v):
            raise ValueError(f"score_series: {len(v)} values but {len(t)} times")
        steps = np.zeros(len(v))
        if counter:
            from deucalion.history.promql import CounterRates

            rates = CounterRates()
            pairs = [rates.update(0, float(when), float(x)) for when, x in zip(t, v, strict=True)]
            v = np.array([rate for rate, _ in pairs], dtype=np.float64).reshape(-1)
            steps = np.array([step for _, step in pairs], dtype=np.float64).reshape(-1)
        if not self.online:
            block = Block("series", [("", "{}")], t.reshape(1, -1), v.reshape(1, -1))
            return float(self.score(block)[0])
        detector = self._fresh() if self.n_series_ or self.__dict__.get("rows_") else self
        out = np.empty(len(v))
        for i in range(len(v)):
            out[i] = detector.update(v[i : i + 1], steps[i : i + 1], times=t[i : i + 1])[0]
        if index is not None:
            import pandas as pd

            return pd.Series(out, index=index, name=getattr(values, "name", None))
        return out

    def _fresh(self) -> Detector:
        """A copy of this detector, with its settings and none of its series."""
        fresh = copy.deepcopy(self)
        fresh.keep([])
        for learned in ("rows_", "updates_"):
            fresh.__dict__.pop(learned, None)
        return fresh

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_") and k[0] != "_"
        )
        return f"{type(self).__name__}({params})"


def _held_hint(key: Hashable, rows: Mapping[Any, int]) -> str:
    """What a detector holds, for a key it does not: the closest key, else a few of them."""
    if not rows:
        return " (it holds none yet: update it with that key first)"
    names = {repr(held): held for held in rows}
    close = difflib.get_close_matches(repr(key), names, n=1, cutoff=0.75)
    if close:
        return f"; did you mean {close[0]}?"
    shown = ", ".join(list(names)[:5])
    return f" (it holds {len(rows):,}: {shown}{', ...' if len(rows) > 5 else ''})"


def _holds(rows: Mapping[Any, int], key: object) -> bool:
    """Whether ``key`` is itself a key of ``rows`` (False for what cannot be one)."""
    try:
        return key in rows
    except TypeError:  # unhashable: a list of keys
        return False


def _seconds_of(times: Sequence[float] | Any) -> np.ndarray:
    """Times as Unix seconds: numbers as they are; datetimes (NumPy's, pandas', Python's;
    naive ones as UTC) and ISO 8601 strings (as a CSV holds them) converted."""
    raw = np.asarray(times)
    if raw.dtype.kind == "M":
        return raw.astype("datetime64[ns]").astype(np.int64) / 1e9
    if raw.dtype.kind in "OUS":
        return np.array([_second_of(t) for t in raw.reshape(-1).tolist()], dtype=np.float64)
    return raw.astype(np.float64).reshape(-1)


def _value_of(value: Any) -> float:
    """A pair's value as a float: None is no value (NaN), as NumPy reads it."""
    return math.nan if value is None else float(value)


def _second_of(when: Any) -> float:
    from datetime import UTC, datetime

    if isinstance(when, np.datetime64):
        return float(when.astype("datetime64[ns]").astype(np.int64)) / 1e9

    if isinstance(when, bytes):
        when = when.decode("utf-8", "replace")
    if isinstance(when, str):
        try:
            return float(when)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(when.strip())
        except ValueError:
            raise ValueError(
                f"score_series: the time {when!r} is neither seconds nor ISO 8601 "
                "(2026-01-01T00:00:00Z)"
            ) from None
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return float(when)


class _WindowRows:
    """The window ``update`` keeps for a window detector: the last ``history_points`` (time,
    value) pairs of each row, oldest first."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.points = int(detector.history_points)
        self.times = np.full((0, self.points), math.nan)
        self.values = np.full((0, self.points), math.nan)
        self.scores = np.zeros(0)

    @classmethod
    def of(cls, detector: Detector) -> _WindowRows:
        window = detector.__dict__.get("_window_rows")
        if window is None:
            window = detector.__dict__["_window_rows"] = cls(detector)
        return window

    def update(self, times: np.ndarray, values: np.ndarray, resolution: np.ndarray) -> np.ndarray:
        n = len(values)
        if n > len(self.values):
            extra = np.full((n - len(self.values), self.points), math.nan)
            self.values = np.concatenate([self.values, extra])
            self.times = np.concatenate([self.times, extra.copy()])
        seen = ~np.isnan(values)
        for array, new in ((self.values, values), (self.times, times)):
            array[seen, :-1] = array[seen, 1:]
            array[seen, -1] = new[seen]
        block = Block(
            "series",
            [("", str(row)) for row in range(n)],
            self.times,
            self.values,
            np.where(resolution > 0, resolution, np.nan),
        )
        scores = np.asarray(self.detector.score(block), dtype=np.float64)
        scores = np.where(seen, scores, np.nan)
        self.scores = scores
        with np.errstate(invalid="ignore"):
            self.detector.__dict__["alerting_"] = scores > self.detector.threshold
        return scores

    def keep(self, rows: np.ndarray) -> None:
        self.values, self.times = self.values[rows], self.times[rows]
        self.scores = self.scores[rows] if len(self.scores) else self.scores

    def explain(self, row: int, series: Hashable) -> Explanation:
        history = self.values[row, :-1]
        history = history[~np.isnan(history)]
        low, high = (
            (float(history.min()), float(history.max()))
            if history.size
            else (
                math.nan,
                math.nan,
            )
        )
        score = float(self.scores[row]) if row < len(self.scores) else math.nan
        return Explanation(
            "score",
            low,
            high,
            float(self.values[row, -1]),
            score,
            series,
            float(self.times[row, -1]),
        )


def typical_step(
    history: np.ndarray, level: np.ndarray | None = None, *, last: int = 40, jitter: float = 0.05
) -> np.ndarray:
    """Median size of the steps between consecutive points of each row, over the last
    ``last`` points: the resolution a series moves by (0 when it never moved).

    Steps of at most ``jitter`` times the series' ``level`` are not steps: a counter that
    grows by the same amount every scrape has rates that wobble with the scrape times only,
    and those wobbles would pass for its resolution. A median, so that the jump of an anomaly
    already in the history does not raise it.
    """
    recent = history[:, -last:]
    if recent.shape[1] < 2:
        return np.zeros(len(history))
    with np.errstate(all="ignore"):
        steps = np.abs(np.diff(recent, axis=1)).astype(np.float32)
        least = 0.0 if level is None else (jitter * np.abs(level)).astype(np.float32)[:, None]
        steps[~(steps > least)] = np.inf  # no step, a wobble or a gap: sorted last
        steps.sort(axis=1)
        count = np.isfinite(steps).sum(axis=1)
        low = np.maximum((count - 1) // 2, 0)[:, None]
        high = np.maximum(count // 2, 0)[:, None]
        middle = (np.take_along_axis(steps, low, 1) + np.take_along_axis(steps, high, 1)) / 2
        return np.where(count > 0, middle[:, 0].astype(np.float64), 0.0)


def robust_scale_floor(
    history: np.ndarray,
    level: np.ndarray,
    *,
    relative: float,
    absolute: float,
    step_floor: bool,
    resolution: np.ndarray | None = None,
) -> np.ndarray:
    """The smallest scale a z-score may divide by, per row.

    A series that sits still most of the time (a counter that moves in 0.01 s steps, a gauge
    that is 8 nearly always) has a MAD of 0 or near it, and dividing by it turns one ordinary
    step into a z-score of hundreds. The floor is the largest of: the series' typical step
    (``step_floor``, see ``typical_step``; for a series that did not move in the window, the
    typical step of the other series of its metric, which share its units), the block's
    ``resolution`` when known, ``relative`` times its level, and ``absolute``.
    """
    with np.errstate(all="ignore"):
        floor = np.maximum(relative * np.abs(level), absolute)
        if resolution is not None:
            floor = np.maximum(floor, np.where(np.isfinite(resolution), resolution, 0.0))
        if step_floor:
            steps = typical_step(history, np.where(np.isfinite(level), level, 0.0))
            moved = steps[steps > 0]
            if moved.size:
                steps = np.where(steps > 0, steps, np.median(moved))
            floor = np.maximum(floor, steps)
    return np.where(np.isnan(floor), absolute, floor)


def row_medians(
    values: np.ndarray, gaps: np.ndarray | None = None, *, overwrite: bool = False
) -> np.ndarray:
    """The median of each row, NaN ignored (NaN for a row without values).

    Rows without NaN (the usual case) go through one ``np.partition`` (in place with
    ``overwrite``); rows with gaps are sorted (NaN sorts last) and read at their own middle.
    ``gaps``, when known, says which rows hold a NaN.
    """
    n, points = values.shape
    out = np.full(n, np.nan)
    if points == 0 or n == 0:
        return out
    if gaps is None:
        gaps = np.isnan(values).any(axis=1)
    any_gaps = bool(gaps.any())
    lo, hi = (points - 1) // 2, points // 2
    kth = (lo, hi) if lo != hi else lo
    # Every row is partitioned (NaN goes last, no error) and the rows with gaps are then done
    # again: selecting the full rows first would copy them all.
    if overwrite:
        rows = values
        rows.partition(kth, axis=1)
    else:
        rows = np.partition(values, kth, axis=1)
    out[:] = (rows[:, lo] + rows[:, hi]) / 2
    if any_gaps:
        rows = np.sort(values[gaps], axis=1)
        count = (~np.isnan(rows)).sum(axis=1)
        low = np.maximum((count - 1) // 2, 0)[:, None]
        high = np.maximum(count // 2, 0)[:, None]
        with np.errstate(invalid="ignore"):
            middle = (np.take_along_axis(rows, low, 1) + np.take_along_axis(rows, high, 1)) / 2
        out[gaps] = np.where(count > 0, middle[:, 0], np.nan)
    return out
