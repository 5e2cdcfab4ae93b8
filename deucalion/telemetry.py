"""deucalion's own HTTP server and metrics: ``/metrics``, ``/healthz``, ``/readyz``, ``/alerts``.

Every provisioner owns a ``Telemetry`` with its own prometheus_client ``CollectorRegistry``
(never the global one, so two provisioners in one process do not clash). Most metrics are read
at scrape time, by a custom collector, from a ``TelemetrySource`` (what telemetry reads of the
provisioner: a narrow Protocol, so telemetry imports no provisioner), so the cycle does no
bookkeeping for them; the observer call durations are a histogram fed per call, and the
anomaly scores are recorded per result.

``/metrics`` is rendered off the event loop: what it reports is copied on the loop (a
``_Snapshot``, a few references and small dicts), and the text, which takes long for tens of
thousands of series scores, is rendered from that copy in a thread. Requests that arrive while
a render runs share it, so a crowd of scrapers of deucalion costs one render at a time and never
starves the cycle.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deucalion._http import redact_url
from deucalion.alerting.alerts import SeriesScore, TargetLike
from deucalion.collection.result import ScrapeResult
from deucalion.errors import ConfigError
from deucalion.history.labels import series_labels

__all__ = ["Telemetry", "TelemetryServer", "TelemetrySource", "start_telemetry_server"]

log = logging.getLogger(__name__)


class CycleCounters(Protocol):
    """The cycle loop's counters (``deucalion.provisioner.CycleStats``)."""

    @property
    def cycles(self) -> int: ...
    @property
    def overruns(self) -> int: ...
    @property
    def last_cycle_end(self) -> float | None: ...
    @property
    def last_cycle_duration(self) -> float: ...


