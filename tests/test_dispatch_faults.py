"""Observer faults through a provisioner with real worker processes (issue 24 items 5, 6, 7,
10): what an observer does wrong costs that observer's call or worker, never the application.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import deucalion as dc
from tests.fault_observers import UnprintableErrorObserver
from tests.helpers import TargetServer, text, wait_for

BODY = "# TYPE good_metric gauge\ngood_metric 1\n"


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
async def url(target_server: TargetServer) -> str:
    address = target_server.add("/metrics", text(BODY))
    await target_server.start()
    return address


def provisioner_for(url: str, *observers: dc.MetricsObserver,
                    **settings: Any) -> dc.MetricsProvisioner:
    provisioner = dc.MetricsProvisioner(targets=[url], scrape_interval=0.1,
                                        telemetry={"enabled": False}, **settings)
    for observer in observers:
        provisioner.register(observer)
    return provisioner


async def test_an_exception_that_cannot_be_printed_is_an_error_of_its_call(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 7: its __str__ raising killed the call loop; now each call is counted as an error
    and the observer keeps being called."""
    path = tmp_path / "calls.jsonl"
    provisioner = provisioner_for(url, UnprintableErrorObserver({"good_metric"}, path))
    with caplog.at_level(logging.ERROR, logger="deucalion"):
        async with provisioner:
            worker = provisioner.workers[0]
            await wait_for(lambda: worker.stats.errors >= 3)
            assert worker.call_loop is not None
            assert worker.call_loop.deaths == 0
    assert worker.stats.calls >= 3
    assert len(records(path)) >= 3
    assert "new_data raised UnprintableError: <str() of the exception raised RuntimeError>" \
        in caplog.text
    assert "a bug in deucalion" not in caplog.text
