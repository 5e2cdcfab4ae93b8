"""rate(), increase(), irate() and histogram_quantile() against a real Prometheus on the same data.

A target this test drives serves a counter that resets, a histogram, a histogram with
non-monotonic buckets and one without a +Inf bucket. A real Prometheus scrapes it every second
while the test scrapes it too, with deucalion's parser, into a ``Window``. Two checks:

- exact: the raw samples Prometheus stored (read back with a range selector) go into a
  ``Window``, and deucalion's functions over them must equal Prometheus's over the same range,
  to 1e-9 relative (float rounding only);
- live: deucalion's window of its own scrapes (at other moments than Prometheus's) gives the
  same rate within 2 % and the same quantiles within 1e-6 (the driven values are linear in
  time, so only the scrape phase differs).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import deucalion as dc
from deucalion.history import Window, series_key
from deucalion.history.promql import CounterRates
from tests.integration import servers

# As exact as float64 seconds since the epoch allow: a time near 1.8e9 s is resolved to 2**-22 s
# (0.24 us), where Prometheus keeps whole milliseconds, so a duration inside a 3 s range can be
# off by one such step in each of its two ends: up to 1.6e-7 of the range. Measured: 3e-9.
EXACT = 2e-7
LIVE_RATE = 0.02
RESET_AFTER = 8.0


class DrivenTarget:
    """Serves values that are functions of the time since start, and a reset at 8 s."""

    def __init__(self) -> None:
        self.start = time.time()

    def body(self, now: float) -> str:
        e = now - self.start
        counter = 100 + 10 * e if e < RESET_AFTER else 7 * (e - RESET_AFTER)
        return "\n".join(
            [
                "# TYPE drv_requests_total counter",
                f'drv_requests_total{{path="/a"}} {counter!r}',
                "# TYPE lat histogram",
                f'lat_bucket{{le="0.1"}} {5 * e!r}',
                f'lat_bucket{{le="0.5"}} {12 * e!r}',
                f'lat_bucket{{le="1"}} {15 * e!r}',
                f'lat_bucket{{le="+Inf"}} {16 * e!r}',
                f"lat_sum {8 * e!r}",
                f"lat_count {16 * e!r}",
                # Untyped on purpose: buckets no client library would write.
                f'brk_bucket{{le="0.1"}} {6 * e!r}',
                f'brk_bucket{{le="0.5"}} {4 * e!r}',
                f'brk_bucket{{le="1"}} {10 * e!r}',
                f'brk_bucket{{le="+Inf"}} {10 * e!r}',
                f'nif_bucket{{le="1"}} {3 * e!r}',
                f'nif_bucket{{le="2"}} {4 * e!r}',
                "",
            ]
        )

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(text=self.body(time.time()))


@pytest.fixture
async def driven() -> AsyncIterator[tuple[DrivenTarget, str]]:
    """The driven target, served on a free loopback port; yields it and its host:port."""
    target = DrivenTarget()
    app = web.Application()
    app.router.add_get("/metrics", target.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield target, f"127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def query(
    session: aiohttp.ClientSession, prometheus: str, expr: str, at: float
) -> list[dict[str, Any]]:
    async with session.get(
        f"{prometheus}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}
    ) as response:
        answer = await response.json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def number(text: str) -> float:
    return float(text)  # Prometheus writes NaN, +Inf and -Inf as float() reads them


def key_of(metric: dict[str, str]) -> str:
    return series_key({k: v for k, v in metric.items() if k != "__name__"})


async def window_of_stored_samples(
    session: aiohttp.ClientSession, prometheus: str, names: list[str], at: float, seconds: int
) -> Window:
    """A Window holding exactly the samples Prometheus stored for ``names`` in the range."""
    by_time: dict[float, dict[str, dict[str, float]]] = {}
    for name in names:
        for series in await query(session, prometheus, f"{name}[{seconds}s]", at):
            for ts, value in series["values"]:
                by_time.setdefault(float(ts), {}).setdefault(name, {})[key_of(series["metric"])] = (
                    number(value)
                )
    window = Window(points=len(by_time) + 1)
    for ts in sorted(by_time):
        window.add({"prometheus": by_time[ts]}, time=ts)
    return window


async def test_rate_and_histogram_quantile_match_a_real_prometheus(
    server_factory: Callable[..., servers.Server],
    driven: tuple[DrivenTarget, str],
) -> None:
    """Over the samples Prometheus stored, and over deucalion's own scrapes, the values agree."""
    target, address = driven
    prometheus = await asyncio.to_thread(
        server_factory, servers.start_prometheus, [address], scrape_interval="1s"
    )
    url = f"http://{address}/metrics"
    live = Window(points=60)
    names = ["drv_requests_total", "lat_bucket", "brk_bucket", "nif_bucket"]
    async with aiohttp.ClientSession() as session:
        # deucalion scrapes the same target, every 0.5 s, with its own parser.
        while time.time() - target.start < RESET_AFTER + 8.5:
            scraped_at = time.time()
            async with session.get(url) as response:
                text = await response.text()
            live.add({url: dc.parse_exposition(text, metrics=set(names))}, time=scraped_at)
            await asyncio.sleep(0.5)

        # Exact: over a range holding the reset, between scrapes (no sample on an end).
        stored = await query(session, prometheus.url, "drv_requests_total[30s]", time.time())
        last_ms = max(round(float(ts) * 1000) for ts, _ in stored[0]["values"])
        at = (last_ms + 500) / 1000
        window = await window_of_stored_samples(session, prometheus.url, names, at, 30)
        # Stored timestamps are whole milliseconds: the 8 s range starts mid-interval too.
        for expr, ours in [
            ("rate(drv_requests_total[8s])", window.rate("drv_requests_total", 8, at=at)),
            ("increase(drv_requests_total[8s])", window.increase("drv_requests_total", 8, at=at)),
            ("rate(drv_requests_total[3s])", window.rate("drv_requests_total", 3, at=at)),
        ]:
            theirs = await query(session, prometheus.url, expr, at)
            assert len(theirs) == 1 and len(ours) == 1, expr
            assert list(ours.values) == pytest.approx([number(theirs[0]["value"][1])], rel=EXACT), (
                expr
            )
        # irate across the reset: Prometheus's rule (after the drop the counter counted from
        # zero) is interval_rates'; CounterRates withholds that one interval, and agrees on the
        # next.
        samples = [(float(ts), number(v)) for ts, v in stored[0]["values"]]
        reset = next(i for i in range(1, len(samples)) if samples[i][1] < samples[i - 1][1])
        block = window.interval_rates("drv_requests_total")
        streaming = CounterRates()
        sampled = [streaming.update("c", t, v)[0] for t, v in samples[: reset + 2]]
        for i in (reset, reset + 1):
            theirs = await query(
                session, prometheus.url, "irate(drv_requests_total[3s])", samples[i][0]
            )
            column = block.times[0].tolist().index(samples[i][0])
            assert block.values[0, column] == pytest.approx(
                number(theirs[0]["value"][1]), rel=EXACT
            )
        assert math.isnan(sampled[reset])
        assert sampled[reset + 1] == pytest.approx(block.values[0, column], rel=EXACT)
        for q, expr_range in [(0.9, 8), (0.5, None), (0.99, 8), (0.05, None)]:
            for name in ("lat", "brk", "nif"):
                inner = f"rate({name}_bucket[{expr_range}s])" if expr_range else f"{name}_bucket"
                theirs = await query(
                    session, prometheus.url, f"histogram_quantile({q}, {inner})", at
                )
                ours = window.histogram_quantile(q, name, range_seconds=expr_range, at=at)
                assert len(theirs) == len(ours) == 1, (q, inner)
                expected = number(theirs[0]["value"][1])
                if math.isnan(expected):
                    assert math.isnan(ours.values[0]), (q, inner, ours.values)
                else:
                    assert ours.values[0] == pytest.approx(expected, rel=EXACT), (q, inner)

        # Live: deucalion's own scrapes, after the reset, against Prometheus at that time.
        now = live.newest_time
        theirs = await query(session, prometheus.url, "rate(drv_requests_total[5s])", now)
        assert live.rate("drv_requests_total", 5, at=now).values[0] == pytest.approx(
            number(theirs[0]["value"][1]), rel=LIVE_RATE
        )
        assert number(theirs[0]["value"][1]) == pytest.approx(7.0, rel=LIVE_RATE)
        for name in ("lat", "brk"):
            theirs = await query(
                session, prometheus.url, f"histogram_quantile(0.9, rate({name}_bucket[5s]))", now
            )
            assert live.histogram_quantile(0.9, name, range_seconds=5, at=now).values[
                0
            ] == pytest.approx(number(theirs[0]["value"][1]), rel=1e-6)
