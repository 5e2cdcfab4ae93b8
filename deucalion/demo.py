"""The embedded demo: a synthetic target with injected anomalies and a robust z-score observer.

``deucalion demo`` starts both in one process (the observer in its worker, as always) and
prints each detection as it happens. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from deucalion.alerting.alerts import Alert
from deucalion.observer import MetricsObserver, TargetsData
from deucalion.runner import stopping_on_signals

__all__ = ["RobustZScoreObserver", "SyntheticTarget"]

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


class RobustZScoreObserver(MetricsObserver):
    """Flags a series whose newest value lies far from its recent median.

    The score is the robust z-score ``|x - median| / (1.4826 * MAD)`` over the last ``window``
    values of each series (for counters, of their per-second rate). A series is anomalous when
    its score passes ``threshold`` after ``warmup`` values.
    """

    def __init__(
        self,
        desired_metrics: Iterable[str],
        *,
        window: int = 30,
        warmup: int = 8,
        threshold: float = 6.0,
    ) -> None:
        super().__init__(desired_metrics)
        self.window = window
        self.warmup = warmup
        self.threshold = threshold
        self.history: dict[tuple[str, str, str], deque[float]] = {}
        self.last_counter: dict[tuple[str, str, str], tuple[float, float]] = {}

    def new_data(self, targets_data_dict: TargetsData) -> list[Alert]:
        now = time.time()
        alerts = []
        for target, samples in targets_data_dict.items():
            for metric, series in samples.items():
                for labels, raw in series.items():
                    key = (target, metric, labels)
                    value = self._value(key, metric, raw, now)
                    if value is None or math.isnan(value):
                        continue
                    score = self._score(key, value)
                    if score is not None and score > self.threshold:
                        name = metric + ("" if labels == "{}" else labels)
                        print(f"{time.strftime('%H:%M:%S')}  anomaly  {name} on {target}: "
                              f"value {value:.4g}, robust z-score {score:.1f}", flush=True)
                        alerts.append(Alert(
                            labels={"metric": metric, "series": labels},
                            annotations={"summary": f"{name} is anomalous",
                                         "value": f"{value:.6g}"},
                            target=target,
                            score=round(score, 3),
                        ))
        return alerts

    def _value(
        self, key: tuple[str, str, str], metric: str, raw: float, now: float
    ) -> float | None:
        if not metric.endswith(COUNTER_SUFFIXES):
            return raw
        previous = self.last_counter.get(key)
        self.last_counter[key] = (now, raw)
        if previous is None or now <= previous[0] or raw < previous[1]:
            return None  # first sight, or a counter reset
        return (raw - previous[1]) / (now - previous[0])

    def _score(self, key: tuple[str, str, str], value: float) -> float | None:
        past = self.history.setdefault(key, deque(maxlen=self.window))
        score = None
        if len(past) >= self.warmup:
            median = statistics.median(past)
            mad = statistics.median(abs(v - median) for v in past)
            # A flat series has MAD 0: measure against a small fraction of its level instead.
            scale = 1.4826 * mad or max(abs(median) * 0.01, 1e-9)
            score = abs(value - median) / scale
        past.append(value)
        return score


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
            series.spike_until = time.time() + 2.0
            self.injected.append((series.metric + (series.labels or "{}"),
                                  series.spike_until - 2.0, series.spike_until))
            print(f"{time.strftime('%H:%M:%S')}  injected  {series.metric}{series.labels} "
                  f"x{series.spike_factor:g} for 2s", flush=True)

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
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; "
                                                               "charset=utf-8"})


DEMO_METRICS = ("demo_request_latency_seconds", "demo_queue_depth", "demo_cpu_utilisation_ratio")
REAL_TARGET_METRICS = ("go_goroutines", "process_resident_memory_bytes",
                       "process_cpu_seconds_total", "node_load1", "scrape_duration_seconds")


async def run_demo(
    *,
    target: str | None = None,
    alertmanager: str | None = None,
    duration: float = 30.0,
    interval: float = 1.0,
    metrics: Iterable[str] | None = None,
) -> int:
    """Run the demo for ``duration`` seconds (0: until cancelled); returns an exit code."""
    from deucalion.config.settings import hide_password
    from deucalion.provisioner import MetricsProvisioner

    synthetic = None
    if target is None:
        synthetic = SyntheticTarget()
        target = await synthetic.start()
        desired = tuple(metrics or DEMO_METRICS)
    else:
        desired = tuple(metrics or REAL_TARGET_METRICS)
    settings: dict[str, object] = {
        "targets": [target],
        "scrape_interval": interval,
        "telemetry": {"listen": "127.0.0.1:0"},
    }
    if alertmanager:
        settings["alertmanager"] = {"urls": [alertmanager]}
    try:
        provisioner = MetricsProvisioner(settings)
        provisioner.register(RobustZScoreObserver(desired))
        # The URLs as validated, not as typed, so that a password shows as *** whatever the
        # form it was written in.
        urls = ", ".join(hide_password(url) for url in provisioner.settings.alertmanager.urls)
        print(f"deucalion demo: watching {target} every {interval:g}s for "
              f"{', '.join(desired)}" + (f" for {duration:g}s" if duration else "")
              + (f"; alerts go to {urls}" if urls else "")
              + ". Ctrl-C stops.", flush=True)
        stop = asyncio.Event()
        # Signals are caught before the start: a Ctrl-C while workers start stops cleanly too.
        with stopping_on_signals(stop.set):
            async with provisioner:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=duration or None)
        print(f"deucalion demo: done after {provisioner.stats.cycles} cycles.", file=sys.stderr)
    finally:
        if synthetic is not None:
            await synthetic.close()
    return 0
