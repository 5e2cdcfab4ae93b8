"""The mutating admission webhook: an aiohttp HTTPS server with ``/mutate`` and ``/healthz``.

``start_injector`` binds it (port 0 picks a free port, for tests) and returns an
``InjectorServer`` handle with ``.url``, ``.metrics_url`` and ``async close()``. A request the
webhook cannot understand gets HTTP 400 with the reason; anything unexpected while planning the
patch is logged and answered "allowed, no patch", so a bug in the injector never blocks a pod.
A plain-HTTP listener serves ``/metrics`` (``deucalion.injector.metrics``) and ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from deucalion.errors import ConfigError
from deucalion.injector.cluster import fetch_kubernetes_version, in_cluster_api_url
from deucalion.injector.metrics import InjectorMetrics, certificate_not_after
from deucalion.injector.mutation import plan_injection
from deucalion.injector.review import ReviewError, parse_review, review_response
from deucalion.injector.settings import InjectorSettings

__all__ = [
    "ClusterState",
    "InjectorServer",
    "make_app",
    "make_metrics_app",
    "server_ssl_context",
    "start_injector",
]

log = logging.getLogger("deucalion.injector")


@dataclass
class ClusterState:
    """What the webhook has learned of the cluster: its version, None until known."""

    kubernetes_version: tuple[int, int] | None = None


SETTINGS = web.AppKey("settings", InjectorSettings)
METRICS = web.AppKey("metrics", InjectorMetrics)
CLUSTER = web.AppKey("cluster", ClusterState)
# A Pod is rarely more than a few hundred KiB; the API server caps objects near 1.5 MiB.
MAX_BODY = 8 * 1024 * 1024
# cert-manager renews the serving certificate in place; new connections pick it up this often.
CERT_RELOAD_SECONDS = 60.0
# A cluster's version changes only when it is upgraded; asked again this often (and sooner
# while it is unknown).
VERSION_REFRESH_SECONDS = 3600.0
VERSION_RETRY_SECONDS = 30.0


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) serving ``cert_file`` with ``key_file``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _mutate(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    body = await request.read()
    try:
        review = parse_review(body)
    except ReviewError as exc:
        log.warning("rejected a request to /mutate: %s", exc.reason)
        metrics.requests.labels(result="invalid").inc()
        return web.Response(status=400, text=exc.reason + "\n")
    admission = review.request
    if (
        admission.operation != "CREATE"
        or admission.kind.kind != "Pod"
        or admission.kind.group != ""
        or admission.sub_resource
        or admission.object is None
    ):
        # Only a new pod can get a container; everything else is none of our business.
        metrics.requests.labels(result="ignored").inc()
        return web.json_response(review_response(admission))
    started = time.perf_counter()
    try:
        injection = plan_injection(
            admission.object,
            request.app[SETTINGS],
            kubernetes_version=request.app[CLUSTER].kubernetes_version,
        )
    except Exception:
        log.exception(
            "could not plan the injection of pod %s; letting it pass", admission.pod_label
        )
        metrics.requests.labels(result="error").inc()
        warning = "deucalion injector failed on this pod and did not inject it (see its logs)"
        return web.json_response(review_response(admission, warnings=[warning]))
    metrics.patch_seconds.observe(time.perf_counter() - started)
    dry_run = " (dry run)" * bool(admission.dry_run)
    if injection.injected:
        metrics.requests.labels(result="injected").inc()
        log.info("injecting pod %s%s", admission.pod_label, dry_run)
    else:
        metrics.requests.labels(result="skipped").inc()
        metrics.skips.labels(reason=injection.reason or "unknown").inc()
        # Opting out is ordinary; every other skip is something an operator may need to see.
        level = logging.DEBUG if injection.reason == "opted-out" else logging.INFO
        log.log(
            level,
            "not injecting pod %s%s [%s]: %s",
            admission.pod_label,
            dry_run,
            injection.reason,
            injection.skipped,
        )
    return web.json_response(
        review_response(admission, patch=injection.patch, warnings=injection.warnings)
    )


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(
    settings: InjectorSettings,
    metrics: InjectorMetrics | None = None,
    cluster: ClusterState | None = None,
) -> web.Application:
    """The webhook's aiohttp application: ``POST /mutate``, ``GET /healthz`` and ``/metrics``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[METRICS] = metrics if metrics is not None else InjectorMetrics()
    app[CLUSTER] = cluster if cluster is not None else ClusterState(settings.cluster.version)
    app.router.add_post("/mutate", _mutate)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app


