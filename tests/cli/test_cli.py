"""The deucalion command: check-config, targets, scrape, run."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from deucalion.cli import build_parser, load_object, main

BODY = """\
# TYPE http_requests_total counter
http_requests_total{code="200",path="/a"} 10
http_requests_total{code="500",path="/a"} 1
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 3
latency_seconds_bucket{le="+Inf"} 4
latency_seconds_sum 0.5
latency_seconds_count 4
other_metric 7
"""


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A tiny loopback exporter; yields its scrape URL."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=BODY, content_type="text/plain")

    async def html(request: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html>\n<html>Sign in</html>\n", content_type="text/html"
        )

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text=BODY + "this is not an exposition\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/html", html)
    app.router.add_get("/garbage", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/metrics"
    await runner.cleanup()


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file exits 0 with a one-line summary."""
    config = tmp_path / "c.yaml"
    config.write_text("scrape_interval: 5s\ntargets: [a:1, b:2]\n")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "OK: 2 static target(s), scrape every 5s" in out


def test_check_config_checks_the_environment_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEUCALION_* variables override the file for `run`, so check-config checks them with it:
    it said OK (and 'scrape every 15s') while `run` refused DEUCALION_KUBERNETES or ran at
    DEUCALION_SCRAPE_INTERVAL; it names the variables it used, never their values."""
    config = tmp_path / "c.yaml"
    config.write_text("targets: [a:1]\n")
    monkeypatch.setenv("DEUCALION_KUBERNETES", "true")
    monkeypatch.setenv("DEUCALION_SCRAPE_INTERVAL", "1s")
    monkeypatch.setenv("DEUCALION_CONFIG", str(tmp_path / "other.yaml"))  # not read: FILE is
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "kubernetes pod annotations, scrape every 1s" in out
    assert "with this shell's DEUCALION_KUBERNETES, DEUCALION_SCRAPE_INTERVAL" in out
    monkeypatch.setenv("DEUCALION_ALERTMANAGER__QUEUE_SIZE", "lots")
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "environment variable DEUCALION_ALERTMANAGER__QUEUE_SIZE: alertmanager.queue_size" in err


def test_check_config_typo_names_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo'd key exits 1 and every problem is listed with file, key and a suggestion."""
    config = tmp_path / "c.yaml"
    config.write_text("scrape_intervall: 5s\nfile_sd: {files: [x], refresh_interval: soon}\n")
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: unknown key 'scrape_intervall'" in err
    assert "did you mean 'scrape_interval'" in err
    assert "file_sd.refresh_interval: 'soon' is not a duration" in err


@pytest.mark.parametrize(
    ("beside", "other_problem"),
    [
        (
            "preset: node-exporer\nalertmanager: {url: http://127.0.0.1:9093}\n",
            "'alertmanager.url'",
        ),
        ("preset: node-exporer\nscrape_intervall: 2s\n", "'scrape_intervall'"),
        ("preset: {name: node-exporer, budget: 0}\n", "preset.budget: the budget must be"),
    ],
)
def test_check_config_lists_an_unknown_preset_with_the_other_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], beside: str, other_problem: str
) -> None:
    """A misspelt preset name surfaced only once every other problem was fixed (it was
    checked after the file had validated): README says check-config lists every problem."""
    config = tmp_path / "c.yaml"
    config.write_text("targets: [127.0.0.1:19100]\n" + beside)
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: preset.name: unknown preset 'node-exporer'" in err, err
    assert "did you mean 'node-exporter'?" in err
    assert f"config file {config}: " in err.split(other_problem)[0].rsplit("\n", 1)[-1], err


