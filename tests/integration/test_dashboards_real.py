"""Every Grafana panel's query returns data from a real Prometheus scraping a real deucalion
that runs a preset over a real node_exporter and sends to a real Alertmanager; the shipped
alerting rules load and evaluate there without error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration import servers
from tests.presets.test_presets_rules import RULES, dashboard_queries

#: Grafana's variables and macros, as a dashboard shows "All" and a 1 s scrape interval.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$observer": ".*",
    "$target": ".*",
    "$signal": ".*",
    "$instance": ".*",
}


def _query(prometheus: servers.Server, expr: str) -> list[dict[str, object]]:
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def _start_prometheus(deucalion_port: int) -> servers.Server:
    """Prometheus scraping deucalion every second, with deploy/'s rules loaded."""
    port = servers.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="deucalion-prometheus-"))
    (workdir / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n  - job_name: deucalion\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{deucalion_port}']\n"
    )
    args = [
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return servers._start("prometheus", args, port, workdir, "/-/ready")


@pytest.fixture
def deucalion_with_preset(
    node_exporter: servers.Server, alertmanager: servers.Server, tmp_path: Path
) -> Iterator[int]:
    """``deucalion run --preset node-exporter`` (a real process); yields its telemetry port."""
    port = servers.free_port()
    config = tmp_path / "deucalion.yaml"
    config.write_text(
        f"scrape_interval: 1s\ntargets: ['{node_exporter.url}/metrics']\n"
        f"telemetry: {{listen: '127.0.0.1:{port}'}}\n"
        f"alertmanager: {{urls: ['{alertmanager.url}']}}\n"
    )
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    log = (tmp_path / "deucalion.log").open("wb")
    process = subprocess.Popen(
        [deucalion, "run", "--preset", "node-exporter", "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield port
    finally:
        servers.terminate(process)
        log.close()


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    pytest.fail(f"{what} within {seconds:g}s")


def test_every_panel_query_returns_data(
    deucalion_with_preset: int, node_exporter: servers.Server
) -> None:
    prometheus = _start_prometheus(deucalion_with_preset)
    try:
        # Scores need two node_exporter scrapes (rates); a rate() over deucalion's counters
        # needs two Prometheus scrapes of deucalion: wait for both, with a generous bound.
        _wait_for(
            lambda: len(_query(prometheus, "count_over_time(deucalion_series_value[1m]) >= 3")) > 0,
            120,
            "no signal value reached Prometheus",
        )
        empty = []
        for board, title, expr in dashboard_queries():
            for name, value in SUBSTITUTIONS.items():
                expr = expr.replace(name, value)
            if not _query(prometheus, expr):
                empty.append(f"{board}: {title}: {expr}")
        assert empty == [], "\n".join(empty)
        # The signals of the preset are there under their own names.
        signals = {
            r["metric"]["metric"]  # type: ignore[index]
            for r in _query(prometheus, "deucalion_series_value")
        }
        assert {"cpu_busy", "memory_available", "load_per_core", "forks"} <= signals
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=30) as response:
            groups = json.load(response)["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == 11
        _wait_for(
            lambda: all(r.get("lastEvaluation", "").startswith("2") for r in _rules(prometheus)),
            60,
            "the rules were not all evaluated",
        )
        assert [r["name"] for r in _rules(prometheus) if r["health"] != "ok"] == []
        # The preset alerts take their labels from the target's recorded score: a real
        # deucalion's matches its signals' on the rules' join, one series per target.
        joined = _query(
            prometheus,
            "group without () (deucalion:preset_target_score:max_over_window)"
            " * on (observer, target, instance, job) group_left ()"
            " max by (observer, target, instance, job)"
            " (deucalion:preset_signal_score:max_over_window)",
        )
        targets = [r["metric"]["target"] for r in joined]  # type: ignore[index]
        assert targets == [f"{node_exporter.url}/metrics"]
    finally:
        prometheus.stop()


def _rules(prometheus: servers.Server) -> list[dict[str, str]]:
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=30) as response:
        groups = json.load(response)["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]