def make_metrics_app(metrics: InjectorMetrics) -> web.Application:
    """The plain-HTTP application for Prometheus and probes: ``/metrics`` and ``/healthz``."""
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


class InjectorServer:
    """A running injector: ``url`` is the webhook's base URL, ``metrics_url`` that of its
    plain-HTTP ``/metrics`` (None when not served); ``close()`` stops it (twice is harmless)."""

    def __init__(
        self,
        runners: list[web.AppRunner],
        url: str,
        metrics_url: str | None,
        tasks: list[asyncio.Task[None]],
        metrics: InjectorMetrics,
        cluster: ClusterState,
    ) -> None:
        self._runners = runners
        self._tasks = tasks
        self.url = url
        self.metrics_url = metrics_url
        self.metrics = metrics
        self.cluster = cluster
        self.closed = False

    async def close(self) -> None:
        """Stop accepting connections, finish the requests in flight and release the ports."""
        if self.closed:
            return
        self.closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for runner in self._runners:
            # Shielded so a cancelled caller still releases the socket.
            await asyncio.shield(runner.cleanup())

    async def __aenter__(self) -> InjectorServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _note_certificate_expiry(metrics: InjectorMetrics, cert_file: str) -> None:
    try:
        not_after = await asyncio.to_thread(certificate_not_after, cert_file)
    except ImportError:
        log.warning(
            "cannot read the serving certificate's expiry without the cryptography "
            "package (pip install 'deucalion[injector]'): the metric stays unset"
        )
        return
    except (OSError, ValueError) as exc:
        log.warning("cannot read the expiry of the serving certificate %s: %s", cert_file, exc)
        return
    metrics.certificate_expiry.set(not_after)


async def _reload_certificates(
    context: ssl.SSLContext,
    cert_file: str,
    key_file: str,
    every: float,
    metrics: InjectorMetrics,
) -> None:
    def stamp() -> tuple[float, float]:
        return os.stat(cert_file).st_mtime, os.stat(key_file).st_mtime

    seen = await asyncio.to_thread(stamp)
    while True:
        await asyncio.sleep(every)
        try:
            now = await asyncio.to_thread(stamp)
            if now != seen:
                # Loading into the live context serves the new certificate on new connections.
                await asyncio.to_thread(context.load_cert_chain, cert_file, key_file)
                seen = now
                log.info("reloaded the serving certificate %s", cert_file)
                await _note_certificate_expiry(metrics, cert_file)
        except (OSError, ssl.SSLError) as exc:
            # Mid-rotation the pair may be inconsistent for a moment; try again next time.
            log.warning("could not reload the serving certificate %s: %s", cert_file, exc)


async def _follow_kubernetes_version(
    api_url: str, cluster: ClusterState, metrics: InjectorMetrics
) -> None:
    while True:
        try:
            version = await fetch_kubernetes_version(api_url)
        except (OSError, ValueError) as exc:
            log.warning(
                "cannot learn the cluster's Kubernetes version (%s); pods that run to "
                "completion are not injected until it is known (or set "
                "DEUCALION_INJECTOR_CLUSTER__KUBERNETES_VERSION)",
                exc,
            )
            await asyncio.sleep(VERSION_RETRY_SECONDS)
            continue
        except Exception:
            # A bug here must not end the task: the webhook would never learn the version.
            log.exception("unexpected error while asking %s/version; trying again", api_url)
            await asyncio.sleep(VERSION_RETRY_SECONDS)
            continue
        if version != cluster.kubernetes_version:
            log.info("the cluster runs Kubernetes %d.%d", *version)
        cluster.kubernetes_version = version
        metrics.set_kubernetes_version(version)
        await asyncio.sleep(VERSION_REFRESH_SECONDS)


