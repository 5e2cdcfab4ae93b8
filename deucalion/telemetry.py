"""deucalion's own HTTP server and metrics: ``/metrics``, ``/healthz``, ``/readyz``, ``/alerts``.

Every provisioner owns a ``Telemetry`` with its own prometheus_client ``CollectorRegistry``
(never the global one, so two provisioners in one process do not clash). Most metrics are read
from the provisioner's state at scrape time by a custom collector, so the cycle does no
bookkeeping for them; only the observer call durations are a histogram fed per call.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

# aiohttp's low-level server (documented as aiohttp.web.Server), without aiohttp.web's
# application, router and runner: four fixed paths need none of them, and importing
# aiohttp.web costs the application 1.4 MB more.
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response, json_response
from aiohttp.web_server import Server
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deucalion.alerting.alerts import SeriesScore
from deucalion.dispatch import CallOutcome
from deucalion.errors import ConfigError
from deucalion.history.labels import series_labels
from deucalion.scrape import ScrapeResult

if TYPE_CHECKING:
    from deucalion.provisioner import MetricsProvisioner
    from deucalion.targets import Target

__all__ = ["Telemetry", "TelemetryServer", "start_telemetry_server"]

log = logging.getLogger(__name__)

#: /healthz fails when no cycle finished for this many scrape intervals.
HEALTHY_INTERVALS = 3
# Seconds a request still being answered at shutdown gets to finish.
SHUTDOWN_TIMEOUT = 5.0


class TelemetryServer:
    """A running HTTP server: ``.url`` is where it listens (the real port when bound to 0)."""

    def __init__(self, handler: Server, listener: asyncio.AbstractServer, url: str) -> None:
        self._handler = handler
        self._listener = listener
        self.url = url

    @property
    def public_url(self) -> str:
        """``url``, with this host's name in place of a wildcard address (for links)."""
        host = urlsplit(self.url).hostname
        if host in ("0.0.0.0", "::"):
            # The host name, not getfqdn(): that may ask DNS, and this runs on the event loop.
            return self.url.replace(f"[{host}]" if host == "::" else host, socket.gethostname(),
                                    1)
        return self.url

    async def close(self) -> None:
        """Stop serving; twice is harmless."""
        # Shielded: a cancelled shutdown must still release the listening socket.
        await asyncio.shield(_stop_serving(self._handler, self._listener))


async def _stop_serving(handler: Server, listener: asyncio.AbstractServer) -> None:
    # As aiohttp's runners do: stop accepting, let requests already in flight start, close
    # idle connections, then give the others a moment to finish.
    listener.close()
    await asyncio.sleep(0)
    handler.pre_shutdown()
    await handler.shutdown(SHUTDOWN_TIMEOUT)
    await listener.wait_closed()


async def start_telemetry_server(
    listen: str,
    *,
    registry: CollectorRegistry,
    healthy: Callable[[], bool] = lambda: True,
    ready: Callable[[], bool] = lambda: True,
    alerts: Callable[[], Sequence[Any]] = list,
) -> TelemetryServer:
    """Serve ``registry`` and the health endpoints on ``listen`` (``host:port``, port 0 ok)."""

    def metrics() -> Response:
        body = generate_latest(registry)
        return Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def healthz() -> Response:
        ok = healthy()
        return Response(status=200 if ok else 503, text="ok\n" if ok else "stalled\n")

    def readyz() -> Response:
        ok = ready()
        return Response(status=200 if ok else 503, text="ready\n" if ok else "not ready\n")

    def firing() -> Response:
        return json_response(list(alerts()))

    routes: dict[str, Callable[[], Response]] = {
        "/metrics": metrics, "/healthz": healthz, "/readyz": readyz, "/alerts": firing}

    async def handle(request: BaseRequest) -> Response:
        route = routes.get(request.path)
        if route is None:
            return Response(status=404, text=f"not found: deucalion serves {', '.join(routes)}\n")
        if request.method not in ("GET", "HEAD"):
            return Response(status=405, headers={"Allow": "GET, HEAD"}, text="use GET\n")
        return route()

    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    handler = Server(handle, access_log=None)
    try:
        listener = await asyncio.get_running_loop().create_server(handler, host, int(port))
    except OSError as exc:
        raise ConfigError(
            f"cannot serve deucalion's metrics on telemetry.listen {listen}: "
            f"{exc.strerror or exc}; choose another host:port (port 0 picks a free one) or set "
            "telemetry.enabled: false"
        ) from None
    bound_host, bound_port = listener.sockets[0].getsockname()[:2]
    shown = bound_host if ":" not in bound_host else f"[{bound_host}]"
    url = f"http://{shown}:{bound_port}"
    log.info("deucalion serves /metrics, /healthz, /readyz and /alerts on %s", url)
    return TelemetryServer(handler, listener, url)


