"""The deucalion command as a shell user runs it (issue 13)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deucalion.replay import CSVSource, RecordingWriter
from tests.integration import servers


def test_scrape_piped_into_head_ends_without_a_traceback(tmp_path: Path) -> None:
    """`deucalion scrape URL | head` past 64 KB of output ends quietly, as a reader closed."""
    (tmp_path / "metrics").write_text(
        "# TYPE requests_total counter\n"
        + "".join(f'requests_total{{path="/p{i}"}} {i}\n' for i in range(5000))
    )
    port = servers.free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(tmp_path),
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                time.sleep(0.1)
        deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
        run = subprocess.run(
            f"'{deucalion}' scrape '{url}' | head -c 100 >/dev/null; "
            'echo "exit ${PIPESTATUS[0]}" >&2',
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "DEUCALION_CONFIG": ""},
            check=False,
        )
    finally:
        servers.terminate(server)
    assert "Traceback" not in run.stderr and "BrokenPipeError" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "exit 141", run.stderr


def _deucalion(
    *args: str, cwd: Path | str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed `deucalion` console script, run from ``cwd`` with a clean PYTHONPATH."""
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEUCALION_CONFIG")}
    return subprocess.run(
        [deucalion, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environ, **(env or {})},
        check=False,
    )


OBSERVER_WITH_DEFAULT_METRICS = """\
import deucalion as dc


class Quiet(dc.MetricsObserver):
    def __init__(self, desired_metrics=frozenset({"value"})):
        super().__init__(desired_metrics)

    def new_data(self, targets_data_dict):
        return None
"""


