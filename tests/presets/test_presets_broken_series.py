"""A target whose request counter has a broken series (a sample of +Inf): the http-service
preset leaves out that series' route for as long as the sample is within the range it reads,
and computes the other routes and the service from the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deucalion.exposition import parse_exposition
from deucalion.observer import handing_data
from deucalion.presets import preset_observer
from tests.presets.test_presets import APP, T0

# The scrapes where /b's successes read +Inf: over the one at 60 s, where the error ratio takes
# its counters' totals for the usual ratio of the next 10 minutes.
BROKEN = range(58, 63)


def _page(i: int) -> str:
    """A prometheus_client service's page at second ``i``: /a at 20 requests a second, half of
    them failing, /b at 10 and /c at 5, none failing."""
    lines = ["# TYPE http_requests_total counter"]
    for route, ok, failed in (("/a", 10, 10), ("/b", 10, 0), ("/c", 5, 0)):
        value = "+Inf" if route == "/b" and i in BROKEN else f"{ok * i}.0"
        lines.append(f'http_requests_total{{code="200",handler="{route}"}} {value}')
        if failed:
            lines.append(f'http_requests_total{{code="500",handler="{route}"}} {failed * i}.0')
    return "\n".join(lines) + "\n"


def _unrouted_page(i: int) -> str:
    """A service counting its requests by status only: 10 a second, half of them failing."""
    ok = "+Inf" if i in BROKEN else f"{5 * i}.0"
    return (
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{code="200"}} {ok}\n'
        f'http_requests_total{{code="500"}} {5 * i}.0\n'
    )


def _signals(cycles: int, page: Callable[[int], str] = _page) -> list[dict[str, Any]]:
    observer = preset_observer("http-service")
    computed = []
    for i in range(cycles):
        when = T0 + i
        with handing_data(when, {APP: when}):
            computed.append(observer.compute({APP: parse_exposition(page(i))}).get(APP, {}))
    return computed


def test_a_series_at_infinity_leaves_out_its_route_only() -> None:
    """/b's request counter at +Inf for 5 scrapes emptied the target's error ratio (the
    chance test raised on an infinite count) and left the service's request rate out, then
    read the service at 26 requests a second (/b's successes' rate NaN, summed as none) for
    as long as the +Inf was within the rate's range; the usual ratio's totals taken at 60 s
    were infinite, and the target had no error ratio for the 10 minutes they were kept. Now
    /b is left out while the +Inf is within the range (to the scrape after the last: the
    rate's range is 2 s), the other routes and the service are read from the rest, and /b is
    back after."""
    computed = _signals(130)
    a, b, c = '{handler="/a"}', '{handler="/b"}', '{handler="/c"}'
    for i in range(BROKEN.start, BROKEN.stop + 1):
        rates, ratios = computed[i]["request_rate"], computed[i]["error_ratio"]
        assert rates == {
            "{}": pytest.approx(25.0),
            a: pytest.approx(20.0),
            c: pytest.approx(5.0),
        }, i
        assert ratios == {"{}": pytest.approx(10 / 25), a: pytest.approx(0.5), c: 0.0}, i
    for i in (BROKEN.start - 1, BROKEN.stop + 1, 129):
        assert computed[i]["request_rate"] == {
            "{}": pytest.approx(35.0),
            a: pytest.approx(20.0),
            b: pytest.approx(10.0),
            c: pytest.approx(5.0),
        }, i
        assert computed[i]["error_ratio"] == {
            "{}": pytest.approx(10 / 35),
            a: pytest.approx(0.5),
            b: 0.0,
            c: 0.0,
        }, i


def test_a_service_without_routes_has_no_rate_while_its_series_is_broken() -> None:
    """Without route labels the service is the one route: while its successes read +Inf it
    has no request rate and no error ratio (its failures alone read 5 requests a second, all
    failing: an error ratio of 1), and both are back after."""
    computed = _signals(BROKEN.stop + 2, _unrouted_page)
    for i in range(BROKEN.start, BROKEN.stop + 1):
        assert "request_rate" not in computed[i] and "error_ratio" not in computed[i], i
    assert computed[-1]["request_rate"] == {"{}": pytest.approx(10.0)}
    assert computed[-1]["error_ratio"] == {"{}": pytest.approx(0.5)}


def _histogram_page(i: int) -> str:
    """A prometheus_client service counting its requests in its duration histogram: /a at 20
    requests a second and /c at 5, all within 0.1 s; /b at 10, all between 0.1 and 1 s, its
    buckets at +Inf in the broken scrapes."""
    lines = ["# TYPE http_request_duration_seconds histogram"]
    for route, rate, within in (("/a", 20, 0.1), ("/b", 10, 1.0), ("/c", 5, 0.1)):
        broken = route == "/b" and i in BROKEN
        for le in ("0.1", "1.0", "+Inf"):
            count = rate * i if float(le) >= within else 0
            value = "+Inf" if broken else f"{count}.0"
            lines.append(
                f'http_request_duration_seconds_bucket{{handler="{route}",le="{le}"}} {value}'
            )
        count = "+Inf" if broken else f"{rate * i}.0"
        lines.append(f'http_request_duration_seconds_count{{handler="{route}"}} {count}')
        lines.append(f'http_request_duration_seconds_sum{{handler="{route}"}} {rate * i * 0.05}')
    return "\n".join(lines) + "\n"


def test_a_histogram_at_infinity_leaves_out_its_route_from_the_services_latency() -> None:
    """/b's buckets and count at +Inf: the service had no median on the first broken scrape
    (its buckets summed to NaN). Now it is read from /a and /c on each (25 requests within
    0.1 s: a median of 0.05 s), /b has none of its own, and after, the service's is back to
    the three routes' (35 requests, 25 within 0.1 s: 0.07 s)."""
    computed = _signals(BROKEN.stop + 40, _histogram_page)
    for i in range(BROKEN.start, BROKEN.stop + 1):
        p50 = computed[i]["latency_p50"]
        assert p50["{}"] == pytest.approx(0.05), i
        assert '{handler="/b"}' not in p50, i
    assert computed[-1]["latency_p50"]["{}"] == pytest.approx(0.07)
    assert computed[-1]["latency_p50"]['{handler="/b"}'] == pytest.approx(0.55)
