"""deucalion's parser against prometheus_client on expositions of real servers, captured now."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterable

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from deucalion.errors import ParseError
from deucalion.exposition import ExpositionParser, is_openmetrics, parse_exposition
from tests.exposition_reference import assert_same, reference
from tests.integration import servers

OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def fetch(url: str, *, openmetrics: bool = False) -> tuple[bytes, str]:
    """The body and Content-Type of GET url/metrics, asking for OpenMetrics if told to."""
    headers = {"Accept": OPENMETRICS_ACCEPT} if openmetrics else {}
    request = urllib.request.Request(url + "/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), response.headers.get("Content-Type", "")


def check_like_prometheus_client(body: bytes, content_type: str) -> dict[str, dict[str, float]]:
    """Parse as the scraper would and compare with prometheus_client's reading of the body."""
    openmetrics = is_openmetrics(content_type)
    text = body.decode()
    try:
        theirs = reference(text, openmetrics=openmetrics)
    except Exception:  # prometheus_client rejects: so must we
        with pytest.raises(ParseError):
            parse_exposition(body, openmetrics=openmetrics)
        raise
    ours = parse_exposition(body, openmetrics=openmetrics)
    assert_same(ours, theirs)
    assert ours, "a real server exposes samples"
    return ours


def check_filter(body: bytes, content_type: str, full: dict[str, dict[str, float]]) -> None:
    """Filtering by three names gives exactly those metrics of the full parse."""
    names = sorted(full)[:: max(1, len(full) // 3)][:3]
    parser = ExpositionParser(names)
    filtered = parser.parse(body, openmetrics=is_openmetrics(content_type))
    assert_same(filtered, {n: s for n, s in full.items() if parser.wants(n)})
    assert set(names) <= set(filtered)


class Families(Collector):
    """A collector yielding given metric families, for prometheus_client to write them."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        """The families, as they were given."""
        return iter(self.families)


def as_openmetrics(text: str) -> str:
    """A text 0.0.4 body read by prometheus_client's text parser and written as OpenMetrics.

    The text parser already names counter families without ``_total`` and their samples with
    it (a counter typed ``x`` with a sample ``x`` comes out as ``x_total``), which is how the
    OpenMetrics writer wants them. But a text body may hold a gauge ``x`` beside a counter
    ``x_total`` (Go's client writes go_memstats_alloc_bytes and go_memstats_alloc_bytes_total):
    in OpenMetrics both would be family ``x``, which no parser accepts. Such a counter is
    written as an ``unknown`` family named as its samples.
    """
    families = list(text_string_to_metric_families(text))
    others = {family.name for family in families if family.type != "counter"}
    for index, family in enumerate(families):
        if family.type == "counter" and family.name in others:
            renamed = Metric(family.name + "_total", family.documentation, "unknown")
            renamed.samples = family.samples
            families[index] = renamed
    return openmetrics_exposition.generate_latest(Families(families)).decode()


def check_openmetrics_rendering(body: bytes, content_type: str) -> None:
    """The real text body, rendered as OpenMetrics, reads as prometheus_client reads that."""
    assert not is_openmetrics(content_type), "the server answered text 0.0.4 as expected"
    rendered = as_openmetrics(body.decode())
    ours = parse_exposition(rendered, openmetrics=True)
    assert_same(ours, reference(rendered, openmetrics=True))
    assert ours, "a real server exposes samples"
    check_filter(rendered.encode(), "application/openmetrics-text; version=1.0.0", ours)


@pytest.mark.parametrize("server", ["node_exporter", "alertmanager", "prometheus"])
def test_real_text_rendered_as_openmetrics(
    request: pytest.FixtureRequest,
    server_factory: Callable[..., servers.Server],
    node_exporter: servers.Server,
    server: str,
) -> None:
    """Real servers answer text 0.0.4 only: their bodies, rewritten by prometheus_client as
    OpenMetrics, read in strict OpenMetrics exactly as prometheus_client's OpenMetrics parser
    reads them."""
    if server == "node_exporter":
        target = node_exporter
    elif server == "alertmanager":
        target = request.getfixturevalue("alertmanager")
    else:
        target = server_factory(servers.start_prometheus, [f"127.0.0.1:{node_exporter.port}"])
    check_openmetrics_rendering(*fetch(target.url))


def test_node_exporter_text(node_exporter: servers.Server) -> None:
    """node_exporter's text exposition reads exactly as prometheus_client reads it."""
    body, content_type = fetch(node_exporter.url)
    full = check_like_prometheus_client(body, content_type)
    assert "node_cpu_seconds_total" in full
    check_filter(body, content_type, full)
    wanted = ["node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes"]
    assert set(parse_exposition(body, metrics=wanted)) <= set(wanted)


def test_node_exporter_openmetrics(node_exporter: servers.Server) -> None:
    """Asked for OpenMetrics, node_exporter's answer reads as prometheus_client reads it."""
    body, content_type = fetch(node_exporter.url, openmetrics=True)
    check_filter(body, content_type, check_like_prometheus_client(body, content_type))


@pytest.mark.parametrize("openmetrics", [False, True])
def test_alertmanager(alertmanager: servers.Server, openmetrics: bool) -> None:
    """Alertmanager's own metrics read as prometheus_client reads them, in both formats."""
    body, content_type = fetch(alertmanager.url, openmetrics=openmetrics)
    check_filter(body, content_type, check_like_prometheus_client(body, content_type))


@pytest.mark.parametrize("openmetrics", [False, True])
def test_prometheus(
    server_factory: Callable[..., servers.Server],
    node_exporter: servers.Server,
    openmetrics: bool,
) -> None:
    """Prometheus's own metrics (while it scrapes node_exporter) read as prometheus_client's."""
    prometheus = server_factory(servers.start_prometheus, [f"127.0.0.1:{node_exporter.port}"])
    body, content_type = fetch(prometheus.url, openmetrics=openmetrics)
    check_filter(body, content_type, check_like_prometheus_client(body, content_type))


async def test_a_real_servers_html_and_json_are_down_when_filtered(
    alertmanager: servers.Server, node_exporter: servers.Server
) -> None:
    """Alertmanager's web page and JSON API, and node_exporter's landing page, answer 200 but
    are no exposition: a scrape filtered to a few metrics, to a regular expression or to none
    is up = 0 with the line at fault, as Prometheus's is (issue 13, item 1)."""
    from deucalion.collection.scrape import Scraper
    from deucalion.targets import Target

    urls = [alertmanager.url + "/", alertmanager.url + "/api/v2/status", node_exporter.url + "/"]
    for metrics in (["node_load1", "up"], ["alertmanager_.*"], None):
        async with Scraper(timeout=10, body_size_limit=10**7, metrics=metrics) as scraper:
            results = await scraper.scrape_all([Target(url) for url in urls])
        for result in results:
            assert not result.up, (result.target.url, metrics)
            assert result.error is not None and "malformed exposition: line 1" in result.error


async def test_samples_scraped_of_a_real_node_exporter(node_exporter: servers.Server) -> None:
    """scrape_samples_scraped of a filtered scrape of a real node_exporter is the number of
    samples prometheus_client reads in the same body."""
    from deucalion.collection.scrape import Scraper
    from deucalion.targets import Target

    async with Scraper(timeout=10, body_size_limit=10**7, metrics=["node_load1"]) as scraper:
        result = await scraper.scrape(Target(node_exporter.url + "/metrics"))
    body, _ = fetch(node_exporter.url)
    assert result.up and result.samples_scraped is not None
    theirs = sum(len(f.samples) for f in text_string_to_metric_families(body.decode()))
    # node_exporter's own counters move between the two requests; the sample lines do not.
    assert result.samples_scraped == theirs


def test_prometheus_clients_own_openmetrics_is_read_in_bulk() -> None:
    """A registry of every metric type prometheus_client has (histograms and counters with
    exemplars and ``_created``, a gauge with a unit, a summary, info and enum), written by its
    OpenMetrics writer, reads as its OpenMetrics parser reads it, by the bulk reader (issue 28),
    in full and filtered; a second parser's read of a changed body too."""
    from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary

    from deucalion.exposition.labels import LabelMemory
    from deucalion.exposition.openmetrics_bulk import read_bulk

    registry = CollectorRegistry()
    latency = Histogram(
        "http_request_duration_seconds", "Latency.", ["method", "path"], registry=registry
    )
    requests = Counter("http_requests", "Requests.", ["code"], registry=registry)
    temperature = Gauge(
        "room_temperature_celsius", "Temperature.", unit="celsius", registry=registry
    )
    rpc = Summary("rpc_duration_seconds", "RPC.", ["service"], registry=registry)
    Info("build", "Build.", registry=registry).info({"version": "1.2.3", "revision": "abc"})
    state = Enum("task_state", "State.", ["task"], states=["idle", "running"], registry=registry)
    parser = ExpositionParser()
    for round_ in range(3):
        for i in range(20):
            exemplar = {"trace_id": f"{round_}-{i}"} if i % 3 == 0 else None
            latency.labels("GET", f"/item/{i % 5}").observe(i / 10, exemplar=exemplar)
            requests.labels(str(200 + i % 3)).inc(exemplar=exemplar)
            rpc.labels(f"svc{i % 2}").observe(i / 7)
            state.labels(f"t{i % 4}").state("running" if i % 2 else "idle")
        temperature.set(20 + round_)
        text = openmetrics_exposition.generate_latest(registry).decode()
        assert "# UNIT" in text and " # {" in text and "_created" in text
        expected = reference(text, openmetrics=True)
        assert read_bulk(text, None, LabelMemory()) is not None
        assert_same(parser.parse(text.encode(), openmetrics=True), expected)
        check_filter(text.encode(), "application/openmetrics-text; version=1.0.0", expected)
