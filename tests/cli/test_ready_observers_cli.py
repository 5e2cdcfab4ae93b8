"""The ready observers of README's "Writing a detector" and "Detection quality", run by import
path as a user without code of their own would."""

from __future__ import annotations

import pytest

from deucalion.cli import main


@pytest.mark.parametrize("command", [
    ["run", "deucalion.detectors:DetectorObserver"],
    ["backtest", "--observer", "deucalion.detectors:DetectorObserver", "--from",
     "tests/data/labelled"],
])
def test_detector_observer_without_metrics_says_to_pass_them(
        command: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """DetectorObserver's desired_metrics defaults to none: the command said 'pass the metric
    names its model needs to super().__init__(desired_metrics)', advice for a class's author,
    not for the user of a command."""
    monkeypatch.setenv("DEUCALION_TARGETS", "http://127.0.0.1:1/metrics")
    monkeypatch.setenv("DEUCALION_CONFIG", "")
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "--metrics" in err and "super().__init__" not in err