class Telemetry:
    """The provisioner's metrics registry, what the cycle records for it, and its server."""

    def __init__(
        self, provisioner: MetricsProvisioner, *, clock: Callable[[], float] = time.time
    ) -> None:
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
        self._clock = clock
        self.started_at = clock()
        self.server: TelemetryServer | None = None
        self._provisioner = provisioner
        self.registry.register(_ProvisionerCollector(provisioner, self))

    def record_call(self, outcome: CallOutcome) -> None:
        """Count one ``new_data`` call's duration."""
        self.call_duration.labels(outcome.observer.name).observe(outcome.duration)

    def healthy(self) -> bool:
        """Whether the cycle loop runs and a cycle finished within the last 3 scrape intervals
        (the first 3 intervals after start count as healthy: the first cycle may be slow)."""
        p = self._provisioner
        if not p.running or p.cycle_loop_ended:
            # A dead cycle loop is unhealthy at once, not only once its last cycle is old.
            return False
        last = max(p.stats.last_cycle_end or 0.0, self.started_at)
        return self._clock() - last <= HEALTHY_INTERVALS * p.settings.scrape_interval

    def ready(self) -> bool:
        """Whether the first cycle is done and every observer's worker is up."""
        p = self._provisioner
        return p.running and p.stats.cycles > 0 and all(w.ready for w in p.workers)

    async def start(self, listen: str, alerts: Callable[[], Sequence[Any]]) -> None:
        """Start the HTTP server on ``listen``."""
        self.started_at = self._clock()
        self.server = await start_telemetry_server(
            listen, registry=self.registry, healthy=self.healthy, ready=self.ready, alerts=alerts
        )

    async def close(self) -> None:
        """Stop the HTTP server, if any."""
        server, self.server = self.server, None
        if server is not None:
            await server.close()


