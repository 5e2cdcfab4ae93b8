"""A service at a few requests a second: a latency quantile is read over the shortest range
holding ``MIN_REQUESTS`` requests (the rate's range, doubled up to the observer's widest), so
a latency regression that slows the requests down still has a latency every cycle, a route at
a request a second has one, and a busy service's is read over the rate's range as before; an
incident whose signals have no value while the target is up does not say it is down."""

from __future__ import annotations

import random
from typing import Any

from deucalion.history.promql import bucket_quantile
from deucalion.observer import handing_data
from deucalion.presets import preset_observer
from deucalion.presets.http_service import MIN_REQUESTS, latency_p50, latency_p99
from deucalion.presets.observer import PresetObserver
from deucalion.presets.signals import Query
from tests.presets.test_presets import APP, NODE, T0, WARM, _observer, _run, _steady

_LES = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
RATE_RANGE = 2.0  # the rate's range at 1 s scrapes: 1.5 intervals and a half


class _Service:
    """A prometheus_client service's request counter and duration histogram, per route."""

    def __init__(self) -> None:
        self.requests: dict[str, float] = {}
        self.buckets: dict[str, float] = {}

    def serve(self, route: str, seconds: float) -> None:
        """One request to ``route`` that took ``seconds``."""
        key = f'{{method="GET",route="{route}",status="200"}}'
        self.requests[key] = self.requests.get(key, 0.0) + 1
        for le in _LES:
            key = f'{{le="{le}",method="GET",route="{route}"}}'
            hit = le == "+Inf" or seconds <= float(le)
            self.buckets[key] = self.buckets.get(key, 0.0) + hit

    def page(self) -> dict[str, dict[str, float]]:
        """What a scrape reads (every series once served, as a client library keeps them)."""
        return {
            "http_requests_total": dict(self.requests),
            "http_request_duration_seconds_bucket": dict(self.buckets),
        }


def _compute(
    observer: PresetObserver, service: _Service, i: int, step: float = 1.0
) -> dict[str, Any]:
    when = T0 + i * step
    with handing_data(when, {APP: when}):
        return observer.compute({APP: service.page()}).get(APP, {})


SLOW = 40  # the cycle the regression starts


def _slowing(cycles: int) -> tuple[PresetObserver, list[dict[str, Any]]]:
    """A service at 5 requests a second (4 to /a, 1 to /b, about 8 ms each; one to /rare
    every 20 s), scraped every second; from cycle SLOW each request takes 0.3 s more and they
    come at 2 a second (1 or 2 to /a, 1 or none to /b, in turn), as a client waiting for each
    answer slows down: the signals computed each cycle."""
    observer = preset_observer("http-service")
    service = _Service()
    computed = []
    for i in range(cycles):
        slow = i >= SLOW
        took = 0.008 + (0.3 if slow else 0.0)
        for route, count in (
            ("/a", (1, 2)[i % 2] if slow else 4),
            ("/b", (1, 0)[i % 2] if slow else 1),
        ):
            for _ in range(count):
                service.serve(route, took)
        if i % 20 == 0:
            service.serve("/rare", took)
        computed.append(_compute(observer, service, i))
    return observer, computed


def test_a_latency_regression_that_slows_the_requests_keeps_its_latency() -> None:
    """From 5 to 2 requests a second, the rate's range (2 s) holds 4 requests, fewer than a
    quantile needs: the service's median had no value on most cycles of the regression
    (the walk: 7 of 60). Read over 4 s it has one every cycle, 8 ms before and 0.3 s or more
    from the 2nd cycle of the regression on."""
    observer, computed = _slowing(SLOW + 60)
    p50 = [values.get("latency_p50", {}).get("{}") for values in computed]
    assert all(p is not None for p in p50[2:]), p50
    assert all(p <= 0.01 for p in p50[2:SLOW]), p50[:SLOW]
    assert all(p >= 0.25 for p in p50[SLOW + 2 :]), p50[SLOW:]
    # The rate's range alone holds too few requests for it (what the preset did before).
    alone = Query(observer.raw, APP, RATE_RANGE)
    assert 2.0 * RATE_RANGE < MIN_REQUESTS
    assert "{}" not in latency_p50(alone)
    widened = Query(observer.raw, APP, RATE_RANGE, widest=60.0)
    assert latency_p50(widened)["{}"] >= 0.25