def _url(scheme: str, host: str, runner: web.AppRunner) -> str:
    bound: Any = runner.addresses[0]
    shown = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{scheme}://{shown}:{bound[1]}"


async def start_injector(
    settings: InjectorSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    tls: bool = True,
    kubernetes_api_url: str | None = None,
) -> InjectorServer:
    """Start the webhook server and return its handle.

    Raises ``ConfigError`` when ``settings.sidecar.image`` is not set: pods without a
    ``deucalion.io/image`` annotation would get no sidecar, or one that cannot be pulled.
    ``host``, ``port`` and ``metrics_port`` default to ``settings.server``; port 0 binds a
    free port and ``url`` / ``metrics_url`` tell which. With ``tls`` (the default) it serves
    HTTPS with ``ssl_context`` or, when that is None, the certificate and key files named in
    ``settings.server``, reloaded when they change. ``tls=False`` serves plain HTTP (behind a
    TLS-terminating proxy). Unless ``settings.cluster.kubernetes_version`` is set, the
    cluster's version is asked of ``kubernetes_api_url`` (default: the in-cluster API server,
    when there is one).
    """
    if settings.sidecar.image is None:
        raise ConfigError(
            "the injector has no sidecar image: set DEUCALION_INJECTOR_SIDECAR__IMAGE (or "
            "--image) to a registry-qualified, versioned image such as "
            "registry.example.com/deucalion:0.1.0; deploy/ sets it to the injector's own image"
        )
    host = settings.server.host if host is None else host
    port = settings.server.port if port is None else port
    if metrics_port is None:
        metrics_port = settings.server.metrics_port
    metrics = InjectorMetrics()
    cluster = ClusterState(settings.cluster.version)
    metrics.set_kubernetes_version(cluster.kubernetes_version)
    tasks: list[asyncio.Task[None]] = []
    runners: list[web.AppRunner] = []
    try:
        if tls and ssl_context is None:
            cert, key = settings.server.cert_file, settings.server.key_file
            ssl_context = await asyncio.to_thread(server_ssl_context, cert, key)
            await _note_certificate_expiry(metrics, cert)
            tasks.append(
                asyncio.create_task(
                    _reload_certificates(ssl_context, cert, key, CERT_RELOAD_SECONDS, metrics),
                    name="deucalion-injector-cert-reload",
                )
            )
        runner = web.AppRunner(
            make_app(settings, metrics, cluster), handle_signals=False, access_log=None
        )
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context if tls else None)
        await site.start()
        url = _url("https" if tls else "http", host, runner)
        metrics_url = None
        if metrics_port is not None:
            metrics_runner = web.AppRunner(
                make_metrics_app(metrics), handle_signals=False, access_log=None
            )
            await metrics_runner.setup()
            runners.append(metrics_runner)
            await web.TCPSite(metrics_runner, host, metrics_port).start()
            metrics_url = _url("http", host, metrics_runner)
        api_url = kubernetes_api_url or in_cluster_api_url()
        if cluster.kubernetes_version is None and api_url is not None:
            tasks.append(
                asyncio.create_task(
                    _follow_kubernetes_version(api_url, cluster, metrics),
                    name="deucalion-injector-kubernetes-version",
                )
            )
    except BaseException:
        for task in tasks:
            task.cancel()
        for runner in runners:
            await runner.cleanup()
        raise
    return InjectorServer(runners, url, metrics_url, tasks, metrics, cluster)
