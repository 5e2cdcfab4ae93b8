"""MetricsProvisioner.stop(): calls in flight get the grace period, alerts a flush of their own."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import deucalion as dc
from tests.helpers import NODE_LIKE, TargetServer, text, wait_for
from tests.observers import RecordingObserver


class StandInAlertmanager:
    """``POST /api/v2/alerts`` on a TargetServer: records alerts, answering after ``delay``."""

    def __init__(self, server: TargetServer, delay: float) -> None:
        self.delay = delay
        self.requests = 0
        self.alerts: list[dict[str, Any]] = []
        server.app.router.add_post("/api/v2/alerts", self.handle)
        self.url = server.url("")

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.json()
        await asyncio.sleep(self.delay)
        self.alerts.extend(body)
        return web.Response()


def provisioner_for(url: str, am: StandInAlertmanager, **settings: Any) -> dc.MetricsProvisioner:
    return dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.3, telemetry={"enabled": False}, **settings
    )


async def test_an_alert_returned_late_in_the_grace_period_is_still_flushed(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """A call that uses most of the grace period still has its alert delivered after it."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    # Slower to answer than what the call leaves of the grace period.
    am = StandInAlertmanager(target_server, delay=1.0)
    await target_server.start()
    provisioner = provisioner_for(
        url, am, shutdown_grace_period=2, alertmanager={"urls": [am.url], "timeout": 5}
    )
    provisioner.register(RecordingObserver({"up"}, tmp_path / "calls", sleep=1.5, result="anomaly"))
    await provisioner.start()
    try:
        # Stop during the very first call: no alert was sent before it.
        await wait_for(lambda: provisioner.workers[0].busy)
        assert am.requests == 0
    finally:
        await provisioner.stop()
    assert [a["annotations"] for a in am.alerts] == [{"description": "anomaly"}]


async def test_a_forced_stop_cuts_the_alert_flush_short(
    target_server: TargetServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """stop(grace=0) during an orderly stop's flush to a hung Alertmanager ends both at once."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    am = StandInAlertmanager(target_server, delay=3600)
    await target_server.start()
    # An orderly stop would wait min(timeout, 10 s) = 10 s for the hung Alertmanager.
    provisioner = provisioner_for(url, am, alertmanager={"urls": [am.url], "timeout": 60})
    provisioner.register(RecordingObserver({"up"}, tmp_path / "calls", result="anomaly"))
    await provisioner.start()
    await wait_for(lambda: am.requests > 0)
    orderly = asyncio.create_task(provisioner.stop())
    await wait_for(lambda: not provisioner.workers or not provisioner.workers[0].ready)
    with caplog.at_level(logging.WARNING, logger="deucalion.alerting.alertmanager"):
        # A bound far below the orderly stop's 10 s flush, not a measure of speed.
        await asyncio.wait_for(provisioner.stop(grace=0), 5)
        await orderly
    assert not provisioner.running
    assert "1 alert(s) not sent before shutdown" in caplog.text
