"""Alerting under faults, against real Alertmanagers: errors, a hung peer, SIGTERM, a full queue.

The faults a real Alertmanager cannot produce on demand come from small loopback stand-ins in
front of or beside it: a proxy that answers 500 until the test lets requests through, and a
raw server that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

import deucalion as dc
from deucalion.provisioner import MetricsProvisioner
from tests.integration import servers
from tests.integration.test_alerting_real import active_alerts, eventually
from tests.integration.test_core_real import children_of, survivors

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0  # upper bound for anything to happen; tests poll, they never assert durations


class SpikeObserver(dc.MetricsObserver):
    """Alerts on every target whose ``spike`` gauge is above 0."""

    def __init__(self) -> None:
        super().__init__({"spike"})

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        return [
            dc.Alert(labels={"severity": "page"}, target=url)
            for url, samples in targets_data_dict.items()
            if samples.get("spike", {}).get("{}", 0.0) > 0
        ]


class GrowingObserver(dc.MetricsObserver):
    """Keeps firing one more distinct alert per call, up to ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__({"spike"})
        self.limit = limit
        self.calls = 0

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        self.calls = min(self.calls + 1, self.limit)
        return [dc.Alert(labels={"n": str(n)}) for n in range(1, self.calls + 1)]


class Targets:
    """Loopback metrics targets whose ``spike`` values the test sets."""

    def __init__(self) -> None:
        self.spikes: dict[str, int] = {}
        self.app = web.Application()
        self.app.router.add_get("/{name}/metrics", self.handle)
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        spike = self.spikes.get(request.match_info["name"], 0)
        return web.Response(text=f"# TYPE spike gauge\nspike {spike}\n")

    def url(self, name: str) -> str:
        return f"{self.base}/{name}/metrics"

    def configs(self, *names: str) -> list[dict[str, Any]]:
        """Target settings; the ``app`` label tells apart alerts of one instance's targets."""
        return [{"url": self.url(name), "labels": {"app": name}} for name in names]


