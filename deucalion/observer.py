"""The user's side of deucalion: ``MetricsObserver``, and the selection of its data.

``Selection`` (or ``select_data``) is the pure function that chooses each observer's samples
from a cycle's scrape results: the provisioner, ``deucalion scrape`` and a replay all use it.

This module is imported in every worker process, so it imports the standard library only.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from deucalion._redact import redact_url
from deucalion.errors import ConfigError, OutsideNewDataError, UsageError
from deucalion.exposition.naming import Selector

__all__ = [
    "SYNTHETIC_METRICS",
    "HandOff",
    "MetricsObserver",
    "ScrapedTarget",
    "Selection",
    "TargetsData",
    "data_at",
    "data_time",
    "data_times",
    "name_of",
    "select_data",
]

#: ``{target_url: {sample_name: {series: value}}}``, what ``new_data`` receives.
TargetsData = dict[str, dict[str, dict[str, float]]]

#: Per-target samples deucalion adds itself, as Prometheus does, when an observer desires them.
SYNTHETIC_METRICS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# The scrape times of the data being handed to ``new_data``: (the cycle's, {target: its own}).
# Set by whoever calls ``new_data`` (the worker, a backtest) around each call, so an observer
# reads the data's time, live or replayed, and never the wall clock.
_DATA_TIMES: ContextVar[tuple[float, Mapping[str, float]] | None] = ContextVar(
    "deucalion_data_times", default=None
)


@contextlib.contextmanager
def handing_data(cycle_time: float, target_times: Mapping[str, float]) -> Iterator[None]:
    """Make ``data_time()`` answer ``cycle_time`` (and per target ``target_times``) inside."""
    token = _DATA_TIMES.set((cycle_time, target_times))
    try:
        yield
    finally:
        _DATA_TIMES.reset(token)


@contextlib.contextmanager
def data_at(
    time: float | Any, target_times: Mapping[str, float | Any] | None = None
) -> Iterator[None]:
    """Hand data to ``new_data`` by hand as of ``time``, as deucalion hands a scrape's:
    ``with deucalion.data_at(t): observer.new_data(data)``. Inside, ``data_time()`` answers
    ``time`` (and, per target URL, ``target_times``, default: ``time``). Times are Unix
    seconds or datetimes (naive ones are UTC; a pandas Timestamp is one) or ISO 8601 text.
    """
    cycle_time = _seconds(time, "time")
    targets = {
        url: _seconds(when, f"target_times[{redact_url(url)!r}]")
        for url, when in (target_times or {}).items()
    }
    with handing_data(cycle_time, targets):
        yield


def _seconds(when: Any, what: str) -> float:
    """``when`` as Unix seconds (see ``data_at``); a ``ValueError`` naming ``what`` if it is
    not a time."""
    import numbers
    from datetime import UTC, date, datetime

    seconds, given = math.nan, when
    if isinstance(when, str):
        try:
            when = float(when)  # numeric text, as a CSV's column gives it
        except ValueError:
            try:
                when = datetime.fromisoformat(when.strip())
            except ValueError:
                pass
    if type(when).__name__ == "datetime64":  # NumPy's, of any unit (NaT: no time)
        when = math.nan if when != when else float(when.astype("datetime64[ms]").astype(int)) / 1e3
    if isinstance(when, date) and not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day, tzinfo=UTC)
    if isinstance(when, datetime):
        try:  # (pandas' NaT is a datetime without a timestamp)
            seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        except ValueError:
            seconds = math.nan
    elif isinstance(when, numbers.Real) and not isinstance(when, bool):
        seconds = float(when)  # NumPy's and pandas' integers and floats too
    if not math.isfinite(seconds):
        raise UsageError(
            f"data_at: {what}={given!r:.80} is not a time: give Unix seconds (1767225600.0), a "
            "datetime or pandas Timestamp (naive ones are UTC) or ISO 8601 text "
            "('2026-01-01T00:00:00Z')"
        )
    return seconds


def data_time(target: str | None = None) -> float:
    """The scrape time (Unix seconds) of the data ``new_data`` is being handed.

    Without an argument, the cycle's time: when the cycle's scrapes started. With a target's
    URL, when that target's scrape started. In a replay it is the recorded time. Call it from
    ``new_data``; outside a call it raises ``RuntimeError``.
    """
    times = _DATA_TIMES.get()
    if times is None:
        raise OutsideNewDataError("data_time() is only known inside new_data, while data is handed")
    cycle_time, target_times = times
    if target is None:
        return cycle_time
    return target_times.get(target, cycle_time)


def data_times() -> Mapping[str, float]:
    """Every target's scrape time for the data being handed (see ``data_time``)."""
    times = _DATA_TIMES.get()
    if times is None:
        raise OutsideNewDataError(
            "data_times() is only known inside new_data, while data is handed"
        )
    return times[1]


def check_desired_metrics(desired_metrics: Iterable[str], owner: str) -> frozenset[str]:
    """``desired_metrics`` as a set of metric names and patterns; a ``ConfigError`` naming
    ``owner`` (an observer, a command) when one is neither or there are none."""
    if isinstance(desired_metrics, str):
        # A lone string would otherwise be read as a set of one-letter names.
        desired_metrics = [desired_metrics]
    names = frozenset(desired_metrics)
    try:
        Selector.from_desired(names)
    except ValueError as exc:
        raise ConfigError(
            f"{owner}: {exc}; desired_metrics must hold metric names such as "
            "'node_cpu_seconds_total' or regular expressions such as 'node_.*'"
        ) from None
    if not names:
        raise ConfigError(
            f"{owner} desires no metrics: pass the metric names its model "
            "needs to super().__init__(desired_metrics)"
        )
    return names


