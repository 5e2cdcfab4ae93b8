"""Federated mode against a real Prometheus scraping a real node_exporter."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import deucalion as dc
from deucalion.cli import main
from deucalion.collection import FederationCollector
from deucalion.collection.scrape import Scraper
from deucalion.config.loading import PrometheusSettings
from deucalion.targets import Target
from deucalion.targets.prometheus import PrometheusTargets
from tests.integration import servers

METRICS = frozenset(
    {
        "node_cpu_seconds_total",
        "node_exporter_build_info",
        "go_info",
        "node_memory_MemTotal_bytes",
        "up",
    }
)


def _wait_until_scraped(prometheus: servers.Server, scrape_url: str) -> None:
    """Waits until Prometheus has scraped the target successfully (a readiness wait)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(prometheus.url + "/api/v1/targets", timeout=5) as answer:
            active = json.load(answer)["data"]["activeTargets"]
        if any(t["scrapeUrl"] == scrape_url and t["health"] == "up" for t in active):
            return
        time.sleep(0.2)
    pytest.fail(f"Prometheus never scraped {scrape_url}:\n{prometheus.log.read_text()[-2000:]}")


@pytest.fixture
def prometheus(
    node_exporter: servers.Server, server_factory: Callable[..., servers.Server]
) -> servers.Server:
    """A real Prometheus scraping the real node_exporter every second, once it has scraped it."""
    server = server_factory(servers.start_prometheus, [f"127.0.0.1:{node_exporter.port}"])
    _wait_until_scraped(server, f"{node_exporter.url}/metrics")
    return server


async def test_federation_matches_direct_scrape(
    node_exporter: servers.Server, prometheus: servers.Server
) -> None:
    """Federated samples of the target have the same names and series as scraping it directly."""
    settings = PrometheusSettings(url=prometheus.url, jobs=["node"])
    provider = PrometheusTargets(settings, body_size_limit=50 * 10**6)
    collector = FederationCollector(settings, body_size_limit=50 * 10**6, metrics=METRICS)
    try:
        targets = await provider.discover()
        scrape_url = f"{node_exporter.url}/metrics"
        assert [t.url for t in targets] == [scrape_url]
        assert targets[0].labels["job"] == "node"
        (federated,) = await collector.collect(targets)
    finally:
        await provider.close()
        await collector.close()
    async with Scraper(timeout=10, body_size_limit=50 * 10**6, metrics=METRICS) as scraper:
        direct = await scraper.scrape(Target(scrape_url))

    assert federated.up and direct.up, (federated.error, direct.error)
    assert federated.target.url == scrape_url
    assert set(federated.samples) == set(direct.samples)
    assert set(federated.samples["node_cpu_seconds_total"]) == set(
        direct.samples["node_cpu_seconds_total"]
    )
    for constant in ("node_exporter_build_info", "go_info", "node_memory_MemTotal_bytes"):
        assert federated.samples[constant] == direct.samples[constant], constant
    assert not any(
        "instance=" in s or "job=" in s for series in federated.samples.values() for s in series
    )
    # up, scrape_duration_seconds and scrape_samples_scraped are Prometheus's own.
    assert federated.samples_scraped > 0 and federated.duration > 0


async def test_cli_scrape_in_federated_mode(
    node_exporter: servers.Server,
    prometheus: servers.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`deucalion scrape -c federated.yaml` gives the same JSON keys as a direct scrape."""
    config = tmp_path / "federated.yaml"
    config.write_text(f"prometheus: {{url: '{prometheus.url}'}}\n")
    url = f"{node_exporter.url}/metrics"
    wanted = "node_cpu_seconds_total,go_info,up"
    assert (
        await asyncio.to_thread(main, ["scrape", url, "--metrics", wanted, "-c", str(config)]) == 0
    )
    federated = json.loads(capsys.readouterr().out)
    assert await asyncio.to_thread(main, ["scrape", url, "--metrics", wanted]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert list(federated) == list(direct) == [url]
    assert set(federated[url]) == set(direct[url]) == {"node_cpu_seconds_total", "go_info", "up"}
    assert set(federated[url]["node_cpu_seconds_total"]) == set(
        direct[url]["node_cpu_seconds_total"]
    )
    assert federated[url]["go_info"] == direct[url]["go_info"]


class UpObserver(dc.MetricsObserver):
    """Alerts on every target it is handed, saying whether it is up."""

    def __init__(self) -> None:
        super().__init__({"up"})

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        return {url: f"up={samples['up']['{}']}" for url, samples in targets_data_dict.items()}


async def test_alerts_carry_the_instance_prometheus_gave_the_target(
    node_exporter: servers.Server,
    alertmanager: servers.Server,
    server_factory: Callable[..., servers.Server],
) -> None:
    """A target whose instance Prometheus relabelled alerts with that instance, not host:port."""
    scrape_url = f"{node_exporter.url}/metrics"
    prometheus = server_factory(
        servers.start_prometheus,
        [f"127.0.0.1:{node_exporter.port}"],
        labels={"instance": "node-a", "rack": "r1"},
    )
    _wait_until_scraped(prometheus, scrape_url)
    provisioner = dc.MetricsProvisioner(
        prometheus={"url": prometheus.url, "jobs": ["node"]},
        scrape_interval=0.5,
        alertmanager={"urls": [alertmanager.url]},
        telemetry={"enabled": False},
    )
    provisioner.register(UpObserver())
    async with aiohttp.ClientSession() as session, provisioner:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            async with session.get(f"{alertmanager.url}/api/v2/alerts") as response:
                alerts = await response.json()
            if alerts or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
    assert [a["labels"] for a in alerts] == [
        {
            "alertname": "DeucalionAnomaly",
            "observer": "UpObserver",
            "instance": "node-a",
            "job": "node",
            "rack": "r1",
        }
    ], f"the alert never arrived, or unlike this: {alerts}"
    assert alerts[0]["annotations"] == {"description": "up=1.0"}


async def test_a_prometheus_with_external_labels_gives_the_same_data_as_a_direct_scrape(
    node_exporter: servers.Server,
    server_factory: Callable[..., servers.Server],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server's external labels are stripped: up is 1 and the series are the target's own."""
    scrape_url = f"{node_exporter.url}/metrics"
    prometheus = server_factory(
        servers.start_prometheus,
        [f"127.0.0.1:{node_exporter.port}"],
        external_labels={"cluster": "eu-1", "replica": "a"},
    )
    _wait_until_scraped(prometheus, scrape_url)
    config = tmp_path / "federated.yaml"
    config.write_text(f"prometheus: {{url: '{prometheus.url}'}}\n")
    wanted = "node_cpu_seconds_total,go_info,up,scrape_duration_seconds"
    assert (
        await asyncio.to_thread(
            main, ["scrape", scrape_url, "--metrics", wanted, "-c", str(config)]
        )
        == 0
    )
    federated = json.loads(capsys.readouterr().out)[scrape_url]
    assert await asyncio.to_thread(main, ["scrape", scrape_url, "--metrics", wanted]) == 0
    direct = json.loads(capsys.readouterr().out)[scrape_url]
    assert federated["up"] == {"{}": 1.0}
    assert set(federated["scrape_duration_seconds"]) == {"{}"}
    assert set(federated) == set(direct)
    assert set(federated["node_cpu_seconds_total"]) == set(direct["node_cpu_seconds_total"])
    assert federated["go_info"] == direct["go_info"]
