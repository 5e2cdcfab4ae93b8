"""Presets on real targets: a real node_exporter, and a real aiohttp service instrumented with
prometheus_client (the liveops benchmark's), seen through `deucalion presets show` and
`deucalion run --preset`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import servers

ROOT = Path(__file__).resolve().parent.parent.parent
DEUCALION = os.path.join(os.path.dirname(sys.executable), "deucalion")


def _deucalion(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEUCALION, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "DEUCALION_CONFIG": ""},
    )


@pytest.fixture
def http_service() -> Iterator[str]:
    """The instrumented aiohttp service, under a little load; yields its /metrics URL."""
    port = servers.free_port()
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.liveops_harness",
            "app",
            "--port",
            str(port),
            "--seconds",
            "300",
        ],
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()

    def load() -> None:
        paths = ["/api/items", "/api/items/7", "/api/search", "/health"]
        n = 0
        while not stop.is_set():
            try:
                urllib.request.urlopen(base + paths[n % len(paths)], timeout=5).read()
            except OSError:
                time.sleep(0.1)
            n += 1

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/metrics", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or app.poll() is not None:
                    raise RuntimeError("the instrumented service did not start") from None
                time.sleep(0.2)
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(1.0)
        yield base + "/metrics"
    finally:
        stop.set()
        servers.terminate(app)


def test_presets_show_lists_the_node_signals_with_values(node_exporter: servers.Server) -> None:
    run = _deucalion("presets", "show", "node-exporter", "--target", node_exporter.url + "/metrics")
    assert run.returncode == 0, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines()[1:]}
    for signal in ("cpu_busy", "load_per_core", "memory_available", "context_switches", "forks"):
        assert signal in lines and "not found" not in lines[signal], run.stdout
    assert any(name.startswith('filesystem_free{mountpoint="') for name in lines), run.stdout


def test_presets_show_finds_the_service_routes_and_latency(http_service: str) -> None:
    run = _deucalion("presets", "show", "http-service", "--target", http_service, "--interval", "2")
    assert run.returncode == 0, run.stderr
    assert 'request_rate{route="/api/items"}' in run.stdout, run.stdout
    assert 'latency_p50{route="/api/items"}' in run.stdout, run.stdout
    assert 'error_ratio{route="/health"}' in run.stdout, run.stdout


def test_a_preset_without_its_signals_says_so_naming_them(node_exporter: servers.Server) -> None:
    """node_exporter serves no HTTP service's request counter but its own handler's: the
    http-service preset falls back to promhttp; a node preset on the service finds nothing."""
    run = _deucalion("presets", "show", "http-service", "--target", node_exporter.url + "/metrics")
    assert run.returncode == 0, run.stderr
    assert "request_rate" in run.stdout
    # The value column is as wide as the longest series: compared with single spaces.
    assert (
        "latency_p50 no value: the promhttp instrumentation it serves "
        "(promhttp_metric_handler_requests_total) has no request duration histogram"
    ) in re.sub(" +", " ", run.stdout), run.stdout


def test_run_preset_warns_once_about_a_target_without_the_signals(
    http_service: str, tmp_path: Path
) -> None:
    config = tmp_path / "deucalion.yaml"
    config.write_text(
        f"scrape_interval: 1s\ntargets: ['{http_service}']\ntelemetry: {{listen: '127.0.0.1:0'}}\n"
    )
    process = subprocess.Popen(
        [DEUCALION, "run", "--preset", "node-exporter", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(8)
        process.terminate()
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert out.count("serves none of the metrics it watches") == 1, out
    assert "node_cpu_seconds_total" in out and "Traceback" not in out
