"""The embedded demo: a synthetic target with injected anomalies and a robust z-score observer.

``deucalion demo`` starts both in one process (the observer in its worker, as always) and
prints each detection as it happens. Everything stays on 127.0.0.1. The observer is the
library's own ``DetectorObserver`` with a ``RobustZScore`` (windows, rates and scores from
``deucalion.history`` and ``deucalion.detectors``), so the demo needs the ``ml`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from deucalion._progress import format_seconds
from deucalion.alerting.alerts import Scores
from deucalion.detectors import DetectorObserver, RobustZScore
from deucalion.observer import MetricsObserver, TargetsData, data_time
from deucalion.runner import stopping_on_signals

if TYPE_CHECKING:
    from deucalion.provisioner import CollectedCycle

__all__ = ["RobustZScoreObserver", "SyntheticTarget"]


class RobustZScoreObserver(DetectorObserver):
    """The demo's observer: ``DetectorObserver`` with a ``RobustZScore``, printing detections.

    Each series (a counter as its per-second rate) is scored against its last ``points``
    values; a series alerts once its score stays above ``threshold`` for ``for_cycles``
    cycles, and each new alert is printed with the time of the data.
    """

    def __init__(
        self,
        desired_metrics: Iterable[str],
        *,
        points: int = 60,
        threshold: float = 6.0,
        for_cycles: int = 3,
    ) -> None:
        super().__init__(
            RobustZScore(threshold=threshold), desired_metrics, points=points, for_cycles=for_cycles
        )
        self.printed: set[tuple[str | None, str, str]] = set()

    def new_data(self, targets_data_dict: TargetsData) -> Scores:
        """Score the cycle; print the alerts that start now."""
        result = super().new_data(targets_data_dict)
        firing = set()
        for alert in result.alerts:
            if alert.score is None:
                continue  # kept firing since an earlier cycle (keep_firing_for): printed then
            key = (alert.target, alert.labels["metric"], alert.labels["series"])
            firing.add(key)
            if key not in self.printed:
                when = time.strftime("%H:%M:%S", time.localtime(data_time()))
                print(
                    f"{when}  anomaly  {alert.annotations['summary']}: "
                    f"{alert.annotations['description']}",
                    flush=True,
                )
        self.printed = firing
        return result


@dataclass
class _Series:
    metric: str
    labels: str
    base: float
    noise: float
    spike_until: float = 0.0
    spike_factor: float = 1.0


class SyntheticTarget:
    """An HTTP server on 127.0.0.1 whose metrics carry an injected anomaly every few seconds."""

    def __init__(self, *, anomaly_every: float = 7.0, seed: int = 7) -> None:
        self.anomaly_every = anomaly_every
        self.random = random.Random(seed)
        self.series = [
            _Series("demo_request_latency_seconds", '{endpoint="/api/orders"}', 0.120, 0.004),
            _Series("demo_request_latency_seconds", '{endpoint="/api/users"}', 0.045, 0.002),
            _Series("demo_queue_depth", '{queue="emails"}', 40.0, 1.5),
            _Series("demo_cpu_utilisation_ratio", "", 0.35, 0.01),
        ]
        self._runner: web.AppRunner | None = None
        self._injector: asyncio.Task[None] | None = None
        self.url = ""
        self.injected: list[tuple[str, float, float]] = []
        """Each anomaly injected so far: ``(metric{labels}, start, end)`` (labelled windows)."""

    async def start(self) -> str:
        """Serve on a free port; returns the scrape URL."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/metrics"
        self._injector = asyncio.create_task(self._inject_anomalies())
        return self.url

    async def close(self) -> None:
        """Stop serving."""
        if self._injector is not None:
            self._injector.cancel()
            self._injector = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _inject_anomalies(self) -> None:
        while True:
            await asyncio.sleep(self.anomaly_every)
            series = self.random.choice(self.series)
            series.spike_factor = self.random.choice((0.2, 3.0, 5.0))
            series.spike_until = time.time() + 4.0
            self.injected.append(
                (
                    series.metric + (series.labels or "{}"),
                    series.spike_until - 4.0,
                    series.spike_until,
                )
            )
            print(
                f"{time.strftime('%H:%M:%S')}  injected  {series.metric}{series.labels} "
                f"x{series.spike_factor:g} for 4s",
                flush=True,
            )

    async def _metrics(self, request: web.Request) -> web.Response:
        now = time.time()
        lines = []
        seen = set()
        for s in self.series:
            if s.metric not in seen:
                seen.add(s.metric)
                lines.append(f"# HELP {s.metric} Synthetic series of the deucalion demo.")
                lines.append(f"# TYPE {s.metric} gauge")
            factor = s.spike_factor if now < s.spike_until else 1.0
            value = max(0.0, (s.base + self.random.gauss(0, s.noise)) * factor)
            lines.append(f"{s.metric}{s.labels} {value:.6g}")
        body = ("\n".join(lines) + "\n").encode()
        return web.Response(
            body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )


