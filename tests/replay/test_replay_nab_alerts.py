"""NAB of an observer that decides its own alerts: the alerts as detections, one at each alert's
start, beside the score sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deucalion.cli import main
from deucalion.replay.evaluate import evaluate, read_output
from deucalion.replay.results import AlertSpan, BacktestResult

pytest.importorskip("deucalion.replay.nab")


def _walk_data(folder: Path) -> Path:
    """A frozen series, a level shift and a spike, 1,000 points at 5 minutes, each labelled."""
    rng = np.random.default_rng(6161)
    times = 1704067200 + 300 * np.arange(1000)
    start = 700
    series = {}
    values = 50 + rng.normal(0, 2, 1000)
    values[start + 100 :] += 10
    series["shift.csv"] = values
    values = 50 + rng.normal(0, 2, 1000)
    values[start + 200] += 30
    series["spike.csv"] = values
    values = 50 + rng.normal(0, 2, 1000)
    values[start:] = values[start - 1]
    series["stuck.csv"] = values
    data = folder / "data"
    data.mkdir()
    for name, column in series.items():
        rows = "".join(f"{t},{v:.4f}\n" for t, v in zip(times, column, strict=True))
        (data / name).write_text("timestamp,value\n" + rows)
    windows = {
        "shift.csv": [[int(times[start + 100]), int(times[start + 130])]],
        "spike.csv": [[int(times[start + 200]), int(times[start + 210])]],
        "stuck.csv": [[int(times[start]), int(times[start + 40])]],
    }
    labels = folder / "windows.json"
    labels.write_text(json.dumps(windows))
    return labels


def test_detector_alerts_score_nab_beside_the_score_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new user's walk: the default detector's alerts found 3 of 3 windows, and the only NAB
    line said 0.0, 0/3 windows (its score stays high for hundreds of rows past a frozen
    series' window, so the sweep's best was never to fire). Its alerts, one detection each at
    its start, find the 3 windows and score above 0; the score sweep's line is still there."""
    labels = _walk_data(tmp_path)
    out = tmp_path / "out.jsonl"
    command = ["backtest", "--observer", "deucalion.detectors:DetectorObserver"]
    command += ["--metrics", "value", "--from", str(tmp_path / "data"), "-o", str(out)]
    assert main([*command, "--labels", str(labels)]) == 0
    printed = capsys.readouterr().out
    total = next(line for line in printed.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["3", "3"]
    lines = printed.splitlines()
    by_alerts = [line for line in lines if ", alerts as detections: " in line]
    swept = [line for line in lines if ", scores swept: " in line]
    assert len(by_alerts) == len(swept) == 3
    assert lines.index(by_alerts[-1]) < lines.index(swept[0])
    assert by_alerts[0].startswith("NAB standard, alerts as detections: ")
    assert "3/3 windows detected" in by_alerts[0]
    assert "best threshold" in swept[0]
    report = evaluate(read_output(out), str(labels))
    for profile, sweep in report.nab_alerts.items():
        assert (sweep.windows, sweep.detected) == (3, 3), profile
        assert sweep.score > 0, profile
    assert set(report.nab_alerts) == set(report.nab)


def test_an_alert_firing_outside_a_window_is_one_false_positive() -> None:
    """An alert that starts outside every window and fires for 50 rows is one false positive
    for the alerts' NAB, not 50 (as the scores at a threshold count it, row by row); the alert
    starting in the window detects it."""
    result = BacktestResult("X", steps=201, first_time=0.0, last_time=2000.0)
    result.alerts = [
        AlertSpan({}, {}, "checkout.csv", 630.0, 650.0),
        AlertSpan({}, {}, "checkout.csv", 1000.0, 1490.0),
    ]
    rows = [float(t) for t in range(0, 2001, 10)]
    result.values = {"checkout.csv value{}": [(t, 1.0) for t in rows]}
    firing = [(630.0 <= t <= 650.0) or (1000.0 <= t <= 1490.0) for t in rows]
    result.scores = {
        "checkout.csv value{}": [(t, 9.0 * f) for t, f in zip(rows, firing, strict=True)]
    }
    report = evaluate(result, {"checkout.csv": [(600.0, 800.0)]}, threshold=9.0)
    by_alerts = report.nab_alerts["standard"]
    assert (by_alerts.windows, by_alerts.detected, by_alerts.false_positives) == (1, 1, 1)
    assert by_alerts.score > 50
    assert report.nab["standard"].false_positives == 50  # the score line still counts rows
    printed = report.report()
    assert "NAB standard, alerts as detections: " in printed
    assert "1 false positive: alerts started outside the windows" in printed
    assert "NAB standard, scores at the given threshold: " in printed


def test_an_observer_that_never_alerted_reads_0_windows_found_by_its_alerts() -> None:
    """A detector that scored the labelled series but never alerted: its alerts' NAB is
    there, 0 of the windows (it printed only the score sweep's line, which may read well
    above 0 for what paged no one)."""
    result = BacktestResult("X", steps=201, first_time=0.0, last_time=2000.0)
    rows = [float(t) for t in range(0, 2001, 10)]
    result.values = {"checkout.csv value{}": [(t, 1.0) for t in rows]}
    result.scores = {"checkout.csv value{}": [(t, 9.0 * (630 <= t <= 650)) for t in rows]}
    report = evaluate(result, {"checkout.csv": [(600.0, 800.0)]})
    by_alerts = report.nab_alerts["standard"]
    assert (by_alerts.windows, by_alerts.detected, by_alerts.false_positives) == (1, 0, 0)
    assert report.nab["standard"].detected == 1  # the sweep found it in the scores
    assert "NAB standard, alerts as detections: " in report.report()
