"""The http-service preset on what real instrumentation libraries serve: each fixture in
``data/`` is a /metrics page captured from a small app using the library with its defaults
(load with about a third of the requests failing), trimmed to the families the preset reads.

A page is one instant; ``_cycles`` makes scrapes of it one second apart in which every counter
(and histogram sample) grew by the value captured, gauges staying as captured: a rate is then
the captured value per second, an error ratio the captured errors over the captured requests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deucalion.exposition import parse_exposition
from tests.helpers import TargetServer, text
from tests.presets.test_presets import APP, _signal_values

DATA = Path(__file__).parent / "data"


def _cycles(page: str, n: int = 10) -> list[dict[str, dict[str, float]]]:
    text = (DATA / page).read_text()
    types = [line.split() for line in text.splitlines() if line.startswith("# TYPE ")]
    gauges = {words[2] for words in types if words[3] == "gauge"}
    samples = parse_exposition(text)
    return [
        {
            metric: {key: value if metric in gauges else value * i for key, value in series.items()}
            for metric, series in samples.items()
        }
        for i in range(n)
    ]


def _values(page: str, signal: str, n: int = 10) -> dict[str, float]:
    """``signal`` at the last of ``n`` scrapes (at the second, counters are as captured)."""
    return _signal_values("http-service", signal, _cycles(page, n), APP)


def test_py_grpc_prometheus_upper_case_codes_are_errors() -> None:
    """py-grpc-prometheus names codes as grpc.StatusCode does (INTERNAL, OK): 21 of its 60
    calls failed INTERNAL, and the error ratio read 0 (the codes were matched as
    go-grpc-prometheus's Internal only)."""
    ratio = _values("py_grpc_prometheus.txt", "error_ratio")
    assert ratio["{}"] == pytest.approx(21 / 60)
    assert ratio['{grpc_method="Fast",grpc_service="demo.Svc"}'] == pytest.approx(9 / 25)
    assert _values("py_grpc_prometheus.txt", "request_rate")["{}"] == pytest.approx(60.0)


def test_grpc_server_codes_match_in_any_spelling() -> None:
    """go-grpc-prometheus's CamelCase and grpc.StatusCode's names; client errors are not."""
    import re

    from deucalion.presets.http_service import INSTRUMENTATIONS

    [grpc] = [i for i in INSTRUMENTATIONS if i.name == "grpc"]
    for code in ("DeadlineExceeded", "DEADLINE_EXCEEDED", "DataLoss", "DATA_LOSS", "UNKNOWN"):
        assert re.fullmatch(grpc.error, code), code
    for code in ("OK", "NotFound", "NOT_FOUND", "INVALID_ARGUMENT", "Canceled"):
        assert not re.fullmatch(grpc.error, code), code


OTEL_OLD = "opentelemetry_flask_old_conventions.txt"


def test_opentelemetry_old_conventions_are_read_in_seconds() -> None:
    """opentelemetry-python's instrumentations by default (no OTEL_SEMCONV_STABILITY_OPT_IN)
    serve http_server_duration_milliseconds{http_status_code,http_target}: nothing was found.
    Its _count is the requests (59, 21 of them 500s), its buckets the latency, in seconds."""
    rates = _values(OTEL_OLD, "request_rate")
    assert rates["{}"] == pytest.approx(59.0)
    assert rates['{http_target="/items/<int:id>"}'] == pytest.approx(35.0)
    ratio = _values(OTEL_OLD, "error_ratio")
    assert ratio["{}"] == pytest.approx(21 / 59)
    assert ratio['{http_target="/slow"}'] == pytest.approx(3 / 6)
    p50, p99 = _values(OTEL_OLD, "latency_p50"), _values(OTEL_OLD, "latency_p99")
    # The app's requests take 5 to 25 ms (/slow 55 to 75 ms): seconds, not milliseconds.
    assert 0.005 < p50["{}"] < 0.025 and 0.05 < p99["{}"] < 0.1, (p50, p99)
    assert 0.05 < p50['{http_target="/slow"}'] < 0.1
    assert _values(OTEL_OLD, "in_flight") == {"{}": 0.0}


# OpenTelemetry JS (@opentelemetry/instrumentation-http before the stable conventions, through
# @opentelemetry/exporter-prometheus), written as its serializer writes a page (not captured:
# no Node packages here): a histogram named http.server.duration with unit "ms" keeps its
# name, its unit on a "# UNIT" line; the SDK's default bounds; the instrumentation's
# attributes in its order, http_route where express's instrumentation names the route. Per
# second: /items/:id 30 requests and 10 500s, /slow 6, 3 404s matching no route, and on the
# exporter's own server (9464) 1 scrape.
_JS_BOUNDS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
_JS_SERIES = (  # status, port, route, requests at or under each bound (the rest: all), sum
    ("200", "8080", "/items/:id", (0, 0, 12, 30), 420),
    ("500", "8080", "/items/:id", (0, 2, 6, 10), 110),
    ("200", "8080", "/slow", (0, 0, 0, 0, 0, 6), 390),
    ("404", "8080", None, (0, 3), 6),
    ("200", "9464", None, (0, 1), 2),
)


def _otel_js_page(series: tuple[tuple[str, str, str | None, tuple[int, ...], int], ...]) -> str:
    lines = [
        "# HELP http_server_duration Measures the duration of inbound HTTP requests.",
        "# UNIT http_server_duration ms",
        "# TYPE http_server_duration histogram",
    ]
    for status, port, route, counts, total in series:
        labels = (
            'http_scheme="http",http_method="GET",net_host_name="app",http_flavor="1.1",'
            f'http_status_code="{status}",net_host_port="{port}"'
        )
        labels += f',http_route="{route}"' if route else ""
        lines.append(f"http_server_duration_count{{{labels}}} {counts[-1]}")
        lines.append(f"http_server_duration_sum{{{labels}}} {total}")
        for i, bound in enumerate((*_JS_BOUNDS, "+Inf")):
            count = counts[i] if i < len(counts) else counts[-1]
            lines.append(f'http_server_duration_bucket{{{labels},le="{bound}"}} {count}')
    return "\n".join(lines) + "\n"


def _otel_js(
    signal: str, target: str = "http://app:9464/metrics", series: tuple = _JS_SERIES
) -> dict[str, float]:
    samples = parse_exposition(_otel_js_page(series))
    cycles = [
        {
            name: {key: value * i for key, value in series.items()}
            for name, series in samples.items()
        }
        for i in range(10)
    ]
    return _signal_values("http-service", signal, cycles, target)


def test_opentelemetry_js_old_conventions_are_read_in_milliseconds() -> None:
    """OpenTelemetry JS's exporter names http.server.duration http_server_duration, without
    the unit Python's gives it (_milliseconds): nothing was found. Its _count is the requests
    per http_route, its bounds milliseconds; the scrapes, on the exporter's port (the
    target's) and with no route, are no request of the service's."""
    items, slow = '{http_route="/items/:id"}', '{http_route="/slow"}'
    rates = _otel_js("request_rate")
    assert rates == {
        "{}": pytest.approx(49.0),
        items: pytest.approx(40.0),
        slow: pytest.approx(6.0),
    }
    ratio = _otel_js("error_ratio")
    assert ratio == {"{}": pytest.approx(10 / 49), items: pytest.approx(0.25), slow: 0.0}
    p50 = _otel_js("latency_p50")
    # 49 requests, 21 within 10 ms and 43 within 25: the 24.5th at 12.4 ms.
    assert p50["{}"] == pytest.approx(0.010 + 0.015 * (24.5 - 21) / 22)
    assert p50[slow] == pytest.approx(0.0625)


def test_opentelemetry_js_requests_on_the_scraped_port_with_a_route_are_the_services() -> None:
    """Scraped on a port with routed requests (an exporter the service serves itself, whose
    scrapes are the route named as the target's path), the port's requests are all counted:
    the service's requests came to it."""
    assert _otel_js("request_rate", "http://app:8080/metrics")["{}"] == pytest.approx(50.0)


def test_opentelemetry_js_without_routes_leaves_out_the_exporters_port_only() -> None:
    """Without a framework's instrumentation no request has a route: the scraped port is the
    exporter's own (9464) when another port served more requests. The exporter on 9464
    beside an app on 8080: its scrapes are left out (50 requests a second, not 51)."""
    series = (
        ("200", "8080", None, (0, 0, 12, 40), 420),
        ("500", "8080", None, (0, 2, 6, 10), 110),
        ("200", "9464", None, (0, 1), 2),
    )
    assert _otel_js("request_rate", "http://app:9464/metrics", series) == {
        "{}": pytest.approx(50.0)
    }


def test_opentelemetry_js_without_routes_counts_the_scraped_ports_requests() -> None:
    """An app serving its metrics on its own port (8080), the busiest, beside a health port
    (8081): its 8080 requests had been left out as the exporter's, and it read 1 request a
    second, the health checks'."""
    series = (
        ("200", "8080", None, (0, 0, 12, 40), 420),
        ("500", "8080", None, (0, 2, 6, 10), 110),
        ("200", "8081", None, (0, 1), 2),
    )
    rates = _otel_js("request_rate", "http://app:8080/metrics", series)
    assert rates == {"{}": pytest.approx(51.0)}
    assert _otel_js("error_ratio", "http://app:8080/metrics", series)["{}"] == pytest.approx(
        10 / 51
    )


@pytest.fixture
async def active_requests_only(target_server: TargetServer) -> str:
    """A target serving OpenTelemetry's in-flight gauge and no request counter the preset
    knows (a histogram in a unit it does not read, say)."""
    page = (
        "# TYPE http_server_active_requests gauge\n"
        'http_server_active_requests{http_method="GET"} 2\n'
        "# TYPE http_server_duration_microseconds histogram\n"
        'http_server_duration_microseconds_bucket{le="+Inf"} 5\n'
        "http_server_duration_microseconds_count 5\n"
        "http_server_duration_microseconds_sum 5\n"
    )
    url = target_server.add("/metrics", text(page))
    await target_server.start()
    return url


async def test_presets_show_says_why_a_served_gauge_gives_no_in_flight(
    active_requests_only: str,
) -> None:
    """`presets show` said `in_flight not found (looks for the same as request_rate)`, whose
    list names http_server_active_requests, which the target serves."""
    from deucalion.presets.cli import show

    printed = await show("http-service", active_requests_only, interval=0.1)
    [line] = [line for line in printed.splitlines() if line.lstrip().startswith("in_flight")]
    assert "not found" not in line, printed
    assert "no value: it serves http_server_active_requests, but no request counter" in line
    assert "http_requests_total" in line and "grpc_server_handled_total" in line


@pytest.fixture
async def spring_summary(target_server: TargetServer) -> str:
    """A Spring Boot service as it serves its requests by default: a summary, no buckets."""
    page = (
        "# TYPE http_server_requests_seconds summary\n"
        'http_server_requests_seconds_count{method="GET",status="200",uri="/a"} 5\n'
        'http_server_requests_seconds_sum{method="GET",status="200",uri="/a"} 0.5\n'
    )
    url = target_server.add("/actuator/prometheus", text(page))
    await target_server.start()
    return url


async def test_presets_show_tells_a_spring_service_how_to_serve_its_latency(
    spring_summary: str,
) -> None:
    """A Spring Boot service's latency needs the histogram Spring serves only when told:
    `presets show` said `latency_p50 not found (looks for http_server_requests_seconds_bucket)`,
    and README's setting was not in it."""
    from deucalion.presets.cli import show

    printed = await show("http-service", spring_summary, interval=0.1)
    lines = [line for line in printed.splitlines() if line.lstrip().startswith("latency_p")]
    assert len(lines) == 2, printed
    for line in lines:
        assert "not found" not in line, printed
        assert "percentiles-histogram.http.server.requests=true" in line, printed


def test_starlette_exporter_defaults() -> None:
    """starlette_requests_total{path,status_code}, starlette_request_duration_seconds,
    starlette_requests_in_progress: nothing was found. /fast: 24 requests, 6 of them 500s."""
    page = "starlette_exporter.txt"
    assert _values(page, "request_rate")['{path="/fast"}'] == pytest.approx(24.0)
    ratio = _values(page, "error_ratio")
    assert ratio['{path="/fast"}'] == pytest.approx(6 / 24) and "{}" in ratio
    p50 = _values(page, "latency_p50")
    assert 0.05 < p50['{path="/slow"}'] < 0.1 and 0.005 < p50['{path="/fast"}'] < 0.05, p50
    assert _values(page, "in_flight") == {"{}": 1.0}


def test_prometheus_flask_exporter_defaults() -> None:
    """flask_http_request_total{method,status} has no route: the duration histogram's _count
    (flask_http_request_duration_seconds{method,path,status}) is the requests, per path. 60
    requests, 22 of them 500s; /items/1: 12, 6."""
    page = "prometheus_flask_exporter.txt"
    rates = _values(page, "request_rate")
    assert rates["{}"] == pytest.approx(60.0)
    assert rates['{path="/items/1"}'] == pytest.approx(12.0)
    ratio = _values(page, "error_ratio")
    assert ratio["{}"] == pytest.approx(22 / 60)
    assert ratio['{path="/items/1"}'] == pytest.approx(6 / 12)
    p50 = _values(page, "latency_p50")
    assert 0.005 < p50["{}"] < 0.05 and 0.05 < p50['{path="/slow"}'] < 0.1, p50
    assert _values(page, "in_flight") == {}  # it has no in-flight gauge


def test_django_prometheus_defaults() -> None:
    """Responses by status and view, latency by view, in flight between its outermost
    middleware's request and response counters (63 - 62: the scrape itself)."""
    page = "django_prometheus.txt"
    work = '{view="__main__.work"}'
    assert _values(page, "request_rate")[work] == pytest.approx(59.0)
    ratio = _values(page, "error_ratio")
    assert ratio[work] == pytest.approx(15 / 59) and "{}" in ratio
    assert 0.005 < _values(page, "latency_p50")[work] < 0.05
    assert _values(page, "in_flight", n=2) == {"{}": 1.0}


def test_fastapi_instrumentator_service_latency_from_its_fine_histogram() -> None:
    """prometheus-fastapi-instrumentator's per-handler histogram has buckets 0.1, 0.5, 1: every
    p50 under 100 ms read 0.05 s, every p99 0.099 s. Its label-less
    http_request_duration_highr_seconds (buckets from 10 ms) gives the service's: p50 between
    its 10 and 25 ms buckets (10 and 49 of 63 requests), p99 between 75 and 100 ms."""
    page = "prometheus_fastapi_instrumentator.txt"
    p50, p99 = _values(page, "latency_p50"), _values(page, "latency_p99")
    assert p50["{}"] == pytest.approx(0.01 + 0.015 * (31.5 - 10) / 39)
    assert p99["{}"] == pytest.approx(0.075 + 0.025 * (0.99 * 63 - 60) / 3)
    assert '{handler="/fast"}' in p50  # per handler: its own histogram, coarse as it is
    assert _values(page, "error_ratio")['{handler="/fast"}'] == pytest.approx(6 / 19)


@pytest.mark.parametrize(
    ("page", "route", "requests", "errors"),
    [
        ("prometheus_fastapi_instrumentator.txt", '{handler="/metrics"}', 60.0, 13.0),
        ("starlette_exporter.txt", '{path="/metrics"}', 60.0, 17.0),
        ("django_prometheus.txt", '{view="prometheus-django-metrics"}', 59.0, 15.0),
    ],
)
def test_the_scraped_metrics_endpoint_is_not_a_route(
    page: str, route: str, requests: float, errors: float
) -> None:
    """Each page counts 3 scrapes of its /metrics (django-prometheus: its view's name): they
    were a route, and a request a second of deucalion's own in a quiet service's rate."""
    rates = _values(page, "request_rate")
    assert route not in rates and rates["{}"] == pytest.approx(requests), rates
    assert _values(page, "error_ratio")["{}"] == pytest.approx(errors / requests)
    assert route not in _values(page, "latency_p50")


def test_a_metrics_route_other_than_the_scraped_path_is_the_services() -> None:
    """Only the path scraped is left out: scraped at /internal/prom, /metrics is a route."""
    cycles = _cycles("starlette_exporter.txt")
    target = "http://app:8080/internal/prom"
    rates = _signal_values("http-service", "request_rate", cycles, target)
    assert rates['{path="/metrics"}'] == pytest.approx(3.0) and rates["{}"] == pytest.approx(63.0)


def test_a_service_served_under_a_prefix_leaves_its_metrics_route_out() -> None:
    """Spring Boot names a route without the context path the service is served under:
    scraped at /app/actuator/prometheus, its uri="/actuator/prometheus" is the scrapes, no
    route (it was one, and a request a second in the service's rate)."""
    cycles = [
        {
            "http_server_requests_seconds_count": {
                '{method="GET",outcome="SUCCESS",status="200",uri="/orders"}': 5.0 * i,
                '{method="GET",outcome="SUCCESS",status="200",uri="/actuator/prometheus"}': i,
            }
        }
        for i in range(10)
    ]
    target = "http://app:8080/app/actuator/prometheus"
    rates = _signal_values("http-service", "request_rate", cycles, target)
    assert rates == {"{}": pytest.approx(5.0), '{uri="/orders"}': pytest.approx(5.0)}


def test_requests_without_a_route_are_the_services_only() -> None:
    """OpenTelemetry gives an unmatched request (a 404) no http_route: those requests are
    the service's, and no route of empty labels, which Prometheus would take for the
    service's own series once exported (an empty label is no label)."""
    metric = "http_server_request_duration_seconds_count"
    cycles = [
        {
            metric: {
                '{http_request_method="GET",http_response_status_code="200",http_route="/a"}': (
                    4.0 * i
                ),
                '{http_request_method="GET",http_response_status_code="404"}': 2.0 * i,
            }
        }
        for i in range(10)
    ]
    rates = _signal_values("http-service", "request_rate", cycles, APP)
    assert rates == {"{}": pytest.approx(6.0), '{http_route="/a"}': pytest.approx(4.0)}
