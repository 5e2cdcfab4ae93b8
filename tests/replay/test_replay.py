"""Replay: recordings, CSV history, backtests, evaluation and plots, on files (no servers)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from deucalion.cli import main
from deucalion.errors import ConfigError
from deucalion.replay import CSVSource, Cycle, RecordingSource, RecordingWriter, backtest
from deucalion.replay.evaluate import evaluate, load_windows, read_output
from deucalion.replay.results import AlertSpan, BacktestResult
from deucalion.replay.sources import HistoryError
from tests.replay_observers import AlertsAbove, RaisesAfter, RobustZScore, SeenObserver

LABELLED = Path(__file__).parents[1] / "data" / "labelled"
T0 = 1_700_000_000.0
URL = "http://a:9100/metrics"
ODD = 'http://b:9100/metrics?x="1"'


def _cycles(n: int = 120, spike_at: int = 90) -> list[Cycle]:
    cycles = []
    for i in range(n):
        value = 10 + math.sin(i / 4) + (25.0 if i == spike_at else 0.0)
        cycles.append(
            Cycle(
                T0 + 15 * i,
                {URL: T0 + 15 * i + 0.003217, ODD: T0 + 15 * i + 0.01},
                {
                    URL: {
                        "load": {'{cpu="0",mode="a\\"b\\\\c\\nd"}': value},
                        "up": {"{}": 1.0},
                        "other": {"{}": float(i)},
                    },
                    ODD: {"up": {"{}": 0.0}},
                },
            )
        )
    return cycles


def _write(path: Path, cycles: list[Cycle]) -> Path:
    with RecordingWriter(path) as writer:
        for cycle in cycles:
            writer.write_cycle(cycle)
    return path


async def _read(source: RecordingSource | CSVSource, **kw: object) -> list[Cycle]:
    return [c async for c in source.cycles(**kw)]  # type: ignore[arg-type]


async def test_recording_round_trip(tmp_path: Path) -> None:
    """A recording reads back the same targets, series (escapes included), values and times."""
    cycles = _cycles(5)
    cycles[1].samples[URL]["load"]['{cpu="1"}'] = math.nan
    cycles[2].samples[URL]["load"]['{cpu="1"}'] = -math.inf
    path = _write(tmp_path / "r.om.gz", cycles)
    back = await _read(RecordingSource(path))
    assert len(back) == 5
    for mine, theirs in zip(cycles, back, strict=True):
        assert theirs.time == mine.time
        assert theirs.target_times == pytest.approx(mine.target_times, abs=1e-6)
        assert json.dumps(theirs.samples, sort_keys=True) == json.dumps(
            mine.samples, sort_keys=True
        )
    text = gzip.decompress(path.read_bytes()).decode()
    assert text.endswith("# EOF\n") and "NaN" in text and "-Inf" in text


async def test_recording_reads_only_desired_metrics_and_range(tmp_path: Path) -> None:
    """Desired metrics keep their families and up; start and end bound the cycles."""
    path = _write(tmp_path / "r.om.gz", _cycles(10))
    back = await _read(RecordingSource(path), metrics={"load"}, start=T0 + 30, end=T0 + 60)
    assert [c.time for c in back] == [T0 + 30, T0 + 45, T0 + 60]
    assert set(back[0].samples[URL]) == {"load", "up"}


async def test_recording_cut_mid_line_is_read_to_the_cut(tmp_path: Path) -> None:
    """A recording cut off mid-line gives its complete cycles and a counted warning."""
    path = _write(tmp_path / "r.om", _cycles(10))
    data = path.read_bytes()
    cut = data.index(b"deucalion_record_cycle_time_seconds", len(data) // 2) + 12
    path.write_bytes(data[:cut])
    source = RecordingSource(path)
    back = await _read(source)
    assert 0 < len(back) < 10
    assert source.stats.warnings["truncated"] == 1
    assert source.stats.warnings["incomplete_cycle"] == 1


async def test_gzip_recording_cut_off_is_read_to_the_cut(tmp_path: Path) -> None:
    """A gzip stream cut short (a killed recorder) is read up to the last whole cycle."""
    path = _write(tmp_path / "r.om.gz", _cycles(60))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    source = RecordingSource(path)
    back = await _read(source)
    assert 0 < len(back) < 60
    assert [c.time for c in back] == [T0 + 15 * i for i in range(len(back))]
    assert source.stats.warnings["truncated"] == 1


async def test_malformed_recording_line_names_file_and_line(tmp_path: Path) -> None:
    """A line that is no sample is an error naming the file and the line."""
    path = tmp_path / "bad.om"
    path.write_text('up{deucalion_target="x"} 1 1\nthis is not a sample\n# EOF\n')
    with pytest.raises(HistoryError, match=r"bad.om:2: not a sample line"):
        await _read(RecordingSource(path))


@pytest.mark.parametrize(
    "content",
    [b"", b"not gzip, no line end", gzip.compress(b""), gzip.compress(b"hello\n"), b"hello\n"],
    ids=["empty", "no gzip", "empty gzip", "gzip of text", "text"],
)
def test_a_file_that_is_no_recording_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    """A file under a recording's name that holds no recording (empty, text, another gzip
    file) is refused naming it, as no recording: not replayed as a recording "cut off" or
    "damaged" at its first line, which ended in "the observer received no samples"."""
    path = tmp_path / "node.om.gz"
    path.write_bytes(content)
    assert main(["backtest", "--preset", "node-exporter", "--from", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"deucalion: {path}" in captured.err and "recording" in captured.err, captured
    assert "no samples" not in captured.out + captured.err
    assert "damaged" not in captured.out + captured.err and "cut off" not in captured.err


async def test_a_recording_cut_before_its_first_cycle_ended_holds_no_cycle(tmp_path: Path) -> None:
    """Sample lines without a cycle's closing line (a recorder killed within its first
    cycle): no history to replay, said as such."""
    path = tmp_path / "r.om"
    path.write_text('up{deucalion_target="x"} 1 1\n')
    with pytest.raises(
        HistoryError,
        match=r"r.om: not a deucalion recording: it holds no "
        r"complete cycle",
    ):
        await _read(RecordingSource(path))


async def test_csv_keeps_rows_in_file_order_and_notes_repeats_and_steps_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each series' rows replay in file order, merged by time with the other series: a
    timestamp that steps back or repeats is a cycle of its own, noted once a file, no row
    merged or dropped; a series without a row at a time is absent from that cycle."""
    (tmp_path / "a.csv").write_text("timestamp,value\n30,3\n10,1\n20,2\n20,2.5\n")
    (tmp_path / "b.csv").write_text(
        "timestamp,value\n1970-01-01T00:00:10Z,7\n1970-01-01 00:00:30,9\n"
    )
    source = CSVSource(tmp_path)
    back = await _read(source)
    assert [c.time for c in back] == [10, 30, 10, 20, 20]
    assert back[0].samples == {"b.csv": {"value": {"{}": 7.0}}}
    assert back[1].samples == {"a.csv": {"value": {"{}": 3.0}}, "b.csv": {"value": {"{}": 9.0}}}
    assert [c.samples["a.csv"]["value"]["{}"] for c in back[2:]] == [1.0, 2.0, 2.5]
    assert source.stats.warnings == {"repeated_timestamps": 1, "timestamps_stepping_back": 1}
    assert "a.csv: 1 row(s) repeat the timestamp" in caplog.text
    assert f"{tmp_path / 'a.csv'}:3)" in caplog.text  # the first row that goes back


