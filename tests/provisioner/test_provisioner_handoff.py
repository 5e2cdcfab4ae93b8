"""A hung target delays the others' data by at most the hand-off deadline (issue 13, item 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

import deucalion as dc
from tests.helpers import NODE_LIKE, TargetServer, records_at_least, text, wait_for
from tests.observers import RecordingObserver, read_records


async def hang(request: web.Request) -> web.StreamResponse:
    """A target that accepts the request and never answers."""
    await asyncio.sleep(3600)
    return web.Response()


async def test_a_hung_target_is_down_at_the_handoff_deadline_and_the_others_are_handed_on(
    target_server: TargetServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With scrape_timeout as long as the interval, a hung target is cut at half the interval:
    its cycle hands the others' data on then, the hung one counting as down."""
    good = target_server.add("/metrics", text(NODE_LIKE))
    hung = target_server.add("/hung", hang)
    await target_server.start()
    path = tmp_path / "calls"
    provisioner = dc.MetricsProvisioner(
        targets=[good, hung], scrape_interval=2, scrape_timeout=2, telemetry={"enabled": False}
    )
    provisioner.register(
        RecordingObserver({"go_goroutines", "up", "scrape_duration_seconds"}, path)
    )
    with caplog.at_level("WARNING", logger="deucalion.collection.scrape"):
        async with provisioner:
            await wait_for(records_at_least(path, 2))
    for record in read_records(path)[:2]:
        data = record["data"]
        assert data[good]["up"] == {"{}": 1.0} and data[good]["go_goroutines"] == {"{}": 12.0}
        assert data[hung] == {"up": {"{}": 0.0}, "scrape_duration_seconds": {"{}": 1.0}}
    assert f"target {hung} is down: no answer by the cycle's hand-off deadline (1s)" in caplog.text
