"""file_sd end to end: `deucalion run` picks up a target added to a file without a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deucalion.cli import main
from tests.integration import servers

RECORDER = '''
import json
import deucalion as dc


class Recorder(dc.MetricsObserver):
    """Writes each call's data as one JSON line, so the test reads it from another process."""

    def __init__(self, desired_metrics, out):
        super().__init__(desired_metrics)
        self.out = out

    def new_data(self, targets_data_dict):
        with open(self.out, "a") as handle:
            handle.write(json.dumps(targets_data_dict) + "\\n")
'''


def _calls(out: Path) -> list[dict[str, dict[str, dict[str, float]]]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.endswith("}")]


def _wait_for(predicate: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    """Waits until ``predicate`` holds (a readiness wait, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            pytest.fail(f"deucalion run exited early:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"condition not reached:\n{log.read_text()[-3000:]}")


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A directory with the recorder app and a targets/ directory for file_sd files."""
    (tmp_path / "recorder.py").write_text(RECORDER)
    (tmp_path / "targets").mkdir()
    yield tmp_path


def test_target_added_to_file_appears_without_restart(
    node_exporter: servers.Server,
    server_factory: Callable[..., servers.Server],
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second target written into a file_sd file reaches the observer in a running process."""
    second = server_factory(servers.start_node_exporter)
    out = workdir / "calls.jsonl"
    targets_file = workdir / "targets" / "nodes.json"
    targets_file.write_text(
        json.dumps([{"targets": [f"127.0.0.1:{node_exporter.port}"], "labels": {"job": "node"}}])
    )
    config = workdir / "config.yaml"
    config.write_text(
        "scrape_interval: 1s\n"
        "telemetry: {listen: '127.0.0.1:0'}\n"
        f"file_sd: {{files: ['{workdir}/targets/*.json'], refresh_interval: 1h}}\n"
        "observers:\n"
        f"  {workdir}/recorder.py:Recorder:\n"
        f"    desired_metrics: [node_load1, up]\n"
        f"    kwargs: {{out: '{out}'}}\n"
    )
    first_url = f"{node_exporter.url}/metrics"
    second_url = f"{second.url}/metrics"
    log = workdir / "deucalion.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEUCALION_")}
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "deucalion", "run", "-c", str(config)],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).parents[2],
        )
    try:
        _wait_for(lambda: any(first_url in c for c in _calls(out)), process, log)
        assert all(second_url not in c for c in _calls(out))

        targets_file.write_text(
            json.dumps(
                [
                    {"targets": [f"127.0.0.1:{node_exporter.port}"], "labels": {"job": "node"}},
                    {
                        "targets": [f"127.0.0.1:{second.port}"],
                        "labels": {"job": "node", "rack": "b7"},
                    },
                ]
            )
        )
        _wait_for(lambda: any(second_url in c for c in _calls(out)), process, log)
        latest = next(c for c in reversed(_calls(out)) if second_url in c)
        assert latest[second_url]["up"] == {"{}": 1.0}
        assert "node_load1" in latest[second_url]
        assert latest[first_url]["up"] == {"{}": 1.0}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()[-3000:]

    # The labels the file gives the new target are what `deucalion targets` reports for it.
    capsys.readouterr()
    assert main(["targets", "-c", str(config)]) == 0
    listing = capsys.readouterr().out
    assert f"{second_url}  {{job=node,rack=b7}}  up" in listing