async def test_a_directory_of_csv_files_and_folders_of_them_reads_them_all(
    tmp_path: Path,
) -> None:
    """A directory's CSV files and its folders' are all read, those in a folder named by their
    path under the directory (as NAB's data/ is read): a top-level file hid the folders."""
    (tmp_path / "realA").mkdir()
    (tmp_path / "realB").mkdir()
    (tmp_path / "top.csv").write_text("timestamp,value\n1,1\n")
    (tmp_path / "realA" / "x.csv").write_text("timestamp,value\n1,2\n")
    (tmp_path / "realB" / "top.csv").write_text("timestamp,value\n1,3\n")
    source = CSVSource(tmp_path)
    back = await _read(source)
    assert back[0].samples == {
        "realA/x.csv": {"value": {"{}": 2.0}},
        "realB/top.csv": {"value": {"{}": 3.0}},
        "top.csv": {"value": {"{}": 1.0}},
    }
    only_top = tmp_path / "only"
    only_top.mkdir()
    (only_top / "a.csv").write_text("timestamp,value\n1,1\n")
    assert (await _read(CSVSource(only_top)))[0].samples == {"a.csv": {"value": {"{}": 1.0}}}


async def test_tidy_csv(tmp_path: Path) -> None:
    """A tidy table gives targets, samples and series keys as written."""
    (tmp_path / "t.csv").write_text(
        'timestamp,target,metric,labels,value\n1,web,cpu,"{core=""0""}",0.5\n'
        "1,web,up,,1\n2,db,cpu,,0.7\n"
    )
    back = await _read(CSVSource(tmp_path / "t.csv"))
    assert back[0].samples == {"web": {"cpu": {'{core="0"}': 0.5}, "up": {"{}": 1.0}}}
    assert back[1].samples == {"db": {"cpu": {"{}": 0.7}}}


async def test_a_csv_whose_second_column_names_the_sample(tmp_path: Path) -> None:
    """`series.rename("cpu").to_csv()` writes 'timestamp,cpu': it was refused (even with
    --csv-metric cpu); the column names the sample, and --csv-metric still wins."""
    (tmp_path / "host.csv").write_text("timestamp,node_load1\n1,0.5\n2,0.7\n")
    back = await _read(CSVSource(tmp_path / "host.csv"))
    assert [c.samples for c in back] == [
        {"host.csv": {"node_load1": {"{}": 0.5}}},
        {"host.csv": {"node_load1": {"{}": 0.7}}},
    ]
    named = await _read(CSVSource(tmp_path / "host.csv", metric="load"))
    assert named[0].samples == {"host.csv": {"load": {"{}": 0.5}}}


