"""MetricsProvisioner: registration, running modes, the data shape and faulty targets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiohttp import web

import deucalion as dc
from deucalion.observer import name_of
from deucalion.targets import Target
from tests.helpers import NODE_LIKE, TargetServer, records_at_least, text, wait_for
from tests.observers import RecordingObserver, read_records


def provisioner_for(*urls: str, **settings: object) -> dc.MetricsProvisioner:
    options: dict[str, object] = {"scrape_interval": 0.3, "telemetry": {"enabled": False}}
    options.update(settings)
    return dc.MetricsProvisioner(targets=list(urls), **options)


def test_register_takes_the_seed_keyword_and_positional(tmp_path: Path) -> None:
    """register(metricsObserver=...) as the seed writes it, and positionally."""
    provisioner = dc.MetricsProvisioner(targets=["localhost:9100"])
    first = RecordingObserver({"up"}, tmp_path / "a")
    second = RecordingObserver({"up"}, tmp_path / "b")
    provisioner.register(metricsObserver=first)
    provisioner.register(second)
    assert provisioner.observers == (first, second)


def test_register_refuses_what_is_not_an_observer() -> None:
    """A non-observer, or one that skipped super().__init__, is a clear ConfigError."""

    class Forgetful(dc.MetricsObserver):
        def __init__(self) -> None:
            pass

        def new_data(self, targets_data_dict: object) -> None:
            return None

    provisioner = dc.MetricsProvisioner(targets=["localhost:9100"])
    with pytest.raises(dc.ConfigError, match="MetricsObserver instance"):
        provisioner.register(object())  # type: ignore[arg-type]
    with pytest.raises(dc.ConfigError, match=r"super\(\).__init__\(desired_metrics\)"):
        provisioner.register(Forgetful())


async def test_running_with_no_observer_is_a_clear_error() -> None:
    """start() with nothing registered says to register an observer."""
    with pytest.raises(dc.ConfigError, match="no observer registered"):
        await provisioner_for("http://127.0.0.1:1/metrics").start()


async def test_running_with_no_targets_says_how_to_configure_them(tmp_path: Path) -> None:
    """No targets at start: a ConfigError naming the ways to configure them."""
    provisioner = dc.MetricsProvisioner(config={}, telemetry={"enabled": False})
    provisioner.register(RecordingObserver({"up"}, tmp_path / "x"))
    with pytest.raises(dc.ConfigError, match="DEUCALION_TARGETS"):
        await provisioner.start()
    assert not provisioner.running


async def test_observers_get_only_their_metrics_in_the_documented_shape(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """Each observer sees its desired samples and families, series sorted and escaped."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    cpu, hist = tmp_path / "cpu.jsonl", tmp_path / "hist.jsonl"
    provisioner = provisioner_for(url)
    provisioner.register(RecordingObserver({"node_cpu_seconds_total", "up"}, cpu))
    provisioner.register(RecordingObserver({"http_request_duration_seconds"}, hist))
    async with provisioner:
        await wait_for(records_at_least(cpu, 1))
        await wait_for(records_at_least(hist, 1))
    assert read_records(cpu)[0]["data"] == {
        url: {
            "node_cpu_seconds_total": {
                '{cpu="0",mode="idle"}': 100.5,
                '{cpu="0",mode="user"}': 7.0,
            },
            "up": {"{}": 1.0},
        }
    }
    assert read_records(hist)[0]["data"] == {
        url: {
            "http_request_duration_seconds_bucket": {'{le="0.1"}': 3.0, '{le="+Inf"}': 4.0},
            "http_request_duration_seconds_sum": {"{}": 0.9},
            "http_request_duration_seconds_count": {"{}": 4.0},
        }
    }