class ObserverCounters(Protocol):
    """One observer's counters (``deucalion.dispatch.ObserverStats``)."""

    @property
    def calls(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def restarts(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def timeouts(self) -> int: ...


class ObserverState(Protocol):
    """One observer's worker, as telemetry sees it."""

    @property
    def name(self) -> str: ...
    @property
    def ready(self) -> bool: ...
    @property
    def stats(self) -> ObserverCounters: ...


class AlertmanagerCounters(Protocol):
    """One Alertmanager's counters (``deucalion.alerting.alertmanager.AlertmanagerStats``)."""

    @property
    def sent(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def dropped(self) -> int: ...


class AlertmanagerState(Protocol):
    """One Alertmanager's client, as telemetry sees it."""

    @property
    def name(self) -> str: ...
    @property
    def queued(self) -> int: ...
    @property
    def stats(self) -> AlertmanagerCounters: ...


class SupervisedTask(Protocol):
    """What health reads of a long-lived task (``deucalion._supervision.Supervised`` is one)."""

    @property
    def healthy(self) -> bool:
        """Whether it is not in a crash loop."""
        ...

    @property
    def running(self) -> bool:
        """Whether it runs now (not waiting to be restarted)."""
        ...


class TelemetrySource(Protocol):
    """What telemetry reads (``MetricsProvisioner`` is one)."""

    @property
    def running(self) -> bool:
        """Whether it has started and not yet stopped."""
        ...

    @property
    def cycle_loop_ended(self) -> bool:
        """Whether its cycle loop ended while running."""
        ...

    @property
    def scrape_interval(self) -> float:
        """Seconds between the starts of two cycles."""
        ...

    @property
    def stats(self) -> CycleCounters:
        """The cycle loop's counters."""
        ...

    @property
    def workers(self) -> Sequence[ObserverState]:
        """The observers' workers."""
        ...

    @property
    def alertmanagers(self) -> Sequence[AlertmanagerState]:
        """The Alertmanagers' clients."""
        ...

    def firing_alerts(self) -> Sequence[Mapping[str, Any]]:
        """The alerts firing now, as sent to Alertmanager."""
        ...

    def supervised_tasks(self) -> Sequence[SupervisedTask]:
        """Its long-lived tasks (the alert senders', say), each restarted when it fails."""
        ...


# A target URL as a label shows it: as logs do, a secret in its query as ***. Cached (bounded)
# because a render labels every series score with its target.
_shown = functools.lru_cache(maxsize=4096)(redact_url)

#: /healthz fails when no cycle finished for this many scrape intervals.
HEALTHY_INTERVALS = 3
# Seconds a request still being answered at shutdown gets to finish.
SHUTDOWN_TIMEOUT = 5.0


class SharedRender:
    """A render of ``/metrics`` in a thread, shared: callers that come while one runs await
    it instead of starting another, so at most one render runs at a time.

    ``prepare`` runs on the event loop and returns the render to run in the thread (it copies
    there what the render reads, so the thread reads nothing the loop changes). A caller that
    is cancelled (a client gone) does not cancel the render the others await.
    """

    def __init__(self, prepare: Callable[[], Callable[[], bytes]]) -> None:
        self._prepare = prepare
        self._running: asyncio.Future[bytes] | None = None

    async def __call__(self) -> bytes:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self._prepare()))
        return await asyncio.shield(self._running)


class TelemetryServer:
    """A running HTTP server: ``.url`` is where it listens (the real port when bound to 0)."""

    def __init__(self, runner: web.ServerRunner, url: str) -> None:
        self._runner = runner
        self.url = url

    @property
    def public_url(self) -> str:
        """``url``, with this host's name in place of a wildcard address (for links)."""
        host = urlsplit(self.url).hostname
        if host in ("0.0.0.0", "::"):
            # The host name, not getfqdn(): that may ask DNS, and this runs on the event loop.
            return self.url.replace(f"[{host}]" if host == "::" else host, socket.gethostname(), 1)
        return self.url

    async def close(self) -> None:
        """Stop serving; twice is harmless."""
        # Shielded: a cancelled shutdown must still release the listening socket. The runner
        # stops accepting, closes idle connections and gives the others a moment to finish.
        await asyncio.shield(self._runner.cleanup())


async def start_telemetry_server(
    listen: str,
    *,
    registry: CollectorRegistry,
    healthy: Callable[[], bool] = lambda: True,
    ready: Callable[[], bool] = lambda: True,
    alerts: Callable[[], Sequence[Any]] = list,
    render: Callable[[], Awaitable[bytes]] | None = None,
) -> TelemetryServer:
    """Serve ``registry`` and the health endpoints on ``listen`` (``host:port``, port 0 ok).

    ``/metrics`` answers with what ``render`` returns; by default, ``registry`` rendered in a
    thread, one render at a time, shared by the requests that arrive while it runs.
    """
    if render is None:
        render = SharedRender(lambda: functools.partial(generate_latest, registry))

    async def metrics() -> web.Response:
        body = await render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def healthz() -> web.Response:
        ok = healthy()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "stalled\n")

    def readyz() -> web.Response:
        ok = ready()
        return web.Response(status=200 if ok else 503, text="ready\n" if ok else "not ready\n")

    def firing() -> web.Response:
        return web.json_response(list(alerts()))

    async def rendered(route: Callable[[], web.Response]) -> web.Response:
        return route()

    routes: dict[str, Callable[[], Awaitable[web.Response]]] = {
        "/metrics": metrics,
        "/healthz": functools.partial(rendered, healthz),
        "/readyz": functools.partial(rendered, readyz),
        "/alerts": functools.partial(rendered, firing),
    }

    async def handle(request: web.BaseRequest) -> web.Response:
        route = routes.get(request.path)
        if route is None:
            return web.Response(
                status=404, text=f"not found: deucalion serves {', '.join(routes)}\n"
            )
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"}, text="use GET\n")
        return await route()

    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    # aiohttp's low-level server (four fixed paths need no application or router), run by its
    # runner: no signal handlers (the host application's), a bounded shutdown.
    runner = web.ServerRunner(
        web.Server(handle, access_log=None), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    site = web.TCPSite(runner, host, int(port))
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"cannot serve deucalion's metrics on telemetry.listen {listen}: "
            f"{exc.strerror or exc}; choose another host:port (port 0 picks a free one) or set "
            "telemetry.enabled: false"
        ) from None
    bound_host, bound_port = runner.addresses[0][:2]
    shown = bound_host if ":" not in bound_host else f"[{bound_host}]"
    url = f"http://{shown}:{bound_port}"
    log.info("deucalion serves /metrics, /healthz, /readyz and /alerts on %s", url)
    return TelemetryServer(runner, url)