TIDY = "timestamp,target,metric,labels,value\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,v\n1,2\n", "the header is 'time,v'"),
        ("timestamp,cpu %\n1,2\n", r"'cpu %' is no metric name"),
        ("timestamp,value\n1,abc\n", r"x.csv:2: value 'abc' is not a number"),
        ("timestamp,value\nyesterday,1\n", "x.csv:2: timestamp 'yesterday' is neither"),
        # A decimal-comma export: the value 1,2 is two fields, and 1 alone must not replay.
        ("timestamp,value\n1,5\n2,1,2\n", r"x.csv:3: 3 columns, more than the header's 2: .*1\.5"),
        (f"{TIDY}1,web,cpu,{{cpu=0}},1\n", r"x.csv:2: labels '\{cpu=0\}' are not a series key"),
        (f'{TIDY}1,web,cpu,"{{cpu=""0"" }}",1\n', r"x.csv:2: labels .* not a series key"),
        (f"{TIDY}1,,cpu,{{}},1\n", r"x.csv:2: the target is empty"),
        (f"{TIDY}1, ,cpu,{{}},1\n", r"x.csv:2: the target is empty"),
        (f"{TIDY}1,web,cpu load,{{}},1\n", r"x.csv:2: metric 'cpu load' is no metric name"),
        (f"{TIDY}1,web,,{{}},1\n", r"x.csv:2: metric '' is no metric name"),
    ],
)
async def test_bad_csv_names_file_and_row(tmp_path: Path, text: str, message: str) -> None:
    """A CSV that cannot be read is an error naming the file, the row and what to write."""
    (tmp_path / "x.csv").write_text(text)
    with pytest.raises(HistoryError, match=message):
        await _read(CSVSource(tmp_path / "x.csv"))


def test_backtest_alerts_at_the_injected_anomaly(tmp_path: Path) -> None:
    """The unchanged observer, replayed, alerts at the cycle of the spike and resolves next."""
    path = _write(tmp_path / "r.om.gz", _cycles(120, spike_at=90))
    result = backtest(RobustZScore({"load"}), path.as_posix(), output=tmp_path / "out.jsonl")
    assert result.steps == 120 and result.errors == 0
    assert [(a.start, a.end, a.target) for a in result.alerts] == [
        (T0 + 15 * 90, T0 + 15 * 91, URL)
    ]
    alert = result.alerts[0]
    assert alert.starts_at == "2023-11-14T22:35:50.000Z" and alert.labels["instance"] == "a:9100"
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "score" for r in rows) == 2 * 120  # both targets, every step
    assert [r["start"] for r in rows if r["kind"] == "alert"] == [T0 + 15 * 90]
    assert "alerts fired: 1" in result.summary()


def test_a_series_scored_and_alerted_has_one_score_row_a_step(tmp_path: Path) -> None:
    """The ready observer returns dc.Scores whose alerts name their series too: each step
    writes that series' score once, not a second time for its alert."""
    from deucalion.detectors import DetectorObserver
    from deucalion.detectors import RobustZScore as RobustZScoreDetector

    lines = ["timestamp,value"]
    lines += [f"{T0 + 15 * i},{10.0 + i % 3 + (40.0 if 60 <= i < 70 else 0.0)}" for i in range(90)]
    (tmp_path / "jump.csv").write_text("\n".join(lines) + "\n")
    observer = DetectorObserver(RobustZScoreDetector(), {"value"}, threshold=6, for_cycles=1)
    result = backtest(observer, (tmp_path / "jump.csv").as_posix(), output=tmp_path / "o.jsonl")
    assert len(result.alerts) == 1
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    scored = [(r["time"], r["metric"], r["series"]) for r in rows if r["kind"] == "score"]
    assert len(scored) == len(set(scored)) and (T0 + 15 * 60, "value", "{}") in scored
    times = [t for t, _ in result.scores["jump.csv value{}"]]
    assert len(times) == len(set(times))


