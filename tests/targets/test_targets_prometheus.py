"""Federated mode's splitting of one /federate answer per target, against a stand-in server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import deucalion.collection.federation as federation
from deucalion.collection import FederationCollector
from deucalion.config.loading import PrometheusSettings
from deucalion.history.labels import pairs_key, series_pairs
from deucalion.targets.prometheus import PrometheusTargets

TARGETS = {
    "status": "success",
    "data": {
        "activeTargets": [
            {
                "labels": {"instance": "a:9100", "job": "node", "env": "prod"},
                "scrapeUrl": "http://a:9100/metrics",
                "health": "up",
                "lastError": "",
                "scrapePool": "node",
            },
            {
                "labels": {"instance": "b:9100", "job": "node", "env": "prod"},
                "scrapeUrl": "http://b:9100/metrics",
                "health": "down",
                "lastError": "connection refused",
                "scrapePool": "node",
            },
            {
                "labels": {"instance": "c:80", "job": "web"},
                "scrapeUrl": "http://c:80/metrics",
                "health": "up",
                "lastError": "",
                "scrapePool": "web",
            },
        ]
    },
}
FEDERATE = """\
# TYPE http_requests_total untyped
http_requests_total{code="200",env="prod",instance="a:9100",job="node",path="/x\\"y"} 5 1700000000
http_requests_total{env="prod",exported_job="inner",instance="a:9100",job="node"} 1 1700000000000
# TYPE up untyped
up{env="prod",instance="a:9100",job="node"} 1 1700000000000
up{env="prod",instance="b:9100",job="node"} 0 1700000000000
scrape_duration_seconds{env="prod",instance="a:9100",job="node"} 0.25 1700000000000
scrape_samples_scraped{env="prod",instance="a:9100",job="node"} 42 1700000000000
"""


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[str, list[Any]]]:
    """A loopback server answering /api/v1/targets and /federate as Prometheus does."""
    queries: list[Any] = []

    async def targets(request: web.Request) -> web.Response:
        if "broken" in queries:
            return web.Response(status=503, text="shutting down")
        return web.json_response(TARGETS)

    async def federate(request: web.Request) -> web.Response:
        if "broken" in queries:
            return web.Response(status=503, text="shutting down")
        queries.append(request.query.getall("match[]"))
        return web.Response(text=FEDERATE, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_get("/federate", federate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", queries
    await runner.cleanup()


def test_series_round_trip() -> None:
    """series_pairs keeps values escaped, so rendering it again gives the same key."""
    key = '{a="1",b="x\\"y\\\\z",c="line\\nbreak"}'
    assert pairs_key(series_pairs(key)) == key
    assert pairs_key([]) == "{}"


@pytest.mark.parametrize("in_thread", [False, True], ids=["inline", "large-body-thread"])
async def test_split_per_target(
    stand_in: tuple[str, list[Any]], in_thread: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One federate request; series split per target without its target labels; up from
    Prometheus; a down target has lastError as its reason (inline, and as a large body is,
    in a thread)."""
    if in_thread:
        monkeypatch.setattr(federation, "PARSE_INLINE_MAX_BYTES", 0)
    url, queries = stand_in
    settings = PrometheusSettings(url=url, jobs=["node"])
    provider = PrometheusTargets(settings, body_size_limit=10**6)
    targets = await provider.discover()
    assert [t.url for t in targets] == ["http://a:9100/metrics", "http://b:9100/metrics"]
    collector = FederationCollector(
        settings, body_size_limit=10**6, metrics={"http_requests_total"}
    )
    a, b = await collector.collect(targets)
    await provider.close()
    await collector.close()
    assert len(queries) == 1 and queries[0] == [
        '{__name__=~"(?:http_requests_total|scrape_duration_seconds|scrape_samples_scraped|up)'
        '(?:_total|_created|_bucket|_sum|_count|_gsum|_gcount|_info)?",job="node"}'
    ]
    assert a.up and a.duration == 0.25 and a.samples_scraped == 42
    assert a.samples == {
        "http_requests_total": {'{code="200",path="/x\\"y"}': 5.0, '{exported_job="inner"}': 1.0}
    }
    assert not b.up and b.samples == {} and b.error == "connection refused"


async def test_prometheus_down_keeps_targets_and_marks_them_down(
    stand_in: tuple[str, list[Any]],
) -> None:
    """When Prometheus stops answering, the last targets stay and each is down with the reason."""
    url, queries = stand_in
    settings = PrometheusSettings(url=url, match_labels={"job": "web"})
    provider = PrometheusTargets(settings, body_size_limit=10**6)
    (target,) = await provider.discover()
    queries.append("broken")
    assert await provider.discover() == [target]
    assert provider.last_error is not None and "HTTP 503" in provider.last_error
    collector = FederationCollector(settings, body_size_limit=10**6, metrics={"up"})
    (result,) = await collector.collect([target])
    assert not result.up and f"federation from {url} failed: HTTP 503" in (result.error or "")
    assert collector.last_error is not None and "HTTP 503" in collector.last_error
    await provider.close()
    await collector.close()


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[int, list[str]]]:
    """A loopback Prometheus stand-in that lists targets to user fed, password s3cr3t (after
    one 503), and whose /federate answers 503; yields its port and the Authorization headers
    it got."""
    seen: list[str] = []

    async def targets(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if len(seen) == 1:
            return web.Response(status=503)
        if request.headers.get("Authorization") != "Basic ZmVkOnMzY3IzdA==":  # fed:s3cr3t
            return web.Response(status=401)
        return web.json_response(TARGETS)

    async def federate(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(status=503, text="shutting down")

    app = web.Application()
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_get("/federate", federate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1], seen  # type: ignore[union-attr]
    await runner.cleanup()


async def test_a_password_in_the_url_is_sent_but_never_shown(
    guarded: tuple[int, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """http://fed:s3cr3t@host: every request carries the credentials, while the errors, the
    targets' reasons, the log lines and the provider's name show fed:***@."""
    port, seen = guarded
    caplog.set_level(logging.INFO, "deucalion")
    settings = PrometheusSettings(url=f"http://fed:s3cr3t@127.0.0.1:{port}")
    provider = PrometheusTargets(settings, body_size_limit=10**6)
    collector = FederationCollector(settings, body_size_limit=10**6, metrics={"up"})
    shown = f"http://fed:***@127.0.0.1:{port}"
    try:
        assert await provider.discover() == []
        problems = [provider.last_error or ""]
        assert problems[0].startswith(f"cannot list targets at {shown}: HTTP 503")
        targets = await provider.discover()
        assert len(targets) == 3 and provider.last_error is None
        (result, *_) = await collector.collect(targets)
        assert not result.up and f"federation from {shown} failed" in (result.error or "")
        problems += [result.error or "", collector.last_error or ""]
        assert provider.name == shown and collector.name == shown
    finally:
        await provider.close()
        await collector.close()
    assert len(seen) == 3 and set(seen) == {"Basic ZmVkOnMzY3IzdA=="}
    logged = [r.getMessage() for r in caplog.records]
    assert f"prometheus {shown} answers again" in logged
    assert not [text for text in problems + logged if "s3cr3t" in text]