class Telemetry:
    """deucalion's metrics registry, what the cycle records for it, and its server.

    It reads the rest from ``source`` (the provisioner) when ``/metrics`` is scraped.
    """

    def __init__(self, source: TelemetrySource, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.call_duration = Histogram(
            "deucalion_observer_call_duration_seconds",
            "Seconds from handing data to an observer until its new_data result came back.",
            ["observer"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.scrapes: list[ScrapeResult] = []
        """The last cycle's scrape results (targets that disappear disappear from here)."""
        self.scores: dict[str, dict[str | None, float]] = {}
        """The latest anomaly score per observer name and target URL."""
        self.series_scores: dict[str, list[SeriesScore]] = {}
        """The latest per-series scores (from a ``Scores`` result) per observer name."""
        self._clock = clock
        self.started_at = clock()
        self.server: TelemetryServer | None = None
        self._source = source
        self.registry.register(_SourceCollector(self.snapshot))
        self._shared = SharedRender(self._prepare_render)

    def record_call(self, observer: str, duration: float) -> None:
        """Count one ``new_data`` call of ``observer`` (its name) that took ``duration``."""
        self.call_duration.labels(observer).observe(duration)

    def record_scores(
        self,
        observer: str,
        scores: dict[str | None, float],
        series_scores: Sequence[SeriesScore] = (),
    ) -> None:
        """The anomaly scores of ``observer``'s latest result, per target URL, and per series
        when it returned ``Scores``."""
        self.scores[observer] = scores
        self.series_scores[observer] = list(series_scores)

    def forget_targets(self, urls: Iterable[str]) -> None:
        """Drop the scores of targets that are gone."""
        gone = set(urls)
        for scores in self.scores.values():
            for url in gone & scores.keys():
                del scores[url]
        for observer, series in self.series_scores.items():
            if any(s.target in gone for s in series):
                self.series_scores[observer] = [s for s in series if s.target not in gone]

    def healthy(self) -> bool:
        """Whether the cycle loop runs and a cycle finished within the last 3 scrape intervals
        (the first 3 intervals after start count as healthy: the first cycle may be slow)."""
        source = self._source
        if not source.running or source.cycle_loop_ended:
            # A dead cycle loop is unhealthy at once, not only once its last cycle is old.
            return False
        if not all(task.healthy for task in source.supervised_tasks()):
            return False  # a task in a crash loop: the sidecar needs a restart
        last = max(source.stats.last_cycle_end or 0.0, self.started_at)
        return self._clock() - last <= HEALTHY_INTERVALS * source.scrape_interval

    def ready(self) -> bool:
        """Whether the first cycle is done, every observer's worker is up and every
        long-lived task runs (none is waiting to be restarted)."""
        source = self._source
        return (
            source.running
            and source.stats.cycles > 0
            and all(w.ready for w in source.workers)
            and all(task.running for task in source.supervised_tasks())
        )

    def snapshot(self) -> _Snapshot:
        """What ``/metrics`` reports of the source now, copied so that a thread may render it
        while the loop goes on changing the source."""
        source = self._source
        stats = source.stats
        firing: dict[str, int] = {w.name: 0 for w in source.workers}
        for payload in source.firing_alerts():
            name = payload["labels"].get("observer", "")
            firing[name] = firing.get(name, 0) + 1
        return _Snapshot(
            cycles=stats.cycles,
            overruns=stats.overruns,
            last_cycle_duration=stats.last_cycle_duration,
            workers=[
                (w.name, {f: getattr(w.stats, f) for f in _OBSERVER_COUNTERS}, w.ready)
                for w in source.workers
            ],
            alertmanagers=[
                (c.name, c.stats.sent, c.stats.failed, c.stats.rejected, c.stats.dropped, c.queued)
                for c in source.alertmanagers
            ],
            firing=firing,
            scrapes=list(self.scrapes),
            scores={observer: dict(scores) for observer, scores in self.scores.items()},
            series_scores={observer: list(s) for observer, s in self.series_scores.items()},
        )

    async def render(self) -> bytes:
        """``/metrics``: the registry rendered in a thread from a snapshot taken now (or the
        render under way, when one is)."""
        return await self._shared()

    def _prepare_render(self) -> Callable[[], bytes]:
        # A registry of its own per render: the histogram (thread-safe) and this snapshot.
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.call_duration)
        snapshot = self.snapshot()
        registry.register(_SourceCollector(lambda: snapshot))
        return functools.partial(generate_latest, registry)

    async def start(self, listen: str) -> None:
        """Start the HTTP server on ``listen``."""
        self.started_at = self._clock()
        self.server = await start_telemetry_server(
            listen,
            registry=self.registry,
            healthy=self.healthy,
            ready=self.ready,
            alerts=self._source.firing_alerts,
            render=self.render,
        )

    async def close(self) -> None:
        """Stop the HTTP server, if any."""
        server, self.server = self.server, None
        if server is not None:
            await server.close()


_OBSERVER_COUNTERS = (
    "calls",
    "errors",
    "restarts",
    "dropped",
    "timeouts",
    "checkpoints",
    "checkpoint_failures",
)


@dataclass(frozen=True)
class _Snapshot:
    """What ``/metrics`` reports of the source, copied on the event loop."""

    cycles: int
    overruns: int
    last_cycle_duration: float
    workers: list[tuple[str, dict[str, int], bool]]
    """Per observer: its name, its counters (``_OBSERVER_COUNTERS``) and whether it is up."""
    alertmanagers: list[tuple[str, int, int, int, int, int]]
    """Per Alertmanager: its name, alerts sent, failed, rejected, dropped and queued."""
    firing: dict[str, int]
    """Alerts firing per observer."""
    scrapes: list[ScrapeResult]
    scores: dict[str, dict[str | None, float]]
    series_scores: dict[str, list[SeriesScore]]


class _SourceCollector(Collector):
    """Renders a snapshot of the source (``snapshot()`` is called once per collection)."""

    def __init__(self, snapshot: Callable[[], _Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield CounterMetricFamily(
            "deucalion_cycles", "Cycles run (scrape, then hand off).", value=snap.cycles
        )
        yield CounterMetricFamily(
            "deucalion_cycle_overruns",
            "Cycles that took longer than scrape_interval.",
            value=snap.overruns,
        )
        yield GaugeMetricFamily(
            "deucalion_cycle_duration_seconds",
            "Duration of the last cycle.",
            value=snap.last_cycle_duration,
        )
        yield from self._targets(snap)
        yield from self._observers(snap)
        yield from self._alerts(snap)

    @staticmethod
    def _targets(snap: _Snapshot) -> Iterator[Metric]:
        names = ["target", "instance", "job"]
        up = GaugeMetricFamily(
            "deucalion_target_up", "1 if the last scrape succeeded.", labels=names
        )
        duration = GaugeMetricFamily(
            "deucalion_target_scrape_duration_seconds",
            "Duration of the last scrape of the target.",
            labels=names,
        )
        samples = GaugeMetricFamily(
            "deucalion_target_samples_scraped",
            "Samples the target exposed in the last scrape (counted when an observer desires "
            "scrape_samples_scraped, or by the federating Prometheus).",
            labels=names,
        )
        for result in snap.scrapes:
            t = result.target
            # The URL as logs show it: a secret in its query never reaches a label.
            values = [_shown(t.url), t.instance, t.job]
            up.add_metric(values, 1.0 if result.up else 0.0)
            duration.add_metric(values, result.duration)
            if result.samples_scraped is not None:
                samples.add_metric(values, result.samples_scraped)
        yield from (up, duration, samples)

    @staticmethod
    def _observers(snap: _Snapshot) -> Iterator[Metric]:
        families = {
            "calls": CounterMetricFamily(
                "deucalion_observer_calls",
                "new_data calls that returned or raised.",
                labels=["observer"],
            ),
            "errors": CounterMetricFamily(
                "deucalion_observer_errors",
                "new_data calls that raised, crashed or timed out.",
                labels=["observer"],
            ),
            "restarts": CounterMetricFamily(
                "deucalion_observer_restarts", "Worker processes replaced.", labels=["observer"]
            ),
            "dropped": CounterMetricFamily(
                "deucalion_observer_dropped_payloads",
                "Data dropped because the observer was still busy.",
                labels=["observer"],
            ),
            "timeouts": CounterMetricFamily(
                "deucalion_observer_timeouts",
                "Calls longer than observer_timeout.",
                labels=["observer"],
            ),
            "checkpoints": CounterMetricFamily(
                "deucalion_observer_checkpoints",
                "Checkpoints of the observer's state taken.",
                labels=["observer"],
            ),
            "checkpoint_failures": CounterMetricFamily(
                "deucalion_observer_checkpoint_failures",
                "Checkpoints that failed (the previous one is kept).",
                labels=["observer"],
            ),
        }
        up = GaugeMetricFamily(
            "deucalion_observer_up", "1 if the observer's worker is up.", labels=["observer"]
        )
        for name, counters, ready in snap.workers:
            for field, family in families.items():
                family.add_metric([name], counters[field])
            up.add_metric([name], 1.0 if ready else 0.0)
        yield from families.values()
        yield up

    def _alerts(self, snap: _Snapshot) -> Iterator[Metric]:
        names = ["alertmanager"]
        sent = CounterMetricFamily(
            "deucalion_alerts_sent", "Alerts Alertmanager accepted.", labels=names
        )
        failed = CounterMetricFamily(
            "deucalion_alerts_failed",
            "Alerts in requests that failed (retried unless 4xx).",
            labels=names,
        )
        rejected = CounterMetricFamily(
            "deucalion_alerts_rejected",
            "Alerts refused with a 4xx answer (not retried).",
            labels=names,
        )
        dropped = CounterMetricFamily(
            "deucalion_alerts_dropped",
            "Alerts dropped, oldest first, from a full queue.",
            labels=names,
        )
        queued = GaugeMetricFamily(
            "deucalion_alerts_queued", "Alerts waiting to be sent.", labels=names
        )
        for name, *counts in snap.alertmanagers:
            families: tuple[CounterMetricFamily | GaugeMetricFamily, ...] = (
                sent,
                failed,
                rejected,
                dropped,
                queued,
            )
            for family, count in zip(families, counts, strict=True):
                family.add_metric([name], count)
        yield from (sent, failed, rejected, dropped, queued)
        firing = GaugeMetricFamily(
            "deucalion_alerts_firing", "Alerts firing now.", labels=["observer"]
        )
        for name, count in snap.firing.items():
            firing.add_metric([name], count)
        yield firing
        score = GaugeMetricFamily(
            "deucalion_anomaly_score",
            "The latest anomaly score an observer returned, per target ('' for none).",
            labels=["observer", "target", "instance", "job"],
        )
        targets = {r.target.url: r.target for r in snap.scrapes}
        for observer, scores in snap.scores.items():
            for url, value in scores.items():
                target = targets.get(url) if url is not None else None
                score.add_metric(
                    [
                        observer,
                        _shown(url) if url else "",
                        target.instance if target else "",
                        target.job if target else "",
                    ],
                    value,
                )
        yield score
        yield from self._series_families(snap.series_scores, targets)

    @staticmethod
    def _series_scores(
        series_scores: Mapping[str, Sequence[SeriesScore]], targets: Mapping[str, TargetLike]
    ) -> Metric:
        """Per-series scores, labelled with the series' own labels (``exported_`` before a
        name that clashes with deucalion's)."""
        return _SourceCollector._series_families(series_scores, targets)[0]

    @staticmethod
    def _series_families(
        series_scores: Mapping[str, Sequence[SeriesScore]], targets: Mapping[str, TargetLike]
    ) -> list[Metric]:
        """The per-series scores (see ``_series_scores``) and, for the scores that carry
        them, the observed values and expected bands, labelled alike."""
        family = Metric(
            "deucalion_series_anomaly_score",
            "The latest anomaly score an observer returned per series (Scores).",
            "gauge",
        )
        companions = {
            "value": Metric(
                "deucalion_series_value", "The value a series' score was given for.", "gauge"
            ),
            "lower": Metric(
                "deucalion_series_expected_lower",
                "The lower end of the band the series' value was expected in.",
                "gauge",
            ),
            "upper": Metric(
                "deucalion_series_expected_upper",
                "The upper end of the band the series' value was expected in.",
                "gauge",
            ),
        }
        for observer, scores in series_scores.items():
            for item in scores:
                target = targets.get(item.target) if item.target is not None else None
                labels = {
                    "observer": observer,
                    "target": _shown(item.target) if item.target else "",
                    "instance": target.instance if target else "",
                    "job": target.job if target else "",
                    "metric": item.metric,
                }
                try:
                    own = series_labels(item.series)
                except ValueError:
                    own = {"series": item.series}
                for name, value in own.items():
                    while name in labels:
                        name = "exported_" + name
                    labels[name] = value
                family.add_sample("deucalion_series_anomaly_score", labels, item.score)
                for field_name, companion in companions.items():
                    number = getattr(item, field_name, math.nan)
                    if isinstance(number, float) and math.isfinite(number):
                        companion.add_sample(companion.name, labels, number)
        return [family, *(c for c in companions.values() if c.samples)]