def test_a_verbose_backtest_logs_when_in_the_history_alerts_fire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`backtest -v` logged "alert firing: {...}" stamped with the wall clock only: a week
    replayed in seconds, the line did not say when in the history the alert fired."""
    import logging

    path = _write(tmp_path / "r.om.gz", _cycles(120, spike_at=90))
    with caplog.at_level(logging.INFO, logger="deucalion.alerting.lifecycle"):
        backtest(RobustZScore({"load"}), path.as_posix())
    lines = [r.getMessage() for r in caplog.records if r.name == "deucalion.alerting.lifecycle"]
    assert any(
        line.startswith("alert firing")
        and line.endswith("at 2023-11-14T22:35:50.000Z in the history")
        for line in lines
    )
    assert any(
        line.startswith("alert resolved")
        and line.endswith("at 2023-11-14T22:36:05.000Z in the history")
        for line in lines
    )


def test_the_history_time_is_added_to_any_lifecycle_line(caplog: pytest.LogCaptureFixture) -> None:
    """The history's time was appended as a "%s" placeholder: a line with a literal "%" and no
    args, or with a mapping of args, would not format."""
    import logging

    from deucalion.replay.backtesting import _HISTORY_CLOCK

    lifecycle = logging.getLogger("deucalion.alerting.lifecycle")
    token = _HISTORY_CLOCK.set(lambda: 1_700_000_150.0)
    try:
        with caplog.at_level(logging.INFO, logger="deucalion.alerting.lifecycle"):
            lifecycle.info("queue 50% full")
            lifecycle.info("alert %(what)s", {"what": "firing"})
            lifecycle.info("alert %s", "resolved")
    finally:
        _HISTORY_CLOCK.reset(token)
    lines = [r.getMessage() for r in caplog.records if r.name == lifecycle.name]
    assert lines == [
        f"{text} at 2023-11-14T22:15:50.000Z in the history"
        for text in ("queue 50% full", "alert firing", "alert resolved")
    ]


def test_backtest_hands_the_recorded_times_and_selected_data(tmp_path: Path) -> None:
    """data_time() answers the recorded scrape times; only desired samples (and families) are
    handed, as live."""
    path = _write(tmp_path / "r.om.gz", _cycles(3))
    seen = tmp_path / "seen.jsonl"
    backtest(SeenObserver({"load", "up"}, str(seen)), path.as_posix())
    records = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [r["time"] for r in records] == [T0, T0 + 15, T0 + 30]
    assert records[0]["times"] == pytest.approx({URL: T0 + 0.003217, ODD: T0 + 0.01}, abs=1e-6)
    assert set(records[0]["data"][URL]) == {"load", "up"}
    assert records[0]["data"][ODD] == {"up": {"{}": 0.0}}


def test_observer_raising_halfway_is_counted_and_outputs_flushed(tmp_path: Path) -> None:
    """Calls that raise are counted and written as errors; earlier scores stay written."""
    path = _write(tmp_path / "r.om.gz", _cycles(20))
    out = tmp_path / "out.csv"
    result = backtest(RaisesAfter({"load"}, after=11), path.as_posix(), output=out)
    assert result.steps == 20 and result.errors == 10
    text = out.read_text()
    assert text.count("\nscore,") == 2 * 10 and text.count("\nerror,") == 10
    assert "model failed at call 11" in text
    assert "10 call(s) raised" in result.summary()


def _result(alerts: list[tuple[float, float]]) -> BacktestResult:
    result = BacktestResult("X", steps=100, first_time=0.0, last_time=1000.0)
    result.alerts = [AlertSpan({}, {}, "s.csv", a, b) for a, b in alerts]
    result.scores = {"s.csv": [(float(t), 0.0) for t in range(0, 1001, 10)]}
    return result


def test_evaluate_counts_windows_events_and_delays() -> None:
    """Precision, recall, F1 and time to detection, by hand: two windows, one found 30 s late,
    one missed; two alert events, one of them false."""
    result = _result([(130.0, 150.0), (700.0, 710.0)])
    report = evaluate(result, {"s.csv": [(100.0, 200.0), (400.0, 500.0)]})
    one = report.series[0]
    assert (one.windows, one.detected, one.events, one.true_events) == (2, 1, 2, 1)
    assert (one.precision, one.recall, one.f1) == (0.5, 0.5, 0.5)
    assert one.detection_delays == [30.0]
    assert "s.csv" in report.report()


def test_evaluate_an_alert_already_firing_detects_nothing_in_a_later_window() -> None:
    """An alert that fired before a window and still fires in it (kept firing after an earlier
    anomaly) does not detect it: it detected it at once, with a time to detection of 0 s."""
    report = evaluate(_result([(50.0, 150.0)]), {"s.csv": [(100.0, 200.0)]})
    assert (report.total.detected, report.total.true_events) == (0, 0)
    assert report.total.detection_delays == []
    starts_in = evaluate(_result([(120.0, 150.0)]), {"s.csv": [(100.0, 200.0)]})
    assert starts_in.total.detection_delays == [20.0]


def test_evaluate_labelled_data_set() -> None:
    """The robust z-score over the tiny labelled set finds both windows, with one false event
    (the level shift ending), and evaluates the same from its output file."""
    result = backtest(RobustZScore({"value"}), LABELLED.as_posix())
    windows = load_windows(LABELLED / "windows.json")
    report = evaluate(result, windows)
    assert (report.total.windows, report.total.detected) == (2, 2)
    assert (report.total.events, report.total.true_events) == (3, 2)
    assert report.total.recall == 1.0 and report.total.precision == pytest.approx(2 / 3)


def test_unmatched_label_is_an_error() -> None:
    """A labelled series the backtest never saw is named, not silently scored as missed."""
    with pytest.raises(Exception, match=r"nosuch\.csv match no series"):
        evaluate(_result([]), {"nosuch.csv": [(1.0, 2.0)]})


def test_bad_windows_file(tmp_path: Path) -> None:
    """Windows that end before they start are refused, naming the file and series."""
    path = tmp_path / "w.json"
    path.write_text('{"a.csv": [[20, 10]]}')
    with pytest.raises(Exception, match=r"w.json: a.csv: window .* ends before it starts"):
        load_windows(path)


@pytest.mark.parametrize("command", ["evaluate", "backtest"])
def test_overlapping_windows_are_a_one_line_error_naming_them(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Overlapping windows are refused as the other labels errors are: one line naming the
    file, the series and the windows (they were a traceback once NAB scored them), and
    before a backtest runs."""
    labels = tmp_path / "w.json"
    labels.write_text(
        '{"daily_spike.csv": [["2024-01-01 19:00", "2024-01-01 20:00"], '
        '["2024-01-01 12:00", "2024-01-01 13:00"], ["2024-01-01 19:30", 1704139200]]}'
    )
    if command == "evaluate":
        out = tmp_path / "out.jsonl"
        out.write_text(
            "".join(
                json.dumps(
                    {
                        "kind": kind,
                        "time": 1704067200 + 300 * i,
                        "target": "daily_spike.csv",
                        "metric": "value",
                        "series": "{}",
                        kind: 1.0,
                    }
                )
                + "\n"
                for i in range(400)
                for kind in ("value", "score")
            )
        )
        argv = ["evaluate", str(out)]
    else:
        argv = BACKTEST
    assert main([*argv, "--labels", str(labels)]) == 1
    printed = capsys.readouterr()
    assert printed.err == (
        f'deucalion: {labels}: daily_spike.csv: windows ["2024-01-01 19:00", "2024-01-01 20:00"] '
        'and ["2024-01-01 19:30", 1704139200] overlap; merge them into one\n'
    )
    assert "steps" not in printed.out


