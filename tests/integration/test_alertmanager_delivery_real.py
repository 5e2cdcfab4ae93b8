"""Delivery to a real Alertmanager behind a small loopback server: a redirect in front of it,
and a batch refused for one bad alert (issue 13, items 13 and 14)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from deucalion.alerting.alertmanager import AlertmanagerClient
from deucalion.alerting.lifecycle import rfc3339
from tests.integration import servers
from tests.integration.test_alerting_real import active_alerts, eventually


class FrontServer:
    """Stands in front of a real Alertmanager: forwards every request to it and counts the
    POSTs of alerts, or, with ``redirect`` set, answers every request with that redirect."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.posts = 0
        self.redirect: int | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.redirect is not None:
            raise _redirect(self.redirect, self.upstream + request.path_qs)
        if request.method == "POST":
            self.posts += 1
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                data=await request.read(),
                headers={"Content-Type": request.headers.get("Content-Type", "")},
            ) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type=answer.content_type
            )


def _redirect(status: int, location: str) -> web.HTTPException:
    kind = web.HTTPMovedPermanently if status == 301 else web.HTTPFound
    return kind(location=location)


@pytest.fixture
async def front(alertmanager: servers.Server) -> AsyncIterator[FrontServer]:
    """A FrontServer on a free loopback port before the test's real Alertmanager."""
    server = FrontServer(alertmanager.url)
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


def payload(n: int, *, valid: bool = True) -> dict[str, Any]:
    """An alert; an invalid one ends before it starts, which Alertmanager refuses (HTTP 400)."""
    return {
        "labels": {"alertname": "Batch", "n": str(n)},
        "annotations": {},
        "startsAt": rfc3339(1e9),
        "endsAt": rfc3339(2e9 if valid else 1e9 - 60),
    }


async def test_a_redirect_in_front_of_alertmanager_is_an_error_retried_not_a_delivery(
    front: FrontServer, alertmanager: servers.Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A 301 is not followed as a GET: the alerts count as failed, stay queued, are logged with
    where the redirect points, and reach Alertmanager once the address answers."""
    front.redirect = 301
    async with aiohttp.ClientSession() as session:
        client = AlertmanagerClient(front.url, session, backoff_base=0.05, backoff_max=0.2)
        client.start()
        try:
            with caplog.at_level(logging.WARNING, logger="deucalion.alerting.alertmanager"):
                client.enqueue([payload(1)])
                await eventually(lambda: client.stats.failed >= 2)
            assert client.stats.sent == 0 and client.queued == 1
            assert await active_alerts(session, alertmanager.url) == []
            assert f"HTTP 301, a redirect to {alertmanager.url}/api/v2/alerts" in caplog.text
            front.redirect = None  # the address is fixed: the queued alert goes out
            await eventually(lambda: client.stats.sent == 1)
            assert [a["labels"]["n"] for a in await active_alerts(session, alertmanager.url)] == [
                "1"
            ]
        finally:
            await client.close()


async def test_after_one_refused_alert_batches_return_to_full_size(
    front: FrontServer, alertmanager: servers.Server
) -> None:
    """5,001 alerts with one Alertmanager refuses: the culprit is isolated by halving, then
    the rest go out 256 a request, not one request per alert."""
    alerts = [payload(n, valid=n != 0) for n in range(5001)]
    async with aiohttp.ClientSession() as session:
        client = AlertmanagerClient(front.url, session, backoff_base=0.01, backoff_max=0.05)
        client.start()
        try:
            client.enqueue(alerts)
            await eventually(lambda: client.queued == 0 and client.stats.rejected == 1)
            await client.flush()
        finally:
            await client.close()
        assert client.stats.rejected == 1
        # Halving 256 down to the culprit costs 2 requests a level (9 levels), and the other
        # 4,744 alerts need 19 requests of 256: about 37 in all, far below one per alert.
        assert front.posts < 60, front.posts
        assert len(await active_alerts(session, alertmanager.url)) == 5000
