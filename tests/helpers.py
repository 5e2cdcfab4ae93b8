"""Helpers for tests: tiny metrics targets served by aiohttp on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

NODE_LIKE = """\
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.5
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 100.5
node_cpu_seconds_total{mode="user",cpu="0"} 7
# HELP http_request_duration_seconds Latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 3
http_request_duration_seconds_bucket{le="+Inf"} 4
http_request_duration_seconds_sum 0.9
http_request_duration_seconds_count 4
go_goroutines 12
"""


def text(body: str, content_type: str = "text/plain; version=0.0.4; charset=utf-8") -> Handler:
    """A handler serving a fixed body."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body.encode(), headers={"Content-Type": content_type})

    return handler


class TargetServer:
    """Serves handlers at paths on 127.0.0.1 and counts requests per path."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: dict[str, list[web.Request]] = {}
        self.runner: web.AppRunner | None = None
        # Bound now, so that URLs can be handed out before the server starts and no other
        # socket can take the port meanwhile.
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])

    def add(self, path: str, handler: Handler) -> str:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.requests.setdefault(path, []).append(request)
            return await handler(request)

        self.app.router.add_get(path, counted)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self.runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self.runner.setup()
        site = web.SockSite(self.runner, self.socket)
        await site.start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.socket.close()


async def wait_for(
    predicate: Callable[[], Any], within: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll until ``predicate()`` is truthy; fails the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


def records_at_least(path: Path, count: int) -> Callable[[], bool]:
    from tests.observers import read_records

    return lambda: len(read_records(path)) >= count


def _cpu_waits() -> float:
    """Seconds this process's threads have waited for a CPU (runnable, not running), from
    each thread's /proc schedstat; 0 where the kernel does not keep it."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class LoopProbe:
    """Ticks on the running event loop every ``tick`` seconds and keeps how late each tick
    came, less the time this process's threads waited for a CPU meanwhile.

    What is left is what held the loop up (code running on it, a blocking call, a thread of
    this process holding the GIL), not what a busy machine took: a stall bound on it holds on
    a loaded machine and still catches a blocked loop.
    """

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.stalls: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last, waited = loop.time(), _cpu_waits()
        while not self._stop.is_set():
            await asyncio.sleep(self.tick)
            now, waits = loop.time(), _cpu_waits()
            self.stalls.append(max(0.0, now - last - self.tick - (waits - waited)))
            last, waited = now, waits

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> float:
        """Stop ticking; the longest stall seen, in seconds."""
        self._stop.set()
        if self._task is not None:
            await self._task
        return max(self.stalls, default=0.0)


# A test that needs an idle machine (a CPU to burn, an exporter that answers promptly) and
# finds it busy skips with this prefix. DEUCALION_REQUIRE_INTEGRATION=1 turns every other skip
# of an integration test into a failure (a missing server is a broken set-up); a busy machine is
# not a broken set-up, and the test has measured that it could not tell anything.
BUSY_MACHINE = "the machine is busy: "


def skip_busy(reason: str) -> None:
    """Skip the running test because the machine is too busy for what it checks."""
    import pytest

    pytest.skip(BUSY_MACHINE + reason)
