"""The one detector interface: each cycle, one (time, value) per series in; a score per series,
the series that alert and why, out.

Every detector is a ``Detector``. It is updated once per cycle, live or in a replay, and keeps
what it learned between updates:

- ``update(cycle)``: ``cycle`` maps each series' key (any hashable: ``(target, metric, series)``
  in an observer, a name in a notebook) to its ``(time, value)`` this cycle; returns
  ``{key: score}`` for the series in the cycle. A series absent from a cycle keeps its state;
  ``forget(keys)`` drops series for good. ``resolution={key: step}`` optionally gives the
  smallest change a series can show (a counter's rate moves in steps of its increment).
  Times are Unix seconds or datetimes of any kind (``_seconds_of``); a value whose time is not
  after its series' last one is dropped (NaN, not learned), as Prometheus drops a sample out
  of order.
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
import dataclasses
import difflib
import functools
import inspect
import logging
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast, overload

from deucalion._redact import redact_text
from deucalion.errors import UnknownSeriesError, UsageError, UsageTypeError, keyword_hint

try:
    import numpy as np
except ImportError as exc:
    from deucalion._extras import missing_extra

    raise missing_extra("numpy", "deucalion.detectors") from exc

from deucalion.history.vectors import Block

__all__ = ["Detector", "Explanation", "robust_scale_floor"]

log = logging.getLogger(__name__)

#: Consistency constants: for normal data, 1.4826 x MAD and 1.2533 x mean absolute
#: deviation estimate the standard deviation.
MAD_TO_SIGMA = 1.4826


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why a series scored what it did at its last update.

    ``kind`` names the anomaly (``AnomalyDetector``: ``spike``, ``level_shift``, ``variance``,
    ``trend``, ``seasonal``, ``stuck``, ``out_of_range``, and ``not_scored_yet`` for a series
    whose last value came in its warm-up, with no band; ``RangeDetector``: ``record``,
    ``recent``; a window detector: ``score``). ``observed`` is what was judged (the value, or
    for a level shift or a seasonal break the recent level, for a change of variance the recent
    typical change) and ``expected_low`` .. ``expected_high`` the band it was expected in.
    ``series`` is the key given to ``update`` (the row number on the array path).
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


def _check_one_series(values: object) -> None:
    """Refuse what ``score_series`` would read as no series: ``None`` became one NaN point,
    scored NaN without a word, and a dict its keys, refused as "the value 'a' is not a number"
    when it was a mapping of times to values."""
    if values is None:
        raise UsageError(
            "score_series: values=None: give the series, a list, an array or a pandas Series"
        )
    if isinstance(values, Mapping):
        raise UsageError(
            "score_series: a mapping is not a series: give pandas.Series(mapping) (times as "
            "its index) or the values with times=list(mapping)"
        )


class Detector(abc.ABC):  # noqa: B024 - subclasses implement one of two methods
    """One detector of anomalies in many series, updated once per cycle (see the module doc).

    Subclasses implement either ``update_rows`` (online: per-series state updated in place) or
    ``score(block)`` (window: ``Detector`` keeps the last ``history_points`` values of each
    series and hands them over as a ``Block`` each update).

    Detectors are small objects in the style of scikit-learn: hyper-parameters are set in
    ``__init__`` and stored under their own names, learned state lives in attributes ending in
    ``_``, nothing happens at import.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if (init := cls.__dict__.get("__init__")) is not None:  # a misspelt keyword is named
            setattr(cls, "__init__", refusing_unknown_keywords()(init))  # noqa: B010
        own = cls.__dict__.get("keep")
        if own is not None:
            # A subclass's keep trims its own state, never the last times the base class
            # holds per row (``_in_order``): they are kept alongside.
            setattr(cls, "keep", _keeping_times(own))  # noqa: B010 - mypy: not a method

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

    def expected_band(
        self, block: Block, threshold: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The band each series' newest value of ``block`` had to lie in to score at most
        ``threshold`` (default: the detector's), a low and a high per row, -inf or inf for a
        side without a bound, NaN where it is not known (window detectors; an alert's
        ``expected_low`` .. ``expected_high``). By default the range of the values before the
        newest: override it with the band your ``score`` implies."""
        history = block.values[:, :-1]
        if history.shape[1] == 0:
            return np.full(len(block), math.nan), np.full(len(block), math.nan)
        return np.fmin.reduce(history, axis=1), np.fmax.reduce(history, axis=1)

    def explain_block(
        self,
        block: Block,
        rows: Sequence[int] | Any,
        scores: Sequence[float] | Any,
        threshold: float | None = None,
    ) -> list[Explanation]:
        """Why the series at ``rows`` of ``block`` scored ``scores`` (one per row of the
        block, as ``score(block)`` gave them; window detectors): kind ``score``, the newest
        value and its time, the band of ``expected_band`` at ``threshold``; ``series`` is the
        row's ``(target, series)``. ``score`` is not called again: a detector may learn in it.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if not len(rows):
            return []
        low, high = self.expected_band(block, threshold)
        scored = np.asarray(scores, dtype=np.float64).reshape(-1)
        points = block.values.shape[1]
        return [
            Explanation(
                "score",
                float(low[row]),
                float(high[row]),
                float(block.values[row, -1]) if points else math.nan,
                float(scored[row]),
                block.keys[row],
                float(block.times[row, -1]) if points else math.nan,
            )
            for row in rows.tolist()
        ]

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
        values (one per row, NaN for none this cycle; a shorter array than the rows held gives
        the rows past its end none; ``times`` one per value or one for all, default: the
        update's number) returns an array of scores (NaN for rows without a value). Times are
        Unix seconds, datetimes (NumPy's of any unit, pandas', Python's; naive ones are UTC) or
        ISO 8601 text. A value whose time is not after its series' last one (a time going
        back, a duplicate) is dropped, as Prometheus drops an out-of-order sample: it is not
        learned and scores NaN (a warning names the series, at the first such value and the
        10th, 100th, ...); so is a value without a time (NaN, None, infinite).

        A detector holds series given one way: by key or by row. Given by key, its series are
        rows too (the first key's is row 0): an array would update them as if they were its
        own, and a key would take over an array's row; either is refused, saying which to give.
        """
        who = f"{type(self).__name__}.update"
        _check_one_way(self, values, who=who)
        if isinstance(values, Mapping):
            return self._update_keyed(values, resolution)
        given = _values_of(values, who)
        m = given.shape[0]
        n = max(self.n_series_, m)
        x = np.full(n, math.nan)
        x[:m] = given
        steps = np.zeros(n)
        if resolution is not None:
            step = _values_of(resolution, f"{who}: resolution")
            steps[: _fits(step, m, n, who, "resolutions")] = np.nan_to_num(step)
        updates = getattr(self, "updates_", 0) + 1
        if times is None:
            t = np.full(n, float(updates))
        else:
            when = _seconds_of(times, who)
            t = np.full(n, math.nan)
            t[: _fits(when, m, n, who, "times")] = when
        self.n_series_ = n
        self.updates_ = updates
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
        pairs = _pairs_of(cycle, f"{type(self).__name__}.update")
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
        values, last = _in_order(self, times, values)
        scores = self.update_rows(times, values, steps)
        self.__dict__["_last_times"] = np.where(np.isnan(values), last, times)
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
            _timed(self, self.explain_row(int(row), names.get(int(row), int(row))), int(row))
            for row in np.flatnonzero(alerting)
        ]

    def explain(self, key: Hashable) -> Explanation:
        """Why series ``key`` (a mapping key, or a row number) scored what it did last."""
        row = self.row_of(key)
        return _timed(self, self.explain_row(row, key), row)

    def row_of(self, key: Hashable) -> int:
        """The row of series ``key`` (a mapping key, or a row number); KeyError if none."""
        rows = self.__dict__.get("rows_", {})
        if key in rows:
            return int(rows[key])
        if isinstance(key, int) and 0 <= key < self.n_series_:
            return key
        # Keys may quote a target's URL: its secret query parameters never reach an error.
        shown = redact_text(f"{key!r}{_held_hint(key, rows)}")
        raise UnknownSeriesError(f"{type(self).__name__} holds no series {shown}")

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
        _check_one_series(values)
        index = None
        if type(values).__module__.split(".")[0] == "pandas" and hasattr(values, "index"):
            index = values.index
            if times is None and hasattr(index, "tz_localize"):  # a DatetimeIndex
                times = index
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            v = _values_of(values, "score_series")  # raises, naming the value
        text = _text_in(values)
        if text is not None:
            # NumPy reads "1" as 1.0: text read from a file, left as text, scored as numbers
            # (and all 0 while the detector warmed up) would hide that it was never parsed.
            raise UsageError(
                f"score_series: the value {text[1]!r:.80} (at {text[0]}) is text, not a number: "
                "give numbers (float(x) of each, or pandas.to_numeric(column)), NaN or None for "
                "no value"
            )
        if v.ndim > 1 and max(v.shape) != v.size:
            raise UsageError(
                f"score_series scores one series, not a table of shape {v.shape}: score each "
                "column (frame.apply(detector.score_series)) or update() a row per cycle"
            )
        v = v.reshape(-1)
        t = np.arange(len(v), dtype=np.float64) if times is None else _seconds_of(times)
        if len(t) != len(v):
            raise UsageError(f"score_series: {len(v)} values but {len(t)} times")
        _check_increasing(t)
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
        for learned in ("rows_", "updates_", "_dropped_late"):
            fresh.__dict__.pop(learned, None)
        return fresh

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_") and k[0] != "_"
        )
        return f"{type(self).__name__}({params})"


def _check_one_way(detector: Detector, values: object, *, who: str) -> None:
    """Refuse no values, an update by key of a detector holding series updated by row (an
    array, or ``score_series`` on the detector itself), or by row of one holding series by
    key: the two would silently be the same series (the first key is row 0)."""
    if values is None:
        raise UsageError(
            f"{who}: values=None: give this cycle's values, a mapping {{key: (time, "
            "value)}, or an array of one value per series (NaN for none this cycle)"
        )
    by_key = isinstance(values, Mapping)
    rows: Mapping[Any, int] = detector.__dict__.get("rows_", {})
    if by_key:
        if rows or not detector.__dict__.get("updates_") or not detector.n_series_:
            return
        raise UsageError(
            f"{who}: this detector holds {detector.n_series_:,} series given as arrays, a row "
            "per series (update(values, times=...), or score_series on it): give this cycle's "
            "values as an array again, one per row; a key would take over row 0's series. "
            "Update series by key, {key: (time, value)}, with another detector"
        )
    if not rows:
        return
    first = redact_text(repr(next(iter(rows))))
    raise UsageError(
        f"{who}: this detector holds {len(rows):,} series given by key, such as {first}: give "
        "this cycle's values by key again, {key: (time, value)}; an array's row 0 would "
        f"update {first} as its own. Update series as arrays with another detector"
    )


def _pairs_of(cycle: Mapping[Any, tuple[Any, Any]], who: str) -> np.ndarray:
    """A keyed update's ``(time, value)`` pairs as a ``[series, 2]`` float64 array."""
    try:
        pairs: np.ndarray | None = np.array(list(cycle.values()))
    except (TypeError, ValueError):  # pairs of different lengths
        pairs = None
    if pairs is not None and pairs.dtype.kind in "fiub" and pairs.shape == (len(cycle), 2):
        return pairs.astype(np.float64, copy=False)
    # Times as a DataFrame's rows give them (pandas Timestamps), NumPy datetime64s (which
    # NumPy would read as a count of their unit), datetimes or ISO 8601, and None: converted
    # one by one, off the path of numbers.
    try:
        return np.array(
            [(_second_of(when), _value_of(value)) for when, value in cycle.values()],
            dtype=np.float64,
        ).reshape(len(cycle), 2)
    except (TypeError, ValueError):
        raise UsageError(
            f"{who}: give each series as key: (time, value), the value a number and the time "
            f"{_TIME_FORMS}, as in {{'cpu': (1700000000.0, 0.42)}}; got "
            f"{redact_text(repr(dict(cycle)))[:200]}"
        ) from None


def _in_order(
    detector: Detector, times: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``values`` without those that have no time or whose time is not after their
    series' last learned one (a time going back, a duplicate): dropped, as Prometheus
    drops an out-of-order sample, since learning one would break the series' order (a
    rate, a slope, a run) and raising would stop a running provisioner's observer. Also
    each row's last learned time, grown to the rows of this update."""
    last = detector.__dict__.get("_last_times")
    n = len(values)
    if last is None or len(last) != n:  # new rows (or a checkpoint from before it)
        grown = np.full(n, math.nan)
        if last is not None:
            grown[: min(n, len(last))] = last[:n]
        last = grown
    with np.errstate(invalid="ignore"):
        late = ~np.isnan(values) & (times <= last)
    drop = late | ~np.isfinite(times)  # an infinite time is none: it would end the series
    if not drop.any():
        return values, last
    before = detector.__dict__.get("_dropped_late", 0)
    dropped = detector.__dict__["_dropped_late"] = before + int(late.sum())
    # Said at the first late value and again at the 10th, 100th, ...: a replay out of order
    # would flood the log, and a series silenced for good (a time in milliseconds among
    # seconds) is still named, later.
    if dropped > before and (before == 0 or int(math.log10(dropped)) > int(math.log10(before))):
        names = {row: key for key, row in detector.__dict__.get("rows_", {}).items()}
        rows = np.flatnonzero(late)
        shown = ", ".join(repr(names.get(int(r), int(r))) for r in rows[:3])
        more = f" and {len(rows) - 3:,} more" if len(rows) > 3 else ""
        log.warning(
            "%s: dropped the values of %s%s, not after their series' last time (a time "
            "going back, or a duplicate; %s dropped so far): not learned, scored NaN; give "
            "each series' values in time order, in one unit",
            type(detector).__name__,
            redact_text(shown),
            more,
            f"{dropped:,}",
        )
    return np.where(drop, math.nan, values), last


def _timed(detector: Detector, why: Explanation, row: int) -> Explanation:
    """``why`` with the time of the value it judged, where its detector left it NaN (one
    that keeps no times, as ``RangeDetector``): the row's last learned time."""
    last = detector.__dict__.get("_last_times")
    if not math.isnan(why.time) or math.isnan(why.observed) or last is None:
        return why
    return dataclasses.replace(why, time=float(last[row])) if row < len(last) else why


def _keeping_times(keep: Any) -> Any:
    """``keep``, that also keeps the last time the base class holds for each row kept (once,
    where a subclass's ``keep`` calls its base class's)."""

    @functools.wraps(keep)
    def kept(self: Detector, rows: Any) -> None:
        if self.__dict__.get("_keeping"):
            keep(self, rows)
            return
        self.__dict__["_keeping"] = True
        try:
            keep(self, rows)
        finally:
            del self.__dict__["_keeping"]
        last = self.__dict__.get("_last_times")
        if last is not None:
            index = np.asarray(rows, dtype=np.int64).reshape(-1)
            taken = np.full(len(index), math.nan)
            held = index < len(last)
            taken[held] = last[index[held]]
            self.__dict__["_last_times"] = taken

    return kept


setattr(Detector, "keep", _keeping_times(Detector.keep))  # noqa: B010 - mypy: not a method

_Init = TypeVar("_Init", bound=Callable[..., None])


def refusing_unknown_keywords(
    *, also: Callable[..., object] | None = None
) -> Callable[[_Init], _Init]:
    """A constructor's decorator: a keyword it does not take (nor ``also`` does, where the
    constructor hands its other keywords on) is a ``UsageTypeError`` naming the keyword and
    the closest it takes, not Python's "unexpected keyword argument" (which names neither the
    one meant nor, for keywords handed on, the class called). Each subclass of ``Detector``
    has its own ``__init__`` checked (``Detector.__init_subclass__``)."""

    def decorate(init: _Init) -> _Init:
        taken = _keywords(init) + (_keywords(also) if also is not None else [])
        if also is None and any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(init).parameters.values()
        ):
            return init  # it takes any keyword: what it does with one is its own
        owner = init.__qualname__.split(".")[-2] if "." in init.__qualname__ else init.__name__

        @functools.wraps(init)
        def checked(self: object, *args: Any, **kwargs: Any) -> None:
            for key in kwargs:
                if key not in taken:
                    # The class called, when it is the one whose keywords these are.
                    name = type(self).__name__ if type(self).__init__ is checked else owner
                    raise UsageTypeError(
                        f"{name}() takes no keyword {key!r}{keyword_hint(key, taken)}"
                    )
            init(self, *args, **kwargs)

        return cast("_Init", checked)

    return decorate


def _keywords(function: Callable[..., object]) -> list[str]:
    """The arguments ``function`` (a class: its constructor) takes by keyword, in order."""
    return [
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and name != "self"
    ]


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


#: The forms of time deucalion reads, for the errors that refuse another.
_TIME_FORMS = (
    "in Unix seconds (1767225600.0), a datetime or pandas Timestamp (naive ones are UTC), "
    "a NumPy datetime64 or ISO 8601 text ('2026-01-01T00:00:00Z')"
)
_EPOCH = np.datetime64(0, "s")
_SECOND = np.timedelta64(1, "s")


def _seconds_of(times: Any, who: str = "score_series") -> np.ndarray:
    """Times as Unix seconds, a float64 array (one element for one time): numbers as they
    are; datetimes of any kind (NumPy's of any unit, pandas' with or without a time zone,
    Python's; naive ones as UTC) and ISO 8601 text (as a CSV holds it) converted; NaT and
    None are NaN. Anything else is a ``ValueError`` naming ``who`` and the forms read."""
    if np.ndim(times) == 0:
        return np.array([_second_of(times, who)])
    dtype = getattr(times, "dtype", None)
    if getattr(dtype, "tz", None) is not None:
        # A zoned pandas index or Series: NumPy would make Timestamp objects of it (or, asked
        # for floats, counts of its unit: microseconds in pandas 3); as UTC, datetime64s.
        times = times.dt.tz_convert(None) if hasattr(times, "dt") else times.tz_convert(None)
    raw = np.asarray(times)
    if raw.ndim > 1 and max(raw.shape) != raw.size:
        raise UsageError(f"{who}: give the times as one list or array, not a table of {raw.shape}")
    raw = raw.reshape(-1)
    if raw.dtype.kind == "M":  # any unit: a difference in seconds, never a count of the unit
        return np.asarray((raw - _EPOCH) / _SECOND, dtype=np.float64)
    if raw.dtype.kind in "fiub":
        return raw.astype(np.float64)
    return np.array([_second_of(t, who) for t in raw.tolist()], dtype=np.float64)


def _second_of(when: Any, who: str = "update") -> float:
    """One time as Unix seconds (see ``_seconds_of``)."""
    from datetime import UTC, date, datetime

    if when is None:
        return math.nan
    if isinstance(when, np.datetime64):
        return float((when - _EPOCH) / _SECOND)  # NaT: NaN
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
            raise UsageError(
                f"{who}: the time {when!r} is neither seconds nor ISO 8601 nor a datetime: "
                f"give it {_TIME_FORMS}"
            ) from None
    if isinstance(when, datetime):
        if when != when:  # pandas' NaT, a datetime that equals nothing
            return math.nan
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if isinstance(when, date):  # a day: its midnight, UTC
        return datetime(when.year, when.month, when.day, tzinfo=UTC).timestamp()
    try:
        return float(when)
    except (TypeError, ValueError):
        raise UsageError(
            f"{who}: the time {when!r:.80} is neither seconds nor ISO 8601 nor a datetime: "
            f"give it {_TIME_FORMS}"
        ) from None


def _check_increasing(times: np.ndarray) -> None:
    """Refuse times that are not increasing (NaN ones aside): a series scored out of order
    learns a shuffled series, and its rates and slopes mean nothing."""
    timed = np.flatnonzero(~np.isnan(times))
    bad = np.flatnonzero(np.diff(times[timed]) <= 0)
    if bad.size:
        i, j = timed[bad[0]], timed[bad[0] + 1]
        what = "repeats" if times[j] == times[i] else "comes before"
        raise UsageError(
            f"score_series: the times are not increasing: the one at position {j} "
            f"({times[j]:.10g}) {what} the one before it ({times[i]:.10g}); sort them first "
            "(series.sort_index(), or values[np.argsort(times)]) and drop duplicates"
        )


def _value_of(value: Any) -> float:
    """A pair's value as a float: None is no value (NaN), as NumPy reads it."""
    return math.nan if value is None else float(value)


def _text_in(values: Any) -> tuple[int, Any] | None:
    """The first value of ``values`` that is text (a ``str`` or ``bytes``), and its place;
    None when there is none (or ``values`` is no array NumPy can make)."""
    if isinstance(values, str | bytes):
        return 0, values
    try:
        x = np.asarray(values).reshape(-1)
    except (TypeError, ValueError):
        return None
    if x.dtype.kind not in "USO":
        return None
    for i, item in enumerate(x):
        if isinstance(item, str | bytes):
            return i, item.item() if isinstance(item, np.generic) else item
    return None


def _values_of(values: Any, who: str) -> np.ndarray:
    """``values`` as a one-dimensional float64 array (None: NaN); a ``ValueError`` naming
    ``who`` and the first value that is not a number, or a table's shape."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        items = list(values) if isinstance(values, Iterable) else [values]
        for i, item in enumerate(items):
            try:
                _value_of(item)
            except (TypeError, ValueError):
                raise UsageError(
                    f"{who}: the value {item!r:.80} (at {i}) is not a number: give numbers, "
                    "NaN or None for no value"
                ) from None
        raise UsageError(f"{who}: give one number per series, not {values!r:.80}") from None
    if x.ndim > 1 and max(x.shape) != x.size:
        raise UsageError(
            f"{who}: give one value per series, a one-dimensional array, not a table of shape "
            f"{x.shape} (update once per cycle, a row of the table each time)"
        )
    return x.reshape(-1)


def _fits(given: np.ndarray, m: int, n: int, who: str, what: str) -> int:
    """How many rows ``given`` (``what``: times or resolutions) fills in an update of ``m``
    values and ``n`` rows: all of them with one for all, else one per value (or per row)."""
    if len(given) == 1:
        return n
    if len(given) in (m, n):
        return len(given)
    raise UsageError(
        f"{who}: {m:,} values but {len(given):,} {what}: give one per value, in the same "
        f"order, or one for all{f' ({n:,} rows held)' if n != m else ''}"
    )


class _WindowRows:
    """The window ``update`` keeps for a window detector: the last ``history_points`` (time,
    value) pairs of each row, oldest first."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.points = int(detector.history_points)
        self.times = np.full((0, self.points), math.nan)
        self.values = np.full((0, self.points), math.nan)
        self.scores = np.zeros(0)
        self.resolution = np.zeros(0)  # the last update's, for the band of an explanation
        self.band: tuple[np.ndarray, np.ndarray] | None = None  # of the last update, once read

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
        self.resolution = resolution
        self.band = None
        with np.errstate(invalid="ignore"):
            self.detector.__dict__["alerting_"] = scores > self.detector.threshold
        return scores

    def keep(self, rows: np.ndarray) -> None:
        self.values, self.times = self.values[rows], self.times[rows]
        self.scores = self.scores[rows] if len(self.scores) else self.scores
        resolution = self.__dict__.get("resolution", np.zeros(0))  # (a checkpoint before it)
        self.resolution = resolution[rows] if len(resolution) else resolution
        self.band = None

    def explain(self, row: int, series: Hashable) -> Explanation:
        band = self.__dict__.get("band")
        if band is None or len(band[0]) != len(self.values):
            # Once per update, for every row: a band may read the other series of the block
            # (RobustZScore's floor does), and alerts() explains its rows one by one.
            resolution = self.__dict__.get("resolution", np.zeros(0))  # (an old checkpoint)
            if len(resolution) != len(self.values):
                resolution = np.zeros(len(self.values))
            block = Block(
                "series",
                [("", str(i)) for i in range(len(self.values))],
                self.times,
                self.values,
                np.where(resolution > 0, resolution, np.nan),
            )
            band = self.band = self.detector.expected_band(block)
        score = float(self.scores[row]) if row < len(self.scores) else math.nan
        return Explanation(
            "score",
            float(band[0][row]),
            float(band[1][row]),
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
