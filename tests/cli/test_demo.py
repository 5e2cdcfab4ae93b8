"""The embedded demo, run in-process for a moment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deucalion.cli import main
from deucalion.demo import run_demo


async def test_the_demo_shows_the_alertmanager_without_its_password(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """--alertmanager http://user:pass@host prints as user:***@, in whatever form it was typed."""
    # Too short a run for an alert: nothing is sent, the URL is only shown.
    assert await run_demo(alertmanager="demo:s3cr3t@127.0.0.1:9", duration=0.3, interval=0.1) == 0
    out, err = capsys.readouterr()
    assert "; alerts go to http://demo:***@127.0.0.1:9. Ctrl-C stops." in out
    assert "s3cr3t" not in out + err + caplog.text


async def test_the_demo_detects_the_anomalies_it_injects(capfd: pytest.CaptureFixture[str]) -> None:
    """On its synthetic target the demo's observer prints detections of injected anomalies
    (from its worker process: captured at the file descriptor)."""
    assert await run_demo(duration=25.0, interval=0.5) == 0
    out = capfd.readouterr().out
    assert "injected" in out
    assert "anomaly  demo_" in out, out


BLOCK_NUMPY = '''\
import sys


class _NoNumPy:
    """As if NumPy (and so the ml extra) were not installed: a plain `pip install deucalion`."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("numpy", "pandas", "sklearn", "river"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoNumPy())
'''


def test_the_demo_without_numpy_says_in_one_line_what_to_install(tmp_path: Path) -> None:
    """After a plain install (no ml extra), `deucalion demo` exits 1 with one line saying what
    to install, not a traceback. (NumPy is hidden by a sitecustomize import blocker.)"""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_NUMPY)
    deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
    environ = {k: v for k, v in os.environ.items() if k != "DEUCALION_CONFIG"}
    run = subprocess.run(
        [deucalion, "demo", "--duration", "3s"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environ, "PYTHONPATH": str(tmp_path)},
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.splitlines() == [
        "deucalion: deucalion demo needs numpy, which is not installed: pip install 'deucalion[ml]'"
    ], run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--duration", "-1"],
            "argument --duration: '-1' is negative: give seconds or a duration "
            "such as 30s or 5m, or 0 to run until Ctrl-C",
        ),
        (
            ["--duration", "\uff11\uff15s"],
            "argument --duration: '\uff11\uff15s' is not a duration: "
            "it has the character '\uff11' (FULLWIDTH DIGIT ONE)",
        ),
        (["--interval", "0"], "argument --interval: must be more than 0, not '0'"),
        (["--interval", "soon"], "argument --interval: 'soon' is not a duration"),
    ],
)
def test_a_bad_demo_duration_is_refused_saying_why(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --duration -1` (once 0 cycles and exit 0) and other bad durations exit 2 with the
    reason; nothing runs."""
    with pytest.raises(SystemExit) as exited:
        main(["demo", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "cycles" not in err


def test_the_demo_takes_prometheus_durations(capsys: pytest.CaptureFixture[str]) -> None:
    """`deucalion demo --duration 2s --interval 500ms` runs for about 2 s at 0.5 s: cycles run."""
    assert main(["demo", "--duration", "2s", "--interval", "500ms"]) == 0
    captured = capsys.readouterr()
    assert "every 0.5s" in captured.out and "for 2s" in captured.out
    assert "deucalion demo: done after" in captured.err
    assert "done after 0 cycles" not in captured.err


def test_the_replay_example_as_readme_runs_it_leaves_the_repository_alone() -> None:
    """`python examples/replay_demo.py` from the repository's root (as README says) writes its
    recording, windows and plot to a new temporary directory: README's tracked picture and the
    root stay as they were."""
    root = Path(__file__).resolve().parents[2]
    picture = root / "examples" / "replay_demo.png"
    before = picture.read_bytes()
    run = subprocess.run(
        [sys.executable, "examples/replay_demo.py", "2"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = Path(run.stdout.strip().splitlines()[-1].removeprefix("written to "))
    try:
        assert picture.read_bytes() == before
        assert not list(root.glob("replay_demo*"))
        assert root not in out.parents
        assert {p.name for p in out.iterdir()} == {
            "replay_demo.om.gz",
            "replay_demo_windows.json",
            "replay_demo.png",
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


async def test_a_preset_demo_says_how_long_its_detector_learns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`demo --preset NAME --target URL` for its default 30 s ended in silence, the detector
    still learning: it says how long that takes at the interval given."""
    # Nothing answers on 127.0.0.1:9: exit 1 (the target was never up), the banner printed.
    assert (
        await run_demo(preset="http-service", target="127.0.0.1:9", duration=0.2, interval=2.0) == 1
    )
    out = capsys.readouterr().out
    assert "about 1,000 (33m20s at 2s)" in out and "--duration 0" in out


async def test_the_demo_watches_its_target_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DEUCALION_TARGETS in the shell won over `demo --target URL`: the demo said it watched
    URL and scraped the variable's target."""
    from deucalion.provisioner import MetricsProvisioner

    monkeypatch.setenv("DEUCALION_TARGETS", "127.0.0.1:7")
    watched: list[list[str]] = []
    start = MetricsProvisioner.start

    async def recording_start(self: MetricsProvisioner) -> None:
        watched.append([t.url for t in self.settings.targets])
        await start(self)

    monkeypatch.setattr(MetricsProvisioner, "start", recording_start)
    # Nothing answers on 127.0.0.1:9: exit 1, the target never up.
    assert await run_demo(target="127.0.0.1:9", duration=0.2, interval=0.1) == 1
    assert watched == [["http://127.0.0.1:9/metrics"]]


@pytest.mark.parametrize("preset", [None, "node-exporter"])
def test_a_demo_whose_target_never_answers_exits_1_saying_so(
    capsys: pytest.CaptureFixture[str], preset: str | None
) -> None:
    """`demo --preset node-exporter --target URL` on a target that was down the whole time
    logged one warning and exited 0, "done after 8 cycles", where `presets show` exits 1."""
    argv = ["demo", "--target", "127.0.0.1:9", "--duration", "0.3s", "--interval", "0.1s"]
    assert main([*argv, *(["--preset", preset] if preset else [])]) == 1
    err = capsys.readouterr().err
    assert "deucalion demo: http://127.0.0.1:9/metrics never answered in " in err, err
    assert "nothing was watched" in err and "check the URL" in err
    assert "done after" not in err


async def test_a_demo_whose_target_answered_at_some_point_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A target up for its first scrape and failing after: the demo watched something, so it
    ends as it always did, "done", exit 0 (the scraper logs the target going down)."""
    from aiohttp import web

    answered: list[int] = []

    async def metrics(request: web.Request) -> web.Response:
        answered.append(1)
        if len(answered) > 1:
            return web.Response(status=503)
        return web.Response(text="go_goroutines 7\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert await run_demo(target=url, duration=0.5, interval=0.1) == 0
    finally:
        await runner.cleanup()
    assert len(answered) > 1
    assert "deucalion demo: done after" in capsys.readouterr().err