class _TargetHealth:
    """A listener of the demo's provisioner: whether its target ever answered, and why not."""

    desired_metrics: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.ever_up = False
        self.cycles = 0
        self.shown = ""
        self.last_error: str | None = None

    async def open(self) -> None:
        """Nothing to open."""

    async def on_cycle(self, cycle: CollectedCycle) -> None:
        """Note whether the target answered this cycle."""
        self.cycles += 1
        for result in cycle.results:
            self.shown = result.target.shown
            if result.up:
                self.ever_up = True
            else:
                self.last_error = result.error

    async def close(self) -> None:
        """Nothing to close."""


DEMO_METRICS = ("demo_request_latency_seconds", "demo_queue_depth", "demo_cpu_utilisation_ratio")
# The exporter's own health: quiet while it idles. (node_load1 was here: a one-minute average
# drifts smoothly with the machine's load, and a z-score reads any drift as an anomaly.)
REAL_TARGET_METRICS = (
    "go_goroutines",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "scrape_duration_seconds",
)


#: About how many cycles a preset's detector learns a signal before most moves can alert
#: (README, "Watching a service without code").
PRESET_LEARNING_CYCLES = 1000


async def run_demo(
    *,
    target: str | None = None,
    alertmanager: str | None = None,
    duration: float = 30.0,
    interval: float = 1.0,
    metrics: Iterable[str] | None = None,
    preset: str | None = None,
    budget: float | None = None,
) -> int:
    """Run the demo for ``duration`` seconds (0: until cancelled); returns an exit code.
    With ``preset`` (and a ``target``), the preset watches the target instead, with its
    false-alert ``budget`` (default: ``DEUCALION_PRESET__BUDGET``'s, else 1)."""
    from deucalion._http import redact_url
    from deucalion.provisioner import MetricsProvisioner

    synthetic = None
    if preset is not None and target is None:
        from deucalion.errors import ConfigError

        raise ConfigError(f"deucalion demo --preset {preset}: give the --target URL to watch")
    if target is None:
        synthetic = SyntheticTarget()
        target = await synthetic.start()
        desired = tuple(metrics or DEMO_METRICS)
    else:
        desired = tuple(metrics or REAL_TARGET_METRICS)
    settings: dict[str, Any] = {
        "targets": [target],
        "scrape_interval": interval,
        "telemetry": {"listen": "127.0.0.1:0"},
    }
    if alertmanager:
        settings["alertmanager"] = {"urls": [alertmanager]}
    try:
        # As keyword arguments, which win over DEUCALION_* variables: the demo watches the
        # --target it names, not a DEUCALION_TARGETS left in the shell.
        provisioner = MetricsProvisioner(**settings)
        observer: MetricsObserver
        if preset is not None:
            from deucalion.presets import preset_observer

            if budget is None:
                # As `run` takes it: the configuration's (DEUCALION_PRESET__BUDGET), else 1.
                configured = provisioner.settings.preset
                budget = float(configured.budget) if configured is not None else 1.0
            observer = preset_observer(preset, budget=budget, announce=True)
            desired = tuple(s.name for s in observer.signals)
        else:
            observer = RobustZScoreObserver(desired)
        provisioner.register(observer)
        health = _TargetHealth()
        provisioner.add_listener(health)
        # The URLs as validated, not as typed, so that a password shows as *** whatever the
        # form it was written in.
        urls = ", ".join(redact_url(url) for url in provisioner.settings.alertmanager.urls)
        print(
            f"deucalion demo: watching {target} every {interval:g}s for "
            f"{', '.join(desired)}"
            + (f" for {duration:g}s" if duration else "")
            + (f"; alerts go to {urls}" if urls else "")
            + ". Ctrl-C stops.",
            flush=True,
        )
        if preset is not None:
            # A preset's detector learns each signal's normal before it can alert: a demo of
            # the default 30 s would end in silence, and a silent demo reads as a broken one.
            learning = format_seconds(PRESET_LEARNING_CYCLES * interval)
            print(
                f"deucalion demo: the preset first learns what is ordinary for each signal: "
                f"a large move can alert after about 100 cycles, most moves only after about "
                f"{PRESET_LEARNING_CYCLES:,} ({learning} at {interval:g}s); "
                "--duration 0 runs until Ctrl-C.",
                flush=True,
            )
        stop = asyncio.Event()
        # Signals are caught before the start: a Ctrl-C while workers start stops cleanly too.
        with stopping_on_signals(stop.set):
            async with provisioner:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=duration or None)
    finally:
        if synthetic is not None:
            await synthetic.close()
    if health.cycles and not health.ever_up:
        # A demo that watched nothing is a failure, as `presets show` on the same URL is: the
        # one "is down" warning at its start is easily missed above a minute of silence.
        print(
            f"deucalion demo: {health.shown or target} never answered in "
            f"{health.cycles} cycle(s): nothing was watched ({health.last_error}); check the URL "
            "and that the service is running",
            file=sys.stderr,
        )
        return 1
    print(f"deucalion demo: done after {provisioner.stats.cycles} cycles.", file=sys.stderr)
    return 0