def test_a_route_at_a_request_a_second_has_a_latency() -> None:
    """/b at 1 request a second gets its latency (over 8 s) every cycle once the window holds
    the requests; /rare, 3 requests a minute, has none: within the widest range (60 s at 1 s
    scrapes) it has fewer than MIN_REQUESTS."""
    _, computed = _slowing(SLOW)
    b = [values.get("latency_p50", {}).get('{route="/b"}') for values in computed]
    assert all(p is not None and p <= 0.01 for p in b[8:]), b
    assert not any('{route="/rare"}' in values.get("latency_p50", {}) for values in computed)
    assert all('{route="/rare"}' in values["request_rate"] for values in computed[2:])


def _busy(seed: int, cycles: int, step: float) -> tuple[PresetObserver, list[dict[str, Any]]]:
    """A service at about 60 requests a second on three routes (the quietest at 10), with
    varied latencies, scraped every ``step`` seconds."""
    rng = random.Random(seed)
    observer = preset_observer("http-service")
    service = _Service()
    computed = []
    for i in range(cycles):
        for route, per_second in (("/a", 35), ("/b", 15), ("/c", 10)):
            for _ in range(round(per_second * step * rng.uniform(0.7, 1.3))):
                service.serve(route, rng.lognormvariate(-3.5, 0.8))
        computed.append(_compute(observer, service, i, step))
    return observer, computed


def test_a_busy_service_reads_its_latency_over_the_rates_range_as_before() -> None:
    """Every route of a busy service has MIN_REQUESTS within the rate's range: its latencies
    are those of the rate's range, to the bit (a Query that may not widen gives the same),
    equal to histogram_quantile of the buckets' rates over that range, and no rate over a
    wider range is computed. At 1 s scrapes and at 200 ms (the rate's range then 1.5 s)."""
    for step, range_seconds in ((1.0, 2.0), (0.2, 1.5)):
        observer, computed = _busy(3, 40, step)
        last = computed[-1]
        assert set(last["latency_p50"]) == {"{}", *(f'{{route="/{r}"}}' for r in "abc")}
        narrow = Query(observer.raw, APP, range_seconds)
        assert latency_p50(narrow) == last["latency_p50"]
        # A 99th percentile needs 150 requests (of fewer, one slow request may be it): the
        # rate's range holds 120 of the service's at most, and each p99 reads a wider range.
        assert latency_p99(narrow) == {}
        if step == 1:  # (at 200 ms, 8 s of history hold fewer of the quieter routes')
            assert set(last["latency_p99"]) == set(last["latency_p50"])
        widened = Query(observer.raw, APP, range_seconds, widest=60.0)
        assert latency_p50(widened) == last["latency_p50"]
        rates = {float(k.rsplit(":", 1)[1]) for k in widened.memo if str(k).startswith("rate:")}
        assert rates == {range_seconds}, rates
        # histogram_quantile(0.5, sum by (le) (rate(bucket[range]))), bucket by bucket.
        buckets: dict[float, float] = {}
        vector = observer.raw.rate("http_request_duration_seconds_bucket", range_seconds)
        for (_, key), value in vector.items():
            le = float(key.split('le="')[1].split('"')[0])
            buckets[le] = buckets.get(le, 0.0) + value
        expected = bucket_quantile(0.5, buckets.items())
        assert abs(last["latency_p50"]["{}"] - expected) <= 1e-12 * expected


def test_a_slowdown_at_a_few_requests_a_second_is_one_alert_found_at_once() -> None:
    """The walk's regression with the default detector, after WARM cycles of history: 5
    requests a second on two routes, then 2 a second, each 0.3 s slower, for 120 cycles. With
    the rate's range alone no latency had a value during it and nothing alerted (the walk's
    service, with more chance in its requests: 57 s late, and an end "no value" before a
    second alert); now one alert, within 5 cycles, that ends back in its band after it (its
    99th percentile, read over the range holding 100 requests, lags the slowdown's end by up
    to that range: 60 s)."""
    rng = random.Random(7)
    observer = preset_observer("http-service")
    service = _Service()
    opened: dict[str, tuple[int, str]] = {}  # start -> the cycle it opened and its signal
    ended = []
    for i in range(WARM + 240):
        slow = WARM <= i < WARM + 120
        a = rng.choice((0, 1, 2)) if slow else rng.choice((2, 3))
        for route, count in (("/a", a), ("/b", 2 - a if slow else rng.choice((2, 3)))):
            for _ in range(count):
                service.serve(route, rng.lognormvariate(-4.8, 0.3) + (0.3 if slow else 0.0))
        with handing_data(T0 + i, {APP: T0 + i}):
            result = observer.new_data({APP: service.page()})
        for alert in result.alerts:
            opened.setdefault(alert.annotations["started"], (i - WARM, alert.labels["signal"]))
            if "ended" in alert.annotations:
                ended.append((i - WARM, alert.annotations["ended"]))
    [(cycle, signal)] = opened.values()
    assert 0 <= cycle < 5 and signal.startswith("latency_"), opened
    [(cycle, why)] = ended
    assert 120 + 30 <= cycle <= 120 + 60 + 30 and why.startswith("back:"), ended


