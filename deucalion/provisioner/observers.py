"""The observers' side of the cycle: each observer's samples handed to its worker, and what it
returns turned into alerts and scores.

``ObserverFeed`` is one of the cycle's listeners. It remembers, per observer, the data handed to
it with the targets it came from, so that the alerts of a result are labelled as those targets
were when the observer saw them (one may have left discovery during the call).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence

from deucalion.alerting.alertmanager import AlertSender
from deucalion.alerting.alerts import cheap_to_label, label_result, merge_advice
from deucalion.collection import ScrapeTarget
from deucalion.config.loading import AlertmanagerSettings
from deucalion.dispatch import CallOutcome, ObserverWorker
from deucalion.errors import ConfigError
from deucalion.observer import MetricsObserver, Selection, TargetsData, name_of
from deucalion.provisioner.cycle import CollectedCycle
from deucalion.telemetry import Telemetry

__all__ = ["MAX_HANDED", "ObserverFeed", "admit"]

log = logging.getLogger(__name__)

#: Hand-offs remembered per observer until its result comes back (a call in flight, the data
#: pending behind it, and a few that a slow call made the worker drop).
MAX_HANDED = 4


def admit(observer: MetricsObserver, registered: Sequence[MetricsObserver]) -> None:
    """Check that ``observer`` may join ``registered``, naming it ``Name-2`` (and so on) when
    another of its class holds its name; raises ``ConfigError`` saying what to do when not."""
    if not isinstance(observer, MetricsObserver):
        raise ConfigError(
            f"register() takes a MetricsObserver instance, not {type(observer).__name__}: "
            "subclass deucalion.MetricsObserver and pass an instance of it"
        )
    if not isinstance(getattr(observer, "desired_metrics", None), frozenset):
        raise ConfigError(
            f"observer {type(observer).__name__} has no desired_metrics: its __init__ must "
            "call super().__init__(desired_metrics)"
        )
    if any(o is observer for o in registered):
        raise ConfigError(f"observer {name_of(observer)} is registered already")
    # Alerts and scores carry the name: two alike would resolve each other's alerts.
    taken = {name_of(o) for o in registered}
    if name_of(observer) in taken:
        if observer.observer_name is not None:
            raise ConfigError(
                f"two observers are named {name_of(observer)}: alerts and scores are labelled "
                "with the observer's name; give each its own observer_name"
            )
        number = 2
        while f"{name_of(observer)}-{number}" in taken:
            number += 1
        observer.observer_name = f"{name_of(observer)}-{number}"
        log.info(
            "a second %s is registered as %s (set observer_name to choose the name)",
            type(observer).__name__,
            name_of(observer),
        )


class ObserverFeed:
    """Hands every worker's observer its desired samples each cycle, and turns each result
    into alerts (sent by ``alert_sender()``) and scores (recorded in ``telemetry``).

    ``workers`` are set by the provisioner when it has started them.
    """

    def __init__(
        self,
        *,
        settings: AlertmanagerSettings,
        telemetry: Telemetry,
        alert_sender: Callable[[], AlertSender | None],
        targets_now: Callable[[], dict[str, ScrapeTarget]],
    ) -> None:
        self.workers: Sequence[ObserverWorker] = ()
        self._settings = settings
        self._telemetry = telemetry
        self._alert_sender = alert_sender
        self._targets_now = targets_now
        # Per set of desired metrics, its selection (which remembers what it selects).
        self._selections: dict[frozenset[str], Selection] = {}
        # Per observer (its id), the data handed to it that may not have come back yet, with
        # the targets it came from.
        self._handed: dict[int, list[tuple[TargetsData, dict[str, ScrapeTarget]]]] = {}
        # Observers already told that alerts with one label set were merged (told once each).
        self._merges_logged: set[str] = set()

    @property
    def desired_metrics(self) -> frozenset[str]:
        """Every metric some observer desires."""
        return frozenset().union(*(w.observer.desired_metrics for w in self.workers))

    async def open(self) -> None:
        """Forget what earlier runs handed (the provisioner starts the workers)."""
        self._handed = {}

    async def close(self) -> None:
        """Nothing to close: the provisioner stops the workers."""
        return None

    async def on_cycle(self, cycle: CollectedCycle) -> None:
        """Submit each observer's selection of the cycle to its worker."""
        for worker in self.workers:
            data, sources = self._selection(worker.observer)(cycle.results)
            self._note_handed(worker.observer, data, sources)
            worker.submit(data, cycle_time=cycle.time, target_times=cycle.target_times)

    def prepare(self, observers: Sequence[MetricsObserver]) -> None:
        """Build each observer's selection now (it compiles the desired metrics), not in the
        first cycle."""
        for observer in observers:
            self._selection(observer)

    def _selection(self, observer: MetricsObserver) -> Selection:
        selection = self._selections.get(observer.desired_metrics)
        if selection is None:
            selection = self._selections[observer.desired_metrics] = Selection(
                observer.desired_metrics
            )
        return selection

    def _note_handed(
        self, observer: MetricsObserver, data: TargetsData, targets: dict[str, ScrapeTarget]
    ) -> None:
        handed = self._handed.setdefault(id(observer), [])
        handed.append((data, targets))
        if len(handed) > MAX_HANDED:
            # Only a call running for many cycles gets here: the data between the oldest (in
            # flight, maybe) and the newest (pending) was dropped by the worker.
            del handed[1:-1]

    def targets_handed(self, observer: MetricsObserver, data: object) -> dict[str, ScrapeTarget]:
        """The targets ``data`` came from when it was handed to ``observer``; forgets it and
        whatever was handed before (calls return in order)."""
        handed = self._handed.get(id(observer), [])
        for index, (sent, targets) in enumerate(handed):
            if sent is data:
                del handed[: index + 1]
                return targets
        return self._targets_now()

    async def on_result(self, outcome: CallOutcome) -> None:
        """Count the call; turn its result into alerts and scores."""
        name = name_of(outcome.observer)
        self._telemetry.record_call(name, outcome.duration)
        # The targets the observer saw, not today's: one may have left discovery during the
        # call, and its alert must still say which target it is about.
        targets = self.targets_handed(outcome.observer, outcome.data)
        sender = self._alert_sender()
        # A failed call says nothing about the alerts: they stay as they were.
        if outcome.error is not None or sender is None:
            return
        settings = self._settings
        result, data = outcome.result, outcome.data
        label = functools.partial(
            label_result,
            observer=name,
            alert_name=settings.alert_name,
            external_labels=settings.external_labels,
        )
        if cheap_to_label(result):
            labelled = label(result, data, targets)
        else:
            # Thousands of alerts: interpreted and labelled in a thread, so the event loop
            # keeps scraping and sending meanwhile.
            labelled = await asyncio.to_thread(label, result, data, targets)
        for message in labelled.errors:
            log.error("%s", message)
        for message in labelled.warnings:
            log.warning("%s", message)
        if labelled.merged and name not in self._merges_logged:
            self._merges_logged.add(name)
            log.warning(
                "observer %s returned %d alerts with the same labels as another in one "
                "result: each label set is one alert in Alertmanager, so they were "
                "merged (the last one wins). %s (this is logged once)",
                name,
                labelled.merged,
                merge_advice(labelled.merged_targets),
            )
        # Alerts keep the targets handed, but scores are exported as of now: a target that
        # left discovery during the call would come back as a score nobody will update.
        present = self._targets_now()
        scores = {url: v for url, v in labelled.scores.items() if url is None or url in present}
        series = [s for s in labelled.series_scores if s.target is None or s.target in present]
        self._telemetry.record_scores(name, scores, series)
        await sender.update_in_slices(id(outcome.observer), labelled.alerts)
