"""The ready observers of README's "Writing a detector" and "Detection quality", run by import
path as a user without code of their own would."""

from __future__ import annotations

from pathlib import Path

import pytest

from deucalion.cli import main


@pytest.mark.parametrize(
    "command",
    [
        ["run", "deucalion.detectors:DetectorObserver"],
        [
            "backtest",
            "--observer",
            "deucalion.detectors:DetectorObserver",
            "--from",
            "tests/data/labelled",
        ],
    ],
)
def test_detector_observer_without_metrics_says_to_pass_them(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DetectorObserver's desired_metrics defaults to none: the command said 'pass the metric
    names its model needs to super().__init__(desired_metrics)', advice for a class's author,
    not for the user of a command."""
    monkeypatch.setenv("DEUCALION_TARGETS", "http://127.0.0.1:1/metrics")
    monkeypatch.setenv("DEUCALION_CONFIG", "")
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "--metrics" in err and "super().__init__" not in err


def _config(tmp_path: Path, budget: str, kinds: str | None = None) -> Path:
    """A config of the ready observer on node_load1 with ``kwargs`` of ``budget`` (and
    ``kinds``, given)."""
    more = "" if kinds is None else f", kinds: {kinds}"
    path = tmp_path / "deucalion.yaml"
    path.write_text(
        "targets: [127.0.0.1:1]\n"
        "observers:\n"
        "  'deucalion.detectors:DetectorObserver':\n"
        "    desired_metrics: [node_load1]\n"
        f"    kwargs: {{budget: {budget}{more}}}\n"
    )
    return path


def test_the_ready_observer_takes_its_budget_from_the_config(tmp_path: Path) -> None:
    """The false-alert budget in human units, where no detector object can be written: a
    config's kwargs (DetectorObserver had no budget; only a detector built in Python did)."""
    from deucalion.cli.shared import build_observers
    from deucalion.config import load_settings
    from deucalion.detectors import AnomalyDetector, DetectorObserver

    settings = load_settings(_config(tmp_path, "0.5"), environ={}, default_file=None)
    (observer,) = build_observers([], settings, None)
    assert isinstance(observer, DetectorObserver)
    assert isinstance(observer.detector, AnomalyDetector) and observer.detector.budget == 0.5
    assert observer.detector.threshold == AnomalyDetector(budget=0.5).threshold
    with pytest.raises(ValueError, match="default detector"):
        DetectorObserver(AnomalyDetector(), {"x"}, budget=2.0)


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        [
            "backtest",
            "--observer",
            "deucalion.detectors:DetectorObserver",
            "--from",
            "tests/data/labelled",
        ],
    ],
)
def test_a_value_an_observer_refuses_is_a_config_error_naming_the_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    """`kwargs: {budget: -1}`: refused naming the key and, as check-config does, the file it
    is in (run and backtest named the key alone), given with -c or DEUCALION_CONFIG."""
    config = _config(tmp_path, "-1")
    monkeypatch.delenv("DEUCALION_CONFIG", raising=False)
    assert main([*command, "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: observers: 'deucalion.detectors:DetectorObserver': kwargs" in err, err
    assert "budget=-1" in err and "Traceback" not in err
    monkeypatch.setenv("DEUCALION_CONFIG", str(config))
    assert main(command) == 1
    assert f"{config}: observers:" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["run"], ["check-config"]])
def test_a_misspelt_kwargs_key_is_named_with_its_file_and_the_key_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """`kwargs: {budgett: 1}`: the error was Python's 'unexpected keyword argument', naming
    neither the config file nor the argument meant."""
    config = tmp_path / "deucalion.yaml"
    config.write_text(
        "targets: [127.0.0.1:1]\n"
        "observers:\n"
        "  'deucalion.detectors:DetectorObserver':\n"
        "    desired_metrics: [node_load1]\n"
        "    kwargs: {budgett: 1}\n"
    )
    args = [*command, "-c", str(config)] if command == ["run"] else [*command, str(config)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{config}: observers: 'deucalion.detectors:DetectorObserver': kwargs: 'budgett'" in err
    assert "did you mean 'budget'?" in err and "unexpected keyword" not in err


@pytest.mark.parametrize(("budget", "ok"), [("0.5", True), ("1d", False), ("0", False)])
def test_check_config_builds_the_ready_observers_it_configures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str, ok: bool
) -> None:
    """`kwargs: {budget: 1d}` passed check-config and then failed the running sidecar: the
    ready observers (deucalion's own, safe to build) are built by the check."""
    config = _config(tmp_path, budget)
    assert main(["check-config", str(config)]) == (0 if ok else 1)
    out, err = capsys.readouterr()
    if ok:
        assert "OK" in out
    else:
        assert str(config) in err and "budget=" in err and "a number above 0" in err


def test_the_ready_observer_takes_the_kinds_it_looks_for_from_the_config(tmp_path: Path) -> None:
    """`kinds` chooses the default detector's components as `budget` sets its budget, but
    `DetectorObserver(desired_metrics=..., kinds=[...])` and a config's `kwargs: {kinds: ...}`
    were refused as no keyword of it: only a detector built in Python could choose them."""
    from deucalion.cli.shared import build_observers
    from deucalion.config import load_settings
    from deucalion.detectors import AnomalyDetector, DetectorObserver

    path = _config(tmp_path, "0.5", kinds="[stuck, spike]")
    settings = load_settings(path, environ={}, default_file=None)
    (observer,) = build_observers([], settings, None)
    assert isinstance(observer, DetectorObserver)
    assert isinstance(observer.detector, AnomalyDetector)
    assert (observer.detector.kinds, observer.detector.budget) == (("spike", "stuck"), 0.5)
    built = DetectorObserver(desired_metrics={"node_load1"}, kinds="stuck").detector
    assert isinstance(built, AnomalyDetector) and built.kinds == ("stuck",)
    with pytest.raises(ValueError, match=r"kinds=\['spike'\] is the default detector's"):
        DetectorObserver(AnomalyDetector(), {"x"}, kinds=["spike"])
    with pytest.raises(ValueError, match="'spikes' is no kind; did you mean 'spike'"):
        DetectorObserver(desired_metrics={"x"}, kinds=["spikes"])