@pytest.fixture
async def targets() -> AsyncIterator[Targets]:
    """Metrics targets on a free loopback port."""
    t = Targets()
    runner = web.AppRunner(t.app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    t.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield t
    await runner.cleanup()


class FailingProxy:
    """Answers ``POST /api/v2/alerts`` with 500 until ``healthy``, then forwards upstream."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.healthy = False
        self.failed: list[list[dict[str, Any]]] = []
        """The alerts of every POST answered with 500."""
        self.forwarded = 0
        self.url = ""
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.healthy:
            self.failed.append(await request.json())
            return web.Response(status=500, text="stand-in failure")
        assert self._session is not None
        async with self._session.post(
            f"{self.upstream}/api/v2/alerts",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as up:
            self.forwarded += 1
            return web.Response(status=up.status, body=await up.read())

    async def __aenter__(self) -> FailingProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/api/v2/alerts", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()
        assert self._session is not None
        await self._session.close()


class HungServer:
    """Accepts connections and reads what comes, but never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = ""
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(65536):
            pass

    async def __aenter__(self) -> HungServer:
        self._server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        # Python 3.11's Server.close() leaves accepted connections open.
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


def provisioner_for(
    urls: list[Any], alertmanagers: list[str], observer: dc.MetricsObserver, **alertmanager: Any
) -> MetricsProvisioner:
    provisioner = MetricsProvisioner(
        targets=urls,
        scrape_interval=0.3,
        alertmanager={"urls": alertmanagers, "resend_interval": "1s", **alertmanager},
        telemetry={"listen": "127.0.0.1:0"},
        shutdown_grace_period=2,
    )
    provisioner.register(observer)
    return provisioner


async def test_alerts_survive_an_alertmanager_answering_500_for_a_while(
    alertmanager: servers.Server, targets: Targets
) -> None:
    """Alerts reported during a run of 500s arrive once, with their first startsAt; cycles go on."""
    targets.spikes["a"] = 1
    urls = targets.configs("a", "b")
    async with (
        aiohttp.ClientSession() as session,
        FailingProxy(alertmanager.url) as proxy,
        provisioner_for(urls, [proxy.url], SpikeObserver()) as p,
    ):
        await eventually(lambda: len(proxy.failed) >= 1)
        cycles_at_first_failure = p.stats.cycles
        targets.spikes["b"] = 1  # a second alert, first reported during the outage
        await eventually(lambda: any(len(batch) == 2 for batch in proxy.failed))
        assert p.stats.cycles > cycles_at_first_failure
        first_starts: dict[str, str] = {}
        for batch in proxy.failed:
            for alert in batch:
                first_starts.setdefault(alert["labels"]["app"], alert["startsAt"])
        proxy.healthy = True

        async def both_arrived() -> bool:
            return len(await active_alerts(session, alertmanager.url)) == 2

        await eventually(both_arrived)
        assert p.stats.cycles > cycles_at_first_failure
        # Re-sends after the outage carry the same identity and start.
        await eventually(lambda: proxy.forwarded >= 3)
        received = await active_alerts(session, alertmanager.url)
    assert sorted(a["labels"]["app"] for a in received) == ["a", "b"]
    instance = targets.base.removeprefix("http://")
    for alert in received:
        app = alert["labels"]["app"]
        assert alert["labels"] == {
            "alertname": "DeucalionAnomaly",
            "observer": "SpikeObserver",
            "severity": "page",
            "instance": instance,
            "job": "deucalion",
            "app": app,
        }
        assert datetime.fromisoformat(alert["startsAt"]) == datetime.fromisoformat(
            first_starts[app]
        )


async def test_a_hung_alertmanager_does_not_hold_back_its_healthy_peer(
    alertmanager: servers.Server, targets: Targets
) -> None:
    """One HA member that never answers times out and is retried; the other gets every alert."""
    targets.spikes["a"] = 1
    urls = targets.configs("a", "b")
    async with (
        aiohttp.ClientSession() as session,
        HungServer() as hung,
        provisioner_for(urls, [hung.url, alertmanager.url], SpikeObserver(), timeout="500ms") as p,
    ):
        sender = p.alert_sender
        assert sender is not None
        hung_client = sender.clients[0]

        async def arrived(count: int) -> bool:
            return len(await active_alerts(session, alertmanager.url)) == count

        await eventually(lambda: arrived(1))
        targets.spikes["b"] = 1
        await eventually(lambda: arrived(2))
        await eventually(lambda: hung_client.stats.failed >= 2 and hung.connections >= 2)
        cycles = p.stats.cycles
        await eventually(lambda: p.stats.cycles > cycles)
        assert hung_client.stats.sent == 0


APP = """\
import sys, time
import deucalion as dc


class SlowObserver(dc.MetricsObserver):
    def __init__(self, marker):
        super().__init__({{"up"}})
        self.marker = marker

    def new_data(self, targets_data_dict):
        open(self.marker, "w").close()  # the test sends SIGTERM now
        time.sleep(1.5)
        return dc.Alert(labels={{"phase": "in-flight"}})


if __name__ == "__main__":
    provisioner = dc.MetricsProvisioner(
        targets=["{target}"], scrape_interval=0.5, telemetry={{"enabled": False}},
        alertmanager={{"urls": ["{am}"]}}, shutdown_grace_period=5)
    provisioner.register(SlowObserver(sys.argv[1]))
    provisioner.run()
"""


def test_sigterm_during_a_call_flushes_its_alert_and_exits_cleanly(
    alertmanager: servers.Server, tmp_path: Path
) -> None:
    """SIGTERM mid-call: the call finishes in the grace period, its alert reaches Alertmanager."""
    app = tmp_path / "app.py"
    # Alertmanager's own /metrics is the target: a real one, already running.
    app.write_text(APP.format(target=f"{alertmanager.url}/metrics", am=alertmanager.url))
    marker = tmp_path / "in-flight"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(app), str(marker)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not marker.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "new_data was never called"
            time.sleep(0.05)
        workers = children_of(process.pid)
        assert workers, "the observer's worker process is a child of the application"
        assert fetch_alerts(alertmanager.url) == [], "no alert before the call returns"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "received SIGTERM: stopping" in err
    assert "not sent before shutdown" not in err
    assert [a["labels"]["phase"] for a in fetch_alerts(alertmanager.url)] == ["in-flight"]
    assert not survivors(workers), "a worker outlived the application"


def fetch_alerts(am_url: str) -> list[dict[str, Any]]:
    """Alertmanager's active alerts, fetched without an event loop (for subprocess tests)."""
    with urllib.request.urlopen(f"{am_url}/api/v2/alerts?active=true", timeout=5) as response:
        alerts: list[dict[str, Any]] = json.load(response)
        return alerts


def metric(text: str, name: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


async def test_a_full_queue_drops_the_oldest_and_delivers_the_newest(
    server_factory: Callable[..., servers.Server], targets: Targets
) -> None:
    """Alertmanager down, queue_size 5, 8 alerts: 3 oldest dropped and counted, 5 newest arrive."""
    # The port stays ours, refusing connections, until the Alertmanager takes it over.
    with servers.reserve_port() as reserved:
        am_url = f"http://127.0.0.1:{reserved.getsockname()[1]}"
        # One resend an hour: only new alerts enter the queue while the test runs.
        p = provisioner_for(
            [targets.url("a")],
            [am_url],
            GrowingObserver(limit=8),
            queue_size=5,
            resend_interval="1h",
        )
        async with aiohttp.ClientSession() as session, p:
            assert p.telemetry.server is not None
            metrics_url = f"{p.telemetry.server.url}/metrics"

            async def dropped() -> float:
                async with session.get(metrics_url) as response:
                    return metric(await response.text(), "deucalion_alerts_dropped_total")

            async def three_dropped() -> bool:
                return await dropped() == 3

            await eventually(three_dropped)
            # Started in a thread: the fixture waits for readiness with blocking calls.
            am = await asyncio.to_thread(
                server_factory, servers.start_alertmanager, listen_socket=reserved
            )

            async def five_arrived() -> bool:
                return len(await active_alerts(session, am.url)) == 5

            await eventually(five_arrived)
            received = await active_alerts(session, am.url)
            assert await dropped() == 3
    assert sorted(int(a["labels"]["n"]) for a in received) == [4, 5, 6, 7, 8]


async def test_a_sender_that_dies_of_a_bug_is_restarted_and_its_alerts_arrive(
    alertmanager: servers.Server,
    targets: Targets,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The task sending to an Alertmanager dies of a bug: it is logged with its traceback,
    /readyz fails while it waits to be restarted, and once restarted the queued alert reaches
    the real Alertmanager (before, /healthz stayed 200 and alerts queued forever)."""
    from deucalion import _supervision
    from deucalion.alerting.alertmanager import AlertmanagerClient

    monkeypatch.setattr(_supervision, "FIRST_BACKOFF", 2.0)
    original = AlertmanagerClient._run
    deaths: list[int] = []

    async def dies_once(self: AlertmanagerClient) -> None:
        if not deaths:
            deaths.append(1)
            await self._wakeup.wait()  # die with alerts queued
            raise RuntimeError("a bug in the sending task")
        await original(self)

    monkeypatch.setattr(AlertmanagerClient, "_run", dies_once)
    targets.spikes["a"] = 1
    async with (
        aiohttp.ClientSession() as session,
        provisioner_for(targets.configs("a"), [alertmanager.url], SpikeObserver()) as p,
    ):
        server = p.telemetry.server
        assert server is not None
        await eventually(lambda: any(t.restarting for t in p.supervised_tasks()))
        async with session.get(server.url + "/readyz") as response:
            assert response.status == 503

        async def delivered() -> bool:
            return len(await active_alerts(session, alertmanager.url)) == 1

        await eventually(delivered)
        async with session.get(server.url + "/readyz") as response:
            assert response.status == 200
    assert "the sender to Alertmanager" in caplog.text
    assert "a bug in the sending task" in caplog.text
