"""Ctrl-C as a user presses it, on a real `deucalion run` (issue 13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration import servers
from tests.integration.test_core_real import children_of

# An observer whose module takes IMPORT_DELAY seconds to import in the worker process (whose
# parent is the application), not in the application (whose parent is the test).
OBSERVER = """
import os, time
import deucalion as dc

if os.getppid() != int(os.environ["TEST_PID"]):
    time.sleep(float(os.environ["IMPORT_DELAY"]))


class Firing(dc.MetricsObserver):
    def new_data(self, targets_data_dict):
        return "anomaly"
"""


def _deucalion(tmp_path: Path, config: str, import_delay: float) -> subprocess.Popen[str]:
    """`deucalion run` of the observer above, its stderr in tmp_path/stderr."""
    (tmp_path / "firing_observer.py").write_text(OBSERVER)
    (tmp_path / "config.yaml").write_text(config)
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    env = {
        **os.environ,
        "TEST_PID": str(os.getpid()),
        "PYTHONPATH": str(tmp_path),
        "IMPORT_DELAY": str(import_delay),
        "DEUCALION_CONFIG": "",
    }
    with open(tmp_path / "stderr", "w") as stderr:
        return subprocess.Popen(
            [deucalion, "run", "firing_observer:Firing", "--metrics", "up", "-c", "config.yaml"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )


def _wait(condition: Callable[[], object], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"{what}: the process ended"
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _end(process: subprocess.Popen[str], tmp_path: Path) -> str:
    try:
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return (tmp_path / "stderr").read_text()


def test_a_second_ctrl_c_during_start_up_stops_cleanly(
    node_exporter: servers.Server, tmp_path: Path
) -> None:
    """Two SIGINTs while the worker starts: exit 0, no error blaming the observer's class."""
    process = _deucalion(
        tmp_path,
        f"targets: ['{node_exporter.url}/metrics']\ntelemetry: {{enabled: false}}\n",
        import_delay=30,
    )
    _wait(lambda: children_of(process.pid), process, "no worker process was started")
    process.send_signal(signal.SIGINT)
    time.sleep(1.5)  # a second press, not one signal delivered twice to the process group
    process.send_signal(signal.SIGINT)
    err = _end(process, tmp_path)
    assert process.returncode == 0, err
    assert "importable" not in err and "Traceback" not in err, err


def test_ctrl_c_with_alertmanager_unreachable_says_what_it_waits_for(
    node_exporter: servers.Server, tmp_path: Path
) -> None:
    """SIGINT with an alert queued for an Alertmanager that refuses connections: the stop
    says what it waits for, and where, before it waits."""
    down = servers.reserve_port()  # bound, not listening: connections are refused
    am_url = f"http://127.0.0.1:{down.getsockname()[1]}"
    try:
        process = _deucalion(
            tmp_path,
            f"targets: ['{node_exporter.url}/metrics']\n"
            "scrape_interval: 0.5s\nshutdown_grace_period: 3s\n"
            "telemetry: {enabled: false}\n"
            f"alertmanager: {{urls: ['{am_url}'], timeout: 1s}}\n",
            import_delay=0,
        )
        _wait(
            lambda: "cannot send alerts" in (tmp_path / "stderr").read_text(),
            process,
            "no alert was ever queued",
        )
        process.send_signal(signal.SIGINT)
        err = _end(process, tmp_path)
    finally:
        down.close()
    assert process.returncode == 0, err
    assert f"queued alert(s) to reach Alertmanager {am_url}; stop again" in err, err