@pytest.mark.parametrize("command", [["run"], ["backtest", "--from", "unread.om"]])
def test_run_lists_an_unknown_preset_with_the_other_problems(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    """`run --preset NOSUCH -c FILE` with a misspelt key in FILE named the key alone; fixed,
    the next run named the preset: the two are one message, as check-config lists them. So is
    the file's own preset (`preset: node-exporer`), which `run` checked only after the rest."""
    monkeypatch.delenv("DEUCALION_PRESET", raising=False)
    config = tmp_path / "c.yaml"
    config.write_text("targets: [127.0.0.1:19100]\nscrape_intervall: 2s\n")
    assert main([*command, "--preset", "node-exporer", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "--preset: unknown preset 'node-exporer': did you mean 'node-exporter'?" in err, err
    assert f"config file {config}: unknown key 'scrape_intervall'" in err, err
    config.write_text("targets: [127.0.0.1:19100]\nscrape_intervall: 2s\npreset: node-exporer\n")
    assert main([*command, "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: preset.name: unknown preset 'node-exporer'" in err, err
    assert f"config file {config}: unknown key 'scrape_intervall'" in err, err


def test_check_config_lists_every_observer_it_cannot_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two ready observers with a bad kwarg each: both named, not the first alone."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "targets: [127.0.0.1:1]\n"
        "observers:\n"
        "  'deucalion.detectors:DetectorObserver':\n"
        "    desired_metrics: [node_load1]\n"
        "    kwargs: {budgett: 1}\n"
        "  'deucalion.detectors:RangeObserver':\n"
        "    desired_metrics: [node_load1]\n"
        "    kwargs: {warmupp: 1}\n"
    )
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: observers: 'deucalion.detectors:DetectorObserver': kwargs: 'budgett'" in err
    assert f"{config}: deucalion.detectors:RangeObserver: " in err and "warmupp" in err


def test_check_config_warns_about_a_misspelt_variable_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DEUCALION_* variable that is no setting passed in silence; now each is a warning on
    stderr naming the closest variable, never its value, and the exit code stays what `run`
    would do: 0 for a valid file, 1 for an invalid one. Kubernetes service links are no typo.
    A misspelt key under a section's variable (DEUCALION_TELEMETRY__LISTN) is an error for
    `run`, and so for check-config, which checks the environment with the file."""
    for name in [name for name in os.environ if name.startswith("DEUCALION_")]:
        monkeypatch.delenv(name)  # this shell's own
    monkeypatch.setenv("DEUCALION_ALERTMANAGER_UR", "http://alice:s3cr3t@am:9093")
    monkeypatch.setenv("DEUCALION_SERVICE_HOST", "10.0.0.7")
    config = tmp_path / "c.yaml"
    config.write_text("targets: [a:1]\n")
    assert main(["check-config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "OK: 1 static target(s)" in captured.out
    assert captured.err.splitlines() == [
        "deucalion: warning: environment variable DEUCALION_ALERTMANAGER_UR is not a setting "
        "and is ignored; did you mean DEUCALION_ALERTMANAGER__URLS?",
    ]
    config.write_text("targets: [a:1]\nscrape_interval: soon\n")
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "DEUCALION_ALERTMANAGER_UR is not a setting" in err and "'soon'" in err
    assert "s3cr3t" not in err
    config.write_text("targets: [a:1]\n")
    monkeypatch.setenv("DEUCALION_TELEMETRY__LISTN", "0.0.0.0:9464")
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "DEUCALION_TELEMETRY__LISTN is not a setting" not in err  # read, then refused
    assert "environment variable DEUCALION_TELEMETRY__LISTN: unknown key 'telemetry.listn'" in err
    assert "s3cr3t" not in err and "alice" not in err


def test_check_config_accepts_an_observer_run_gives_metrics_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An observers entry without desired_metrics runs with `run -c FILE --metrics up`;
    check-config refused it, telling to pass --metrics, an option it does not take. It is
    accepted, with a warning that `run` will need --metrics for it; its kwargs are still
    built and checked."""
    config = tmp_path / "c.yaml"
    config.write_text("targets: [a:1]\nobservers:\n  deucalion.detectors:DetectorObserver: {}\n")
    assert main(["check-config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "OK: 1 static target(s)" in captured.out and "1 observer(s)" in captured.out
    # (This shell's DEUCALION_* variables that are no setting are warned about too.)
    assert [line for line in captured.err.splitlines() if "observers:" in line] == [
        "deucalion: warning: observers: 'deucalion.detectors:DetectorObserver': no "
        "desired_metrics: `deucalion run` will need --metrics a,b for it (or add "
        "desired_metrics: [name, ...] to the entry)"
    ]
    config.write_text(
        "targets: [a:1]\nobservers:\n  deucalion.detectors:DetectorObserver:\n"
        "    kwargs: {nope: 1}\n"
    )
    assert main(["check-config", str(config)]) == 1
    assert "nope" in capsys.readouterr().err


def test_check_config_examples() -> None:
    """Every example config in examples/ is valid."""
    examples = sorted(Path("examples").glob("*.yaml"))
    assert examples
    for example in examples:
        assert main(["check-config", str(example)]) == 0, example


async def _main_in_thread(argv: list[str]) -> int:
    # The commands call asyncio.run themselves, so they run outside the test's loop.
    import asyncio

    return await asyncio.to_thread(main, argv)


async def test_scrape_json_shape(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    """scrape prints what an observer desiring --metrics receives: families, synthetic up."""
    assert (
        await _main_in_thread(
            ["scrape", target, "--metrics", "http_requests_total,latency_seconds,up"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert list(data) == [target]
    samples = data[target]
    assert set(samples) == {
        "http_requests_total",
        "latency_seconds_bucket",
        "latency_seconds_sum",
        "latency_seconds_count",
        "up",
    }
    assert samples["http_requests_total"] == {
        '{code="200",path="/a"}': 10.0,
        '{code="500",path="/a"}': 1.0,
    }
    assert samples["up"] == {"{}": 1.0}


async def test_scrape_without_metrics_prints_everything(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --metrics every sample is printed, with the synthetic ones."""
    assert await _main_in_thread(["scrape", target]) == 0
    samples = json.loads(capsys.readouterr().out)[target]
    assert samples["other_metric"] == {"{}": 7.0}
    assert samples["scrape_samples_scraped"] == {"{}": 7.0}


@pytest.mark.parametrize("path", ["/html", "/garbage"])
@pytest.mark.parametrize("metrics", [None, "http_requests_total,up", "http_.*,up"])
async def test_scrape_of_a_body_that_is_not_an_exposition_exits_1(
    target: str, path: str, metrics: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 200 answer that is no exposition is a failed scrape, with --metrics or without:
    up = 0, the line at fault on stderr, exit 1."""
    url = target.replace("/metrics", path)
    argv = ["scrape", url] + (["--metrics", metrics] if metrics else [])
    assert await _main_in_thread(argv) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)[url]["up"] == {"{}": 0.0}
    assert "malformed exposition: line" in captured.err


async def test_scrape_down_target_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A target that does not answer: up = 0 in the JSON, the reason on stderr, exit 1."""
    assert await _main_in_thread(["scrape", "127.0.0.1:1", "--metrics", "up"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"http://127.0.0.1:1/metrics": {"up": {"{}": 0.0}}}
    assert "is down" in captured.err


async def test_scrape_masks_a_secret_query_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    """A ?token= in the URL is masked in the JSON's key, as in the log line: the output is
    often pasted."""
    url = "http://127.0.0.1:1/metrics?token=S3cretTok"
    assert await _main_in_thread(["scrape", url, "--metrics", "up"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"http://127.0.0.1:1/metrics?token=***": {"up": {"{}": 0.0}}}
    assert "S3cretTok" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:99999/metrics", "invalid port"),
        ("ftp://host/metrics", "is not a scrape URL"),
    ],
)
async def test_scrape_of_a_bad_url_is_an_error_naming_it(
    url: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL that cannot be scraped is one line on stderr naming it, exit 1, no traceback."""
    assert await _main_in_thread(["scrape", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deucalion: deucalion scrape URL: ") and reason in err
    assert url in err and "Traceback" not in err


async def test_targets_lists_up_and_down(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """targets prints each discovered target with labels and up/down plus the reason."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"targets:\n  - targets: ['{target}', 127.0.0.1:1]\n    labels: {{job: shop}}\n"
    )
    assert await _main_in_thread(["targets", "-c", str(config)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{target}  {{job=shop}}  up    (7 samples in")
    assert lines[1].startswith("http://127.0.0.1:1/metrics  {job=shop}  down  (")


def test_load_object_from_module_and_file(tmp_path: Path) -> None:
    """run's import paths: module:Class and file.py:Class both resolve."""
    assert load_object("deucalion.demo:RobustZScoreObserver").__name__ == "RobustZScoreObserver"
    app = tmp_path / "app.py"
    app.write_text("class Detector:\n    pass\n")
    assert load_object(f"{app}:Detector").__name__ == "Detector"


def test_run_without_desired_metrics_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    """run with an observer whose metrics are unknown exits 1 naming --metrics and observers:."""
    assert main(["run", "deucalion.demo:RobustZScoreObserver"]) == 1
    err = capsys.readouterr().err
    assert "--metrics" in err and "observers:" in err


def test_parser_has_room_for_more_commands() -> None:
    """The subparsers can take further command groups (the injector's add_commands)."""
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    assert actions and {"demo", "check-config", "targets", "scrape", "run"} <= set(
        actions[0].choices
    )  # type: ignore[arg-type]


def test_check_config_hides_a_password_in_the_prometheus_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary of a federated config shows the Prometheus URL with its password as ***."""
    config = tmp_path / "c.yaml"
    config.write_text("prometheus: {url: 'http://fed:s3cr3t@prometheus:9090'}\n")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "federated from http://fed:***@prometheus:9090," in out and "s3cr3t" not in out


def test_run_of_a_module_that_does_not_exist_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """`run nonexistent_mod:X` reports the import error, not the unknown desired metrics."""
    assert main(["run", "nonexistent_mod_for_the_test:X"]) == 1
    err = capsys.readouterr().err
    assert "cannot import nonexistent_mod_for_the_test" in err
    assert "--metrics" not in err


def test_run_of_a_file_that_raises_on_import_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file.py:Class that raises while it is imported is one error naming file and line."""
    app = tmp_path / "app.py"
    app.write_text("x = 1\nraise RuntimeError('no model file')\n")
    assert main(["run", f"{app}:Obs", "--metrics", "up"]) == 1
    err = capsys.readouterr().err
    assert f"importing {app} failed: RuntimeError: no model file (at {app}:2)" in err


def test_run_of_something_that_is_not_an_observer_class(capsys: pytest.CaptureFixture[str]) -> None:
    """A path to a function or module attribute that is no MetricsObserver class is named."""
    assert main(["run", "deucalion.demo:run_demo", "--metrics", "up"]) == 1
    assert "deucalion.demo:run_demo: a function, not a MetricsObserver class" in (
        capsys.readouterr().err
    )


def test_run_of_a_detector_says_what_runs_it(capsys: pytest.CaptureFixture[str]) -> None:
    """`deucalion run deucalion.detectors:RobustZScore` said "a ABCMeta, not a MetricsObserver
    class"; it says it is a detector and what runs one."""
    assert main(["run", "deucalion.detectors:RobustZScore", "--metrics", "up"]) == 1
    err = capsys.readouterr().err
    assert "RobustZScore is a detector" in err and "deucalion.detectors:DetectorObserver" in err
    assert "ABCMeta" not in err


def test_run_of_a_misspelt_name_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "deucalion.detectors:DetectorObservr", "--metrics", "up"]) == 1
    assert "did you mean deucalion.detectors:DetectorObserver?" in capsys.readouterr().err


def test_make_help_lists_every_target_with_what_it_does() -> None:
    """`make help` prints each .PHONY target of the Makefile with a description."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        ["make", "-s", "help"], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    described = {}
    for line in run.stdout.splitlines():
        _, target, text = line.split(maxsplit=2)
        described[target] = text
    phony = next(
        line for line in (root / "Makefile").read_text().splitlines() if line.startswith(".PHONY:")
    ).split()[1:]
    assert set(phony) == set(described), run.stdout
    assert all(len(text) > 5 for text in described.values())


def test_the_license_pyproject_declares_is_shipped() -> None:
    """pyproject.toml says Apache-2.0, and LICENSE holds that license's text."""
    root = Path(__file__).resolve().parents[2]
    with open(root / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["license"] == "Apache-2.0"
    text = (root / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command and subcommand of ``parser``, as ``deucalion backtest`` names them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}".strip(), sub
                yield from _commands(sub, f"{path} {name}")


def test_the_readme_commands_table_lists_every_option() -> None:
    """Each command's row in README's Commands table lists every option `--help` shows (it
    once left out `backtest --allow-partial`, `--csv-metric`, `-v` and more)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `deucalion ")]
    missing = []
    parser = build_parser()
    for path, command in _commands(parser):
        # A command's rows are its own and its subcommands' (injector's options are serve's).
        named = re.compile(rf"^\| `deucalion {re.escape(path)}(?=[ `])")
        text = " ".join(row.split("` |")[0] for row in rows if named.match(row))
        assert text, f"README's Commands table has no row for deucalion {path}"
        for action in command._actions:
            if not action.option_strings or action.dest == "help":
                continue
            if not any(
                re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)
                for option in action.option_strings
            ):
                missing.append(f"deucalion {path} {'/'.join(action.option_strings)}")
    for action in parser._actions:  # --version, --log-level: said under the table
        global_option = action.option_strings and action.dest != "help"
        if global_option and action.option_strings[-1] not in section:
            missing.append(f"deucalion {action.option_strings[-1]}")
    assert missing == []


def test_record_without_targets_says_so_before_any_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`record` with no targets printed "record x.om.gz: 0s recorded ... 0s in all" above the
    error, as if a recording had been made."""
    for name in ("DEUCALION_TARGETS", "DEUCALION_CONFIG", "DEUCALION_PROMETHEUS__URL"):
        monkeypatch.delenv(name, raising=False)
    output = tmp_path / "x.om.gz"
    assert main(["record", "--all", "-o", str(output), "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert "no targets configured" in err and "recorded" not in err
    assert not output.exists()
