"""Scraper: content negotiation, compression, limits, and failures kept to their target."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest
from aiohttp import web

from deucalion._http import Credentials
from deucalion.collection.scrape import Scraper, is_loopback
from deucalion.errors import DeucalionError
from deucalion.exposition import parse_exposition
from deucalion.exposition.text import count_samples
from deucalion.targets import Target
from tests.helpers import NODE_LIKE, TargetServer, text


def scraper(**options: object) -> Scraper:
    settings: dict[str, object] = {"timeout": 2.0, "body_size_limit": 10**6}
    settings.update(options)
    return Scraper(**settings)  # type: ignore[arg-type]


async def test_it_asks_for_openmetrics_first_and_says_its_timeout(
    target_server: TargetServer,
) -> None:
    """The Accept header prefers OpenMetrics, then text 0.0.4; the timeout header is sent."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    async with scraper(timeout=1.5, compression="gzip") as s:
        result = await s.scrape(Target(url))
    assert result.up
    request = target_server.requests["/metrics"][0]
    accept = request.headers["Accept"]
    assert accept.index("application/openmetrics-text") < accept.index("text/plain")
    assert request.headers["X-Prometheus-Scrape-Timeout-Seconds"] == "1.5"
    assert "gzip" in request.headers.get("Accept-Encoding", "")
    assert request.headers["User-Agent"].startswith("deucalion/")


async def test_cookies_a_target_sets_are_not_sent_back(target_server: TargetServer) -> None:
    """Each scrape stands alone, as Prometheus's do: a Set-Cookie never comes back."""

    async def setting_cookie(request: web.Request) -> web.Response:
        response = await text(NODE_LIKE)(request)
        response.set_cookie("session", "abc")
        return response

    target_server.add("/metrics", setting_cookie)
    await target_server.start()
    # localhost, not 127.0.0.1: aiohttp's cookie jar would refuse a cookie for an IP address.
    url = f"http://localhost:{target_server.port}/metrics"
    async with scraper() as s:
        results = [await s.scrape(Target(url)) for _ in range(2)]
    assert all(r.up for r in results)
    assert [dict(r.cookies) for r in target_server.requests["/metrics"]] == [{}, {}]


async def test_a_gzip_body_is_decompressed(target_server: TargetServer) -> None:
    """A gzip-encoded exposition is read like a plain one."""

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(NODE_LIKE.encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; version=0.0.4"},
        )

    url = target_server.add("/metrics", gzipped)
    await target_server.start()
    async with scraper(metrics={"go_goroutines"}) as s:
        result = await s.scrape(Target(url))
    assert result.samples == {"go_goroutines": {"{}": 12.0}}


async def test_a_gzip_bomb_stops_at_the_size_limit(target_server: TargetServer) -> None:
    """The limit applies to the decompressed body: a small bomb is refused, not expanded."""
    bomb = gzip.compress(b"0" * 50_000_000)
    assert len(bomb) < 100_000

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    url = target_server.add("/metrics", handler)
    await target_server.start()
    async with scraper(body_size_limit=1_000_000) as s:
        result = await s.scrape(Target(url))
    assert not result.up
    assert "body_size_limit" in (result.error or "")


async def test_an_openmetrics_body_is_parsed_as_openmetrics(target_server: TargetServer) -> None:
    """The Content-Type decides the format; OpenMetrics bodies end with # EOF."""
    body = "# TYPE jobs counter\njobs_total 3\njobs_created 1.7e9\n# EOF\n"
    url = target_server.add(
        "/metrics", text(body, "application/openmetrics-text; version=1.0.0; charset=utf-8")
    )
    await target_server.start()
    async with scraper(metrics={"jobs"}) as s:
        result = await s.scrape(Target(url))
    assert result.up, result.error
    assert result.samples["jobs_total"] == {"{}": 3.0}