def test_readme_backtest_imports_from_the_working_directory() -> None:
    """README's `deucalion backtest --observer tests.replay_observers:...` works from the
    repository's root with the console script (whose sys.path does not start there)."""
    run = _deucalion(
        "backtest",
        "--observer",
        "tests.replay_observers:RobustZScore",
        "--metrics",
        "value",
        "--from",
        "tests/data/labelled",
        "--labels",
        "tests/data/labelled/windows.json",
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 0, run.stderr
    assert "observer RobustZScore: 400 steps" in run.stdout
    assert "alerts fired: 3" in run.stdout


def test_backtest_of_a_module_and_a_file_in_the_working_directory_with_default_metrics(
    tmp_path: Path,
) -> None:
    """`mymodule:Class` and `mymodule.py:Class` from the working directory both load, and a
    class with its own default desired metrics needs no --metrics."""
    (tmp_path / "mymodule.py").write_text(OBSERVER_WITH_DEFAULT_METRICS)
    (tmp_path / "history.csv").write_text(
        "timestamp,value\n" + "".join(f"{1700000000 + 60 * i},{i % 7}\n" for i in range(50))
    )
    for observer in ("mymodule:Quiet", "mymodule.py:Quiet"):
        run = _deucalion("backtest", "--observer", observer, "--from", "history.csv", cwd=tmp_path)
        assert run.returncode == 0, (observer, run.stderr)
        assert "observer Quiet: 50 steps" in run.stdout, (observer, run.stdout)


def test_run_of_a_file_with_default_metrics_runs_without_metrics(tmp_path: Path) -> None:
    """`deucalion run app.py:Class` with a class that names its own desired metrics runs (no
    --metrics, no observers: section): its worker gets a cycle, and SIGTERM ends it with 0."""
    seen = tmp_path / "seen"
    (tmp_path / "app.py").write_text(
        "import os\nimport deucalion as dc\n\n\n"
        "class Watcher(dc.MetricsObserver):\n"
        "    def __init__(self, desired_metrics=frozenset({'up'})):\n"
        "        super().__init__(desired_metrics)\n\n"
        "    def new_data(self, targets_data_dict):\n"
        "        with open(os.environ['SEEN_FILE'], 'a') as f:\n"
        "            f.write(repr(targets_data_dict) + '\\n')\n"
    )
    # A target that is down still hands `up` = 0 to an observer that desires it.
    (tmp_path / "config.yaml").write_text(
        "targets: ['127.0.0.1:1']\nscrape_interval: 0.2s\ntelemetry: {listen: '127.0.0.1:0'}\n"
    )
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEUCALION_CONFIG")}
    process = subprocess.Popen(
        [deucalion, "run", "app.py:Watcher", "-c", "config.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**environ, "SEEN_FILE": str(seen)},
    )
    try:
        for _ in range(600):
            if seen.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        process.terminate()
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert seen.exists(), err
    assert "{'up': {'{}': 0.0}}" in seen.read_text()
    assert process.returncode == 0, err


def test_run_of_a_file_whose_imports_fail_is_one_line(tmp_path: Path) -> None:
    """A file.py:Class (or module:Class) whose own imports fail: one line naming the file, the
    missing module and the line, exit 1, no traceback."""
    (tmp_path / "broken.py").write_text("import deucalion\nimport not_installed_anywhere\n")
    for observer in ("broken.py:Obs", "broken:Obs"):
        run = _deucalion("run", observer, "--metrics", "up", cwd=tmp_path)
        assert run.returncode == 1
        assert "Traceback" not in run.stderr, run.stderr
        [line] = run.stderr.strip().splitlines()
        assert "No module named 'not_installed_anywhere'" in line
        assert "broken.py:2" in line


def _on_a_terminal(
    argv: list[str], cwd: Path | str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run ``argv`` with stderr on a pseudo-terminal 120 columns wide; its exit code and what
    it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEUCALION_CONFIG")}
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**environ, **(env or {})},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return process.wait(timeout=120), b"".join(chunks).decode(errors="replace")


RECORD_CONFIG = "targets: ['127.0.0.1:1']\nscrape_interval: 0.5s\n"


def test_record_prints_its_progress_as_it_goes_when_not_on_a_terminal(tmp_path: Path) -> None:
    """`deucalion record` into a pipe: a plain line at once and then every
    DEUCALION_PROGRESS_INTERVAL with the time recorded, the percentage and the time left,
    before the closing summary (it printed nothing until the end)."""
    (tmp_path / "c.yaml").write_text(RECORD_CONFIG)
    run = _deucalion(
        "record",
        "-c",
        "c.yaml",
        "-o",
        "r.om.gz",
        "--metrics",
        "up",
        "--duration",
        "3",
        cwd=tmp_path,
        env={"DEUCALION_PROGRESS_INTERVAL": "1s"},
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("record r.om.gz: ")]
    assert len(lines) >= 3, run.stderr
    assert "of 3s recorded, 0%, 0s elapsed" in lines[0]
    assert any("%, about " in line and " left, " in line for line in lines[1:-1]), lines
    assert lines[-1].endswith("3s of 3s recorded, 3s in all"), lines
    assert "\r" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("recorded ")


def test_record_shows_a_bar_with_the_time_left_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal `deucalion record --duration` draws a progress bar: percentage, bar,
    elapsed and remaining time."""
    (tmp_path / "c.yaml").write_text(RECORD_CONFIG)
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    code, shown = _on_a_terminal(
        [
            deucalion,
            "record",
            "-c",
            "c.yaml",
            "-o",
            "r.om.gz",
            "--metrics",
            "up",
            "--duration",
            "2",
        ],
        tmp_path,
    )
    assert code == 0, shown
    assert "\rrecord r.om.gz: " in shown
    assert "100%|" in shown and "[00:0" in shown and "<" in shown
    assert "recorded " in shown and "Traceback" not in shown


def test_backtest_progress_has_total_and_percentage(tmp_path: Path) -> None:
    """With a known range the backtest's progress shows the history done of the total and the
    percentage: plain lines into a pipe, a bar on a terminal."""
    root = Path(__file__).resolve().parents[2]
    argv = [
        "backtest",
        "--observer",
        "tests.replay_observers:RobustZScore",
        "--metrics",
        "value",
        "--from",
        "tests/data/labelled",
        "--start",
        "2024-01-01T00:00:00Z",
        "--end",
        "2024-01-02T09:15:00Z",
    ]
    run = _deucalion(*argv, cwd=root, env={"DEUCALION_PROGRESS_INTERVAL": "1ms"})
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("backtest: ")]
    assert any(" of 1.4d of history, " in line and "%, " in line for line in lines), lines
    assert lines[-1].startswith("backtest: 400 steps, 1.4d of 1.4d of history, ")
    assert lines[-1].endswith(" in all")
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    code, shown = _on_a_terminal([deucalion, *argv], root)
    assert code == 0, shown
    assert "\rbacktest: 400 steps, 1.4d of 1.4d of history, " in shown
    assert "100%|" in shown


def test_backtest_of_files_without_a_range_shows_the_percentage_and_time_left(
    tmp_path: Path,
) -> None:
    """Without --start/--end a recording or CSV files once showed steps and speed but neither a
    percentage nor the time left: the share of the source read is now the bar's measure."""
    root = Path(__file__).resolve().parents[2]
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    recording = tmp_path / "r.om.gz"

    async def copy() -> None:
        with RecordingWriter(recording) as writer:
            async for cycle in CSVSource(root / "tests/data/labelled").cycles():
                writer.write_cycle(cycle)

    asyncio.run(copy())
    for source in ("tests/data/labelled", str(recording)):
        code, shown = _on_a_terminal(
            [
                deucalion,
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "value",
                "--from",
                source,
            ],
            root,
        )
        assert code == 0, shown
        assert "\rbacktest: 400 steps, 1.4d of history, " in shown
        assert "100%|" in shown and "<00:00]" in shown, shown
