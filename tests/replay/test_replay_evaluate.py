"""Evaluation counts every labelled window: detectors that score only when they alert, outputs
read back, series without rows, and the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deucalion.cli import main
from deucalion.replay import backtest, nab
from deucalion.replay.evaluate import evaluate, load_windows, read_output
from deucalion.replay.results import AlertSpan, BacktestResult
from tests.replay_observers import AlertsAbove

FIVE = Path(__file__).parents[1] / "data" / "five_windows"


def _every_row_score() -> dict[str, nab.SweepResult]:
    """NAB's scores of the same detections written at every row (0 where no alert)."""
    times, values, windows = nab.load_labelled_directory(FIVE)["spikes.csv"]
    scores = [v if v >= 5.0 else 0.0 for v in values]
    return nab.evaluate([nab.LabelledSeries("spikes.csv", times, scores, windows)])


def test_windows_without_rows_are_missed_not_dropped() -> None:
    """An observer that scores only when it alerts finds 2 of 5 windows: NAB counts all five,
    and scores it as the same detections written at every row (40.0; it printed 100.0, 2/2
    windows, when the windows it wrote no row for were dropped)."""
    result = backtest(AlertsAbove({"value"}), FIVE.as_posix(), keep_series=["spikes.csv"])
    report = evaluate(result, load_windows(FIVE / "windows.json"))
    expected = _every_row_score()
    for profile, sweep in report.nab.items():
        assert (sweep.windows, sweep.detected) == (5, 2)
        assert sweep.score == pytest.approx(expected[profile].score)
    assert report.nab["standard"].score < 50
    assert "NAB: scored 5 of 5 labelled windows" in report.report()


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv"])
def test_cli_backtest_and_evaluate_agree_on_an_alert_only_observer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """backtest --labels and evaluate of its output (JSON lines or CSV) print the same numbers
    for an observer that only alerts."""
    out = tmp_path / name
    labels = (FIVE / "windows.json").as_posix()
    assert (
        main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:AlertsAbove",
                "--metrics",
                "value",
                "--from",
                FIVE.as_posix(),
                "-o",
                str(out),
                "--labels",
                labels,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    table = printed[printed.index("series") :]
    standard = f"NAB standard, scores swept: {_every_row_score()['standard'].score:.1f}"
    assert standard in table and "2/5 windows detected" in table
    assert main(["evaluate", str(out), "--labels", labels]) == 0
    assert capsys.readouterr().out.strip() == table.strip()
    again = read_output(out)
    assert len(again.values["spikes.csv value{}"]) == 1000


def test_evaluate_refuses_nab_for_a_labelled_series_without_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A labelled series with alerts but no value or score at any step gets precision and
    recall, but no NAB score: the refusal says why and what to do, and the command fails."""
    out = tmp_path / "out.jsonl"
    alert = AlertSpan({}, {}, "a.csv", 100.0, 110.0).as_row()
    score = {
        "kind": "score",
        "time": 0.0,
        "target": "b.csv",
        "metric": None,
        "series": None,
        "score": 0.0,
    }
    out.write_text(json.dumps(alert) + "\n" + json.dumps(score) + "\n")
    labels = tmp_path / "w.json"
    labels.write_text('{"a.csv": [[90, 120], [500, 600]], "b.csv": []}')
    assert main(["evaluate", str(out), "--labels", str(labels)]) == 1
    printed = capsys.readouterr().out
    assert "NAB score refused: the backtest has no rows of a.csv" in printed
    assert "--labels" in printed and "NAB standard" not in printed
    assert "a.csv" in printed.splitlines()[1]  # the table is still there


def test_nab_window_with_no_row_inside_the_span_is_a_miss() -> None:
    """Rows written only where a detector fired: a window inside the rows' time span without a
    row costs a miss; one wholly outside the rows is outside the data."""
    rows = [*range(0, 20), 55, *range(80, 100)]
    scores = [1.0 if t == 55 else 0.0 for t in rows]
    series = nab.LabelledSeries("s.csv", rows, scores, [(50, 59), (65, 70), (200, 210)])
    result = nab.sweep([series])
    assert (result.windows, result.detected) == (2, 1)
    assert result.score < 60


def test_nab_pairs_rows_by_position_when_the_clock_steps_back() -> None:
    """A timestamp that steps back an hour (or repeats) is a row of its own: the file scores as
    the same rows with increasing times would."""
    back = [*range(0, 60), *range(50, 100)]  # 110 rows, time steps back at row 60
    scores = [0.0] * 110
    scores[82] = 1.0  # time 72, in the window [70, 79] = rows 80..89
    stepped = nab.LabelledSeries("back.csv", back, scores, [(70, 79)])
    straight = nab.LabelledSeries("straight.csv", list(range(110)), scores, [(80, 89)])
    assert nab.sweep([stepped]).raw == pytest.approx(nab.sweep([straight]).raw)
    repeated = nab.LabelledSeries("rep.csv", [0, 1, 1, *range(2, 100)], [0.0] * 101, [(50, 59)])
    assert nab.sweep([repeated]).windows == 1


def test_evaluate_table_keeps_long_series_names_whole() -> None:
    """The table shows a long series name in full: its end (the labels) tells series apart."""
    long_a = 'http://node-exporter.monitoring.svc:9100/metrics node_cpu_seconds_total{cpu="0"}'
    long_b = long_a.replace('cpu="0"', 'cpu="1"')
    result = BacktestResult("X", steps=3, first_time=0.0, last_time=20.0)
    result.values = {
        long_a: [(0.0, 1.0), (10.0, 1.0), (20.0, 1.0)],
        long_b: [(0.0, 1.0), (10.0, 1.0), (20.0, 1.0)],
    }
    result.alerts = [
        AlertSpan(
            {"metric": "node_cpu_seconds_total", "series": '{cpu="0"}'},
            {},
            long_a.partition(" ")[0],
            10.0,
            20.0,
        )
    ]
    text = evaluate(result, {long_a: [(5.0, 15.0)], long_b: []}).report()
    assert long_a in text and long_b in text


def test_cli_plot_without_labels_draws_the_series_that_scored_highest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """backtest --plot without labels draws the series the observer scored highest, best
    first, with their values over the whole run (it drew the first six by name)."""
    import deucalion.replay.plot as plotting
    from deucalion.replay import Cycle, RecordingWriter

    url = "http://a:9100/metrics"
    path = tmp_path / "r.om.gz"
    with RecordingWriter(path) as writer:
        for i in range(40):
            load = {f'{{cpu="{k}"}}': 1.0 + 0.1 * ((i + k) % 3) for k in range(10)}
            if i == 20:
                load['{cpu="7"}'] = 9.0
            if i == 30:
                load['{cpu="3"}'] = 6.0
            writer.write_cycle(Cycle(1e9 + 15 * i, {url: 1e9 + 15 * i}, {url: {"load": load}}))
    drawn: dict[str, object] = {}

    def fake_plot(result: BacktestResult, out: str, **options: object) -> Path:
        drawn.update(options, values=result.values)
        return Path(out)

    monkeypatch.setattr(plotting, "plot", fake_plot)
    assert (
        main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:AlertsAbove",
                "--metrics",
                "load",
                "--from",
                str(path),
                "--plot",
                str(tmp_path / "p.png"),
            ]
        )
        == 0
    )
    best = [f'{url} load{{cpu="7"}}', f'{url} load{{cpu="3"}}']
    assert drawn["series"] == best
    values = drawn["values"]
    assert isinstance(values, dict) and sorted(values) == sorted(best)
    assert [v for _, v in values[best[0]]][19:22] == [
        1.0 + 0.1 * ((19 + 7) % 3),
        9.0,
        1.0 + 0.1 * ((21 + 7) % 3),
    ]


def test_plot_orders_kept_series_by_score(tmp_path: Path) -> None:
    """plot() without series draws the kept series that scored highest first, a target's
    score standing for its series."""
    from deucalion.replay.plot import top_scored

    result = BacktestResult("X", steps=2, first_time=0.0, last_time=1.0)
    result.scores = {"a": [(0.0, 1.0), (1.0, 2.0)], "b": [(0.0, 7.0)], "c": [(0.0, 0.5)]}
    assert top_scored(result) == ["b", "a", "c"]
    result.scores["b x{}"] = [(0.0, 3.0)]
    assert top_scored(result) == ["b x{}"]  # series scores first: they say which series


def test_evaluate_accepts_the_output_of_an_alert_only_observer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An alert-only observer that fires on one labelled file and never on the other (recall
    0.50): evaluate reads backtest --labels' output and prints the same table (it refused the
    file it never fired on)."""
    data = tmp_path / "data"
    data.mkdir()
    for name, spike in (("a.csv", 10.0), ("b.csv", 1.0)):
        rows = "".join(f"{60 * i},{spike if i == 50 else 1.0}\n" for i in range(100))
        (data / name).write_text("timestamp,value\n" + rows)
    labels = tmp_path / "w.json"
    labels.write_text(json.dumps({"a.csv": [[2900, 3100]], "b.csv": [[2900, 3100]]}))
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:AlertsAbove",
                "--metrics",
                "value",
                "--from",
                str(data),
                "-o",
                str(out),
                "--labels",
                str(labels),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    table = printed[printed.index("series") :]
    total = next(line for line in table.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["2", "1"]  # two windows, one found: recall 0.50
    assert main(["evaluate", str(out), "--labels", str(labels)]) == 0
    assert capsys.readouterr().out.strip() == table.strip()


LABELLED = Path(__file__).parents[1] / "data" / "labelled"


def _nab_line(printed: str) -> str:
    """The score line of NAB's standard profile (swept, or at the given threshold)."""
    return next(line for line in printed.splitlines() if line.startswith("NAB standard, scores"))


def test_evaluate_threshold_scores_nab_at_it_as_chosen_on_another_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As README says to judge a detector on data it was not tuned on: the threshold a sweep
    printed for one labelled set, given back with --threshold, is the threshold NAB scores at
    (it was swept again, whatever the threshold, so a score on unseen data was unattainable);
    printed rounded down, it reproduces the sweep's own score on the set it came from."""
    out = tmp_path / "scores.jsonl"
    labels = (LABELLED / "windows.json").as_posix()
    assert (
        main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "value",
                "--from",
                LABELLED.as_posix(),
                "-o",
                str(out),
                "--labels",
                labels,
            ]
        )
        == 0
    )
    swept = _nab_line(capsys.readouterr().out)
    assert "best threshold" in swept
    chosen = swept.split("best threshold ")[1].split(",")[0]
    assert main(["evaluate", str(out), "--labels", labels, "--threshold", chosen]) == 0
    again = _nab_line(capsys.readouterr().out)
    assert swept.startswith("NAB standard, scores swept: ")
    assert again.split(": ")[1].split(" (")[0] == swept.split(": ")[1].split(" (")[0]
    assert again.startswith("NAB standard, scores at the given threshold: ")
    assert f"(threshold {chosen}," in again
    # A threshold no score reaches: never fires, which NAB normalises to 0.
    assert main(["evaluate", str(out), "--labels", labels, "--threshold", "1e9"]) == 0
    never = _nab_line(capsys.readouterr().out)
    assert never.startswith("NAB standard, scores at the given threshold: 0.0 ")
    assert "0/2 windows detected" in never


