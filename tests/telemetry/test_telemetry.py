"""deucalion's own HTTP server and metrics (deucalion.telemetry), over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

import deucalion as dc
from deucalion.errors import ConfigError
from deucalion.provisioner import CycleStats, MetricsProvisioner
from deucalion.targets import Target
from deucalion.telemetry import Telemetry, start_telemetry_server
from tests.helpers import wait_for

WAIT = 30.0


class ScoreObserver(dc.MetricsObserver):
    """Returns each target's ``score`` gauge as its anomaly score."""

    def __init__(self) -> None:
        super().__init__({"score"})

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        return {
            url: samples.get("score", {}).get("{}", 0.0)
            for url, samples in targets_data_dict.items()
        }


class MutableTargets:
    """A target provider whose list the test changes."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = list(targets)

    async def discover(self) -> Sequence[Target]:
        return list(self.targets)

    async def close(self) -> None:
        return None


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted labels: value}`` of one sample name in an exposition."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def eventually(session: aiohttp.ClientSession, url: str, predicate: Any) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        status, text = await get(session, url)
        if predicate(status, text):
            return text
        if loop.time() > deadline:
            pytest.fail(f"{url} never satisfied the condition; last answer {status}: {text}")
        await asyncio.sleep(0.2)


async def test_server_binds_port_0_and_serves_every_endpoint() -> None:
    """Port 0 gives a real port in .url; /metrics, /healthz, /readyz and /alerts answer."""
    registry = CollectorRegistry()
    Counter("things", "Things.", registry=registry).inc(3)
    state = {"healthy": True, "ready": False}
    server = await start_telemetry_server(
        "127.0.0.1:0",
        registry=registry,
        healthy=lambda: state["healthy"],
        ready=lambda: state["ready"],
        alerts=lambda: [{"labels": {"a": "b"}}],
    )
    try:
        assert not server.url.endswith(":0")
        async with aiohttp.ClientSession() as session:
            status, text = await get(session, server.url + "/metrics")
            assert status == 200 and samples(text, "things_total") == {(): 3.0}
            assert (await get(session, server.url + "/healthz"))[0] == 200
            assert (await get(session, server.url + "/readyz"))[0] == 503
            state.update(healthy=False, ready=True)
            assert (await get(session, server.url + "/healthz"))[0] == 503
            assert (await get(session, server.url + "/readyz"))[0] == 200
            async with session.get(server.url + "/alerts") as response:
                assert await response.json() == [{"labels": {"a": "b"}}]
    finally:
        await server.close()
        await server.close()


async def test_other_paths_and_methods_are_refused_and_head_answers() -> None:
    """Unknown paths get 404 naming the served ones, writes 405; HEAD gets headers only."""
    server = await start_telemetry_server("127.0.0.1:0", registry=CollectorRegistry())
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/metrics/extra") as response:
                assert response.status == 404
                assert "/metrics, /healthz, /readyz, /alerts" in await response.text()
            async with session.post(server.url + "/metrics", data=b"x") as response:
                assert response.status == 405 and response.headers["Allow"] == "GET, HEAD"
            async with session.head(server.url + "/healthz") as response:
                assert response.status == 200 and await response.read() == b""
    finally:
        await server.close()


def test_scores_of_gone_targets_are_forgotten() -> None:
    """A target that leaves discovery takes its anomaly scores along; others keep theirs."""
    telemetry = Telemetry(StubProvisioner(scrape_interval=10))
    telemetry.record_scores("Obs", {"http://a/metrics": 0.9, "http://b/metrics": 0.0})
    telemetry.forget_targets(["http://a/metrics"])
    assert telemetry.scores == {"Obs": {"http://b/metrics": 0.0}}


async def test_a_port_in_use_is_a_config_error_naming_the_setting() -> None:
    """A taken telemetry.listen port fails with a ConfigError saying what to change."""
    first = await start_telemetry_server("127.0.0.1:0", registry=CollectorRegistry())
    try:
        with pytest.raises(ConfigError, match=r"telemetry\.listen"):
            await start_telemetry_server(
                first.url.removeprefix("http://"), registry=CollectorRegistry()
            )
    finally:
        await first.close()


def test_two_provisioners_have_separate_registries() -> None:
    """Each provisioner owns its registry: two in one process do not clash."""
    first, second = MetricsProvisioner(targets=["a:1"]), MetricsProvisioner(targets=["b:1"])
    assert first.telemetry.registry is not second.telemetry.registry


@pytest.fixture
async def scored_targets() -> AsyncIterator[list[str]]:
    """Two loopback targets exposing ``score`` 0.5 and 0."""
    runners = []
    urls = []
    for value in (0.5, 0.0):
        app = web.Application()

        async def handle(request: web.Request, value: float = value) -> web.Response:
            return web.Response(text=f"score {value}\n")

        app.router.add_get("/metrics", handle)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}/metrics")
    yield urls
    for runner in runners:
        await runner.cleanup()


async def test_provisioner_serves_scores_scrapes_and_readiness(scored_targets: list[str]) -> None:
    """A running provisioner exports scores and per-target metrics; gone targets vanish."""
    hot, calm = scored_targets
    provider = MutableTargets([Target(hot, {"job": "app"}), Target(calm)])
    provisioner = MetricsProvisioner(
        scrape_interval=0.3, targets_provider=provider, telemetry={"listen": "127.0.0.1:0"}
    )
    provisioner.register(ScoreObserver())
    async with aiohttp.ClientSession() as session, provisioner:
        server = provisioner.telemetry.server
        assert server is not None
        await eventually(session, server.url + "/readyz", lambda s, t: s == 200)
        text = await eventually(
            session,
            server.url + "/metrics",
            lambda s, t: len(samples(t, "deucalion_anomaly_score")) == 2,
        )
        assert samples(text, "deucalion_anomaly_score") == {
            (
                ("instance", hot.split("/")[2]),
                ("job", "app"),
                ("observer", "ScoreObserver"),
                ("target", hot),
            ): 0.5,
            (
                ("instance", calm.split("/")[2]),
                ("job", "deucalion"),
                ("observer", "ScoreObserver"),
                ("target", calm),
            ): 0.0,
        }
        assert set(samples(text, "deucalion_target_up").values()) == {1.0}
        # No observer desires scrape_samples_scraped, so bodies are not counted.
        assert samples(text, "deucalion_target_samples_scraped") == {}
        assert samples(text, "deucalion_cycles_total")[()] >= 1
        assert samples(text, "deucalion_observer_calls_total")[(("observer", "ScoreObserver"),)]
        assert (await get(session, server.url + "/healthz"))[0] == 200
        async with session.get(server.url + "/alerts") as response:
            firing = await response.json()
        # 0.5 alerts, 0.0 is only a score.
        assert [a["labels"]["instance"] for a in firing] == [hot.split("/")[2]]

        provider.targets = [Target(calm)]

        def hot_gone(status: int, text: str) -> bool:
            return all(
                ("target", hot) not in labels
                for name in ("deucalion_anomaly_score", "deucalion_target_up")
                for labels in samples(text, name)
            )

        await eventually(session, server.url + "/metrics", lambda s, t: hot_gone(s, t))
    assert provisioner.telemetry.server is None


async def test_telemetry_can_be_disabled(scored_targets: list[str]) -> None:
    """telemetry.enabled: false starts no server."""
    provisioner = MetricsProvisioner(targets=scored_targets[:1], telemetry={"enabled": False})
    provisioner.register(ScoreObserver())
    async with provisioner:
        assert provisioner.telemetry.server is None


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class StubProvisioner:
    """What Telemetry reads of a provisioner (a TelemetrySource), set by the test."""

    def __init__(self, scrape_interval: float) -> None:
        self.running = True
        self.cycle_loop_ended = False
        self.stats = CycleStats()
        self.scrape_interval = scrape_interval
        self.workers: tuple[Any, ...] = ()
        self.alertmanagers: tuple[Any, ...] = ()
        self.supervised: list[Any] = []

    def firing_alerts(self) -> list[dict[str, Any]]:
        return []

    def supervised_tasks(self) -> list[Any]:
        return self.supervised


@pytest.fixture
async def health() -> AsyncIterator[tuple[StubProvisioner, FakeClock, Callable[[], Any]]]:
    """A stub provisioner, a fake clock, and ``status()`` of /healthz served over them."""
    clock = FakeClock()
    stub = StubProvisioner(scrape_interval=10)
    telemetry = Telemetry(stub, clock=clock)
    server = await start_telemetry_server(
        "127.0.0.1:0", registry=telemetry.registry, healthy=telemetry.healthy
    )
    async with aiohttp.ClientSession() as session:

        async def status() -> int:
            return (await get(session, server.url + "/healthz"))[0]

        yield stub, clock, status
    await server.close()


async def test_healthz_is_ok_for_three_intervals_after_start_without_a_cycle(
    health: tuple[StubProvisioner, FakeClock, Callable[[], Any]],
) -> None:
    """Before any cycle, /healthz is 200 for 3 scrape intervals after start, then 503."""
    _, clock, status = health
    clock.now += 30
    assert await status() == 200
    clock.now += 0.1
    assert await status() == 503


async def test_healthz_turns_503_when_cycles_stop(
    health: tuple[StubProvisioner, FakeClock, Callable[[], Any]],
) -> None:
    """Cycles finishing keep /healthz at 200; none for over 3 intervals turns it 503."""
    stub, clock, status = health
    for _ in range(5):
        clock.now += 10
        stub.stats.last_cycle_end = clock.now
        stub.stats.cycles += 1
        assert await status() == 200
    clock.now += 30.1
    assert await status() == 503
    stub.stats.last_cycle_end = clock.now
    assert await status() == 200


async def test_healthz_turns_503_at_once_when_the_cycle_loop_died(
    health: tuple[StubProvisioner, FakeClock, Callable[[], Any]],
) -> None:
    """A dead cycle loop is unhealthy even though its last cycle is recent; so is a stop."""
    stub, clock, status = health
    stub.stats.last_cycle_end = clock.now
    stub.cycle_loop_ended = True
    assert await status() == 503
    stub.cycle_loop_ended = False
    stub.running = False
    assert await status() == 503


async def test_a_provisioner_whose_cycle_loop_died_reports_it(
    scored_targets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When cycle() raises (a bug), cycle_loop_ended is true and the provisioner stops."""
    provisioner = MetricsProvisioner(
        targets=scored_targets[:1], telemetry={"enabled": False}, scrape_interval=0.1
    )
    provisioner.register(ScoreObserver())

    async def broken() -> list[Any]:
        raise RuntimeError("a bug in the cycle")

    monkeypatch.setattr(provisioner, "cycle", broken)
    await provisioner.start()
    try:
        await wait_for(lambda: provisioner.cycle_loop_ended or not provisioner.running)
        assert not provisioner.telemetry.healthy()
        await wait_for(lambda: not provisioner.running)
    finally:
        await provisioner.stop()


