"""A preset's false-alert budget, set where the preset is picked (issue 27): in the config file
(``preset: {name: NAME, budget: X}``), with ``DEUCALION_PRESET__BUDGET``, and with ``--budget``
on ``run``, ``demo`` and ``backtest``; anything but a positive number is refused, naming the key
and where it was set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import deucalion.presets
from deucalion.cli import main
from deucalion.presets.observer import PresetObserver
from deucalion.provisioner import MetricsProvisioner


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[PresetObserver]:
    """The preset observers `deucalion run` would run (the provisioner is not started)."""
    for name in (
        "DEUCALION_PRESET",
        "DEUCALION_PRESET__BUDGET",
        "DEUCALION_PRESET__NAME",
        "DEUCALION_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    registered: list[PresetObserver] = []

    def run(self: MetricsProvisioner) -> None:
        registered.extend(o for o in self.observers if isinstance(o, PresetObserver))

    monkeypatch.setattr(MetricsProvisioner, "run", run)
    return registered


def _config(tmp_path: Path, preset: str) -> Path:
    config = tmp_path / "deucalion.yaml"
    config.write_text(f"targets: [127.0.0.1:1]\ntelemetry: {{enabled: false}}\npreset: {preset}\n")
    return config


def test_the_config_file_sets_the_budget(tmp_path: Path, ran: list[PresetObserver]) -> None:
    """`preset: {name, budget}`: the preset runs with that budget, its detector with a lower
    threshold (3 events per 10,000 cycles per target -> 30 per series: 10_000/30)."""
    config = _config(tmp_path, "{name: node-exporter, budget: 3}")
    assert main(["run", "-c", str(config)]) == 0
    [observer] = ran
    assert observer.preset == "node-exporter" and observer.budget == 3.0
    assert observer.detector.threshold == pytest.approx(3 - 0.4771, abs=1e-3)  # type: ignore[attr-defined]


def test_the_short_form_keeps_the_default_budget(tmp_path: Path, ran: list[PresetObserver]) -> None:
    assert main(["run", "-c", str(_config(tmp_path, "http-service"))]) == 0
    [observer] = ran
    assert observer.preset == "http-service" and observer.budget == 1.0
    assert observer.detector.threshold == pytest.approx(3.0)  # type: ignore[attr-defined]


def test_the_environment_sets_the_budget_of_the_files_preset(
    tmp_path: Path, ran: list[PresetObserver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`preset: node-exporter` in the file, DEUCALION_PRESET__BUDGET=0.5 in the environment:
    one preset, the file's name and the environment's budget."""
    monkeypatch.setenv("DEUCALION_PRESET__BUDGET", "0.5")
    assert main(["run", "-c", str(_config(tmp_path, "node-exporter"))]) == 0
    [observer] = ran
    assert (observer.preset, observer.budget) == ("node-exporter", 0.5)


