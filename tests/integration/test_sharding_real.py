"""Sharding against a real Prometheus: its hashmod relabelling puts every target on the shard
deucalion's does."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from deucalion.config.loading import load_settings
from deucalion.targets import build_provider
from deucalion.targets.sharding import hashmod
from tests.integration import servers

# Loopback addresses nothing listens on: Prometheus only has to discover them, and its scrapes
# (once an hour) are refused on this machine.
ADDRESSES = [f"127.0.0.{1 + i // 40}:{20000 + i}" for i in range(120)]
SHARDS = 3


def _start_sharding_prometheus(file_sd: Path) -> servers.Server:
    servers.find_binary("prometheus")
    port = servers.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="deucalion-prometheus-shard-"))
    # The URL deucalion hashes (scheme://address/path), then Prometheus's own hashmod of it.
    config = {
        "global": {"scrape_interval": "1h"},
        "scrape_configs": [
            {
                "job_name": "node",
                "file_sd_configs": [{"files": [str(file_sd)]}],
                "relabel_configs": [
                    {
                        "source_labels": ["__scheme__", "__address__", "__metrics_path__"],
                        "regex": "(.+);(.+);(.+)",
                        "replacement": "${1}://${2}${3}",
                        "target_label": "url",
                    },
                    {
                        "source_labels": ["url"],
                        "action": "hashmod",
                        "modulus": SHARDS,
                        "target_label": "shard",
                    },
                ],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))
    args = [
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return servers._start("prometheus", args, port, workdir, "/-/ready")


def _prometheus_shards(server: servers.Server) -> dict[str, int]:
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(server.url + "/api/v1/targets?state=active") as response:
            active = json.load(response)["data"]["activeTargets"]
        if len(active) == len(ADDRESSES) or time.monotonic() > deadline:
            return {t["labels"]["url"]: int(t["labels"]["shard"]) for t in active}
        time.sleep(0.2)


async def test_prometheus_hashmod_agrees_with_every_shard(
    tmp_path: Path, server_factory: Callable[..., servers.Server]
) -> None:
    """Each target of a file_sd list is on the deucalion shard Prometheus's hashmod names."""
    file_sd = tmp_path / "targets.json"
    file_sd.write_text(json.dumps([{"targets": ADDRESSES}]))
    prometheus = server_factory(_start_sharding_prometheus, file_sd)
    theirs = _prometheus_shards(prometheus)
    assert len(theirs) == len(ADDRESSES)
    ours: dict[str, int] = {}
    for index in range(SHARDS):
        settings = load_settings(
            {"file_sd": {"files": [str(file_sd)]}, "shard": {"count": SHARDS, "index": index}},
            environ={},
            default_file=None,
        )
        provider = build_provider(settings)
        ours |= {t.url: index for t in await provider.discover()}
        await provider.close()
    assert ours == theirs
    assert {hashmod(url, SHARDS) for url in ours} == set(range(SHARDS))