@pytest.mark.parametrize("loaded", [True, False])
async def test_the_first_openmetrics_body_is_read_off_the_event_loop(
    target_server: TargetServer, monkeypatch: pytest.MonkeyPatch, loaded: bool
) -> None:
    """Until the OpenMetrics parser is imported (the first OpenMetrics body imports it, which
    takes milliseconds), a small OpenMetrics body is read in a thread; then on the loop."""
    import threading

    from deucalion.collection import scrape

    monkeypatch.setattr(scrape, "openmetrics_loaded", lambda: loaded)
    body = "# TYPE jobs counter\njobs_total 3\n# EOF\n"
    url = target_server.add(
        "/metrics", text(body, "application/openmetrics-text; version=1.0.0; charset=utf-8")
    )
    await target_server.start()
    threads: list[int] = []
    async with scraper(metrics={"jobs"}) as s:
        read = s._read

        def recording(*args: object) -> object:
            threads.append(threading.get_ident())
            return read(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(s, "_read", recording)
        result = await s.scrape(Target(url))
    assert result.up, result.error
    assert result.samples["jobs_total"] == {"{}": 3.0}
    assert (threads == [threading.get_ident()]) is loaded, threads


async def test_a_down_target_is_logged_once_per_change(
    target_server: TargetServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing target is logged when it goes down and when it comes back, not every cycle."""
    state = {"fail": True}

    async def flappy(request: web.Request) -> web.Response:
        return web.Response(status=503 if state["fail"] else 200, text="go_goroutines 1\n")

    url = target_server.add("/metrics", flappy)
    await target_server.start()
    caplog.set_level(logging.INFO, logger="deucalion.collection.scrape")
    async with scraper() as s:
        for _ in range(3):
            assert not (await s.scrape(Target(url))).up
        state["fail"] = False
        for _ in range(2):
            assert (await s.scrape(Target(url))).up
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"target {url} is down: HTTP 503 Service Unavailable",
        f"target {url} is up again",
    ]


async def test_scrape_all_reports_every_target(target_server: TargetServer) -> None:
    """Results come back for every target, in order, whatever each one's fate."""
    good = target_server.add("/good", text(NODE_LIKE))
    await target_server.start()
    targets = [Target(good), Target("http://127.0.0.1:9/metrics")]
    async with scraper(metrics={"node_load1"}) as s:
        results = await s.scrape_all(targets)
    assert [r.target for r in results] == targets
    assert [r.up for r in results] == [True, False]
    assert results[0].samples == {"node_load1": {"{}": 0.5}}
    assert results[0].samples_scraped == 8


async def test_a_closed_scraper_stays_closed() -> None:
    """close() twice is harmless; a closed scraper cannot be reopened."""
    s = scraper()
    async with s:
        pass
    await s.close()
    with pytest.raises(DeucalionError, match="closed"):
        s.open()


@pytest.mark.parametrize("metrics", [None, ["node_load1", "up"], ["node_.*"], [".*"]])
async def test_a_200_that_is_not_an_exposition_is_down(
    target_server: TargetServer, metrics: list[str] | None
) -> None:
    """An HTML page, JSON, or valid lines then garbage, answered with 200, is up = 0 with the
    reason, however the metrics are filtered; the samples before the garbage are not kept."""
    bodies = {
        "/html": text("<html><body>Login</body></html>\n", "text/html"),
        "/json": text('{"status":"success","data":[]}', "application/json"),
        "/garbage": text(NODE_LIKE + "Internal error: backend down\n"),
    }
    urls = [target_server.add(path, handler) for path, handler in bodies.items()]
    await target_server.start()
    async with scraper(metrics=metrics) as s:
        results = await s.scrape_all([Target(url) for url in urls])
    for result in results:
        assert not result.up, result.target.url
        assert result.samples == {} and result.samples_scraped == 0
        assert result.error is not None and result.error.startswith("malformed exposition: line")


async def test_samples_scraped_counts_every_sample_line(target_server: TargetServer) -> None:
    """scrape_samples_scraped counts sample lines only: not blank runs, not indented comments."""
    body = "a 1\n\n\n\nb 2\n  # an indented comment\n\t# another\nc 3\n\n\n"
    url = target_server.add("/metrics", text(body))
    await target_server.start()
    for metrics in (None, ["a"], ["b.*"]):
        async with scraper(metrics=metrics) as s:
            assert (await s.scrape(Target(url))).samples_scraped == 3


def test_scraper_refuses_desired_metrics_that_select_nothing_sensible() -> None:
    """A desired entry that is neither a metric name nor a regular expression is a ConfigError
    naming it, when the scraper is built."""
    with pytest.raises(DeucalionError, match="node_\\("):
        scraper(metrics=["up", "node_("])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", 0),
        (b"a 1", 1),
        (b"a 1\nb 2\n", 2),
        (b'# HELP a x\n# TYPE a gauge\na 1\n\nb{x="#"} 2\n# EOF\n', 2),
        (b"\n\na 1\n# c\n", 1),
        (b"a 1\n\n\n\nb 2\n", 2),
        (b"a 1\n  # indented\n\t# comment\n", 1),
    ],
)
def test_count_samples_counts_sample_lines(body: bytes, expected: int) -> None:
    """Comments, blank lines and a missing final newline are not samples."""
    assert count_samples(body) == expected


def test_count_samples_agrees_with_a_full_parse_of_real_output() -> None:
    """On node_exporter's captured output, the count equals the samples a full parse finds."""
    body = (Path(__file__).parents[2] / "benchmarks" / "node_exporter.prom").read_bytes()
    parsed = parse_exposition(body)
    assert count_samples(body) == sum(len(series) for series in parsed.values())


async def test_loopback_targets_are_not_asked_to_compress(target_server: TargetServer) -> None:
    """By default a target on this machine is asked for identity: gzip would only cost it CPU."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    async with scraper() as s:
        await s.scrape(Target(url))
    async with scraper(compression="none") as s:
        await s.scrape(Target(url))
    encodings = [r.headers["Accept-Encoding"] for r in target_server.requests["/metrics"]]
    assert encodings == ["identity", "identity"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("[::1]", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("node.example", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Loopback names and addresses are recognised; other hosts are remote."""
    assert is_loopback(host) is loopback


async def test_a_target_aiohttp_refuses_costs_only_that_target(target_server: TargetServer) -> None:
    """A header aiohttp will not send (a token with a newline) is that target's failure."""
    url = target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    async with scraper(metrics={"node_load1"}) as s:
        bad, good = await s.scrape_all(
            [Target(url + "?bad", credentials=Credentials(bearer_token="abc\ndef")), Target(url)]
        )
    assert not bad.up and "ValueError" in (bad.error or "")
    assert good.up and good.samples == {"node_load1": {"{}": 0.5}}