class _ProvisionerCollector(Collector):
    """Reads the provisioner's state when /metrics is scraped."""

    def __init__(self, provisioner: MetricsProvisioner, telemetry: Telemetry) -> None:
        self._p = provisioner
        self._t = telemetry

    def collect(self) -> Iterator[Metric]:
        p = self._p
        yield CounterMetricFamily("deucalion_cycles", "Cycles run (scrape, then hand off).",
                                  value=p.stats.cycles)
        yield CounterMetricFamily("deucalion_cycle_overruns",
                                  "Cycles that took longer than scrape_interval.",
                                  value=p.stats.overruns)
        yield GaugeMetricFamily("deucalion_cycle_duration_seconds",
                                "Duration of the last cycle.", value=p.stats.last_cycle_duration)
        yield from self._targets()
        yield from self._observers()
        yield from self._alerts()

    def _targets(self) -> Iterator[Metric]:
        names = ["target", "instance", "job"]
        up = GaugeMetricFamily("deucalion_target_up", "1 if the last scrape succeeded.",
                               labels=names)
        duration = GaugeMetricFamily("deucalion_target_scrape_duration_seconds",
                                     "Duration of the last scrape of the target.", labels=names)
        samples = GaugeMetricFamily(
            "deucalion_target_samples_scraped",
            "Samples the target exposed in the last scrape (counted when an observer desires "
            "scrape_samples_scraped, or by the federating Prometheus).", labels=names)
        for result in self._t.scrapes:
            t = result.target
            values = [t.url, t.instance, t.job]
            up.add_metric(values, 1.0 if result.up else 0.0)
            duration.add_metric(values, result.duration)
            if result.samples_scraped is not None:
                samples.add_metric(values, result.samples_scraped)
        yield from (up, duration, samples)

    def _observers(self) -> Iterator[Metric]:
        families = {
            "calls": CounterMetricFamily("deucalion_observer_calls",
                                         "new_data calls that returned or raised.",
                                         labels=["observer"]),
            "errors": CounterMetricFamily("deucalion_observer_errors",
                                          "new_data calls that raised, crashed or timed out.",
                                          labels=["observer"]),
            "restarts": CounterMetricFamily("deucalion_observer_restarts",
                                            "Worker processes replaced.", labels=["observer"]),
            "dropped": CounterMetricFamily("deucalion_observer_dropped_payloads",
                                           "Data dropped because the observer was still busy.",
                                           labels=["observer"]),
            "timeouts": CounterMetricFamily("deucalion_observer_timeouts",
                                            "Calls longer than observer_timeout.",
                                            labels=["observer"]),
        }
        up = GaugeMetricFamily("deucalion_observer_up", "1 if the observer's worker is up.",
                               labels=["observer"])
        for worker in self._p.workers:
            for field, family in families.items():
                family.add_metric([worker.name], getattr(worker.stats, field))
            up.add_metric([worker.name], 1.0 if worker.ready else 0.0)
        yield from families.values()
        yield up

    def _alerts(self) -> Iterator[Metric]:
        sender = self._p.alert_sender
        if sender is None:
            return
        names = ["alertmanager"]
        sent = CounterMetricFamily("deucalion_alerts_sent", "Alerts Alertmanager accepted.",
                                   labels=names)
        failed = CounterMetricFamily("deucalion_alerts_failed",
                                     "Alerts in requests that failed (retried unless 4xx).",
                                     labels=names)
        rejected = CounterMetricFamily("deucalion_alerts_rejected",
                                       "Alerts refused with a 4xx answer (not retried).",
                                       labels=names)
        dropped = CounterMetricFamily("deucalion_alerts_dropped",
                                      "Alerts dropped, oldest first, from a full queue.",
                                      labels=names)
        queued = GaugeMetricFamily("deucalion_alerts_queued", "Alerts waiting to be sent.",
                                   labels=names)
        for client in sender.clients:
            sent.add_metric([client.name], client.stats.sent)
            failed.add_metric([client.name], client.stats.failed)
            rejected.add_metric([client.name], client.stats.rejected)
            dropped.add_metric([client.name], client.stats.dropped)
            queued.add_metric([client.name], client.queued)
        yield from (sent, failed, rejected, dropped, queued)
        firing = GaugeMetricFamily("deucalion_alerts_firing", "Alerts firing now.",
                                   labels=["observer"])
        counts: dict[str, int] = {w.name: 0 for w in self._p.workers}
        for payload in sender.firing():
            name = payload["labels"].get("observer", "")
            counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            firing.add_metric([name], count)
        yield firing
        score = GaugeMetricFamily(
            "deucalion_anomaly_score",
            "The latest anomaly score an observer returned, per target ('' for none).",
            labels=["observer", "target", "instance", "job"],
        )
        targets = {r.target.url: r.target for r in self._t.scrapes}
        for observer, scores in sender.scores.items():
            for url, value in scores.items():
                target = targets.get(url) if url is not None else None
                score.add_metric([observer, url or "", target.instance if target else "",
                                  target.job if target else ""], value)
        yield score
        yield self._series_scores(sender.series_scores, targets)

    @staticmethod
    def _series_scores(series_scores: Mapping[str, Sequence[SeriesScore]],
                       targets: Mapping[str, Target]) -> Metric:
        """Per-series scores, labelled with the series' own labels (``exported_`` before a
        name that clashes with deucalion's)."""
        family = Metric("deucalion_series_anomaly_score",
                        "The latest anomaly score an observer returned per series (Scores).",
                        "gauge")
        for observer, scores in series_scores.items():
            for item in scores:
                target = targets.get(item.target) if item.target is not None else None
                labels = {"observer": observer, "target": item.target or "",
                          "instance": target.instance if target else "",
                          "job": target.job if target else "", "metric": item.metric}
                try:
                    own = series_labels(item.series)
                except ValueError:
                    own = {"series": item.series}
                for name, value in own.items():
                    while name in labels:
                        name = "exported_" + name
                    labels[name] = value
                family.add_sample("deucalion_series_anomaly_score", labels, item.score)
        return family
