"""``MetricsProvisioner``: registers observers and listeners, and runs the cycle loop.

One cycle per scrape interval (``deucalion.provisioner.cycle``): discover the targets, collect
them all at once, then hand the cycle to every listener: the observers' feed
(``deucalion.provisioner.observers``) and any other (a recording). This module owns what runs:
start, stop in order, and the supervision of every long-lived task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine, Generator
from types import TracebackType
from typing import Any

from deucalion._supervision import Supervised
from deucalion.alerting.alertmanager import AlertmanagerClient, AlertSender
from deucalion.alerting.lifecycle import Payload
from deucalion.collection import Collector, ScrapeResult, build_collector
from deucalion.config.loading import Settings, load_settings
from deucalion.dispatch import CallOutcome, ObserverWorker, refuse_in_worker_bootstrap
from deucalion.errors import ConfigError, DeucalionError
from deucalion.exposition.naming import METRIC_NAME
from deucalion.observer import MetricsObserver, name_of
from deucalion.provisioner.alerting import flush_alerts, start_alerting
from deucalion.provisioner.cycle import (
    CycleListener,
    CycleStats,
    FollowedTargets,
    collect_cycle,
    hand_on,
    handoff_deadline,
    run_at_fixed_rate,
)
from deucalion.provisioner.observers import ObserverFeed, admit
from deucalion.runner import run_main, stopping_on_signals
from deucalion.targets import TargetProvider, build_provider
from deucalion.telemetry import Telemetry

__all__ = ["MetricsProvisioner"]

log = logging.getLogger(__name__)

#: The longest a stop waits for queued alerts once the calls in flight are done (seconds).
MAX_ALERT_FLUSH = 10.0
#: Up to this many desired metric names (a pattern counting as 50), the collector and the
#: selections are built on the event loop (under a millisecond); more are built in a thread.
INLINE_SELECTIONS = 1000


class _Ran:
    """What the blocking ``run()`` returns once it has run: awaiting it does nothing. So that
    ``run()`` is typed ``Awaitable[None]`` and ``await provisioner.run()`` type-checks."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