def test_cli_backtest_evaluate_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """deucalion backtest writes outputs, evaluates and plots; evaluate reads the output."""
    out, png = tmp_path / "out.jsonl", tmp_path / "plot.png"
    labels = (LABELLED / "windows.json").as_posix()
    code = main(
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
            "--plot",
            str(png),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "400 steps" in printed and "alerts fired: 3" in printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", str(out), "--labels", labels]) == 0
    assert "total" in capsys.readouterr().out
    again = read_output(out)
    assert len(again.alerts) == 3 and again.steps == 400


def test_cli_backtest_bad_source(capsys: pytest.CaptureFixture[str]) -> None:
    """A --from that is no source is a one-line error saying what to give."""
    assert (
        main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "x",
                "--from",
                "nothing.xyz",
            ]
        )
        == 1
    )
    assert "not a history source" in capsys.readouterr().err


BACKTEST = [
    "backtest",
    "--observer",
    "tests.replay_observers:RobustZScore",
    "--metrics",
    "value",
    "--from",
    LABELLED.as_posix(),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["record", "-o", "r.om.gz", "--all", "--duration", "-1"],
            "argument --duration: '-1' is negative: give seconds or a duration such as 30s or 5m",
        ),
        (
            ["record", "-o", "r.om.gz", "--all", "--duration", "0"],
            "argument --duration: must be more than 0, not '0'",
        ),
        (
            ["record", "-o", "r.om.gz", "--all", "--duration", "soon"],
            "argument --duration: 'soon' is not a duration",
        ),
        (
            [*BACKTEST, "--step=-15s"],
            "argument --step: '-15s' is negative: give seconds or a duration such as 30s or 5m",
        ),
        ([*BACKTEST, "--step", "0s"], "argument --step: must be more than 0, not '0s'"),
        (
            [*BACKTEST, "--observer-timeout", "-1"],
            "argument --observer-timeout: '-1' is negative: give seconds or a duration",
        ),
        (
            [*BACKTEST, "--observer-timeout", "0"],
            "argument --observer-timeout: must be more than 0, not '0'",
        ),
    ],
)
def test_a_bad_replay_duration_is_refused_saying_why(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`record --duration -1` (once 0 cycles recorded and exit 0) and every other negative or
    zero duration of record and backtest exit 2 with the reason; nothing runs or is written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "recorded" not in err and "steps" not in err
    assert list(tmp_path.iterdir()) == []


def test_replay_durations_take_prometheus_durations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--observer-timeout 30s` and `--step 1m` are durations, as the config's are."""
    out = tmp_path / "out.jsonl"
    assert main([*BACKTEST, "--observer-timeout", "30s", "--step", "1m", "-o", str(out)]) == 0
    assert "400 steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("labels", "target", "key", "about"),
    [
        ({}, URL, URL, True),
        ({}, URL, f"{URL} load{{}}", True),
        ({}, URL, "http://other/metrics", False),
        ({"metric": "load", "series": '{cpu="0"}'}, URL, f'{URL} load{{cpu="0"}}', True),
        ({"metric": "load", "series": '{cpu="0"}'}, URL, f'{URL} load{{cpu="1"}}', False),
        ({"metric": "load"}, URL, f'{URL} load{{cpu="1"}}', True),
        ({"metric": "load", "series": '{cpu="0"}'}, URL, 'load{cpu="0"}', True),
        ({}, None, f"{URL} load{{}}", True),
        ({"metric": "load", "series": '{cpu="0"}'}, URL, "load", True),
        ({"metric": "load_max"}, URL, "load", False),
        ({"preset": "http-service", "signal": "latency_p99"}, URL, "latency_p99", True),
        ({"preset": "http-service", "signal": "latency_p99"}, URL, "error_ratio", False),
        ({"preset": "http-service", "signal": "latency_p99"}, URL, URL, True),
    ],
)
def test_alert_about(labels: dict[str, str], target: str | None, key: str, about: bool) -> None:
    """An alert concerns its target's series, or only the one its metric/series labels name."""
    from deucalion.replay.results import alert_about

    assert alert_about(labels, target, key) is about


def test_plot_without_matplotlib_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without matplotlib, plotting says which extra to install."""
    import sys

    from deucalion.replay.plot import plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = BacktestResult("X", values={"a": [(0.0, 1.0)]})
    with pytest.raises(Exception, match=r"pip install deucalion\[plot\]"):
        plot(result, tmp_path / "x.png")


def test_a_one_step_alert_over_weeks_of_history_shows_on_the_plot(tmp_path: Path) -> None:
    """The default detector alerts for one step: over two weeks at 5 minutes its span was a
    quarter of a pixel wide, and the plot showed no alert at all. It is drawn wide enough."""
    pytest.importorskip("matplotlib")
    import matplotlib.image

    from deucalion.replay.plot import plot

    times = [T0 + 300.0 * i for i in range(4032)]

    def red_pixels(alerts: list[AlertSpan]) -> int:
        result = BacktestResult("X", values={"a.csv value{}": [(t, 10.0) for t in times]})
        result.alerts.extend(alerts)
        result.last_time = times[-1]
        pixels = matplotlib.image.imread(plot(result, tmp_path / "p.png"))
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        return int(((red > 0.8) & (green < 0.7) & (blue < 0.7)).sum())

    one_step = AlertSpan(
        {"metric": "value", "series": "{}"}, {}, "a.csv", times[3000], end=times[3001]
    )
    assert red_pixels([one_step]) > red_pixels([]) + 100  # the legend's patch is red too


def test_a_labelled_target_plots_its_series_that_scored_highest_first() -> None:
    """`backtest --preset http-service --labels` keyed by the target: its panels were its
    series in alphabetical order, the error ratios and then raw histogram buckets, and the
    latency signal that found the first incident was not drawn."""
    from deucalion.replay.plot import panels

    names = [f't error_ratio{{r="{i}"}}' for i in range(4)]
    names += [f't http_request_duration_seconds_bucket{{le="{i}"}}' for i in range(6)]
    names += ["t latency_p99{}"]
    result = BacktestResult("X", values={n: [(0.0, 1.0)] for n in names})
    result.scores = {n: [(0.0, 0.5)] for n in names if "bucket" not in n}
    result.scores["t latency_p99{}"] = [(0.0, 9.0)]
    chosen = panels(result, ["t"])
    assert chosen[0] == "t latency_p99{}" and len(chosen) == 8
    assert chosen[1:5] == names[:4]  # then the other signals; raw buckets, unscored, last


def test_a_metric_name_names_every_series_of_it() -> None:
    """`--series latency_p99` (as a user writes a metric) named nothing: only
    'latency_p99{}' did, and the plot said to name series with --series, which it was."""
    from deucalion.replay.plot import panels
    from deucalion.replay.results import names_series

    names = ["t latency_p99{}", 't latency_p99{route="/a"}', "t latency_p50{}", "x.csv value{}"]
    result = BacktestResult("X", values={n: [(0.0, 1.0)] for n in names})
    assert sorted(panels(result, ["latency_p99"])) == sorted(names[:2])
    assert [n for n in names if names_series("value", n)] == ["x.csv value{}"]
    assert not names_series("latency_p9", "t latency_p99{}")


def test_replay_exports_resolve_sorted_and_documented() -> None:
    """deucalion.replay's __all__ is sorted; every name resolves and documents itself."""
    import deucalion.replay as replay

    assert replay.__all__ == sorted(replay.__all__)
    for name in replay.__all__:
        value = getattr(replay, name)
        assert value is not None and (not callable(value) or value.__doc__), name


def test_evaluate_worked_example_of_the_readme() -> None:
    """README's worked example: precision, recall and F1 0.5, 30 s to detection, and NAB's
    46.9 / 44.2 / 48.0 with the alerts as detections (one at each start), 44.2 / 38.8 / 46.1
    from the alerts as 1 while firing, when replay.nab is there."""
    result = BacktestResult("X", steps=201, first_time=0.0, last_time=2000.0)
    result.alerts = [
        AlertSpan({}, {}, "checkout.csv", 630.0, 650.0),
        AlertSpan({}, {}, "checkout.csv", 1000.0, 1010.0),
    ]
    result.values = {"checkout.csv value{}": [(float(t), 1.0) for t in range(0, 2001, 10)]}
    report = evaluate(result, {"checkout.csv": [(600.0, 800.0), (1400.0, 1600.0)]})
    total = report.total
    assert (total.precision, total.recall, total.f1) == (0.5, 0.5, 0.5)
    assert total.detection_delays == [30.0]
    try:
        import deucalion.replay.nab  # noqa: F401
    except ImportError:
        assert "not available" in report.nab_note
        return
    scores = {name: round(sweep.score, 1) for name, sweep in report.nab.items()}
    assert scores == {"standard": 44.2, "reward_low_FP_rate": 38.8, "reward_low_FN_rate": 46.1}
    by_alerts = {name: round(sweep.score, 1) for name, sweep in report.nab_alerts.items()}
    assert by_alerts == {"standard": 46.9, "reward_low_FP_rate": 44.2, "reward_low_FN_rate": 48.0}


def test_start_and_end_options() -> None:
    """--start/--end take seconds, ISO 8601, now and now-<duration>; anything else is named."""
    import time

    from deucalion.errors import ConfigError
    from deucalion.replay.cli import parse_when

    assert parse_when("1700000000", "--start") == 1_700_000_000.0
    assert parse_when("2023-11-14T22:13:20Z", "--start") == 1_700_000_000.0
    assert parse_when("now-7d", "--start") == pytest.approx(time.time() - 7 * 86400, abs=5)
    with pytest.raises(ConfigError, match="--end 'tomorrow'"):
        parse_when("tomorrow", "--end")


def test_worker_that_dies_costs_one_step(tmp_path: Path) -> None:
    """A worker killed mid-run costs that step (counted), is replaced, and the run goes on;
    a call past observer_timeout likewise."""
    from tests.observers import ExitOnceObserver, HangOnceObserver

    path = _write(tmp_path / "r.om.gz", _cycles(6)).as_posix()
    died = backtest(
        ExitOnceObserver({"load"}, tmp_path / "exit.jsonl"), path, output=tmp_path / "out.jsonl"
    )
    assert died.steps == 6 and died.errors == 1
    assert "worker died or ran past the timeout" in (tmp_path / "out.jsonl").read_text()
    hung = backtest(HangOnceObserver({"load"}, tmp_path / "hang.jsonl"), path, observer_timeout=1.0)
    assert hung.steps == 6 and hung.errors == 1
    assert len((tmp_path / "hang.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("kind", ["om.gz", "om", "csv"])
async def test_a_file_source_tells_how_much_of_it_was_read(kind: str, tmp_path: Path) -> None:
    """A recording (gzip or not) and CSV files tell the share read so far: unknown before,
    never going back, below 1 while cycles remain to be read, 1 at the end."""
    source: RecordingSource | CSVSource
    if kind == "csv":
        source = CSVSource(LABELLED)
    else:
        # Random values, so that gzip cannot shrink the file below one block read.
        import random

        rnd = random.Random(7)
        source = RecordingSource(
            _write(
                tmp_path / f"r.{kind}",
                [
                    Cycle(
                        T0 + 15 * i,
                        {URL: T0 + 15 * i},
                        {URL: {"load": {f'{{cpu="{c}"}}': rnd.random() for c in range(8)}}},
                    )
                    for i in range(4000)
                ],
            )
        )
    assert source.read_fraction() is None
    seen = [source.read_fraction() async for _ in source.cycles()]
    fractions = [f for f in seen if f is not None]
    assert len(fractions) == len(seen) > 100
    assert fractions == sorted(fractions)
    assert 0 < fractions[0] < 0.25 and fractions[len(fractions) // 2] < 1
    assert source.read_fraction() == 1.0


def test_backtest_of_a_recording_without_a_range_says_how_far_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Into a pipe, `deucalion backtest --from FILE` without --start/--end prints percentages
    (it printed steps and speed only, its span unknown until read)."""
    import re

    monkeypatch.setenv("DEUCALION_PROGRESS_INTERVAL", "1ms")
    recording = _write(tmp_path / "r.om.gz", _cycles(n=3000))
    assert (
        main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "load",
                "--from",
                str(recording),
            ]
        )
        == 0
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("backtest: ")]
    percents = [int(m.group(1)) for line in lines if (m := re.search(r", (\d+)%, ", line))]
    assert percents and percents == sorted(percents), lines
    assert lines[-1].startswith("backtest: 3,000 steps, 12h29m of history, ")


def test_replay_writes_its_files_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording, a backtest's output and its plot are 0600 whatever the umask (they were
    0644: what the targets served, readable by every user of the machine)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("targets: ['127.0.0.1:1']\nscrape_interval: 0.2s\n")
    assert main(["record", "-c", "c.yaml", "-o", "r.om.gz", "--all", "--duration", "0.3"]) == 0
    assert main([*BACKTEST, "-o", "out.csv", "--plot", "p.png"]) == 0
    capsys.readouterr()
    for name in ("r.om.gz", "out.csv", "p.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out.csv").read_text().startswith("kind,")


@pytest.mark.parametrize(
    ("option", "argv"),
    [
        ("-o", ["record", "-c", "c.yaml", "--all", "--duration", "0.3", "-o"]),
        ("-o", [*BACKTEST, "-o"]),
        ("--plot", [*BACKTEST, "--plot"]),
    ],
)
def test_replay_writes_through_no_symbolic_link(
    option: str,
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A link planted where a recording, an output or a plot goes is refused, saying so; the
    file it points to is left alone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("targets: ['127.0.0.1:1']\nscrape_interval: 0.2s\n")
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    name = "planted.png" if option == "--plot" else "planted.om.gz"
    if argv[0] == "backtest" and option == "-o":
        name = "planted.jsonl"
    (tmp_path / name).symlink_to(victim)
    assert main([*argv, name]) == 1
    err = capsys.readouterr().err
    assert f"{name}: it is a link; give the path of a regular file" in err, err
    assert "Traceback" not in err
    assert victim.read_text() == "keep me\n"


def test_plot_of_series_that_name_nothing_says_which_and_what_there_is(tmp_path: Path) -> None:
    """--series naming no kept series: the error said to name series with --series."""
    pytest.importorskip("matplotlib")
    from deucalion.errors import ConfigError
    from deucalion.replay.plot import plot

    result = BacktestResult("X", values={"t latency_p99{}": [(0.0, 1.0)]})
    with pytest.raises(ConfigError, match=r"latency_p98 names none .* \(t latency_p99\{\}"):
        plot(result, tmp_path / "p.png", series=["latency_p98"])


def test_a_plot_named_in_no_format_is_refused_before_the_backtest_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--plot out.txt` ran the whole backtest, then raised matplotlib's ValueError with a
    traceback, leaving an empty out.txt."""
    out = tmp_path / "scores.jsonl"
    assert main([*BACKTEST, "-o", str(out), "--plot", str(tmp_path / "out.txt")]) == 1
    err = capsys.readouterr().err
    assert "cannot draw" in err and ".txt" in err and "Traceback" not in err
    assert not (tmp_path / "out.txt").exists() and not out.exists()


def test_a_start_after_the_end_is_refused_saying_so(capsys: pytest.CaptureFixture[str]) -> None:
    """It said the observer received no samples, as if the metric names were wrong."""
    assert main([*BACKTEST, "--start", "2000-01-02", "--end", "2000-01-01"]) == 1
    assert "--start 2000-01-02 is after --end 2000-01-01" in capsys.readouterr().err


def test_backtest_plot_of_a_series_that_names_nothing_says_which_and_what_there_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backtest --plot PNG --series cpux`: the backtest keeps the values of the named series
    only, none matched, and the error said it kept no series, 'name them with --series', as
    if none had been named. It names the series given and those the backtest scored."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    assert main([*BACKTEST, "--plot", str(png), "--series", "valuex"]) == 1
    err = capsys.readouterr().err
    assert "valuex names none of the series" in err and "quiet.csv" in err, err
    assert "keep_series=" not in err and not png.exists()


@pytest.mark.parametrize("suffix", ["jpg", "webp", "eps", "tiff"])
def test_a_plot_in_any_format_matplotlib_writes_is_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    """`--plot out.jpg` (webp, eps, tiff, ...) drew before the formats were checked; the check
    let through png, svg and pdf only. Those matplotlib writes are drawn; others refused."""
    pytest.importorskip("matplotlib")
    picture = tmp_path / f"out.{suffix}"
    assert main([*BACKTEST, "--plot", str(picture)]) == 0, capsys.readouterr().err
    assert picture.stat().st_size > 1000


def test_a_plot_path_without_matplotlib_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without matplotlib, the formats cannot be asked of it: the error names the extra to
    install, before the backtest has run."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    out = tmp_path / "scores.jsonl"
    assert main([*BACKTEST, "-o", str(out), "--plot", str(tmp_path / "out.png")]) == 1
    assert "pip install deucalion[plot]" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("span", "said"), [(149.0, "2m29s"), (3 * 3600 + 600, "3h10m"), (1.4 * 86400, "1.4d")]
)
def test_the_summary_says_the_span_as_the_progress_line_does(span: float, said: str) -> None:
    """One way to write a span: the summary said "149 s", "3.2 h", "1.4 days" under a progress
    line saying "2m29s", "3h10m", "1.4d" of the same history (and the demo a third way)."""
    from deucalion._progress import format_seconds

    result = BacktestResult("o", steps=10, first_time=T0, last_time=T0 + span, wall_seconds=1.0)
    assert format_seconds(span) == said
    assert f"10 steps over {said} of history in 1.00s" in result.summary()


def test_a_backtest_says_when_alerts_of_two_targets_merge(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two metrics paths on one host:port have one instance and job: their alerts share a
    label set, and the backtest kept the last one without a word (`alerts fired: 2` for 4
    targets of a preset in 2 incidents), where the live run warns. It warns as live does."""
    one, other = "http://app:8080/metrics", "http://app:8080/actuator/prometheus"
    recording = tmp_path / "two.om.gz"
    with RecordingWriter(recording) as writer:
        for i in range(6):
            samples = {"g": {"{}": 9.0 if i >= 3 else 1.0}, "up": {"{}": 1.0}}
            writer.write_cycle(
                Cycle(1.7e9 + i, {one: 1.7e9 + i, other: 1.7e9 + i}, {one: samples, other: samples})
            )
    with caplog.at_level("WARNING"):
        result = backtest(AlertsAbove({"g"}), str(recording))
    assert len(result.alerts) == 1  # one label set, one alert, as in Alertmanager
    [merged] = [r.getMessage() for r in caplog.records if "same labels" in r.getMessage()]
    assert one in merged and other in merged and "instance" in merged


def test_backtest_takes_a_path_as_it_takes_a_string(tmp_path: Path) -> None:
    """`backtest(observer, Path("node.om.gz"))` raised AttributeError ('PosixPath' object has
    no attribute 'cycles'); anything else that is no source is a ConfigError saying what is."""
    recording = tmp_path / "one.om.gz"
    with RecordingWriter(recording) as writer:
        for i in range(4):
            target = "http://a:9100/metrics"
            writer.write_cycle(Cycle(1.7e9 + i, {target: 1.7e9 + i}, {target: {"g": {"{}": 9.0}}}))
    result = backtest(AlertsAbove({"g"}), recording)
    assert result.steps == 4 and len(result.alerts) == 1
    with pytest.raises(ConfigError, match="not int"):
        backtest(AlertsAbove({"g"}), 3)  # type: ignore[arg-type]
