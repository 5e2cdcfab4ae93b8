"""The user's side of deucalion: ``MetricsObserver``.

This module is imported in every worker process, so it imports the standard library only.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from deucalion.errors import ConfigError
from deucalion.exposition.naming import METRIC_NAME

__all__ = [
    "SYNTHETIC_METRICS",
    "MetricsObserver",
    "TargetsData",
    "data_time",
    "data_times",
    "name_of",
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


def data_time(target: str | None = None) -> float:
    """The scrape time (Unix seconds) of the data ``new_data`` is being handed.

    Without an argument, the cycle's time: when the cycle's scrapes started. With a target's
    URL, when that target's scrape started. In a replay it is the recorded time. Call it from
    ``new_data``; outside a call it raises ``RuntimeError``.
    """
    times = _DATA_TIMES.get()
    if times is None:
        raise RuntimeError("data_time() is only known inside new_data, while data is handed")
    cycle_time, target_times = times
    if target is None:
        return cycle_time
    return target_times.get(target, cycle_time)


def data_times() -> Mapping[str, float]:
    """Every target's scrape time for the data being handed (see ``data_time``)."""
    times = _DATA_TIMES.get()
    if times is None:
        raise RuntimeError("data_times() is only known inside new_data, while data is handed")
    return times[1]



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
        if isinstance(desired_metrics, str):
            # A lone string would otherwise be read as a set of one-letter names.
            desired_metrics = [desired_metrics]
        names = frozenset(desired_metrics)
        bad = sorted(n for n in names if not isinstance(n, str) or not METRIC_NAME.fullmatch(n))
        if bad:
            raise ConfigError(
                f"{type(self).__name__}: {bad!r} are not metric names; desired_metrics must hold "
                "names such as 'node_cpu_seconds_total' or 'go_goroutines'"
            )
        if not names:
            raise ConfigError(
                f"{type(self).__name__} desires no metrics: pass the metric names its model "
                "needs to super().__init__(desired_metrics)"
            )
        self.desired_metrics: frozenset[str] = names

    #: Set it (on the class or the instance) to tell apart two observers of one class.
    observer_name: str | None = None

    # Nothing else is defined here on purpose: an observer's attributes (name, model, window,
    # stats, ...) are its author's. deucalion reads only desired_metrics, observer_name and
    # new_data; it names an observer with name_of() and selects its samples with
    # exposition.naming.family_selects, never with a method a subclass could shadow.

    @abc.abstractmethod
    def new_data(self, targets_data_dict: TargetsData) -> Any:
        """Called once per cycle, in the worker process, with every target's desired samples.

        ``targets_data_dict`` maps each target's URL to ``{sample_name: {series: value}}``.
        Return ``None`` (or ``False``, or an empty collection) when nothing is anomalous; an
        ``Alert`` or several; a dict keyed by target URL for per-target alerts; or any other
        value to raise one alert carrying it.
        """
