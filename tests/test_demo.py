"""The embedded demo, run in-process for a moment."""

from __future__ import annotations

import pytest

from deucalion.demo import run_demo


async def test_the_demo_shows_the_alertmanager_without_its_password(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """--alertmanager http://user:pass@host prints as user:***@, in whatever form it was typed."""
    # Too short a run for an alert: nothing is sent, the URL is only shown.
    assert await run_demo(alertmanager="demo:s3cr3t@127.0.0.1:9", duration=0.3,
                          interval=0.1) == 0
    out, err = capsys.readouterr()
    assert "; alerts go to http://demo:***@127.0.0.1:9. Ctrl-C stops." in out
    assert "s3cr3t" not in out + err + caplog.text


async def test_the_demo_detects_the_anomalies_it_injects(
        capfd: pytest.CaptureFixture[str]) -> None:
    """On its synthetic target the demo's observer prints detections of injected anomalies
    (from its worker process: captured at the file descriptor)."""
    assert await run_demo(duration=25.0, interval=0.5) == 0
    out = capfd.readouterr().out
    assert "injected" in out
    assert "anomaly  demo_" in out, out
