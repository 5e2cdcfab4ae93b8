"""History as it comes: replays select as live runs do, rows and cycles are taken in file
order and noted, and damaged or unreadable history is said plainly."""

from __future__ import annotations

import json
import re
import traceback
from pathlib import Path
from typing import Any

import pytest

from deucalion.cli import main
from deucalion.observer import select_data
from deucalion.replay import CSVSource, Cycle, RecordingSource, RecordingWriter, backtest, nab
from deucalion.replay.evaluate import evaluate
from deucalion.replay.sources import HistoryError
from tests.replay_observers import RobustZScore, SeenObserver

T0 = 1_700_000_000.0
URL = "http://a:9100/metrics"
NODE = {
    "node_load1": {"{}": 0.5},
    "node_load5": {"{}": 0.4},
    "node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 10.0},
    "http_request_duration_seconds_bucket": {'{le="0.1"}': 3.0, '{le="+Inf"}': 4.0},
    "http_request_duration_seconds_sum": {"{}": 0.2},
    "http_request_duration_seconds_count": {"{}": 4.0},
    "up": {"{}": 1.0},
    "scrape_duration_seconds": {"{}": 0.01},
}


def _recording(path: Path, times: list[float]) -> Path:
    """A recording of everything a target served (as record --all writes), one cycle a time."""
    with RecordingWriter(path) as writer:
        for i, when in enumerate(times):
            samples = {name: {k: v + i for k, v in series.items()} for name, series in NODE.items()}
            writer.write_cycle(Cycle(when, {URL: when}, {URL: samples}))
    return path


class _Scraped:
    """A scrape result as live selection reads it."""

    def __init__(self, samples: dict[str, dict[str, float]]) -> None:
        self.url = URL
        self.target = self
        self.samples = {
            k: v for k, v in samples.items() if k not in ("up", "scrape_duration_seconds")
        }
        self._all = samples

    def with_synthetic(self) -> dict[str, dict[str, float]]:
        return self._all


@pytest.mark.parametrize(
    "desired",
    [
        {"node_load.*"},
        {"node_load1", "up"},
        {"http_request_duration_seconds"},
        {"node_.*_total", "http_request_duration_seconds_count"},
    ],
)
def test_a_replay_selects_as_a_live_run_does(tmp_path: Path, desired: set[str]) -> None:
    """Names, whole families and regular expressions select from a recording made with
    --all exactly the samples a live cycle would hand the observer."""
    path = _recording(tmp_path / "all.om.gz", [T0, T0 + 15])
    seen = tmp_path / "seen.jsonl"
    result = backtest(SeenObserver(desired, str(seen)), path.as_posix())
    first = json.loads(seen.read_text().splitlines()[0])["data"]
    live = select_data(desired, [_Scraped(NODE)]).data
    assert first == live
    assert result.samples > 0 and not result.received_nothing


def test_cli_backtest_of_an_observer_that_received_nothing_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backtest whose observer was handed no sample of its desired metrics says so and exits
    non-zero; the same run with a selection that matches passes."""
    path = _recording(tmp_path / "all.om.gz", [T0 + 15 * i for i in range(5)]).as_posix()
    observer = "tests.replay_observers:RobustZScore"
    assert main(["backtest", "--observer", observer, "--metrics", "nginx_.*", "--from", path]) == 1
    printed = capsys.readouterr().out
    assert "the observer received no samples" in printed and "nginx_.*" in printed
    assert (
        main(["backtest", "--observer", observer, "--metrics", "node_load.*", "--from", path]) == 0
    )
    assert "received no samples" not in capsys.readouterr().out


def test_nab_file_whose_clock_steps_back_scores_row_by_row(tmp_path: Path) -> None:
    """A NAB-style file whose timestamps step back an hour (and repeat) is replayed row by row:
    one score per row, none merged, and NAB scores the rows by position."""
    rows = [T0 + 300 * i for i in range(200)]
    rows[120:] = [t - 3600 for t in rows[120:]]  # the clock set back an hour at row 120
    lines = ["timestamp,value"] + [
        f"{t},{10.0 + (i % 5) + (40 if i == 150 else 0)}" for i, t in enumerate(rows)
    ]
    (tmp_path / "dst.csv").write_text("\n".join(lines) + "\n")
    source = CSVSource(tmp_path / "dst.csv")
    result = backtest(RobustZScore({"value"}), source, keep_series=["dst.csv"])
    assert result.steps == 200 and len(result.scores["dst.csv"]) == 200
    assert source.stats.warnings["timestamps_stepping_back"] == 1
    assert source.stats.warnings["repeated_timestamps"] == 0
    window = (rows[145], rows[155])
    report = evaluate(result, {"dst.csv": [window]})
    by_position = nab.evaluate(
        [nab.LabelledSeries("dst.csv", rows, [s for _, s in result.scores["dst.csv"]], [window])]
    )
    assert report.nab["standard"].score == pytest.approx(by_position["standard"].score)
    assert report.nab["standard"].detected == 1


async def test_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A CSV saved with a byte order mark (as spreadsheets save UTF-8) reads as any other."""
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbftimestamp,value\n1,2\n2,3\n")
    source = CSVSource(tmp_path / "bom.csv")
    back = [c async for c in source.cycles()]
    assert [c.samples["bom.csv"]["value"]["{}"] for c in back] == [2.0, 3.0]


