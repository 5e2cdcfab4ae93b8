"""A source for another monitoring system (examples/json_api_source.py), run live and in a
backtest against a JSON HTTP API this test serves."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web

from deucalion.provisioner import MetricsProvisioner
from deucalion.replay import HistorySource, backtest_async
from tests.replay_observers import RobustZScore, SeenObserver

EXAMPLE = Path(__file__).parents[2] / "examples" / "json_api_source.py"
T0 = 1_700_000_000.0


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("json_api_source", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu(i: int) -> float:
    return 0.3 + 0.02 * math.sin(i) + (0.6 if i == 50 else 0.0)


class _Api:
    """Two hosts; history at 10 s steps with a CPU spike on web-1 at step 50."""

    hosts = ("web-1", "web-2")

    async def hosts_(self, _: web.Request) -> web.Response:
        return web.json_response(list(self.hosts))

    async def metrics(self, _: web.Request) -> web.Response:
        return web.json_response({h: {"cpu": 0.3, "memory": 0.5} for h in self.hosts})

    async def history(self, request: web.Request) -> web.Response:
        start, end = float(request.query["from"]), float(request.query["to"])
        points: list[dict[str, Any]] = []
        for i in range(100):
            when = T0 + 10 * i
            if start <= when <= end:
                points.append(
                    {
                        "time": when,
                        "hosts": {
                            "web-1": {"cpu": _cpu(i), "memory": 0.5},
                            "web-2": {"cpu": _cpu(i + 7) if i != 43 else 0.31, "memory": 0.5},
                        },
                    }
                )
        return web.json_response(points)


@pytest.fixture
async def api() -> AsyncIterator[str]:
    """The JSON API on a free loopback port."""
    served = _Api()
    app = web.Application()
    app.router.add_get("/hosts", served.hosts_)
    app.router.add_get("/metrics", served.metrics)
    app.router.add_get("/history", served.history)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_json_api_source_live(api: str, tmp_path: Path) -> None:
    """Observers run live on the example source, receiving its hosts as targets."""
    seen = tmp_path / "seen.jsonl"
    source = _example().JsonApiSource(api)
    provisioner = MetricsProvisioner(
        targets_provider=source, scrape_interval=0.2, telemetry={"enabled": False}
    )
    provisioner.register(SeenObserver({"cpu", "up"}, str(seen)))
    async with provisioner:
        for _ in range(300):
            await asyncio.sleep(0.1)
            if seen.exists() and len(seen.read_text().splitlines()) >= 2:
                break
    await source.close()  # a provider handed in is the caller's to close
    record = json.loads(seen.read_text().splitlines()[0])
    assert record["data"] == {
        f"{api}/hosts/{h}": {"cpu": {"{}": 0.3}, "up": {"{}": 1.0}} for h in ("web-1", "web-2")
    }


async def test_json_api_source_backtest(api: str) -> None:
    """The same source replays its history: the spike on web-1 alerts, labelled as live."""
    source = _example().JsonApiSource(api)
    assert isinstance(source, HistorySource)
    result = await backtest_async(RobustZScore({"cpu"}), source, start=T0, end=T0 + 990)
    assert result.steps == 100 and result.errors == 0
    assert [(a.target, a.start) for a in result.alerts] == [(f"{api}/hosts/web-1", T0 + 500)]
    assert result.alerts[0].labels["instance"] == "web-1"
    assert result.alerts[0].labels["job"] == "json-api"
