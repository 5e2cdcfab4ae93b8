"""The core against a real node_exporter, and the seed's example run as users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import deucalion as dc
from tests.helpers import records_at_least, wait_for
from tests.integration.servers import Server
from tests.observers import DataTimeRecorder, RecordingObserver, read_records

ROOT = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> set[int]:
    """The pids of a process's children, from /proc."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The parent pid is the 2nd field after the parenthesised command name.
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def survivors(pids: set[int], within: float = 5.0) -> list[int]:
    """The pids still alive after ``within`` seconds (a worker may take a moment to exit)."""
    deadline = time.monotonic() + within
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped.
    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return state != "Z"


async def test_node_exporter_data_arrives_in_the_documented_shape(
    node_exporter: Server, tmp_path: Path
) -> None:
    """Real node_exporter samples reach the observer: families, sorted labels, floats."""
    url = f"{node_exporter.url}/metrics"
    path = tmp_path / "calls.jsonl"
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.5, telemetry={"enabled": False}
    )
    provisioner.register(
        RecordingObserver(
            {"node_cpu_seconds_total", "go_goroutines", "go_gc_duration_seconds", "up"}, path
        )
    )
    async with provisioner:
        await wait_for(records_at_least(path, 2))
    data = read_records(path)[-1]["data"][url]
    assert set(data) == {
        "node_cpu_seconds_total",
        "go_goroutines",
        "go_gc_duration_seconds",
        "go_gc_duration_seconds_sum",
        "go_gc_duration_seconds_count",
        "up",
    }
    assert data["up"] == {"{}": 1.0}
    assert '{cpu="0",mode="idle"}' in data["node_cpu_seconds_total"]
    assert '{quantile="0.5"}' in data["go_gc_duration_seconds"]
    assert all(isinstance(v, float) for v in data["node_cpu_seconds_total"].values())


async def test_a_worker_killed_mid_call_is_replaced(node_exporter: Server, tmp_path: Path) -> None:
    """SIGKILL on a worker during new_data: a new worker takes over and is called again."""
    url = f"{node_exporter.url}/metrics"
    path = tmp_path / "calls.jsonl"
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.3, telemetry={"enabled": False}
    )
    provisioner.register(RecordingObserver({"up"}, path, sleep=0.5))
    async with provisioner:
        worker = provisioner.workers[0]
        await wait_for(lambda: worker.busy)
        victim = worker.pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: worker.stats.restarts == 1)
        await wait_for(lambda: any(r["pid"] != victim for r in read_records(path)))
    assert worker.pid != victim
    assert not alive(victim)


async def test_an_observer_reads_the_scrape_time_of_its_data_live(
    node_exporter: Server, tmp_path: Path
) -> None:
    """dc.data_time() in a live new_data is the cycle's scrape time, and dc.data_time(target)
    that target's: both at or before the call, after the run started, the target's at or after
    the cycle's."""
    url = f"{node_exporter.url}/metrics"
    path = tmp_path / "calls.jsonl"
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=0.3, telemetry={"enabled": False}
    )
    provisioner.register(DataTimeRecorder({"up"}, path))
    began = time.time()
    async with provisioner:
        await wait_for(records_at_least(path, 3))
    records = read_records(path)
    cycles = [r["cycle"] for r in records]
    assert cycles == sorted(set(cycles))  # one time per cycle, moving forward
    for record in records:
        assert began <= record["cycle"] <= record["targets"][url] <= record["wall"]


async def test_what_an_observer_learned_survives_a_restart_of_the_application(
    node_exporter: Server, tmp_path: Path
) -> None:
    """With checkpoint_path, an application stopped and started again resumes the observer's
    state (its call count here) instead of starting from the registered observer."""
    url = f"{node_exporter.url}/metrics"
    path = tmp_path / "calls.jsonl"
    for run in range(2):
        provisioner = dc.MetricsProvisioner(
            targets=[url],
            scrape_interval=0.2,
            telemetry={"enabled": False},
            checkpoint_interval=0.2,
            checkpoint_path=str(tmp_path / "state"),
        )
        provisioner.register(RecordingObserver({"up"}, path))
        async with provisioner:
            await wait_for(records_at_least(path, 3 * (run + 1)))
    calls = [r["calls"] for r in read_records(path)]
    pids = [r["pid"] for r in read_records(path)]
    first_run = calls[: pids.index(pids[-1])]
    second_run = calls[pids.index(pids[-1]) :]
    assert first_run == list(range(1, len(first_run) + 1))
    # Resumed where it stopped (a last checkpoint is taken on a clean stop), not from 1.
    assert second_run[0] == first_run[-1] + 1
    assert second_run == list(range(second_run[0], second_run[0] + len(second_run)))