class _HasURL(Protocol):
    @property
    def url(self) -> str: ...


TargetT = TypeVar("TargetT", bound=_HasURL)
TargetT_co = TypeVar("TargetT_co", bound=_HasURL, covariant=True)


class ScrapedTarget(Protocol[TargetT_co]):
    """What selection reads of one target's scrape (``collection.ScrapeResult`` is one)."""

    @property
    def target(self) -> TargetT_co:
        """The target (its ``url`` keys the data)."""
        ...

    @property
    def samples(self) -> dict[str, dict[str, float]]:
        """``{sample_name: {series: value}}`` of the scrape."""
        ...

    def with_synthetic(self) -> dict[str, dict[str, float]]:
        """The samples plus ``up``, ``scrape_duration_seconds`` (``scrape_samples_scraped``
        when counted)."""
        ...


class HandOff(NamedTuple, Generic[TargetT]):
    """One observer's data for one cycle, and the targets it came from."""

    data: TargetsData
    """What ``new_data`` receives: ``{target_url: {sample_name: {series: value}}}``."""
    targets: dict[str, TargetT]
    """The targets of ``data`` by URL, as they were: their labels label the alerts about them,
    even when one is gone by the time ``new_data`` returns."""


class Selection:
    """Chooses an observer's samples from a cycle's scrape results.

    ``Selection(desired)(results)`` is a pure function of the desired metrics and the results:
    a sample is kept when the desired metrics select it (``Selector``: its name or its
    family's is desired, or a desired regular expression matches it), and the
    synthetic ``up``, ``scrape_duration_seconds`` and ``scrape_samples_scraped`` are added when
    desired. It remembers, per sample name, whether it is desired: the answer never changes,
    and a cycle asks it for every sample name of every target.
    """

    def __init__(self, desired_metrics: Iterable[str]) -> None:
        self.desired_metrics = frozenset(desired_metrics)
        self._selector = Selector.from_desired(self.desired_metrics)
        self._synthetic = SYNTHETIC_METRICS & self.desired_metrics
        # Bounded by the sample names the scraper keeps for this provisioner's observers.
        self._wanted: dict[str, bool] = {}

    def __call__(self, results: Iterable[ScrapedTarget[TargetT]]) -> HandOff[TargetT]:
        """The desired samples of every target, and the targets by URL."""
        wanted = self._wanted
        selects = self._selector.selects
        synthetic = self._synthetic
        data: TargetsData = {}
        targets: dict[str, TargetT] = {}
        for result in results:
            samples: dict[str, dict[str, float]] = {}
            for name, series in result.samples.items():
                keep = wanted.get(name)
                if keep is None:
                    keep = wanted[name] = selects(name)
                if keep:
                    samples[name] = series
            if synthetic:
                extra = result.with_synthetic()
                for name in synthetic:
                    if name in extra:  # scrape_samples_scraped is absent when not counted
                        samples[name] = extra[name]
            target = result.target
            url = target.url
            data[url] = samples
            targets[url] = target
        return HandOff(data, targets)


def select_data(
    desired_metrics: Iterable[str], results: Iterable[ScrapedTarget[TargetT]]
) -> HandOff[TargetT]:
    """The data an observer desiring ``desired_metrics`` receives from ``results``, and their
    targets (see ``Selection``, which keeps what it learns between cycles)."""
    return Selection(desired_metrics)(results)


def name_of(observer: MetricsObserver) -> str:
    """The observer's name in logs, metrics and alerts (the ``observer`` label): its
    ``observer_name`` when set, else its class name."""
    name = getattr(observer, "observer_name", None)
    return name if isinstance(name, str) and name else type(observer).__name__


class MetricsObserver(abc.ABC):
    """An anomaly detector that deucalion feeds with the metrics it desires.

    Subclass it, call ``super().__init__(desired_metrics)`` and implement ``new_data``. The
    observer is copied once into its own worker process; its attributes (a model, a window of
    past values) live on there between calls. Changes made in ``new_data`` stay in the worker:
    the instance in the application is not updated.
    """

    def __init__(self, desired_metrics: Iterable[str]) -> None:
        names = check_desired_metrics(desired_metrics, type(self).__name__)
        self.desired_metrics: frozenset[str] = names

    #: Set it (on the class or the instance) to tell apart two observers of one class.
    observer_name: str | None = None

    # Nothing else is defined here on purpose: an observer's attributes (name, model, window,
    # stats, ...) are its author's. deucalion reads only desired_metrics, observer_name and
    # new_data; it names an observer with name_of() and selects its samples with Selection,
    # never with a method a subclass could shadow.

    @abc.abstractmethod
    def new_data(self, targets_data_dict: TargetsData) -> Any:
        """Called once per cycle, in the worker process, with every target's desired samples.

        ``targets_data_dict`` maps each target's URL to ``{sample_name: {series: value}}``.
        Return ``None`` (or ``False``, or an empty collection) when nothing is anomalous; an
        ``Alert`` or several; a dict keyed by target URL for per-target alerts; or any other
        value to raise one alert carrying it.
        """