def test_nab_layout_category_folders_and_category_keyed_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NAB's own layout: data/<category>/<file>.csv and labels keyed 'category/file.csv'. A
    backtest from data/ (its files named by their path under it) or from one category's folder
    (named by file) finds every labelled window; it was 'no *.csv file' and 'match no series'."""
    data = tmp_path / "data" / "realMine"
    data.mkdir(parents=True)
    keyed = {}
    for name, spans in json.loads((LABELLED / "windows.json").read_text()).items():
        (data / name).write_bytes((LABELLED / name).read_bytes())
        keyed[f"realMine/{name}"] = spans
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(keyed))
    for source in (tmp_path / "data", data):
        assert (
            main(
                [
                    "backtest",
                    "--observer",
                    "tests.replay_observers:RobustZScore",
                    "--metrics",
                    "value",
                    "--from",
                    source.as_posix(),
                    "--labels",
                    labels.as_posix(),
                ]
            )
            == 0
        )
        printed = capsys.readouterr().out
        assert "NAB: scored 2 of 2 labelled windows" in printed
        assert "2/2 windows detected" in _nab_line(printed)


def test_labels_of_files_not_replayed_say_to_replay_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels keyed for several categories; replaying one category's folder, the
    others' keys match nothing, and the error said only how to name series."""
    labels = json.loads((LABELLED / "windows.json").read_text())
    labels["realOther/elsewhere.csv"] = []
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels))
    assert (
        main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "value",
                "--from",
                LABELLED.as_posix(),
                "--labels",
                path.as_posix(),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "realOther/elsewhere.csv" in err and "replay the history that holds them" in err


def test_a_csv_output_keeps_each_alerts_explanation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o scores.csv: an alert row carries its annotations (the summary, the observed value,
    the expected band), as the JSON lines do; the CSV had only its labels."""
    out = tmp_path / "scores.csv"
    assert (
        main(
            [
                "backtest",
                "--observer",
                "deucalion.detectors:DetectorObserver",
                "--metrics",
                "value",
                "--from",
                LABELLED.as_posix(),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    alerts = read_output(out).alerts
    assert alerts, "the default detector alerts on the labelled set's level shift and spike"
    for alert in alerts:
        assert {"summary", "expected_range", "observed"} <= alert.annotations.keys()


def test_an_alert_kept_firing_detects_no_window_labelled_after_it_starts(tmp_path: Path) -> None:
    """A backtest of 4 minutes: DetectorObserver keeps its alert firing 300 s after the spike at
    30 s, to the end of the run. A window labelled at 120 s, where nothing happened, counted as
    detected with a time to detection of 0 s; only a window the alert starts in is detected."""
    from deucalion.detectors import DetectorObserver, Threshold

    t0 = 1_700_000_000
    rows = [f"{t0 + i},{100.0 if 30 <= i < 34 else 1.0}" for i in range(240)]
    (tmp_path / "s.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    result = backtest(
        DetectorObserver(Threshold(above=10.0), {"value"}),
        (tmp_path / "s.csv").as_posix(),
        keep_series=["s.csv"],
    )
    assert len(result.alerts) == 1
    alert = result.alerts[0]
    assert t0 + 30 <= alert.start <= t0 + 34 and alert.end is None  # firing to the end
    report = evaluate(result, {"s.csv": [(t0 + 25, t0 + 60), (t0 + 120, t0 + 150)]})
    total = report.total
    assert (total.windows, total.detected, total.events, total.true_events) == (2, 1, 1, 1)
    assert total.detection_delays == [alert.start - (t0 + 25)]
    # Alone, the later window is missed and the alert is a false one.
    late = evaluate(result, {"s.csv": [(t0 + 120, t0 + 150)]}).total
    assert (late.detected, late.true_events, late.detection_delays) == (0, 0, [])
