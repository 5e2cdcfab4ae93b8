"""The cycle loop: discover the targets, collect their samples, hand them to every listener.

Cycles run at a fixed rate without drift; a cycle that overruns the interval starts the next
one at once and is counted, never queued. A listener gets every cycle, as the cycle's time, its
scrape results and each target's scrape time: the observers' hand-off is one
(``deucalion.provisioner.observers``), a recording is another
(``deucalion.replay.recording.RecordingListener``). So a recording holds exactly the cycles, and
the times, the observers were handed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from deucalion.collection import Collector, ScrapeResult, ScrapeTarget

__all__ = [
    "HANDOFF_AT",
    "MIN_HANDOFF",
    "CollectedCycle",
    "CycleListener",
    "CycleStats",
    "FollowedTargets",
    "TargetSource",
    "collect_cycle",
    "hand_on",
    "handoff_deadline",
    "run_at_fixed_rate",
]

log = logging.getLogger(__name__)

#: When, as a fraction of the scrape interval, a cycle hands its data to the observers at the
#: latest: a target that has not answered by then is down for that cycle, so a hung target
#: delays the others' data by at most half an interval and never makes a cycle overrun...
HANDOFF_AT = 0.5
#: ...but it is never earlier than this (seconds, or the whole interval when shorter): a
#: sub-second interval would otherwise leave a scrape on a busy machine only milliseconds.
MIN_HANDOFF = 0.5


def handoff_deadline(interval: float) -> float:
    """Seconds after a cycle's start by which its scrapes are handed on, answered or not."""
    return min(interval, max(interval * HANDOFF_AT, MIN_HANDOFF))


@dataclass
class CycleStats:
    """Counters of the cycle loop, read by telemetry and tests."""

    cycles: int = 0
    overruns: int = 0
    last_cycle_end: float | None = None
    """``time.time()`` when the last cycle handed its data to the observers."""
    last_cycle_duration: float = 0.0


@dataclass(frozen=True)
class CollectedCycle:
    """One cycle as every listener gets it."""

    time: float
    """The cycle's scrape time (Unix seconds): what ``dc.data_time()`` answers."""
    results: list[ScrapeResult]
    """One result per target."""
    target_times: dict[str, float]
    """Each target's scrape time, by URL."""


class TargetSource(Protocol):
    """Where a cycle's targets come from (``deucalion.targets.TargetProvider`` is one)."""

    async def discover(self) -> Sequence[ScrapeTarget]:
        """The targets of this cycle."""
        ...


class CycleListener(Protocol):
    """Gets every cycle of a provisioner (``MetricsProvisioner.add_listener``)."""

    @property
    def desired_metrics(self) -> frozenset[str] | None:
        """The metrics it needs collected (every sample when None)."""
        ...

    async def open(self) -> None:
        """Called once when the provisioner starts, before the first cycle."""
        ...

    async def on_cycle(self, cycle: CollectedCycle) -> None:
        """One cycle; a listener that raises is logged and keeps getting the next ones."""
        ...

    async def close(self) -> None:
        """Called once when the provisioner stops, after the last cycle."""
        ...


class FollowedTargets:
    """The targets of the last discovery, followed from cycle to cycle: when a target leaves,
    ``on_gone`` is told its URL, so that what is kept for it is dropped."""

    def __init__(self, on_gone: Callable[[set[str]], None]) -> None:
        self.by_url: dict[str, ScrapeTarget] = {}
        """The targets of the last discovery, by URL."""
        self._on_gone = on_gone

    async def discover(self, provider: TargetSource) -> list[ScrapeTarget]:
        """This cycle's targets; the ones found before when discovery fails."""
        targets: list[ScrapeTarget]
        try:
            targets = list(await provider.discover())
        except Exception:
            # Discovery failing (an unreadable credentials file, say) keeps the targets it had.
            log.exception(
                "target discovery failed; keeping the %d targets found before", len(self.by_url)
            )
            targets = list(self.by_url.values())
        current = {t.url: t for t in targets}
        gone = self.by_url.keys() - current.keys()
        if gone:
            self._on_gone(gone)
        self.by_url = current
        return targets


async def collect_cycle(
    discover: Callable[[], Awaitable[Sequence[ScrapeTarget]]], collector: Collector
) -> CollectedCycle:
    """Discover this cycle's targets and collect them."""
    # The cycle's scrape time, which observers read with deucalion.data_time().
    cycle_time = time.time()
    targets = await discover()
    results = await collector.collect(targets)
    target_times = {r.target.url: r.scraped_at or cycle_time for r in results}
    return CollectedCycle(cycle_time, results, target_times)


async def hand_on(listener: CycleListener, cycle: CollectedCycle, *, contain: bool) -> None:
    """Hand ``cycle`` to ``listener``; with ``contain``, an exception it raises is logged and
    goes no further."""
    if not contain:
        await listener.on_cycle(cycle)
        return
    try:
        await listener.on_cycle(cycle)
    except Exception:
        log.exception("the cycle listener %r failed on a cycle", listener)


async def run_at_fixed_rate(
    interval: float, cycle: Callable[[], Awaitable[object]], stats: CycleStats
) -> None:
    """Run ``cycle`` every ``interval`` seconds without drift, until cancelled; an overrun
    starts the next cycle at once and is counted in ``stats``."""
    loop = asyncio.get_running_loop()
    next_start = loop.time()
    while True:
        started = loop.time()
        await cycle()
        stats.last_cycle_duration = loop.time() - started
        next_start += interval
        now = loop.time()
        if now > next_start:
            stats.overruns += 1
            log.warning(
                "cycle took %.3fs, longer than scrape_interval (%gs): starting the next one now",
                now - started,
                interval,
            )
            next_start = now
        else:
            await asyncio.sleep(next_start - now)