def test_budget_on_the_command_line_wins(tmp_path: Path, ran: list[PresetObserver]) -> None:
    """--budget over the file's; and the file's budget alone applies to --preset's preset (the
    injector's annotation runs `deucalion run --preset NAME`)."""
    config = _config(tmp_path, "{name: node-exporter, budget: 3}")
    assert main(["run", "-c", str(config), "--budget", "0.2"]) == 0
    assert ran[-1].budget == 0.2
    assert (
        main(["run", "-c", str(_config(tmp_path, "{budget: 5}")), "--preset", "http-service"]) == 0
    )
    assert (ran[-1].preset, ran[-1].budget) == ("http-service", 5.0)


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "inf", "lots", "true", "5000"])
def test_a_budget_that_is_no_positive_number_is_refused_naming_key_and_file(
    tmp_path: Path, ran: list[PresetObserver], capsys: pytest.CaptureFixture[str], budget: str
) -> None:
    config = _config(tmp_path, f"{{name: node-exporter, budget: {budget}}}")
    assert main(["run", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: preset.budget" in err and "positive number" in err, err
    assert "Traceback" not in err and not ran
    assert main(["check-config", str(config)]) == 1
    assert f"config file {config}: preset.budget" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["5", "[node-exporter]", "true"])
def test_a_preset_that_is_neither_a_name_nor_a_section_says_what_the_key_takes(
    tmp_path: Path, ran: list[PresetObserver], capsys: pytest.CaptureFixture[str], preset: str
) -> None:
    """`preset: 5`: it said "Input should be a valid dictionary or instance of
    PresetSettings", the name of a class, not of what to write."""
    config = _config(tmp_path, preset)
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: preset: give a preset's name" in err, err
    assert "{name: NAME, budget: X}" in err and "PresetSettings" not in err


def test_a_bad_budget_in_the_environment_names_the_variable(
    tmp_path: Path,
    ran: list[PresetObserver],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEUCALION_PRESET__BUDGET", "-3")
    assert main(["run", "-c", str(_config(tmp_path, "node-exporter"))]) == 1
    err = capsys.readouterr().err
    assert "DEUCALION_PRESET__BUDGET: preset.budget" in err and "positive number" in err


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--preset", "node-exporter"],
        ["demo", "--preset", "node-exporter", "--target", "x:1"],
        ["backtest", "--preset", "node-exporter", "--from", "x"],
    ],
)
def test_budget_option_refuses_what_is_no_positive_number(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for budget in ("-1", "1000"):  # 1,000 or more: ten times it per series is no budget
        with pytest.raises(SystemExit) as exited:
            main([*command, "--budget", budget])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "--budget" in err and "positive number below 1,000" in err, err


def test_budget_without_a_preset_is_refused(
    tmp_path: Path, ran: list[PresetObserver], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "deucalion.yaml"
    config.write_text("targets: [127.0.0.1:1]\n")
    assert main(["run", "-c", str(config), "--budget", "2"]) == 1
    assert "--budget" in capsys.readouterr().err
    assert main(["backtest", "--budget", "2", "--from", "tests/data/labelled"]) == 1
    assert "--preset" in capsys.readouterr().err


def test_a_configured_budget_without_a_preset_leaves_an_observers_sidecar_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """README: DEUCALION_PRESET__BUDGET in the injector's `sidecar.extra_env` for every pod.
    A pod annotated `deucalion.io/observer` gets it too, and its sidecar (`deucalion run
    M:C`) refused to start: "the configuration's preset.budget: it is a preset's budget, and
    no preset is named". It runs its observer; the budget is said to be unused."""
    import logging

    from deucalion.detectors import DetectorObserver

    registered: list[object] = []

    def run(self: MetricsProvisioner) -> None:
        registered.extend(self.observers)

    monkeypatch.setattr(MetricsProvisioner, "run", run)
    monkeypatch.delenv("DEUCALION_CONFIG", raising=False)
    monkeypatch.setenv("DEUCALION_PRESET__BUDGET", "3")
    config = tmp_path / "deucalion.yaml"
    config.write_text("targets: [127.0.0.1:1]\ntelemetry: {enabled: false}\n")
    with caplog.at_level(logging.INFO, logger="deucalion.cli"):
        assert (
            main(
                [
                    "run",
                    "deucalion.detectors:DetectorObserver",
                    "--metrics",
                    "node_load1",
                    "-c",
                    str(config),
                ]
            )
            == 0
        )
    assert [type(o) for o in registered] == [DetectorObserver]
    assert (
        "DEUCALION_PRESET__BUDGET (3) is a preset's budget and no preset runs here" in caplog.text
    )


def _node_recording(tmp_path: Path) -> Path:
    """A recording of five cycles of a node_exporter serving two of the preset's metrics."""
    from deucalion.replay.recording import RecordingWriter
    from deucalion.replay.sources import Cycle

    node = "http://node:9100/metrics"
    recording = tmp_path / "r.om.gz"
    with RecordingWriter(recording) as writer:
        for i in range(5):
            samples = {
                "node_load1": {"{}": 1.0},
                "node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 10.0 + i},
                "up": {"{}": 1.0},
            }
            writer.write_cycle(Cycle(1.7e9 + i, {node: 1.7e9 + i}, {node: samples}))
    return recording


def test_backtest_runs_the_preset_with_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backtest --preset NAME --budget X` backtests that preset with budget X."""
    built: list[dict[str, Any]] = []
    original = deucalion.presets.preset_observer

    def preset_observer(name: str, **options: Any) -> PresetObserver:
        built.append(options)
        return original(name, **options)

    monkeypatch.setattr(deucalion.presets, "preset_observer", preset_observer)
    recording = _node_recording(tmp_path)
    assert (
        main(["backtest", "--preset", "node-exporter", "--budget", "4", "--from", str(recording)])
        == 0
    ), capsys.readouterr().err
    assert built == [{"budget": 4.0}]


def test_an_unknown_preset_named_in_the_environment_names_the_variable(
    tmp_path: Path,
    ran: list[PresetObserver],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DEUCALION_PRESET__NAME is the section's form of DEUCALION_PRESET: an error names it."""
    monkeypatch.setenv("DEUCALION_PRESET__NAME", "nodexporter")
    assert main(["run", "-c", str(_config(tmp_path, "{budget: 2}"))]) == 1
    err = capsys.readouterr().err
    assert "DEUCALION_PRESET__NAME" in err and "'nodexporter'" in err and not ran


@pytest.mark.parametrize("where", ["file", "environment", "file's preset"])
def test_backtest_takes_the_budget_the_configuration_runs_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A budget set in the config file or DEUCALION_PRESET__BUDGET is the one a backtest of the
    preset tries (`--budget`'s help said so; the backtest took 1), and `backtest -c FILE`
    backtests the file's preset as `run -c FILE` runs it."""
    for name in ("DEUCALION_PRESET", "DEUCALION_PRESET__BUDGET", "DEUCALION_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    built: list[tuple[str, dict[str, Any]]] = []
    original = deucalion.presets.preset_observer

    def preset_observer(name: str, **options: Any) -> PresetObserver:
        built.append((name, options))
        return original(name, **options)

    monkeypatch.setattr(deucalion.presets, "preset_observer", preset_observer)
    recording = _node_recording(tmp_path)
    command = ["backtest", "--from", str(recording)]
    if where == "environment":
        monkeypatch.setenv("DEUCALION_PRESET__BUDGET", "3")
        command += ["--preset", "node-exporter"]
    elif where == "file":
        command += ["--preset", "node-exporter", "-c", str(_config(tmp_path, "{budget: 3}"))]
    else:
        command += ["-c", str(_config(tmp_path, "{name: node-exporter, budget: 3}"))]
    assert main(command) == 0, capsys.readouterr().err
    assert built == [("node-exporter", {"budget": 3.0})]
    assert main([*command, "--budget", "0.5"]) == 0  # the command line still wins
    assert built[-1] == ("node-exporter", {"budget": 0.5})


def test_run_logs_the_preset_and_budget_it_runs(
    tmp_path: Path, ran: list[PresetObserver], caplog: pytest.LogCaptureFixture
) -> None:
    """A sidecar's preset and budget come from an annotation, a ConfigMap and the injector's
    environment; its log said only "1 observer(s)", so a user could not see the budget took."""
    import logging

    with caplog.at_level(logging.INFO, logger="deucalion.cli"):
        assert (
            main(["run", "-c", str(_config(tmp_path, "{budget: 3}")), "--preset", "node-exporter"])
            == 0
        )
    assert "preset node-exporter, budget 3 (false alerts per target" in caplog.text


def test_run_says_when_preset_replaces_the_files_preset(
    tmp_path: Path, ran: list[PresetObserver], caplog: pytest.LogCaptureFixture
) -> None:
    """`--preset` wins over the file's `preset:` (one preset a run); it did so silently, and a
    user who meant both saw only one preset's alerts."""
    import logging

    config = _config(tmp_path, "{name: node-exporter, budget: 3}")
    with caplog.at_level(logging.INFO, logger="deucalion.cli"):
        assert main(["run", "-c", str(config), "--preset", "http-service"]) == 0
    assert [observer.preset for observer in ran] == ["http-service"]
    assert "--preset http-service replaces the preset node-exporter (config file" in caplog.text
    assert str(config) in caplog.text and "and its budget 3 with it" in caplog.text
    # The file's budget was node-exporter's: http-service runs with the default.
    assert "preset http-service, budget 1 (false alerts" in caplog.text


def test_demo_takes_the_budget_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: the budget is set with `preset: {...}`, DEUCALION_PRESET__BUDGET or --budget;
    `demo --preset` ran with 1 whatever the variable said."""
    import asyncio

    from deucalion.demo import run_demo

    built: list[dict[str, Any]] = []
    original = deucalion.presets.preset_observer

    def preset_observer(name: str, **options: Any) -> PresetObserver:
        built.append(options)
        return original(name, **options)

    monkeypatch.setattr(deucalion.presets, "preset_observer", preset_observer)
    monkeypatch.setenv("DEUCALION_PRESET__BUDGET", "3")
    asyncio.run(run_demo(preset="http-service", target="127.0.0.1:9", duration=0.2, interval=0.1))
    asyncio.run(
        run_demo(
            preset="http-service", target="127.0.0.1:9", duration=0.2, interval=0.1, budget=0.5
        )
    )
    assert [b["budget"] for b in built] == [3.0, 0.5]