class MetricsProvisioner:
    """Scrapes the targets and feeds every registered observer, each in its own process.

    ``MetricsProvisioner(config=None, **settings)``: ``config`` is a YAML file's path or a
    mapping; keyword arguments override every other source (see ``deucalion.config.loading``).

    Run it with ``provisioner.run()`` in a script (blocks until SIGINT/SIGTERM), with
    ``await provisioner.run()`` inside an asyncio application, or in the background of one
    with ``async with provisioner:`` or ``await start()`` / ``await stop()``.
    """

    def __init__(
        self,
        config: str | Any | None = None,
        *,
        targets_provider: TargetProvider | None = None,
        **settings: Any,
    ) -> None:
        self.settings: Settings = load_settings(config, **settings)
        self._observers: list[MetricsObserver] = []
        self._provider = targets_provider
        self._owns_provider = False
        self._workers: list[ObserverWorker] = []
        self._collector: Collector | None = None
        self._listeners: list[CycleListener] = []
        self._cycle_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_lock: asyncio.Lock | None = None
        self._forced = False
        self._stop_requested = False
        self._flush_task: asyncio.Task[None] | None = None
        self._running = False
        self._background: set[asyncio.Task[Any]] = set()
        self._failure: BaseException | None = None
        self.stats = CycleStats()
        self.alert_sender: AlertSender | None = None
        self.telemetry = Telemetry(self)
        self._targets = FollowedTargets(self._forget_targets)
        self._feed = ObserverFeed(
            settings=self.settings.alertmanager,
            telemetry=self.telemetry,
            alert_sender=lambda: self.alert_sender,
            targets_now=lambda: self._targets.by_url,
        )

    # --- observers ---------------------------------------------------------------------------

    def register(self, metricsObserver: MetricsObserver) -> MetricsObserver:
        """Add an observer; it gets its own worker process when the provisioner starts."""
        observer = metricsObserver
        if self._running:
            raise DeucalionError(
                f"cannot register {name_of(observer)} while the provisioner runs; register every "
                "observer before run() or start()"
            )
        admit(observer, self._observers)
        self._observers.append(observer)
        return observer

    def add_listener(self, listener: CycleListener) -> CycleListener:
        """Add a listener: it gets every cycle the observers get, with the same times (a
        recording is one). Its ``desired_metrics`` are collected too."""
        if self._running:
            raise DeucalionError("cannot add a listener while the provisioner runs")
        self._listeners.append(listener)
        return listener

    @property
    def listeners(self) -> tuple[CycleListener, ...]:
        """The listeners added, in order (the observers' feed is not one of them)."""
        return tuple(self._listeners)

    @property
    def observers(self) -> tuple[MetricsObserver, ...]:
        """The registered observers, in order of registration."""
        return tuple(self._observers)

    @property
    def workers(self) -> tuple[ObserverWorker, ...]:
        """The observers' workers while running."""
        return tuple(self._workers)

    def supervised_tasks(self) -> list[Supervised]:
        """Every long-lived task's supervision: each observer's call loop, each Alertmanager
        sender and the alert re-send timer (telemetry's health and readiness read them)."""
        tasks = [w.call_loop for w in self._workers if w.call_loop is not None]
        if self.alert_sender is not None:
            tasks.extend(self.alert_sender.supervised)
        return tasks

    def desired_metrics(self) -> frozenset[str] | None:
        """Every name some observer or listener desires: what is collected (None: every
        sample, for a listener that wants them all)."""
        wanted = [o.desired_metrics for o in self._observers]
        for listener in self._listeners:
            if listener.desired_metrics is None:
                return None
            wanted.append(listener.desired_metrics)
        return frozenset().union(*wanted)

    # --- running -----------------------------------------------------------------------------

    def run(self) -> Awaitable[None]:
        """Run until stopped.

        With no running event loop this blocks (on uvloop when installed), stops cleanly on
        SIGINT or SIGTERM and returns (an awaitable that is done already). Inside a running
        loop it returns a coroutine instead: ``await provisioner.run()`` runs until cancelled
        or ``stop()``.
        """
        refuse_in_worker_bootstrap()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            run_main(self._run_with_signals())
            return _Ran()
        return self._run_until_stopped()

    async def _run_with_signals(self) -> None:
        with stopping_on_signals(
            lambda: self._spawn(self.stop()), lambda: self._spawn(self.stop(grace=0))
        ):
            await self._run_until_stopped()

    async def _run_until_stopped(self) -> None:
        await self.start()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            # Cancelled or not, the workers and the session are always shut down.
            await asyncio.shield(self.stop())
        if self._failure is not None:
            # run() must not look like a clean stop: a supervisor should restart the sidecar.
            raise DeucalionError(
                f"deucalion stopped because its cycle loop failed: {self._failure!r}"
            ) from self._failure

    async def __aenter__(self) -> MetricsProvisioner:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the workers and the cycle loop in the background of the running loop."""
        refuse_in_worker_bootstrap()
        if self._running:
            raise DeucalionError("this provisioner is running already")
        if not self._observers and not self._listeners:
            raise ConfigError(
                "no observer registered: call provisioner.register(my_observer) before run()"
            )
        self._owns_provider = self._provider is None
        provider = self._provider or build_provider(self.settings)
        self._provider = provider
        self._running = True
        self._stopped = asyncio.Event()
        self._stop_lock = asyncio.Lock()
        self._forced = False
        self._stop_requested = False
        self.stats = CycleStats()
        self._failure = None
        failed: BaseException | None = None
        # Held while starting: a stop asked for meanwhile (SIGTERM during start-up) waits
        # until everything it has to close exists.
        async with self._stop_lock:
            try:
                # Thousands of desired names (or dozens of patterns) take milliseconds to
                # compile: off the loop then.
                desired = self.desired_metrics()
                patterns = sum(not METRIC_NAME.fullmatch(m) for m in desired or ())
                if desired is None or len(desired) + 50 * patterns > INLINE_SELECTIONS:
                    self._collector = await asyncio.to_thread(self._prepare, provider, desired)
                else:
                    self._collector = self._prepare(provider, desired)
                self._workers = [
                    ObserverWorker(
                        o,
                        on_result=self._on_result,
                        timeout=self.settings.observer_timeout,
                        checkpoint_interval=self.settings.checkpoint_interval,
                        checkpoint_path=self.settings.checkpoint_path,
                    )
                    for o in self._observers
                ]
                self._feed.workers = self._workers
                # Workers start in parallel: each spawns an interpreter.
                await asyncio.gather(*(w.start() for w in self._workers))
                for listener in self._every_listener():
                    await listener.open()
                await self._start_alerting()
            except BaseException as exc:
                failed = exc
        if failed is not None:
            stopping = self._stop_requested
            await self.stop(grace=0)
            if stopping and not isinstance(failed, asyncio.CancelledError):
                # Stopped while starting (a second SIGINT kills the workers being started):
                # what failed is the stop's doing, not a problem to report.
                log.info("stopped while starting: the workers being started were stopped")
                log.debug("start-up ended by the stop with %s: %s", type(failed).__name__, failed)
                return
            raise failed
        self._cycle_task = asyncio.create_task(self._cycle_loop(), name="deucalion-cycle-loop")
        self._cycle_task.add_done_callback(self._on_cycle_loop_done)
        log.info(
            "deucalion started: %d observer(s), %d listener(s), scrape interval %gs",
            len(self._workers),
            len(self._listeners),
            self.settings.scrape_interval,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Shut everything down in order, in bounded time. Calling it twice is harmless.

        1. Scraping stops: no new cycle, no new data for the observers.
        2. Calls in flight get ``grace`` seconds (default ``shutdown_grace_period``) to return;
           their alerts are queued as usual. A worker still busy after that is killed.
        3. Queued alerts get a budget of their own to reach Alertmanager: what is left of
           ``grace``, but at least ``alertmanager.timeout`` (at most 10 s), so that a call
           which used the whole grace period still has its alert delivered.
        4. The Alertmanager senders, deucalion's HTTP server, the listeners (a recording is
           closed), the collector and the target provider close.

        So a stop takes at most ``grace`` + min(``alertmanager.timeout``, 10 s), plus a moment
        to end processes. A grace of 0 (``stop(grace=0)``, a second SIGINT/SIGTERM, or
        ``shutdown_grace_period: 0``) is a forced stop: workers are killed and nothing is
        waited for, the alert flush included; it also cuts short an orderly stop under way.
        Firing alerts are not resolved (see ``_stop_alerting``).
        """
        if not self._running or self._stop_lock is None:
            return
        self._stop_requested = True
        grace = self.settings.shutdown_grace_period if grace is None else grace
        if grace == 0:
            self._forced = True
            if self._stop_lock.locked():
                # A stop is waiting for calls in flight or for the flush: cut it short.
                for worker in self._workers:
                    worker.kill()
                if self._flush_task is not None:
                    self._flush_task.cancel()
        async with self._stop_lock:
            if not self._running:
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            if self._cycle_task is not None:
                self._cycle_task.cancel()
                # Not awaited directly: a loop that died of a bug would raise that here and end
                # the stop half-way; _on_cycle_loop_done has logged it already.
                await asyncio.wait({self._cycle_task})
                self._cycle_task = None
            await asyncio.gather(*(w.close(grace) for w in self._workers))
            flush = (
                0.0
                if self._forced
                else max(
                    deadline - loop.time(), min(self.settings.alertmanager.timeout, MAX_ALERT_FLUSH)
                )
            )
            await self._stop_alerting(flush)
            for listener in self._every_listener():
                try:
                    await listener.close()
                except Exception:
                    log.exception("closing the cycle listener %r failed", listener)
            if self._collector is not None:
                await self._collector.close()
                self._collector = None
            if self._owns_provider and self._provider is not None:
                # Built from the settings in start(): closed here, built anew by a next start().
                await self._provider.close()
                self._provider = None
            self._running = False
            assert self._stopped is not None
            self._stopped.set()
            log.info("deucalion stopped")

    @property
    def running(self) -> bool:
        """Whether the provisioner has started and not yet stopped."""
        return self._running

    @property
    def cycle_loop_ended(self) -> bool:
        """Whether this run's cycle loop has ended while running (a bug killed it)."""
        return self._cycle_task is not None and self._cycle_task.done()

    def _on_cycle_loop_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug, not a target's or observer's fault: stop in order rather than run half.
            log.critical("the cycle loop failed; stopping", exc_info=exc)
            self._failure = exc
            self._spawn(self.stop())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, holding a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the cycle ---------------------------------------------------------------------------

    def _every_listener(self) -> list[CycleListener]:
        """The observers' feed (when there are observers), then the listeners added."""
        return ([self._feed] if self._workers else []) + self._listeners

    async def _cycle_loop(self) -> None:
        await run_at_fixed_rate(self.settings.scrape_interval, self.cycle, self.stats)

    async def cycle(self) -> list[ScrapeResult]:
        """One cycle: collect every target and hand the cycle to every listener."""
        assert self._provider is not None and self._collector is not None
        provider = self._provider
        cycle = await collect_cycle(lambda: self._targets.discover(provider), self._collector)
        self.telemetry.scrapes = cycle.results
        for listener in self._every_listener():
            # deucalion's own listener failing is a bug, which stops the loop; another's
            # fault (a full disk under a recording) costs only that listener.
            await hand_on(listener, cycle, contain=listener is not self._feed)
        self.stats.cycles += 1
        self.stats.last_cycle_end = time.time()
        return cycle.results

    def _forget_targets(self, gone: set[str]) -> None:
        """Drop what is kept for targets that left discovery."""
        if self._collector is not None:
            self._collector.forget(gone)
        self.telemetry.forget_targets(gone)

    def _prepare(self, provider: TargetProvider, desired: frozenset[str] | None) -> Collector:
        """The collector of this run, and each observer's selection built before the first
        cycle (both compile the desired metrics)."""
        self._feed.prepare(self._observers)
        # Decided once: which collector, and whether a body's samples are counted.
        return build_collector(
            self.settings,
            provider,
            desired,
            deadline=handoff_deadline(self.settings.scrape_interval),
        )

    # --- alerts and telemetry ----------------------------------------------------------------

    async def _start_alerting(self) -> None:
        """Start deucalion's HTTP server, then the alert sender (its alerts link to /alerts),
        when some observer may alert."""
        self.alert_sender = await start_alerting(
            self.settings, self.telemetry, alerts=bool(self._observers)
        )

    async def _stop_alerting(self, flush: float) -> None:
        """Give queued alerts up to ``flush`` seconds to be sent, then close the sender and
        the HTTP server."""
        sender, self.alert_sender = self.alert_sender, None
        if sender is not None:
            # A task, so that a forced stop can cancel the flush without cancelling us.
            self._flush_task = asyncio.create_task(
                flush_alerts(sender, flush), name="deucalion-alert-flush"
            )
            try:
                await asyncio.wait({self._flush_task})
            finally:
                self._flush_task = None
            await sender.close()
        await self.telemetry.close()

    def firing_alerts(self) -> list[Payload]:
        """The alerts firing now, as sent to Alertmanager (what ``/alerts`` serves)."""
        return self.alert_sender.firing() if self.alert_sender is not None else []

    @property
    def alertmanagers(self) -> tuple[AlertmanagerClient, ...]:
        """The clients of the configured Alertmanagers, while running."""
        return tuple(self.alert_sender.clients) if self.alert_sender is not None else ()

    @property
    def scrape_interval(self) -> float:
        """Seconds between the starts of two cycles."""
        return self.settings.scrape_interval

    async def _on_result(self, outcome: CallOutcome) -> None:
        """An observer's call came back: its result becomes alerts and scores."""
        await self._feed.on_result(outcome)
