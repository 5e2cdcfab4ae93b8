"""deucalion's parser against prometheus_client on expositions of real servers, captured now."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest

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
