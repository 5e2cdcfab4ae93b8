"""Checkpoint files through a provisioner (issue 24 items 1, 2, 8, 9): owner-only, never
through a link, only trusted files loaded, a failing file costs the file only, and a file is
resumed only into the observer that was registered when it was written."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import deucalion as dc
from tests.fault_observers import OtherResumingObserver, ResumingObserver
from tests.helpers import TargetServer, text, wait_for

BODY = "# TYPE good_metric gauge\ngood_metric 1\n"
ROOT = Path(__file__).resolve().parents[2]


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def run_calls(
    url: str, observer: dc.MetricsObserver, state: Path, calls: Path, count: int, **settings: Any
) -> dc.MetricsProvisioner:
    """Run a provisioner with checkpoints in ``state`` until ``count`` more calls were made,
    then stop it cleanly (which takes a last checkpoint)."""
    provisioner = dc.MetricsProvisioner(
        targets=[url],
        scrape_interval=0.1,
        telemetry={"enabled": False},
        checkpoint_interval=settings.pop("checkpoint_interval", 3600),
        checkpoint_path=str(state),
        shutdown_grace_period=5,
        **settings,
    )
    provisioner.register(observer)
    before = len(records(calls))
    async with provisioner:
        await wait_for(lambda: len(records(calls)) >= before + count)
    return provisioner


@pytest.fixture
async def url(target_server: TargetServer) -> str:
    address = target_server.add("/metrics", text(BODY))
    await target_server.start()
    return address


async def test_checkpoint_files_are_owner_only_in_a_directory_created_0700(
    url: str, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.jsonl"
    state = tmp_path / "new" / "state"
    await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 2)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    (checkpoint,) = state.iterdir()
    assert checkpoint.name == "resuming.pickle"
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600


async def test_a_link_planted_as_the_partial_file_is_not_followed(url: str, tmp_path: Path) -> None:
    """Item 1: a symlink at <name>.pickle.partial made deucalion overwrite its target."""
    calls, state = tmp_path / "calls.jsonl", tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (state / "resuming.pickle.partial").symlink_to(victim)
    await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 2)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in state.iterdir()) == ["resuming.pickle"]
    # And the checkpoint written is a good one: a restart resumes from it.
    done = len(records(calls))
    await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 1)
    assert records(calls)[done]["calls"] == done + 1


async def test_a_directory_others_can_write_is_refused_at_start(url: str, tmp_path: Path) -> None:
    """Item 2: checkpoints are pickles; a world-writable directory could hand us anyone's."""
    state = tmp_path / "shared"
    state.mkdir()
    state.chmod(0o777)
    provisioner = dc.MetricsProvisioner(
        targets=[url],
        telemetry={"enabled": False},
        checkpoint_interval=60,
        checkpoint_path=str(state),
    )
    provisioner.register(ResumingObserver({"good_metric"}, tmp_path / "calls.jsonl"))
    with pytest.raises(dc.ConfigError, match=r"checkpoint_path .*shared.*writable by others"):
        await provisioner.start()


async def test_a_checkpoint_file_others_can_write_is_not_loaded(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 2: a file anybody could have replaced is never unpickled; the observer starts as
    registered."""
    calls, state = tmp_path / "calls.jsonl", tmp_path / "state"
    await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 2)
    done = len(records(calls))
    (state / "resuming.pickle").chmod(0o666)
    with caplog.at_level(logging.ERROR, logger="deucalion"):
        await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 1)
    assert records(calls)[done]["calls"] == 1
    assert "refused to load it: the file is writable by others" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
async def test_a_checkpoint_file_of_another_user_is_not_loaded(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls, state = tmp_path / "calls.jsonl", tmp_path / "state"
    await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 2)
    done = len(records(calls))
    os.chown(state / "resuming.pickle", 65534, 65534)
    with caplog.at_level(logging.ERROR, logger="deucalion"):
        await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 1)
    assert records(calls)[done]["calls"] == 1
    assert "the file is owned by uid 65534" in caplog.text


async def test_a_checkpoint_file_that_cannot_be_written_keeps_the_checkpoint_in_memory(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 8: the file failing (here its place is a directory) costs the file only: a worker
    replaced after a crash resumes from memory, the error is logged once, not per attempt,
    and no partial file stays."""
    calls, state = tmp_path / "calls.jsonl", tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "resuming.pickle").mkdir()  # os.replace onto it fails every time
    provisioner = dc.MetricsProvisioner(
        targets=[url],
        scrape_interval=0.1,
        telemetry={"enabled": False},
        checkpoint_interval=0.05,
        checkpoint_path=str(state),
    )
    provisioner.register(ResumingObserver({"good_metric"}, calls))
    with caplog.at_level(logging.DEBUG, logger="deucalion"):
        async with provisioner:
            worker = provisioner.workers[0]
            await wait_for(lambda: worker.stats.checkpoint_failures >= 3)
            victim = worker.pid
            assert victim is not None
            calls_before = records(calls)[-1]["calls"]
            os.kill(victim, 9)
            await wait_for(lambda: any(r["pid"] != victim for r in records(calls)))
    after = next(r for r in records(calls) if r["pid"] != victim)
    assert after["calls"] > 1 and after["calls"] >= calls_before
    errors = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and "cannot write its checkpoint" in r.getMessage()
    ]
    assert len(errors) == 1
    assert worker.stats.checkpoint_failures >= 3
    assert sorted(p.name for p in state.iterdir()) == ["resuming.pickle"]