async def test_healthz_turns_503_when_a_long_lived_task_is_in_a_crash_loop(
    health: tuple[StubProvisioner, FakeClock, Callable[[], Any]],
) -> None:
    """An observer's call loop or an Alertmanager sender that keeps dying of a bug fails
    /healthz, so that a supervisor restarts the sidecar; one restarting does not."""
    stub, clock, status = health
    stub.stats.last_cycle_end = clock()
    stub.supervised = [SimpleNamespace(healthy=True, running=False)]
    assert await status() == 200
    stub.supervised = [SimpleNamespace(healthy=False, running=False)]
    assert await status() == 503


async def test_cycles_go_on_while_a_crowd_scrapes_a_large_metrics_page(
    scored_targets: list[str],
) -> None:
    """With 20,000 series scores to render, 150 clients asking /metrics over and over leave the
    cycle loop running: about as many cycles pass as without them (at least a tenth), and
    /healthz stays 200."""
    from deucalion.alerting import SeriesScore

    provisioner = MetricsProvisioner(
        scrape_interval=0.1, targets=scored_targets[:1], telemetry={"listen": "127.0.0.1:0"}
    )
    provisioner.register(ScoreObserver())
    series = [SeriesScore(scored_targets[0], "score", f'{{i="{i}"}}', 1.0) for i in range(20_000)]
    async with aiohttp.ClientSession() as session, provisioner:
        server = provisioner.telemetry.server
        assert server is not None
        await eventually(session, server.url + "/readyz", lambda s, t: s == 200)
        provisioner.telemetry.record_scores("Big", {}, series)
        loop = asyncio.get_running_loop()
        crowd_for = 3.0
        ends = loop.time() + crowd_for
        answers: list[int] = []

        async def scraper() -> None:
            while loop.time() < ends:
                status, text = await get(session, server.url + "/metrics")
                answers.append(status)
                assert 'i="19999"' in text

        before, started = provisioner.stats.cycles, loop.time()
        await asyncio.gather(*(scraper() for _ in range(150)))
        cycles, took = provisioner.stats.cycles - before, loop.time() - started
        assert answers and set(answers) == {200}
        # One cycle per 0.1 s undisturbed; a tenth of that is the bound a loaded machine meets.
        assert cycles >= took / 0.1 / 10, f"{cycles} cycles in {took:.1f}s"
        assert (await get(session, server.url + "/healthz"))[0] == 200