def test_the_seed_example_runs_and_exits_cleanly_on_sigterm(
    node_exporter: Server, tmp_path: Path
) -> None:
    """examples/seed_example.py prints per-target data each interval; SIGTERM: exit 0, no orphan."""
    config = tmp_path / "config.yaml"
    url = f"{node_exporter.url}/metrics"
    config.write_text(f"scrape_interval: 500ms\ntargets: [{url}]\ntelemetry: {{enabled: false}}\n")
    env = {
        **os.environ,
        "DEUCALION_CONFIG": str(config),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "seed_example.py")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if len(lines) == 3:
                break
        workers = children_of(process.pid)
        assert workers, "the observer's worker process is a child of the application"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert all(line.startswith(f"{url}: {{") and "anomaly score: " in line for line in lines)
    assert "'node_cpu_seconds_total': {'{cpu=\"0\",mode=\"idle\"}'" in lines[0]
    assert "received SIGTERM: stopping" in err
    assert not survivors(workers), "a worker outlived the application"
    # Not a timing assertion on speed: only that shutdown is bounded by the grace period.
    assert took < 15, err


GUARDLESS_SCRIPT = """
import sys
import deucalion as dc

SCALE = 2.0  # a module-level global new_data uses: it travels with the class, by value

class Doubler(dc.MetricsObserver):
    def new_data(self, targets_data_dict):
        for url, data in targets_data_dict.items():
            load = data["node_load1"]["{}"]
            print(sys.argv[1], url, load * SCALE, flush=True)

provisioner = dc.MetricsProvisioner(targets=[sys.argv[2]], scrape_interval=0.5,
                                    telemetry={"enabled": False})
provisioner.register(Doubler(["node_load1"]))
provisioner.run()
"""


def test_a_script_without_a_main_guard_gets_an_error_naming_the_fix(
    node_exporter: Server, tmp_path: Path
) -> None:
    """An observer class and the provisioner at a script's top level: the worker, which spawn
    starts by importing the script again, refuses to start a second provisioner, and the
    application fails at once with an error naming `if __name__ == "__main__":`, leaving no
    process behind."""
    script = tmp_path / "app.py"
    script.write_text(GUARDLESS_SCRIPT)
    url = f"{node_exporter.url}/metrics"
    process = subprocess.run(
        [sys.executable, str(script), "tag-7", url],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode != 0
    assert 'if __name__ == "__main__":' in process.stderr
    assert "worker process" in process.stderr
    assert process.stderr.count("deucalion started") == 0, process.stderr
    assert not process.stdout  # new_data never ran


def test_the_seed_example_without_targets_says_how_to_configure_them(tmp_path: Path) -> None:
    """Run with no configuration, the example fails with a ConfigError saying what to set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEUCALION_")}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seed_example.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode != 0
    assert "no targets configured" in process.stderr
    assert "DEUCALION_TARGETS" in process.stderr


@pytest.mark.parametrize(
    ("signum", "settle"),
    [
        (signal.SIGINT, 1.0),
        (signal.SIGTERM, 1.0),
        (signal.SIGINT, 0.0),  # while the worker is still starting
    ],
)
def test_the_demo_stops_on_a_signal(signum: int, settle: float, tmp_path: Path) -> None:
    """deucalion demo stops on Ctrl-C or SIGTERM, running or still starting, with exit 0 and
    leaves no worker behind."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deucalion", "demo", "--duration", "60", "--interval", "0.2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("deucalion demo: watching http://127.0.0.1:")
        deadline = time.monotonic() + 30
        while not children_of(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = children_of(process.pid)
        time.sleep(settle)
        process.send_signal(signum)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "deucalion demo: done after" in err
    assert not survivors(workers)
