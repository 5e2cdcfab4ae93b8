"""The preset entry points of the command line as README's "Watching a service without code"
writes them: durations as elsewhere, one observer per backtest, and an unknown preset named
with where it was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from deucalion.cli import main
from deucalion.cli.commands import build_parser


def test_presets_show_interval_takes_a_duration_as_readme_writes_it() -> None:
    """README: `deucalion presets show NAME [--target URL] [--interval 1s]` (it was a float
    only, so `--interval 1s` was refused)."""
    args = build_parser().parse_args(
        ["presets", "show", "http-service", "--target", "http://127.0.0.1:1/metrics",
         "--interval", "1s"])
    assert args.interval == 1.0
    shorter = build_parser().parse_args(["presets", "show", "x", "--interval", "500ms"])
    assert shorter.interval == 0.5


def test_backtest_refuses_an_observer_and_a_preset_together(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`backtest (--observer M:F | --preset NAME)`: given both, it backtested the preset and
    dropped the observer without a word."""
    code = main(["backtest", "--preset", "node-exporter", "--observer",
                 "tests.replay_observers:RobustZScore", "--from", "tests/data/labelled"])
    assert code == 1
    err = capsys.readouterr().err
    assert "not both" in err and "tests.replay_observers:RobustZScore" in err
    assert "node-exporter" in err


def test_run_names_the_config_file_of_an_unknown_preset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEUCALION_PRESET", raising=False)
    config = tmp_path / "deucalion.yaml"
    config.write_text("targets: [127.0.0.1:1]\npreset: http_service\n")
    assert main(["run", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: preset" in err and "'http_service'" in err
    assert "node-exporter, http-service" in err


def test_demo_names_the_option_of_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--preset", "nodexporter", "--target", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "--preset" in err and "'nodexporter'" in err and "node-exporter" in err
