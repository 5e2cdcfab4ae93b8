"""The mutating admission webhook: an aiohttp HTTPS server with ``/mutate`` and ``/healthz``.

``start_injector`` binds it (port 0 picks a free port, for tests) and returns an
``InjectorServer`` handle with ``.url`` and ``async close()``. A request the webhook cannot
understand gets HTTP 400 with the reason; anything unexpected while planning the patch is logged
and answered "allowed, no patch", so a bug in the injector never blocks a pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from typing import Any

from aiohttp import web

from deucalion.injector.mutation import plan_injection
from deucalion.injector.review import ReviewError, parse_review, review_response
from deucalion.injector.settings import InjectorSettings

__all__ = [
    "InjectorServer",
    "make_app",
    "server_ssl_context",
    "start_injector",
]

log = logging.getLogger("deucalion.injector")

SETTINGS = web.AppKey("settings", InjectorSettings)
# A Pod is rarely more than a few hundred KiB; the API server caps objects near 1.5 MiB.
MAX_BODY = 8 * 1024 * 1024
# cert-manager renews the serving certificate in place; new connections pick it up this often.
CERT_RELOAD_SECONDS = 60.0


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) serving ``cert_file`` with ``key_file``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _mutate(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        review = parse_review(body)
    except ReviewError as exc:
        log.warning("rejected a request to /mutate: %s", exc.reason)
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
        return web.json_response(review_response(admission))
    try:
        injection = plan_injection(admission.object, request.app[SETTINGS])
    except Exception:
        log.exception(
            "could not plan the injection of pod %s; letting it pass", admission.pod_label
        )
        warning = "deucalion injector failed on this pod and did not inject it (see its logs)"
        return web.json_response(review_response(admission, warnings=[warning]))
    if injection.injected:
        log.info("injecting pod %s%s", admission.pod_label, " (dry run)" * bool(admission.dry_run))
    else:
        log.debug("not injecting pod %s: %s", admission.pod_label, injection.skipped)
    return web.json_response(
        review_response(admission, patch=injection.patch, warnings=injection.warnings)
    )


def make_app(settings: InjectorSettings) -> web.Application:
    """The aiohttp application: ``POST /mutate`` and ``GET /healthz``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app.router.add_post("/mutate", _mutate)
    app.router.add_get("/healthz", _healthz)
    return app


class InjectorServer:
    """A running injector; ``url`` is its base URL, ``close()`` stops it (twice is harmless)."""

    def __init__(
        self, runner: web.AppRunner, url: str, reload_task: asyncio.Task[None] | None
    ) -> None:
        self._runner = runner
        self._reload_task = reload_task
        self.url = url
        self.closed = False

    async def close(self) -> None:
        """Stop accepting connections, finish the requests in flight and release the port."""
        if self.closed:
            return
        self.closed = True
        if self._reload_task is not None:
            self._reload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload_task
        # Shielded so a cancelled caller still releases the socket.
        await asyncio.shield(self._runner.cleanup())

    async def __aenter__(self) -> InjectorServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _reload_certificates(
    context: ssl.SSLContext, cert_file: str, key_file: str, every: float
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
        except (OSError, ssl.SSLError) as exc:
            # Mid-rotation the pair may be inconsistent for a moment; try again next time.
            log.warning("could not reload the serving certificate %s: %s", cert_file, exc)


async def start_injector(
    settings: InjectorSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    tls: bool = True,
) -> InjectorServer:
    """Start the webhook server and return its handle.

    ``host`` and ``port`` default to ``settings.server``; port 0 binds a free port and
    ``url`` tells which. With ``tls`` (the default) it serves HTTPS with ``ssl_context`` or,
    when that is None, the certificate and key files named in ``settings.server``, reloaded
    when they change. ``tls=False`` serves plain HTTP (behind a TLS-terminating proxy).
    """
    host = settings.server.host if host is None else host
    port = settings.server.port if port is None else port
    reload_task: asyncio.Task[None] | None = None
    if tls and ssl_context is None:
        cert, key = settings.server.cert_file, settings.server.key_file
        ssl_context = await asyncio.to_thread(server_ssl_context, cert, key)
        reload_task = asyncio.create_task(
            _reload_certificates(ssl_context, cert, key, CERT_RELOAD_SECONDS),
            name="deucalion-injector-cert-reload",
        )
    runner = web.AppRunner(make_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context if tls else None)
        await site.start()
    except BaseException:
        if reload_task is not None:
            reload_task.cancel()
        await runner.cleanup()
        raise
    bound: Any = runner.addresses[0]
    bound_host = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if ":" in bound_host:
        bound_host = f"[{bound_host}]"
    url = f"{'https' if tls else 'http'}://{bound_host}:{bound[1]}"
    return InjectorServer(runner, url, reload_task)
