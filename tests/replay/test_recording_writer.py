"""The recording writer: its file is the owner's only, and a link is refused, never followed."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from deucalion.errors import HistoryError
from deucalion.replay.recording import RecordingSource, RecordingWriter
from deucalion.replay.sources import Cycle

URL = "http://a:9100/metrics"


@pytest.mark.parametrize("name", ["r.om.gz", "r.om"])
def test_a_recording_is_the_owners_only_and_reads_back(tmp_path: Path, name: str) -> None:
    """A new recording, and one written over a file anyone could read, are 0600; it reads
    back (gzip or not)."""
    path = tmp_path / name
    path.write_text("old")
    path.chmod(0o644)
    with RecordingWriter(path) as writer:
        writer.write_cycle(Cycle(1700000000.0, {URL: 1700000000.25}, {URL: {"up": {"{}": 1.0}}}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    async def read() -> list[Cycle]:
        return [c async for c in RecordingSource(path).cycles()]

    [cycle] = asyncio.run(read())
    assert cycle.samples == {URL: {"up": {"{}": 1.0}}}


def test_a_link_in_place_of_the_recording_is_refused(tmp_path: Path) -> None:
    """A symlink at the recording's path is an error naming the file; its target is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    link = tmp_path / "r.om.gz"
    os.symlink(victim, link)
    with pytest.raises(HistoryError, match=r"r\.om\.gz: it is a link"):
        RecordingWriter(link)
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize(
    "name", ["node.csv", "node.jsonl", "NODE.CSV", "node.prom", "node.txt", "node", "NODE.OM.GZ"]
)
def test_a_recording_named_as_another_format_is_refused_before_it_records(
    tmp_path: Path, name: str
) -> None:
    """`record -o node.csv` wrote OpenMetrics text into node.csv, which `backtest --from
    node.csv` then read as CSV and refused, an hour of recording later; node.prom, node.txt
    and a name without a suffix were written, then refused by `backtest --from` as no history
    source."""
    with pytest.raises(HistoryError, match=r"call it FILE\.om\.gz"):
        RecordingWriter(tmp_path / name)
    assert not (tmp_path / name).exists()


def test_record_takes_metrics_or_all_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    """`record [--metrics a,b | --all]`: given both, --all won without a word."""
    from deucalion.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["record", "-o", "x.om.gz", "--all", "--metrics", "node_load1"])
    assert exited.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["r.om.gz", "r.om", "r.gz", "r.prom.gz"])
def test_every_name_a_recording_is_written_to_is_read_back_as_one(
    tmp_path: Path, name: str
) -> None:
    """What the writer accepts, `backtest --from` (open_source) reads as a recording."""
    from deucalion.replay.opening import open_source

    with RecordingWriter(tmp_path / name) as writer:
        writer.write_cycle(Cycle(1700000000.0, {URL: 1700000000.25}, {URL: {"up": {"{}": 1.0}}}))
    assert isinstance(open_source(str(tmp_path / name)), RecordingSource)


def test_record_to_a_name_backtest_would_not_read_is_refused_before_it_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deucalion record -o node.prom` recorded, then `backtest --from node.prom` said 'not a
    history source'."""
    from deucalion.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("targets: ['127.0.0.1:1']\nscrape_interval: 0.2s\n")
    out = tmp_path / "node.prom"
    assert main(["record", "-c", str(config), "--all", "--duration", "5s", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "node.prom" in err and "FILE.om.gz" in err and "Traceback" not in err
    assert not out.exists()


def _record(tmp_path: Path, out: Path, *more: str) -> int:
    """`deucalion record` of a target that is down, for a moment: cycles of `up` 0."""
    from deucalion.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("targets: ['127.0.0.1:1']\nscrape_interval: 0.1s\n")
    argv = ["record", "-c", str(config), "--all", "--duration", "0.3s", "-o", str(out)]
    return main([*argv, *more])


def test_record_over_an_existing_file_is_refused_unless_told_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`record -o old.om.gz` replaced a previous recording without a word; it is refused,
    the file untouched, and --overwrite replaces it."""
    out = tmp_path / "old.om.gz"
    out.write_bytes(b"an hour of recording")
    assert _record(tmp_path, out) == 1
    err = capsys.readouterr().err
    assert err == (
        f"deucalion: cannot write the recording {out}: it exists (20 bytes); give a new "
        "name, or --overwrite to replace it\n"
    )
    assert out.read_bytes() == b"an hour of recording"
    assert _record(tmp_path, out, "--overwrite") == 0
    capsys.readouterr()
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("where", ["directory", "missing"])
def test_record_to_a_path_it_cannot_write_is_refused_before_it_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """`record -o DIR` showed '4 kB written' (the directory's size) before it failed."""
    if where == "directory":
        out = tmp_path / "dir.om.gz"
        out.mkdir()
        reason = "it is a directory; give the path of a file"
    else:
        out = tmp_path / "nosuch" / "r.om.gz"
        reason = f"its directory {out.parent} does not exist"
    assert _record(tmp_path, out) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"deucalion: cannot write the recording {out}: {reason}")
    assert err.count("\n") == 1 and "written" not in err


def test_a_writer_told_not_to_overwrite_refuses_a_file_there(tmp_path: Path) -> None:
    """RecordingWriter(overwrite=False) refuses a file that appeared after the check, as the
    check does; by default it replaces it (run --record, the library)."""
    path = tmp_path / "r.om.gz"
    path.write_text("keep me")
    with pytest.raises(HistoryError, match=r"r\.om\.gz: it exists \(7 bytes\)"):
        RecordingWriter(path, overwrite=False)
    assert path.read_text() == "keep me"
    RecordingWriter(path).close()
    assert path.read_bytes()[:2] == b"\x1f\x8b"
