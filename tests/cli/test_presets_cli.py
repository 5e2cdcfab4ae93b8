"""The preset entry points of the command line as README's "Watching a service without code"
writes them: durations as elsewhere, one observer per backtest, and an unknown preset named
with where it was given."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deucalion.cli import main
from deucalion.cli.commands import build_parser
from tests.helpers import TargetServer, text


def test_presets_show_interval_takes_a_duration_as_readme_writes_it() -> None:
    """README: `deucalion presets show NAME [--target URL] [--interval 1s]` (it was a float
    only, so `--interval 1s` was refused)."""
    args = build_parser().parse_args(
        [
            "presets",
            "show",
            "http-service",
            "--target",
            "http://127.0.0.1:1/metrics",
            "--interval",
            "1s",
        ]
    )
    assert args.interval == 1.0
    shorter = build_parser().parse_args(["presets", "show", "x", "--interval", "500ms"])
    assert shorter.interval == 0.5


def test_backtest_refuses_an_observer_and_a_preset_together(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`backtest (--observer M:F | --preset NAME)`: given both, it backtested the preset and
    dropped the observer without a word."""
    code = main(
        [
            "backtest",
            "--preset",
            "node-exporter",
            "--observer",
            "tests.replay_observers:RobustZScore",
            "--from",
            "tests/data/labelled",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "not both" in err and "tests.replay_observers:RobustZScore" in err
    assert "node-exporter" in err


@pytest.mark.parametrize("command", [["run"], ["backtest", "--from", "tests/data/labelled"]])
def test_run_and_backtest_name_the_config_file_of_an_unknown_preset(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    """`backtest -c FILE` backtests the file's preset as `run -c FILE` runs it; an unknown
    one was refused without naming the file (`--preset` named nothing either)."""
    monkeypatch.delenv("DEUCALION_PRESET", raising=False)
    config = tmp_path / "deucalion.yaml"
    config.write_text("targets: [127.0.0.1:1]\npreset: http_service\n")
    assert main([*command, "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: preset" in err and "'http_service'" in err
    assert "node-exporter, http-service" in err
    assert "did you mean 'http-service'?" in err
    assert main([*command, "--preset", "node_exporter"]) == 1
    err = capsys.readouterr().err
    assert "deucalion: --preset: unknown preset 'node_exporter'" in err
    assert "did you mean 'node-exporter'?" in err


def test_run_with_nothing_to_run_names_the_preset_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deucalion run -c FILE` with targets and no observer: the error named module:Class and
    observers: only, not the way README's "Watching a service without code" runs one."""
    monkeypatch.delenv("DEUCALION_PRESET", raising=False)
    monkeypatch.delenv("DEUCALION_PRESET__NAME", raising=False)
    config = tmp_path / "deucalion.yaml"
    config.write_text("targets: [127.0.0.1:1]\n")
    assert main(["run", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "no observer to run" in err and "--preset NAME" in err and "preset: NAME" in err


def test_demo_names_the_option_of_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--preset", "nodexporter", "--target", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "--preset" in err and "'nodexporter'" in err and "node-exporter" in err


def test_backtest_preset_plot_draws_the_signals_it_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backtest --preset NAME --from RECORDING --plot PNG`: the signals a preset scores are in
    no recording, and the plot said 'nothing to plot'; it draws them from their scores' values."""
    pytest.importorskip("matplotlib")
    from deucalion.replay.recording import RecordingWriter
    from deucalion.replay.sources import Cycle

    node = "http://node:9100/metrics"
    recording = tmp_path / "r.om.gz"
    with RecordingWriter(recording) as writer:
        for i in range(30):
            cpu = {
                f'{{cpu="{n}",mode="{m}"}}': base + share * i
                for n in range(2)
                for m, base, share in (("idle", 1000, 0.7), ("user", 9, 0.3))
            }
            samples = {
                "node_cpu_seconds_total": cpu,
                "node_load1": {"{}": 1.0 + i % 3},
                "node_memory_MemAvailable_bytes": {"{}": 6e9 - 1e6 * i},
                "node_memory_MemTotal_bytes": {"{}": 8e9},
                "up": {"{}": 1.0},
            }
            writer.write_cycle(Cycle(1.7e9 + i, {node: 1.7e9 + i}, {node: samples}))
    picture = tmp_path / "preset.png"
    assert (
        main(
            [
                "backtest",
                "--preset",
                "node-exporter",
                "--from",
                str(recording),
                "--plot",
                str(picture),
            ]
        )
        == 0
    ), capsys.readouterr().err
    assert f"plot: {picture}" in capsys.readouterr().out
    assert picture.stat().st_size > 10_000


@pytest.mark.parametrize("labelled", [False, True])
def test_backtest_preset_on_a_recording_without_its_metrics_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], labelled: bool
) -> None:
    """A recording made with `record --metrics node_load1`, not `--all`: the preset computes no
    signal, and the backtest read as a quiet run (0 alerts, exit 0). With --labels too, an
    evaluation that went well no longer takes that exit 1 back."""
    from deucalion.replay.recording import RecordingWriter
    from deucalion.replay.sources import Cycle

    node = "http://node:9100/metrics"
    recording = tmp_path / "load.om.gz"
    with RecordingWriter(recording) as writer:
        for i in range(20):
            samples = {"node_load1": {"{}": 1.0 + i % 3}, "up": {"{}": 1.0}}
            writer.write_cycle(Cycle(1.7e9 + i, {node: 1.7e9 + i}, {node: samples}))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({node: [[1.7e9 + 10, 1.7e9 + 12]]}))
    extra = ["--labels", str(labels)] if labelled else []
    assert main(["backtest", "--preset", "node-exporter", "--from", str(recording), *extra]) == 1
    err = capsys.readouterr().err
    assert "none of the preset's signals could be computed" in err and "record --all" in err


def test_backtest_preset_on_history_without_any_of_its_metrics_says_what_to_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CSV files of `timestamp,value`: the preset receives none of its metrics. It said
    "check the names (selected as live: names, whole families, regular expressions)", names
    the user never gave; it says which preset and that a `record --all` recording is what it
    replays."""
    (tmp_path / "latency.csv").write_text(
        "timestamp,value\n" + "".join(f"{1.7e9 + 60 * i:.0f},{i % 7}\n" for i in range(30))
    )
    assert main(["backtest", "--preset", "http-service", "--from", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "the preset http-service received none of the metrics" in out, out
    assert "http_requests_total" in out and "record --all" in out
    assert "check the names" not in out


async def test_presets_show_on_a_target_without_the_signals_says_so_once(
    target_server: TargetServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`presets show node-exporter --target URL` on a service serving none of node_exporter's
    metrics: the output names what it looked for, and the observer's own warning no longer
    says it a second time in the log."""
    from deucalion.presets.cli import show

    url = target_server.add("/metrics", text("# TYPE jobs_total counter\njobs_total 3\n"))
    await target_server.start()
    printed = await show("node-exporter", url, interval=0.1)
    assert "cpu_busy                   not found (looks for node_cpu_seconds_total)" in printed
    assert printed.count("serves none of") == 1 and "node_load1" in printed
    assert not [r for r in caplog.records if "serves none" in r.getMessage()]


async def test_presets_show_names_every_metric_a_missing_signal_looks_for_once(
    target_server: TargetServer,
) -> None:
    """A Spring Boot service without its in-flight gauge: `in_flight not found (looks for
    http_requests_total, ... 6 of 15 names, ...)` left out the Spring name a user would check
    for; on a target with none, the same cut list was printed for each of the 5 signals."""
    from deucalion.presets.cli import show

    histogram = "".join(
        f'http_server_requests_seconds_bucket{{uri="/x",status="200",le="{le}"}} 5\n'
        for le in ("0.1", "+Inf")
    )
    spring = target_server.add(
        "/spring",
        text(
            "# TYPE http_server_requests_seconds histogram\n"
            + histogram
            + 'http_server_requests_seconds_count{uri="/x",status="200"} 5\n'
            + 'http_server_requests_seconds_sum{uri="/x",status="200"} 0.2\n'
        ),
    )
    other = target_server.add("/other", text("# TYPE jobs_total counter\njobs_total 3\n"))
    await target_server.start()
    printed = await show("http-service", spring, interval=0.1)
    [line] = [line for line in printed.splitlines() if line.lstrip().startswith("in_flight")]
    assert "not found" in line
    assert "http_server_requests_active_seconds_active_count" in printed and "..." not in printed
    printed = await show("http-service", other, interval=0.1)
    assert printed.count("promhttp_metric_handler_requests_total") == 2  # its line, the verdict
    assert "latency_p99                not found (looks for the same as request_rate)" in printed


async def test_presets_show_names_what_the_target_s_instrumentation_lacks(
    target_server: TargetServer,
) -> None:
    """A gRPC service without its started counter, and a Spring Boot one without its active
    gauge: the missing in_flight looks for that instrumentation's metric alone (it listed
    every instrumentation's gauges, none of which a gRPC service would serve)."""
    from deucalion.presets.cli import show

    grpc = target_server.add(
        "/grpc",
        text(
            "# TYPE grpc_server_handled_total counter\n"
            'grpc_server_handled_total{grpc_code="OK",grpc_method="Get",grpc_service="s"} 9\n'
        ),
    )
    spring = target_server.add(
        "/spring",
        text(
            "# TYPE http_server_requests_seconds histogram\n"
            'http_server_requests_seconds_count{uri="/x",status="200"} 5\n'
            'http_server_requests_seconds_sum{uri="/x",status="200"} 0.2\n'
        ),
    )
    await target_server.start()
    # The value column is as wide as the longest series: compared with single spaces.
    printed = re.sub(" +", " ", await show("http-service", grpc, interval=0.1))
    assert "request_rate" in printed and "request_rate not found" not in printed
    assert "in_flight not found (looks for grpc_server_started_total)" in printed
    assert "latency_p50 not found (looks for grpc_server_handling_seconds_bucket)" in printed
    printed = re.sub(" +", " ", await show("http-service", spring, interval=0.1))
    assert (
        "in_flight not found (looks for http_server_requests_active_seconds_active_count)"
    ) in printed


def test_presets_show_exits_1_on_a_target_without_any_of_its_signals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`presets show NAME --target URL` as a check before deploying: a target serving none of
    the preset's metrics exited 0, as one serving them all did."""
    import http.server
    import threading

    class Exporter(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"# TYPE jobs_total counter\njobs_total 3\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        assert main(["presets", "show", "http-service", "--target", url, "--interval", "10ms"]) == 1
        assert "none of the preset's signals is there" in capsys.readouterr().out
        assert main(["presets", "show", "http-service"]) == 0  # no target: what it watches
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_record_with_a_configured_preset_records_what_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`preset: NAME` in the file is an observer `deucalion run` runs; `deucalion record -c
    FILE` (no --metrics, no --all) asked 'which metrics?' as if none were configured."""
    from deucalion.config import load_settings
    from deucalion.presets import preset_observer
    from deucalion.replay.cli import _configured_metrics

    config = tmp_path / "deucalion.yaml"
    config.write_text("targets: [127.0.0.1:1]\npreset: http-service\n")
    settings = load_settings(config, environ={}, default_file=None)
    wanted = _configured_metrics(settings)
    assert set().union(*map(set, wanted.values())) == set(
        preset_observer("http-service").desired_metrics
    )
    config.write_text("targets: [127.0.0.1:1]\npreset: nope\n")
    assert main(["record", "-c", str(config), "-o", str(tmp_path / "r.om.gz")]) == 1
    assert "preset" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--preset", "http-service"],
        ["demo", "--preset", "http-service", "--target", "127.0.0.1:1"],
        ["backtest", "--preset", "http-service", "--from", "tests/data/labelled/quiet.csv"],
    ],
)
def test_metrics_with_only_a_preset_is_refused_not_ignored(
    tmp_path: Path,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run --preset http-service --metrics node_load1` ran the preset and ignored --metrics
    without a word: a user thought it narrowed what the preset watches."""
    monkeypatch.delenv("DEUCALION_PRESET", raising=False)
    config = tmp_path / "deucalion.yaml"
    config.write_text("targets: [127.0.0.1:1]\ntelemetry: {enabled: false}\n")
    extra = ["-c", str(config)] if command[0] in ("run", "backtest") else []
    assert main([*command, *extra, "--metrics", "node_load1"]) == 1
    err = capsys.readouterr().err
    assert "--metrics" in err and "leave --metrics out" in err
    assert "presets show http-service" in err


def test_presets_show_on_a_target_that_is_down_says_it_once(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The scraper's log line and the command's error said the same "is down" twice."""
    import logging
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with caplog.at_level(logging.INFO):
        assert (
            main(
                ["presets", "show", "http-service", "--target", f"http://127.0.0.1:{port}/metrics"]
            )
            == 1
        )
    assert "is down" in capsys.readouterr().err
    assert not [r for r in caplog.records if "is down" in r.getMessage()]
    assert logging.getLogger("deucalion.collection.scrape").level == logging.NOTSET


def test_presets_show_hides_the_token_of_a_target_that_is_down(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`presets show NAME --target 'http://...?token=abc'` printed `...?token=abc is down`
    where `deucalion scrape` prints `token=***`."""
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert (
        main(
            [
                "presets",
                "show",
                "http-service",
                "--target",
                f"http://127.0.0.1:{port}/metrics?token=abc",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "token=***" in err and "is down" in err and "abc" not in err


async def test_presets_show_hides_the_token_of_a_target_it_lists(
    target_server: TargetServer,
) -> None:
    """The listing's first line, `preset NAME on URL:`, quoted the target's token too."""
    from deucalion.presets.cli import show

    url = target_server.add("/metrics", text("# TYPE jobs_total counter\njobs_total 3\n"))
    await target_server.start()
    printed = await show("http-service", f"{url}?token=abc", interval=0.01)
    assert f"preset http-service on {url}?token=***:" in printed and "abc" not in printed


async def test_presets_show_leaves_the_scrape_log_of_other_targets_alone(
    target_server: TargetServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`show` silenced every scrape warning of the process while it ran (it set the shared
    scrape logger to ERROR): a library touches no logging configuration of its host. Only
    its own target's "is down" is left out."""
    import asyncio
    import logging
    import socket

    from deucalion.collection.scrape import Scraper
    from deucalion.presets.cli import show
    from deucalion.targets import Target

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    mine, other = (f"http://127.0.0.1:{port}/{path}" for path in ("mine", "other"))
    url = target_server.add("/metrics", text("# TYPE jobs_total counter\njobs_total 3\n"))
    await target_server.start()
    scrape_log = logging.getLogger("deucalion.collection.scrape")
    seen_while: list[int] = []

    async def elsewhere() -> None:
        async with Scraper(timeout=5, body_size_limit=10**6) as scraper:
            await asyncio.sleep(0.02)  # inside show's two scrapes, `interval` apart
            seen_while.append(scrape_log.getEffectiveLevel())
            await scraper.scrape_all([Target(other)])

    with caplog.at_level(logging.INFO):
        listed, _ = await asyncio.gather(show("http-service", url, interval=0.5), elsewhere())
        with pytest.raises(Exception, match="is down"):
            await show("http-service", mine, interval=0.01)
    assert "preset http-service on" in listed
    assert seen_while and seen_while[0] <= logging.WARNING
    down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert len(down) == 1 and "/other" in down[0]
    assert not scrape_log.filters


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_evaluate_of_a_preset_backtest_prints_what_the_backtest_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    """README: `backtest --labels` keeps the labelled series' values in its output, so
    `evaluate` of it prints the same numbers. A preset's signal is in no source: its value was
    not in the output, and evaluate added "the backtest kept no values of them ... backtest
    with --labels", to a backtest run with --labels. Its score rows carry it."""
    from deucalion.replay.recording import RecordingWriter
    from deucalion.replay.sources import Cycle

    node = "http://node:9100/metrics"
    recording = tmp_path / "node.om.gz"
    with RecordingWriter(recording) as writer:
        for i in range(40):
            samples = {
                "node_load1": {"{}": 1.0 + (i % 5) / 10},
                "node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 10.0 + 0.9 * i},
                "up": {"{}": 1.0},
            }
            writer.write_cycle(Cycle(1.7e9 + i, {node: 1.7e9 + i}, {node: samples}))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"load_per_core": [[1.7e9 + 20, 1.7e9 + 30]]}))
    output = tmp_path / f"out{suffix}"
    assert (
        main(
            [
                "backtest",
                "--preset",
                "node-exporter",
                "--from",
                str(recording),
                "--labels",
                str(labels),
                "-o",
                str(output),
            ]
        )
        == 0
    )
    backtested = capsys.readouterr().out
    report = backtested[backtested.index("series ") :]
    assert main(["evaluate", str(output), "--labels", str(labels)]) == 0
    evaluated = capsys.readouterr().out
    assert "load_per_core" in evaluated and "NAB standard" in evaluated
    assert evaluated == report


def test_presets_alone_lists_them_as_presets_list_does(capsys: pytest.CaptureFixture[str]) -> None:
    """`deucalion presets` with no command was a usage error (exit 2); it lists the presets."""
    assert main(["presets", "list"]) == 0
    listed = capsys.readouterr().out
    assert main(["presets"]) == 0
    assert capsys.readouterr().out == listed and "node-exporter" in listed


def test_backtest_preset_says_which_targets_it_watched_and_shortens_what_it_looked_for(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A `record --all` recording of a node and of services: `backtest --preset node-exporter`
    logged a 1,000-character list of the 30 metrics it looked for, once per service, and its
    summary ("alerts fired: 0") never said which targets it computed signals on: a quiet run
    and one that watched nothing read the same."""
    from deucalion.replay.recording import RecordingWriter
    from deucalion.replay.sources import Cycle

    node, app = "http://node:9100/metrics", "http://app:8080/metrics"
    recording = tmp_path / "r.om.gz"
    with RecordingWriter(recording) as writer:
        for i in range(10):
            node_samples = {
                "node_load1": {"{}": 1.0 + i % 3},
                "node_memory_MemAvailable_bytes": {"{}": 6e9 - 1e6 * i},
                "node_memory_MemTotal_bytes": {"{}": 8e9},
                "up": {"{}": 1.0},
            }
            app_samples = {"http_requests_total": {'{code="200"}': 10.0 * i}, "up": {"{}": 1.0}}
            writer.write_cycle(
                Cycle(
                    1.7e9 + i,
                    {node: 1.7e9 + i, app: 1.7e9 + i},
                    {node: node_samples, app: app_samples},
                )
            )
    assert main(["backtest", "--preset", "node-exporter", "--from", str(recording)]) == 0
    out, err = capfd.readouterr()  # the observer's worker logs to the file descriptor
    assert f"targets: the preset watched 1 of 2 ({node}); found nothing to watch on {app}" in out, (
        out
    )
    [warning] = [line for line in err.splitlines() if app in line]
    assert "serves none of the metrics it watches (looked for node_cpu_seconds_total" in warning
    assert re.search(r"and \d+ more\)", warning) and len(warning) < 300, warning