async def test_a_selection_of_thousands_of_entries_is_set_up_off_the_loop(
    target_server: TargetServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of desired names and patterns (issue 28) are compiled in a thread, and the
    observer gets what they select, as with a few."""
    from deucalion.provisioner import provisioner as provisioner_module

    threads: list[object] = []
    to_thread = asyncio.to_thread

    async def counted(function: object, *args: object) -> object:
        threads.append(function)
        return await to_thread(function, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(provisioner_module.asyncio, "to_thread", counted)
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    cpu = tmp_path / "cpu.jsonl"
    desired = {
        "node_cpu_seconds_total",
        "up",
        *(f"absent_{i}" for i in range(3000)),
        *(f"other_{i}_.*" for i in range(100)),
    }
    provisioner = provisioner_for(url)
    provisioner.register(RecordingObserver(desired, cpu))
    async with provisioner:
        await wait_for(records_at_least(cpu, 1))
    assert [f for f in threads if getattr(f, "__name__", "") == "_prepare"]
    assert read_records(cpu)[0]["data"] == {
        url: {
            "node_cpu_seconds_total": {
                '{cpu="0",mode="idle"}': 100.5,
                '{cpu="0",mode="user"}': 7.0,
            },
            "up": {"{}": 1.0},
        }
    }


async def test_faulty_targets_cost_only_their_own_data(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """Down, garbage, slow, huge and non-2xx targets show up = 0; the good one keeps coming."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text=NODE_LIKE)

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    good = target_server.add("/good", text(NODE_LIKE))
    garbage = target_server.add("/garbage", text("go_goroutines{oops 12\n<html>\n"))
    slow_url = target_server.add("/slow", slow)
    huge = target_server.add("/huge", text("go_goroutines 1\n" * 20_000))
    error = target_server.add("/error", failing)
    await target_server.start()
    down = "http://127.0.0.1:9/metrics"  # the discard port: nothing listens
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(
        good,
        garbage,
        slow_url,
        huge,
        error,
        down,
        scrape_interval=1.2,
        scrape_timeout=1.0,
        body_size_limit=100_000,
    )
    provisioner.register(RecordingObserver({"go_goroutines", "up"}, path))
    async with provisioner:
        await wait_for(records_at_least(path, 3))
    for record in read_records(path)[:3]:
        data = record["data"]
        assert data[good] == {"go_goroutines": {"{}": 12.0}, "up": {"{}": 1.0}}
        for bad in (garbage, slow_url, huge, error, down):
            assert data[bad] == {"up": {"{}": 0.0}}, bad


async def test_synthetic_samples_describe_the_scrape(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """up, scrape_duration_seconds and scrape_samples_scraped are delivered when desired."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(url)
    provisioner.register(
        RecordingObserver({"up", "scrape_duration_seconds", "scrape_samples_scraped"}, path)
    )
    async with provisioner:
        await wait_for(records_at_least(path, 1))
    data = read_records(path)[0]["data"][url]
    assert data["up"] == {"{}": 1.0}
    assert data["scrape_samples_scraped"] == {"{}": 8.0}
    assert 0 < data["scrape_duration_seconds"]["{}"] < 5


async def test_a_down_target_counts_zero_samples(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """A failed scrape gives up 0 and scrape_samples_scraped 0, as in Prometheus."""

    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    url = target_server.add("/metrics", broken)
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(url)
    provisioner.register(RecordingObserver({"up", "scrape_samples_scraped"}, path))
    async with provisioner:
        await wait_for(records_at_least(path, 1))
    assert read_records(path)[0]["data"][url] == {
        "up": {"{}": 0.0},
        "scrape_samples_scraped": {"{}": 0.0},
    }


async def test_two_slow_observers_run_at_the_same_time(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """Each observer has its own process: two slow calls overlap in time."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    provisioner = provisioner_for(url, scrape_interval=5)
    provisioner.register(RecordingObserver({"up"}, a, sleep=1.0))
    provisioner.register(RecordingObserver({"up"}, b, sleep=1.0))
    async with provisioner:
        await wait_for(records_at_least(a, 1))
        await wait_for(records_at_least(b, 1))
    ra, rb = read_records(a)[0], read_records(b)[0]
    assert ra["start"] < rb["end"] and rb["start"] < ra["end"]
    assert ra["pid"] != rb["pid"] != os.getpid()


async def test_a_slow_observer_is_never_handed_a_backlog(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """Cycles go on at their rate; a slow observer skips to the newest data."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(url, scrape_interval=0.1)
    provisioner.register(RecordingObserver({"up"}, path, sleep=0.6))
    async with provisioner:
        # Six cycles take 0.6 s, as long as one call: on a loaded machine cycles come late,
        # so the test waits for them rather than counting them at a moment.
        await wait_for(lambda: len(read_records(path)) >= 2 and provisioner.stats.cycles >= 6)
        cycles = provisioner.stats.cycles
        dropped = provisioner.workers[0].stats.dropped
    assert dropped >= 2
    assert len(read_records(path)) < cycles


async def test_await_run_runs_until_stop(target_server: TargetServer, tmp_path: Path) -> None:
    """await provisioner.run() inside a running loop returns once stop() is called."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(url)
    provisioner.register(RecordingObserver({"up"}, path))
    running = provisioner.run()
    assert running is not None
    task = asyncio.create_task(running)
    await wait_for(records_at_least(path, 2))
    await provisioner.stop()
    await asyncio.wait_for(task, 10)
    assert not provisioner.running
    assert not provisioner.workers[0].ready


async def test_cancelling_run_shuts_everything_down(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """Cancelling the awaited run() still stops the workers."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(url)
    provisioner.register(RecordingObserver({"up"}, path))
    task = asyncio.create_task(provisioner.run())  # type: ignore[arg-type]
    await wait_for(records_at_least(path, 1))
    pid = provisioner.workers[0].pid
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not provisioner.running
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_start_twice_is_refused_and_stop_twice_is_harmless(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """A running provisioner cannot be started again; stop() is idempotent."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    provisioner = provisioner_for(url)
    provisioner.register(RecordingObserver({"up"}, tmp_path / "x"))
    async with provisioner:
        with pytest.raises(dc.DeucalionError, match="running already"):
            await provisioner.start()
        with pytest.raises(dc.DeucalionError, match="while the provisioner runs"):
            provisioner.register(RecordingObserver({"up"}, tmp_path / "y"))
    await provisioner.stop()
    assert not provisioner.running


class Discovery:
    """A test's target provider: each test says how it discovers; closing has nothing to do."""

    async def close(self) -> None:
        return None


class SlowDiscovery(Discovery):
    """A target provider that takes longer than the scrape interval to answer."""

    def __init__(self, url: str, delay: float) -> None:
        self.url = url
        self.delay = delay

    async def discover(self) -> Sequence[Target]:
        await asyncio.sleep(self.delay)
        return [Target(self.url)]


async def test_an_overrunning_cycle_is_counted_and_the_next_starts_at_once(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """A cycle longer than the interval is counted as an overrun; cycles are not queued."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    provisioner = dc.MetricsProvisioner(
        scrape_interval=0.1, telemetry={"enabled": False}, targets_provider=SlowDiscovery(url, 0.25)
    )
    provisioner.register(RecordingObserver({"up"}, tmp_path / "x"))
    async with provisioner:
        await wait_for(lambda: provisioner.stats.cycles >= 3)
        stats = provisioner.stats
    assert stats.overruns >= 2
    assert stats.cycles <= stats.overruns + 1


async def test_targets_that_change_between_cycles_are_followed(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """Observers see the current set of targets each cycle."""
    first = target_server.add("/a", text("go_goroutines 1\n"))
    second = target_server.add("/b", text("go_goroutines 2\n"))
    await target_server.start()

    class Switching(Discovery):
        def __init__(self) -> None:
            self.calls = 0

        async def discover(self) -> Sequence[Target]:
            self.calls += 1
            return [Target(first)] if self.calls <= 2 else [Target(second)]

    path = tmp_path / "calls.jsonl"
    provisioner = dc.MetricsProvisioner(
        scrape_interval=0.2, telemetry={"enabled": False}, targets_provider=Switching()
    )
    provisioner.register(RecordingObserver({"go_goroutines"}, path))
    async with provisioner:
        await wait_for(lambda: any(second in r["data"] for r in read_records(path)))
    keys = [list(r["data"]) for r in read_records(path)]
    assert keys[0] == [first]
    assert keys[-1] == [second]


class FailingDiscovery(Discovery):
    """A provider whose discovery fails after its first answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls = 0

    async def discover(self) -> Sequence[Target]:
        self.calls += 1
        if self.calls > 1:
            raise OSError("cannot read /secrets/password")
        return [Target(self.url)]


async def test_failing_discovery_keeps_the_targets_it_had(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """Discovery raising does not stop the cycles: the last targets are scraped on."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    path = tmp_path / "calls.jsonl"
    discovery = FailingDiscovery(url)
    provisioner = dc.MetricsProvisioner(
        scrape_interval=0.2, telemetry={"enabled": False}, targets_provider=discovery
    )
    provisioner.register(RecordingObserver({"go_goroutines"}, path))
    async with provisioner:
        await wait_for(records_at_least(path, 3))
    assert discovery.calls >= 3
    assert all(r["data"] == {url: {"go_goroutines": {"{}": 12.0}}} for r in read_records(path))


def test_two_observers_of_one_class_get_distinct_names(tmp_path: Path) -> None:
    """A second instance of a class is numbered unless named; two equal names are refused."""
    provisioner = dc.MetricsProvisioner(targets=["localhost:9100"])
    provisioner.register(RecordingObserver({"up"}, tmp_path / "a"))
    provisioner.register(RecordingObserver({"up"}, tmp_path / "b"))
    named = RecordingObserver({"go_goroutines"}, tmp_path / "c")
    named.observer_name = "goroutines"
    provisioner.register(named)
    assert [name_of(o) for o in provisioner.observers] == [
        "RecordingObserver",
        "RecordingObserver-2",
        "goroutines",
    ]
    clash = RecordingObserver({"up"}, tmp_path / "d")
    clash.observer_name = "goroutines"
    with pytest.raises(dc.ConfigError, match="two observers are named goroutines"):
        provisioner.register(clash)


class BrokenDiscovery(Discovery):
    """A provider that returns something the cycle cannot use: a bug in the loop."""

    async def discover(self) -> Sequence[Target]:
        return [object()]  # type: ignore[list-item]


async def test_run_reports_a_failed_cycle_loop(tmp_path: Path) -> None:
    """When the cycle loop itself fails, run() raises instead of returning as after a stop."""
    provisioner = dc.MetricsProvisioner(
        scrape_interval=0.2, telemetry={"enabled": False}, targets_provider=BrokenDiscovery()
    )
    provisioner.register(RecordingObserver({"up"}, tmp_path / "x"))
    with pytest.raises(dc.DeucalionError, match="cycle loop failed"):
        await asyncio.wait_for(provisioner.run(), 30)  # type: ignore[arg-type]
    assert not provisioner.running


async def test_a_stop_during_start_up_waits_and_closes_everything(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """stop() while start() is still spawning workers leaves no server, worker or task behind."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.2, telemetry={"listen": "127.0.0.1:0"}
    )
    provisioner.register(RecordingObserver({"up"}, tmp_path / "x"))
    starting = asyncio.create_task(provisioner.start())
    await asyncio.sleep(0.01)  # start() is under way: its workers are being spawned
    await provisioner.stop()
    await starting
    assert not provisioner.running
    assert provisioner.telemetry.server is None
    assert provisioner.alert_sender is None
    assert all(not w.ready for w in provisioner.workers)


class _Listener:
    """A cycle listener that keeps every cycle it gets (and raises on each, when ``broken``)."""

    def __init__(self, desired: frozenset[str] | None = frozenset(), broken: bool = False):
        self.desired_metrics = desired
        self.broken = broken
        self.cycles: list[object] = []
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def on_cycle(self, cycle: object) -> None:
        self.cycles.append(cycle)
        if self.broken:
            raise OSError("No space left on device")

    async def close(self) -> None:
        self.closed += 1


async def test_listeners_get_the_cycles_and_times_the_observers_get(
    target_server: TargetServer, tmp_path: Path
) -> None:
    """A listener gets each cycle with the scrape times the observer reads from data_time(); a
    listener that raises is logged and keeps getting cycles, as the observer keeps its data."""
    from tests.observers import DataTimeRecorder

    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    seen = tmp_path / "seen.jsonl"
    provisioner = provisioner_for(url)
    provisioner.register(DataTimeRecorder({"node_load1"}, seen))
    listener = provisioner.add_listener(_Listener())
    broken = provisioner.add_listener(_Listener(broken=True))
    async with provisioner:
        await wait_for(records_at_least(seen, 3))
    records = read_records(seen)
    handed = {c.time: c.target_times for c in listener.cycles}  # type: ignore[attr-defined]
    assert len(broken.cycles) == len(listener.cycles) >= 3
    assert listener.opened == listener.closed == 1
    for record in records:
        assert handed[record["cycle"]] == pytest.approx(record["targets"])


async def test_a_provisioner_with_only_a_listener_collects_what_it_desires(
    target_server: TargetServer,
) -> None:
    """No observer: the cycle loop runs for a listener alone (deucalion record is one), and a
    listener desiring every sample (None) gets them all."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    provisioner = provisioner_for(url)
    listener = provisioner.add_listener(_Listener(desired=None))
    async with provisioner:
        await wait_for(lambda: len(listener.cycles) >= 2)
    (result,) = listener.cycles[0].results  # type: ignore[attr-defined]
    assert result.up and {"node_load1", "go_goroutines"} <= set(result.samples)