async def test_a_changed_constructor_argument_refuses_the_checkpoint_with_a_warning(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 9: the observer registered now runs with its own arguments, not the file's."""
    calls, state = tmp_path / "calls.jsonl", tmp_path / "state"
    await run_calls(url, ResumingObserver({"good_metric"}, calls, setting=1), state, calls, 2)
    done = len(records(calls))
    with caplog.at_level(logging.WARNING, logger="deucalion"):
        await run_calls(url, ResumingObserver({"good_metric"}, calls, setting=2), state, calls, 1)
    first = records(calls)[done]
    assert (first["setting"], first["calls"]) == (2, 1)
    (warning,) = [r for r in caplog.records if "not resuming" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "changed: setting" in warning.getMessage()


async def test_another_class_under_the_same_name_refuses_the_checkpoint(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 9: the class registered now runs, not the one the checkpoint was taken from."""
    calls, state = tmp_path / "calls.jsonl", tmp_path / "state"
    await run_calls(url, ResumingObserver({"good_metric"}, calls), state, calls, 2)
    done = len(records(calls))
    with caplog.at_level(logging.WARNING, logger="deucalion"):
        await run_calls(url, OtherResumingObserver({"good_metric"}, calls), state, calls, 1)
    first = records(calls)[done]
    assert (first["class"], first["calls"]) == ("OtherResumingObserver", 1)
    assert "class tests.fault_observers.ResumingObserver" in caplog.text
    assert "class tests.fault_observers.OtherResumingObserver is registered now" in caplog.text


async def test_the_same_registration_resumes(url: str, tmp_path: Path) -> None:
    """The registration check compares like with like: the same observer, constructed the same
    way (its desired metrics given in another order), resumes."""
    calls, state = tmp_path / "calls.jsonl", tmp_path / "state"
    desired = {"good_metric", "up", "scrape_duration_seconds", "a", "b", "c"}
    await run_calls(url, ResumingObserver(desired, calls, setting=3), state, calls, 2)
    done = len(records(calls))
    await run_calls(
        url, ResumingObserver(set(sorted(desired, reverse=True)), calls, setting=3), state, calls, 1
    )
    assert records(calls)[done]["calls"] == done + 1


REGISTRATION = """
import json, sys
from deucalion.dispatch.checkpoints import registration
from tests.fault_observers import ResumingObserver

observer = ResumingObserver({f"metric_{i}" for i in range(50)}, "/nowhere", setting=7)
observer.extra = {"tags": {f"t{i}" for i in range(20)}, "nested": [frozenset({"x", "y"})]}
print(json.dumps(registration(observer)))
"""


def test_a_registration_is_the_same_in_every_interpreter() -> None:
    """Sets of strings iterate in an order that changes with the interpreter's hash seed; the
    registration a restarted application compares must not."""
    seen = []
    for seed in ("1", "2", "3"):
        out = subprocess.run(
            [sys.executable, "-c", REGISTRATION],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
        seen.append(json.loads(out.stdout))
    assert seen[0]["class"] == "tests.fault_observers.ResumingObserver"
    assert set(seen[0]["attributes"]) >= {"desired_metrics", "extra", "setting", "calls"}
    assert seen[0] == seen[1] == seen[2]


async def test_a_checkpoint_path_that_is_a_file_is_refused_at_start(
    url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.write_text("not a directory")
    provisioner = dc.MetricsProvisioner(
        targets=[url],
        telemetry={"enabled": False},
        checkpoint_interval=60,
        checkpoint_path=str(state),
    )
    provisioner.register(ResumingObserver({"good_metric"}, tmp_path / "calls.jsonl"))
    with pytest.raises(dc.ConfigError, match=r"checkpoint_path .*state: it is not a directory"):
        await provisioner.start()
    assert state.read_text() == "not a directory"