def test_cli_names_a_csv_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Windows (CP1252) CSV is a one-line error naming the file and line and what to do."""
    (tmp_path / "win.csv").write_bytes(
        "timestamp,value,note\n1,2,ok\n2,3,caf\u00e9 \u2013\n".encode("cp1252")
    )
    code = main(
        [
            "backtest",
            "--observer",
            "tests.replay_observers:RobustZScore",
            "--metrics",
            "value",
            "--from",
            str(tmp_path / "win.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'win.csv'}:3: not UTF-8 text" in err and "save the file as UTF-8" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["r.om.gz", "r.om", "x.csv"])
def test_cli_says_an_unreadable_history_file_cannot_be_read(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording the user may not read is the one-line error an unreadable CSV gives (it was
    a traceback). Tests may run as root, whom chmod 000 does not stop: open is refused here."""
    path = tmp_path / name
    if name == "x.csv":
        path.write_text("timestamp,value\n1,2\n")
    else:
        _recording(path, [T0])
    opened = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    argv = ["backtest", "--observer", "tests.replay_observers:RobustZScore", "--metrics", "value"]
    assert main([*argv, "--from", str(path)]) == 1
    assert capsys.readouterr().err == f"deucalion: cannot read {path}: Permission denied\n"


def test_a_backtest_error_carries_no_unrelated_event_loop_error(tmp_path: Path) -> None:
    """An error from a blocking backtest is the error alone, with no "no running event loop"
    chained in front of it."""
    (tmp_path / "x.csv").write_text("timestamp,value\n1,abc\n")
    with pytest.raises(HistoryError) as caught:
        backtest(RobustZScore({"value"}), CSVSource(tmp_path / "x.csv"))
    text = "".join(traceback.format_exception(caught.value))
    assert "no running event loop" not in text
    assert "x.csv:2: value 'abc' is not a number" in text


async def test_recording_source_refuses_a_selection_that_is_no_selection(tmp_path: Path) -> None:
    """A desired entry that is neither a name nor a regular expression is named."""
    path = _recording(tmp_path / "r.om.gz", [T0])
    with pytest.raises(HistoryError, match=r"r.om.gz: 'cpu seconds' is neither"):
        [c async for c in RecordingSource(path).cycles(metrics={"cpu seconds"})]


def _steady_recording(path: Path, cycles: int, series: int = 1) -> Path:
    """A recording of ``cycles`` cycles of ``series`` noisy series (noise keeps gzip honest)."""
    import random

    rng = random.Random(7)
    with RecordingWriter(path) as writer:
        for i in range(cycles):
            when = T0 + 15 * i
            load = {f'{{cpu="{k}"}}': rng.random() for k in range(series)}
            writer.write_cycle(Cycle(when, {URL: when}, {URL: {"load": load, "up": {"{}": 1.0}}}))
    return path