def _ended(results: list[Any]) -> list[str]:
    return [a.annotations["ended"] for r in results for a in r.alerts if "ended" in a.annotations]


def test_no_value_while_the_target_is_up_does_not_say_it_is_down() -> None:
    """An incident whose signals have no value for the quiet cycles ends "no value": while the
    target's other signals have values (it is up; a quiet service's quantile), saying too few
    requests or their series gone; with none, the target down or its series gone."""
    for gone in ("signal", "target"):
        observer = _observer(for_cycles=3)
        _run(observer, [_steady(i) for i in range(WARM)])
        opened = _run(observer, [_steady(i, a=0.9) for i in range(WARM, WARM + 5)], WARM)
        assert any(alert.labels["signal"] == "a" for alert in opened[-1].alerts)
        later = []
        for i in range(WARM + 5, WARM + 60):
            cycle = _steady(i)
            if gone == "signal":
                del cycle[NODE]["a"]
            else:
                del cycle[NODE]
            later.append(cycle)
        [ended] = _ended(_run(observer, later, WARM + 5))
        assert ended.startswith("no value: its signals have had none for 30 cycles"), ended
        if gone == "signal":
            assert "the target's others have (too few requests" in ended, ended
            assert "down" not in ended, ended
        else:
            assert "nor have the target's others (the target down" in ended, ended


def _observed(store: dict[str, float], labels: str, seconds: float) -> None:
    """One request of ``seconds`` into a histogram's cumulative buckets."""
    for le in ("0.005", "0.01", "0.1", "0.25", "0.5", "1.0", "+Inf"):
        key = "{" + ",".join(filter(None, [labels, f'le="{le}"'])) + "}"
        store[key] = store.get(key, 0.0) + (1.0 if float(le) >= seconds else 0.0)


def test_a_quiet_fastapi_service_s_latency_is_its_requests_not_the_scrapes() -> None:
    """fastapi-instrumentator's fine histogram of the whole service counts the metrics scrapes
    too (2 ms each, one a second). A service whose one route has a request every 10 s (400 ms)
    reads its latency over a widened range, where those scrapes outnumbered its requests: its
    median read 2.7 ms. Widened, the service is read from the per-route histogram, the
    scrapes left out: 0.375 s, as its route."""
    observer = preset_observer("http-service")
    requests: dict[str, float] = {}
    fine: dict[str, float] = {}
    routed: dict[str, float] = {}
    medians = []
    for i in range(120):
        for route, seconds in [("/metrics", 0.002)] + ([("/api", 0.4)] if i % 10 == 0 else []):
            _observed(fine, "", seconds)
            _observed(routed, f'handler="{route}",method="GET"', seconds)
            key = f'{{handler="{route}",method="GET",status="2xx"}}'
            requests[key] = requests.get(key, 0.0) + 1
        page = {
            "http_requests_total": dict(requests),
            "http_request_duration_seconds_bucket": dict(routed),
            "http_request_duration_highr_seconds_bucket": dict(fine),
        }
        with handing_data(T0 + i, {APP: T0 + i}):
            medians.append(observer.compute({APP: page}).get(APP, {}).get("latency_p50", {}))
    assert medians[-1]["{}"] == medians[-1]['{handler="/api"}'] == 0.375


def test_one_slow_request_of_a_few_is_no_99th_percentile() -> None:
    """A route at 5 requests a second, each about 8 ms, and one of 0.45 s: a 99th percentile
    of fewer than 100 requests is their slowest (of the 12 within the rate's range it read
    0.45 s, where the route's band was under 0.01 s), so it is read over the range holding
    150 (40 s): the slow one is then one of over a hundred, and its p99 stays under 0.05 s;
    its median never moved."""
    observer = preset_observer("http-service")
    service = _Service()
    p99 = []
    for i in range(60):
        for request in range(5):
            service.serve("/a", 0.45 if (i, request) == (50, 0) else 0.008)
        p99.append(_compute(observer, service, i).get("latency_p99", {}).get('{route="/a"}'))
        if i == 50:  # histogram_quantile over the rate's range, as read before
            query = Query(observer.raw, APP, RATE_RANGE)
            bucket = "http_request_duration_seconds_bucket"
            narrow = query.quantile(0.99, bucket, ("route",))['{route="/a"}']
    assert narrow > 0.25
    assert all(value is not None and value < 0.05 for value in p99[40:]), str(p99[40:])
