"""Alerts from a real provisioner, scraping a real target, to real Alertmanagers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import deucalion as dc
from deucalion.provisioner import MetricsProvisioner
from deucalion.targets import Target as ScrapeTarget
from tests.integration import servers

WAIT = 30.0  # upper bound for anything to happen; tests poll, they never assert durations


class SpikeObserver(dc.MetricsObserver):
    """Alerts on every target whose ``spike`` gauge is above 0."""

    def __init__(self) -> None:
        super().__init__({"spike"})

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        return [
            dc.Alert(labels={"severity": "page"}, annotations={"summary": "spike seen"}, target=url)
            for url, samples in targets_data_dict.items()
            if samples.get("spike", {}).get("{}", 0.0) > 0
        ]


class Target:
    """A tiny metrics endpoint whose ``spike`` value the test sets."""

    def __init__(self) -> None:
        self.spike = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(text=f"# TYPE spike gauge\nspike {self.spike}\n")


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """A metrics target on a free loopback port."""
    t = Target()
    app = web.Application()
    app.router.add_get("/metrics", t.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    t.url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    yield t
    await runner.cleanup()


def provisioner_for(target: Target, *alertmanager_urls: str) -> MetricsProvisioner:
    provisioner = MetricsProvisioner(
        targets=[{"url": target.url, "labels": {"team": "storage"}}],
        scrape_interval=0.5,
        alertmanager={
            "urls": list(alertmanager_urls),
            "resend_interval": "1s",
            "external_labels": {"cluster": "test"},
        },
        telemetry={"listen": "127.0.0.1:0"},
        shutdown_grace_period=5,
    )
    provisioner.register(metricsObserver=SpikeObserver())
    return provisioner


async def active_alerts(session: aiohttp.ClientSession, am_url: str) -> list[dict[str, Any]]:
    async with session.get(f"{am_url}/api/v2/alerts", params={"active": "true"}) as response:
        response.raise_for_status()
        alerts: list[dict[str, Any]] = await response.json()
        return alerts


async def eventually(check: Callable[[], Awaitable[bool] | bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {WAIT}s")
        await asyncio.sleep(0.2)


async def test_returned_alert_reaches_alertmanager_and_resolves(
    alertmanager: servers.Server, target: Target
) -> None:
    """An Alert from new_data fires in Alertmanager with full labels, then stops being active."""
    target.spike = 1
    async with aiohttp.ClientSession() as session, provisioner_for(target, alertmanager.url) as p:
        found: list[dict[str, Any]] = []

        async def fired() -> bool:
            found[:] = await active_alerts(session, alertmanager.url)
            return bool(found)

        await eventually(fired)
        alert = found[0]
        instance = target.url.split("/")[2]
        assert alert["labels"] == {
            "alertname": "DeucalionAnomaly",
            "observer": "SpikeObserver",
            "severity": "page",
            "instance": instance,
            "job": "deucalion",
            "team": "storage",
            "cluster": "test",
        }
        assert alert["annotations"] == {"summary": "spike seen"}
        assert alert["status"]["state"] == "active"
        server = p.telemetry.server
        assert server is not None
        assert alert["generatorURL"] == f"{server.url}/alerts"

        target.spike = 0

        async def resolved() -> bool:
            return not await active_alerts(session, alertmanager.url)

        await eventually(resolved)


async def test_alerts_wait_while_alertmanager_is_down(
    server_factory: Callable[..., servers.Server], target: Target
) -> None:
    """Alerts raised while Alertmanager is down arrive once it starts; cycles never stop."""
    # The port stays ours, refusing connections, until the Alertmanager takes it over.
    with servers.reserve_port() as reserved:
        url = f"http://127.0.0.1:{reserved.getsockname()[1]}"
        target.spike = 1
        async with aiohttp.ClientSession() as session, provisioner_for(target, url) as p:
            sender = p.alert_sender
            assert sender is not None

            async def failing() -> bool:
                return sender.clients[0].stats.failed > 0

            await eventually(failing)
            cycles_at_failure = p.stats.cycles
            await eventually(lambda: p.stats.cycles > cycles_at_failure)  # still down
            # Started in a thread: the fixture waits for readiness with blocking calls.
            am = await asyncio.to_thread(
                server_factory, servers.start_alertmanager, listen_socket=reserved
            )

            async def arrived() -> bool:
                return bool(await active_alerts(session, am.url))

            await eventually(arrived)
            assert sender.clients[0].stats.dropped == 0


async def test_every_alertmanager_of_an_ha_group_gets_every_alert(
    server_factory: Callable[..., servers.Server], target: Target
) -> None:
    """Two Alertmanagers both receive the alert."""
    first = server_factory(servers.start_alertmanager)
    second = server_factory(servers.start_alertmanager)
    target.spike = 1
    async with aiohttp.ClientSession() as session, provisioner_for(target, first.url, second.url):

        async def both() -> bool:
            firsts = await active_alerts(session, first.url)
            seconds = await active_alerts(session, second.url)
            return bool(firsts) and [a["labels"] for a in firsts] == [a["labels"] for a in seconds]

        await eventually(both)


class GatedObserver(dc.MetricsObserver):
    """Alerts on every target it is handed once ``gate`` exists (``gate.called`` says it was
    called); handed no target at all it hangs, so that its alert is never resolved."""

    def __init__(self, gate: Path) -> None:
        super().__init__({"spike"})
        self.gate = str(gate)

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        if not targets_data_dict:
            time.sleep(3600)
        Path(self.gate + ".called").touch()
        while not os.path.exists(self.gate):
            time.sleep(0.02)
        return {url: "seen" for url in targets_data_dict}


class Leaving:
    """Discovery that lists ``targets`` until the test empties it."""

    def __init__(self, targets: list[ScrapeTarget]) -> None:
        self.targets = targets

    async def discover(self) -> Sequence[ScrapeTarget]:
        return list(self.targets)

    async def close(self) -> None:
        return None


async def test_a_target_gone_during_the_call_keeps_its_labels_on_the_alert(
    alertmanager: servers.Server, target: Target, tmp_path: Path
) -> None:
    """A target that leaves discovery while the observer works on its data: the alert about it
    still carries its instance, job and labels, as they were when the data was handed off."""
    gate = tmp_path / "gate"
    discovery = Leaving([ScrapeTarget(target.url, {"job": "checkout", "team": "storage"})])
    provisioner = MetricsProvisioner(
        targets_provider=discovery,
        scrape_interval=0.2,
        alertmanager={"urls": [alertmanager.url]},
        telemetry={"enabled": False},
        shutdown_grace_period=0.5,
    )
    provisioner.register(GatedObserver(gate))
    async with aiohttp.ClientSession() as session, provisioner as p:
        await eventually(Path(f"{gate}.called").exists)
        discovery.targets = []
        cycles = p.stats.cycles
        # Two more cycles: at least one discovered the target gone and moved on without it.
        await eventually(lambda: p.stats.cycles >= cycles + 2)
        gate.touch()
        found: list[dict[str, Any]] = []

        async def fired() -> bool:
            found[:] = await active_alerts(session, alertmanager.url)
            return bool(found)

        await eventually(fired)
    assert [a["labels"] for a in found] == [
        {
            "alertname": "DeucalionAnomaly",
            "observer": "GatedObserver",
            "instance": target.url.split("/")[2],
            "job": "checkout",
            "team": "storage",
        }
    ]


class FireThenHangObserver(dc.MetricsObserver):
    """Reports one alert on its first call; every later call hangs."""

    def __init__(self) -> None:
        super().__init__({"spike"})
        self.calls = 0

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        self.calls += 1
        if self.calls > 1:
            time.sleep(3600)
        return dc.Alert(labels={"severity": "page"})


async def test_a_hung_observers_firing_alert_is_still_resent(
    alertmanager: servers.Server, target: Target
) -> None:
    """The observer's second call never returns (no observer_timeout): its firing alert is sent
    again anyway, so Alertmanager keeps moving its end instead of letting it expire."""
    provisioner = MetricsProvisioner(
        targets=[target.url],
        scrape_interval=0.5,
        telemetry={"enabled": False},
        alertmanager={"urls": [alertmanager.url], "resend_interval": "1s"},
        shutdown_grace_period=0.5,
    )
    provisioner.register(FireThenHangObserver())
    async with aiohttp.ClientSession() as session, provisioner as p:
        (worker,) = p.workers
        first: list[dict[str, Any]] = []

        async def fired() -> bool:
            first[:] = await active_alerts(session, alertmanager.url)
            return bool(first)

        await eventually(fired)
        await eventually(lambda: worker.busy)  # the second call, which hangs, is under way
        first_end = datetime.fromisoformat(first[0]["endsAt"])

        async def sent_again() -> bool:
            alerts = await active_alerts(session, alertmanager.url)
            return bool(alerts) and datetime.fromisoformat(alerts[0]["endsAt"]) > first_end

        await eventually(sent_again)
        assert worker.busy and worker.stats.calls == 1, "only the first call ever returned"