@pytest.mark.parametrize(("cycles", "series"), [(100, 1), (1500, 60)])
def test_a_flipped_bit_in_the_gzip_checksum_loses_no_cycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cycles: int, series: int
) -> None:
    """A recording whose gzip checksum has one bit flipped replays every cycle (it used to
    replay none, or lose the last block), says the checksum failed and exits non-zero."""
    path = _steady_recording(tmp_path / "r.om.gz", cycles, series)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0x04  # a bit of the CRC-32 in the trailer
    path.write_bytes(bytes(data))
    code = main(
        [
            "backtest",
            "--observer",
            "tests.replay_observers:RobustZScore",
            "--metrics",
            "load",
            "--from",
            str(path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert f"{cycles} steps" in out
    assert "gzip checksum does not match" in out and "every cycle was read" in out
    assert "killed" not in out


async def test_damage_inside_a_recording_keeps_the_cycles_before_it(tmp_path: Path) -> None:
    """A damaged block mid-recording: the cycles before it replay, and the error says where the
    damage is and how much of the file could not be read."""
    path = _steady_recording(tmp_path / "r.om.gz", 1500, 60)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))
    source = RecordingSource(path)
    back = [c async for c in source.cycles()]
    assert 400 < len(back) < 1500  # about half, less at most a block before the damage
    assert [c.time for c in back] == [T0 + 15 * i for i in range(len(back))]
    assert source.stats.errors == {"corrupted": 1}
    message = source.stats.messages[0]
    assert "the recording is damaged" in message or "the gzip stream is damaged" in message
    assert "% of the file) could not be read" in message


@pytest.mark.parametrize("name", ["r.om.gz", "r.om"])
async def test_recordings_joined_end_to_end_read_as_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """`cat a.om.gz b.om.gz` (two gzip members, as zcat reads them) is both recordings, one
    after the other: it was said to be damaged at byte 8, all of it unread."""
    first = _steady_recording(tmp_path / f"a.{name}", 300)
    second = _recording(tmp_path / f"b.{name}", [T0 - 60, T0 - 45])
    both = tmp_path / name
    both.write_bytes(first.read_bytes() + second.read_bytes())
    source = RecordingSource(both)
    back = [c.time async for c in source.cycles()]
    assert back == [T0 + 15 * i for i in range(300)] + [T0 - 60, T0 - 45]
    assert source.stats.errors == {}
    assert source.stats.warnings == {"cycles_out_of_order": 1}  # the second's clock is earlier
    assert source.read_fraction() == 1.0


async def test_damage_in_a_second_gzip_member_is_placed_in_it(tmp_path: Path) -> None:
    """Damage in the second of two joined recordings keeps every cycle of the first, and the
    byte it is said to be at lies in the second."""
    first = _recording(tmp_path / "a.om.gz", [T0, T0 + 15])
    second = _steady_recording(tmp_path / "b.om.gz", 1500, 60)
    data = bytearray(second.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    both = tmp_path / "r.om.gz"
    both.write_bytes(first.read_bytes() + bytes(data))
    source = RecordingSource(both)
    back = [c.time async for c in source.cycles()]
    assert back[:2] == [T0, T0 + 15] and 400 < len(back) - 2 < 1500
    assert source.stats.errors == {"corrupted": 1}
    message = source.stats.messages[0]
    unread = int(re.search(r"the last ([0-9,]+) bytes", message)[1].replace(",", ""))  # type: ignore[index]
    assert len(data) // 4 < unread < len(data) - middle + 2**17, message


async def test_cycles_out_of_order_replay_as_recorded_and_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cycles that go back in time or repeat replay in file order, warned about once with how
    many."""
    path = _recording(tmp_path / "r.om.gz", [1000.0, 1030.0, 900.0, 900.0, 930.0, 915.0])
    source = RecordingSource(path)
    back = [c.time async for c in source.cycles(end=1000.0)]
    assert back == [1000.0, 900.0, 900.0, 930.0, 915.0]
    assert source.stats.warnings == {"cycles_out_of_order": 2, "repeated_cycles": 1}
    assert "2 cycle(s) go back in time" in caplog.text and "900.0 after 1030.0" in caplog.text
    assert caplog.text.count("go back in time") == 1


def test_a_label_value_of_megabytes_costs_its_size(tmp_path: Path) -> None:
    """A recording with one 10 MB label value replays in memory of the order of its size (it
    took 1.8 GB); measured in a process of its own, by its VmHWM: getrusage's ru_maxrss carries the
    peak of the process that started it (pytest's own, 600 MB late in a full run) across exec."""
    import subprocess
    import sys

    path = tmp_path / "big.om.gz"
    with RecordingWriter(path) as writer:
        big = '{path="' + "x" * 10_000_000 + '"}'
        writer.write_cycle(Cycle(T0, {URL: T0}, {URL: {"load": {big: 1.0, "{}": 2.0}}}))
    script = (
        "import asyncio, sys\n"
        "from deucalion.replay import RecordingSource\n"
        "async def main():\n"
        "    return [c async for c in RecordingSource(sys.argv[1]).cycles()]\n"
        "cycles = asyncio.run(main())\n"
        "status = open('/proc/self/status').read()\n"
        "peak_kb = int(status.split('VmHWM:')[1].split()[0])\n"
        "print(len(cycles), len(next(iter(cycles[0].samples.values()))['load']), peak_kb // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    cycles, series, peak_mb = map(int, done.stdout.split())
    assert (cycles, series) == (1, 2)
    assert peak_mb < 300, f"{peak_mb} MB to read a 10 MB line"


async def test_a_sample_recorded_twice_in_a_cycle_is_counted(tmp_path: Path) -> None:
    """A cycle that holds a sample twice keeps the last and says so; nothing else changes."""
    path = tmp_path / "twice.om"
    path.write_text(
        f'load{{deucalion_target="{URL}"}} 1 10\n'
        f'load{{deucalion_target="{URL}"}} 2 10\n'
        "deucalion_record_cycle_time_seconds 10 10\n"
        f'load{{deucalion_target="{URL}"}} 3 20\n'
        "deucalion_record_cycle_time_seconds 20 20\n# EOF\n"
    )
    source = RecordingSource(path)
    back = [c async for c in source.cycles()]
    assert [c.samples[URL]["load"]["{}"] for c in back] == [2.0, 3.0]
    assert source.stats.warnings == {"repeated_samples": 1}
