"""Replay against real servers: a recording of node_exporter replayed, a backtest over what a
real Prometheus scraped, a recording backfilled by the real promtool."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web

from deucalion.replay import Cycle, PrometheusRangeSource, RecordingSource, backtest_async
from deucalion.replay import prometheus as prometheus_source
from deucalion.replay.plot import plot
from deucalion.replay.recording import RecordingProvisioner
from deucalion.replay.sources import HistoryError
from tests.integration import servers
from tests.replay_observers import RobustZScore, SeenObserver

NODE_METRICS = {"node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes", "up"}


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("interval", "cycles"),
    [
        (0.5, 12),
        pytest.param(1.0, 120, marks=pytest.mark.slow, id="two-minutes"),
    ],
)
async def test_recorded_node_exporter_replays_as_seen_live(
    node_exporter: servers.Server, tmp_path: Path, interval: float, cycles: int
) -> None:
    """Record a real node_exporter while an observer watches it, replay the recording: the
    observer sees the same series and values, at the same times, as it saw live (6 s here;
    two minutes with -m slow)."""
    live, replayed = tmp_path / "live.jsonl", tmp_path / "replayed.jsonl"
    recording = tmp_path / "node.om.gz"
    provisioner = RecordingProvisioner(
        targets=[node_exporter.url + "/metrics"],
        scrape_interval=interval,
        record_path=recording,
        telemetry={"enabled": False},
    )
    provisioner.register(SeenObserver(NODE_METRICS, str(live)))
    async with provisioner:
        # Up to 10x the expected time (2 minutes more for the long run): room for a loaded
        # machine, within the test's timeout.
        for _ in range(int(min(10 * cycles * interval, cycles * interval + 120) * 10)):
            await asyncio.sleep(0.1)
            if len(_records(live)) >= cycles:
                break
    seen_live = _records(live)
    assert len(seen_live) >= cycles
    result = await backtest_async(
        SeenObserver(NODE_METRICS, str(replayed)), RecordingSource(recording)
    )
    seen_again = _records(replayed)
    assert result.errors == 0 and not result.source_warnings
    # Every cycle the observer saw live was recorded; the recorder may hold a last cycle whose
    # call was still pending when the provisioner stopped.
    assert len(seen_again) >= len(seen_live)
    for mine, theirs in zip(seen_live, seen_again, strict=False):
        assert theirs["data"] == mine["data"]
        if "time" in mine:
            assert theirs["time"] == pytest.approx(mine["time"], abs=2e-3)
            assert theirs["times"] == pytest.approx(mine["times"], abs=1e-6)
    url = node_exporter.url + "/metrics"
    assert mine["data"][url]["node_cpu_seconds_total"]  # type: ignore[index]


class _AnomalousTarget:
    """A target whose gauge is calm, then 20x higher for ``length`` seconds from ``at``."""

    def __init__(self, at: float, length: float) -> None:
        self.at, self.length = at, length
        self.scrapes = 0
        self.scraped = asyncio.Event()

    async def handle(self, _: web.Request) -> web.Response:
        self.scrapes += 1
        self.scraped.set()
        now = time.time()
        value = 0.1 + 0.01 * math.sin(self.scrapes)
        if self.at <= now < self.at + self.length:
            value *= 20
        return web.Response(
            text=f"# TYPE demo_latency_seconds gauge\n"
            f'demo_latency_seconds{{path="/api"}} {value}\n',
            content_type="text/plain",
        )


async def test_backtest_over_real_prometheus_finds_injected_anomaly(
    server_factory: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus scrapes a target with an anomaly injected at a known time; a backtest over
    its query_range alerts at that time, a range split into many requests gives the same
    cycles, and the plot is drawn."""
    port = servers.free_port()
    target = _AnomalousTarget(math.inf, 2.0)
    app = web.Application()
    app.router.add_get("/metrics", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        prometheus = await asyncio.to_thread(
            server_factory,
            servers.start_prometheus,  # type: ignore[operator]
            [f"127.0.0.1:{port}"],
            scrape_interval="500ms",
        )
        # Prometheus's first scrape comes seconds after it is ready.
        await asyncio.wait_for(target.scraped.wait(), 30)
        start = time.time()
        # Calm for 10 s first: the observer's window fills before the anomaly.
        inject_at = target.at = start + 10.0
        await asyncio.sleep(max(0.0, inject_at + 6.0 - time.time()))
        end = time.time()
    finally:
        await runner.cleanup()
    source = PrometheusRangeSource(prometheus.url)
    observer = RobustZScore({"demo_latency_seconds"}, threshold=5.0, window=20)
    result = await backtest_async(observer, source, start=start, end=end, step=0.5)
    assert result.errors == 0 and result.steps > 25
    firing = [a for a in result.alerts]
    assert firing, result.summary()
    assert inject_at - 0.5 <= firing[0].start <= inject_at + 1.5
    assert firing[0].target == f"http://127.0.0.1:{port}/metrics"
    assert firing[0].labels["job"] == "node"
    png = plot(result, tmp_path / "anomaly.png")
    assert png.stat().st_size > 10_000
    # The same range, read in pieces of 10 points: many requests, the same cycles.
    monkeypatch.setattr(prometheus_source, "MAX_POINTS", 10)
    pieces = PrometheusRangeSource(prometheus.url)
    cycles = [c async for c in pieces.cycles({"demo_latency_seconds"}, start, end, 0.5)]
    whole = [
        c
        async for c in PrometheusRangeSource(prometheus.url).cycles(
            {"demo_latency_seconds"}, start, end, 0.5
        )
    ]
    assert pieces.requests > 6 and cycles == whole
    with pytest.raises(HistoryError, match="has no samples of"):
        _ = [
            c
            async for c in PrometheusRangeSource(prometheus.url).cycles(
                {"demo_latency_seconds"}, 1e9, 1e9 + 60, 15
            )
        ]


@pytest.mark.parametrize("name", ["r.om", "r.om.gz"])
def test_promtool_backfills_a_recording(name: str, tmp_path: Path) -> None:
    """promtool tsdb create-blocks-from openmetrics reads a recording, as README says: an
    uncompressed one, or a gzipped one after `gunzip -k` (promtool reads no gzip: README once
    gave it node.om.gz); the line with the target's labels, escapes and all, included."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: apt-get install prometheus")
    from deucalion.replay import Cycle, RecordingWriter

    path = tmp_path / name
    t0 = 1_700_000_000.0
    with RecordingWriter(path) as writer:
        for i in range(5):
            writer.write_cycle(
                Cycle(
                    t0 + i,
                    {"http://a:1/metrics": t0 + i + 0.25},
                    {"http://a:1/metrics": {"load": {'{cpu="0"}': float(i)}, "up": {"{}": 1.0}}},
                    {"http://a:1/metrics": {"job": "svc-prom", "team": 'a"b\\c\nd'}},
                )
            )
    if name.endswith(".gz"):
        subprocess.run(["gunzip", "-k", str(path)], check=True)
        path = path.with_suffix("")
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (tmp_path / "data" / "wal").mkdir()  # promtool 2.42's dump insists on one
    dump = subprocess.run(
        [promtool, "tsdb", "dump", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loads = [line for line in dump.splitlines() if "load" in line]
    assert len(loads) == 5 and loads[-1].endswith(" 4 1700000004250")
    assert 'deucalion_target="http://a:1/metrics"' in loads[0]
    infos = [line for line in dump.splitlines() if "deucalion_record_target_info" in line]
    assert len(infos) == 5 and 'job="svc-prom"' in infos[0] and "team=" in infos[0]


def test_record_command_records_node_exporter(
    node_exporter: servers.Server, tmp_path: Path
) -> None:
    """deucalion record scrapes a real node_exporter for a few seconds and closes the file."""
    from deucalion.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(
        "scrape_interval: 500ms\ntargets:\n"
        f"  - {{targets: ['{node_exporter.url}/metrics'], labels: {{job: node, env: lab}}}}\n"
    )
    path = tmp_path / "node.om.gz"
    assert (
        main(
            [
                "record",
                "-c",
                str(config),
                "-o",
                str(path),
                "--metrics",
                "node_load1,node_cpu_seconds_total",
                "--duration",
                "2.2",
            ]
        )
        == 0
    )
    source = RecordingSource(path)
    cycles = asyncio.run(_cycles(source))
    # 2.2 s at 500 ms is 5 cycles; a loaded machine may start them late, never add any.
    assert 1 <= len(cycles) <= 6 and not source.stats.warnings
    samples = cycles[0].samples[f"{node_exporter.url}/metrics"]
    assert set(samples) == {"node_load1", "node_cpu_seconds_total", "up", "scrape_duration_seconds"}
    # The target's labels, as alerts about it carry them live.
    instance = node_exporter.url.partition("://")[2]
    assert cycles[0].target_labels == {
        f"{node_exporter.url}/metrics": {"env": "lab", "instance": instance, "job": "node"}
    }
    assert all(
        b.time - a.time == pytest.approx(0.5, abs=0.1) for a, b in itertools.pairwise(cycles)
    )


async def _cycles(source: RecordingSource) -> list[Cycle]:
    return [c async for c in source.cycles()]


def test_prometheus_refusal_is_shown_with_its_reason(
    server_factory: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real Prometheus that refuses a range query (422: too many samples for its
    --query.max-samples) is shown with Prometheus's own reason, in one line."""
    from deucalion.cli import main

    port = servers.free_port()
    prometheus = server_factory(  # type: ignore[operator]
        servers.start_prometheus,
        [f"127.0.0.1:{port}"],
        port=port,
        scrape_interval="200ms",
        extra_args=("--query.max-samples=1",),
    )
    import urllib.request

    start = time.time()
    # Prometheus's first scrape comes seconds after it is ready; then a few more than the
    # limit of one sample.
    for _ in range(300):
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?query=up") as answer:
            if json.loads(answer.read())["data"]["result"]:
                break
        time.sleep(0.1)
    time.sleep(1.0)
    code = main(
        [
            "backtest",
            "--observer",
            "tests.replay_observers:RobustZScore",
            "--metrics",
            "prometheus_build_info",
            "--from",
            prometheus.url,
            "--start",
            str(start - 5),
            "--end",
            str(time.time()),
            "--step",
            "0.2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "HTTP 422" in err and "too many samples" in err, err
