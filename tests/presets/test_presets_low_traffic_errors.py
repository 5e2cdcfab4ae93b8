"""A route at a few requests a second: an error ratio is read over the shortest range holding
``RATIO_REQUESTS`` requests (the rate's range, doubled up to the observer's widest), so an error
burst on a route at a request a second has a ratio on most cycles and alerts, a quiet route
without errors stays at 0, and a busy service's ratio is read over the rate's range as
before."""

from __future__ import annotations

import random
from typing import Any

import pytest

from deucalion.observer import handing_data
from deucalion.presets import http_service, preset_observer
from deucalion.presets.http_service import MAX_ROUTES, MIN_ERRORS, RATIO_REQUESTS, error_ratio
from deucalion.presets.observer import PresetObserver
from deucalion.presets.signals import Query
from tests.presets.test_presets import APP, T0, WARM

RATE_RANGE = 2.0  # the rate's range at 1 s scrapes: 1.5 intervals and a half
B = '{route="/b"}'
RARE = '{route="/rare"}'
OTHER = '{route="other"}'


class _Service:
    """A prometheus_client service's request counter, per route and status."""

    def __init__(self) -> None:
        self.requests: dict[str, float] = {}

    def serve(self, route: str, failed: bool = False) -> None:
        """One request to ``route``, answered 500 if it ``failed``, else 200."""
        key = f'{{method="GET",route="{route}",status="{500 if failed else 200}"}}'
        self.requests[key] = self.requests.get(key, 0.0) + 1

    def page(self) -> dict[str, dict[str, float]]:
        """What a scrape reads (every series once served, as a client library keeps them)."""
        return {"http_requests_total": dict(self.requests)}


def _compute(
    observer: PresetObserver, service: _Service, i: int, step: float = 1.0
) -> dict[str, Any]:
    when = T0 + i * step
    with handing_data(when, {APP: when}):
        return observer.compute({APP: service.page()}).get(APP, {})


def _serve_cycle(service: _Service, rng: random.Random, i: int, failing: float) -> None:
    """Second ``i`` of a service at about 5 requests a second: /a about 4 (never failing), /b
    about 1 (``failing`` of them failed), /rare one every 20 s (never failing)."""
    for _ in range(rng.choice((3, 4, 5))):
        service.serve("/a")
    for _ in range(rng.choice((0, 1, 1, 2))):
        service.serve("/b", rng.random() < failing)
    if i % 20 == 0:
        service.serve("/rare")


BURST = 40  # the cycle the burst starts


def _burst(seed: int, cycles: int) -> tuple[PresetObserver, list[dict[str, Any]]]:
    """The service above, scraped every second; from cycle BURST for 60 cycles half of /b's
    requests fail: the signals computed each cycle."""
    rng = random.Random(seed)
    observer = preset_observer("http-service")
    service = _Service()
    computed = []
    for i in range(cycles):
        _serve_cycle(service, rng, i, 0.5 if BURST <= i < BURST + 60 else 0.0)
        computed.append(_compute(observer, service, i))
    return observer, computed


def test_an_error_burst_on_a_route_at_a_request_a_second_has_a_ratio() -> None:
    """Half of /b's requests fail for 60 s: the rate's range (2 s) holds about 2 requests and
    1 error, fewer than MIN_ERRORS. Read over the range holding RATIO_REQUESTS (about 10
    requests, up to 16 s), its ratio is 0.2 or more on 40 or more of the burst's cycles from
    its 2nd (41 to 55 of 58 over 10 seeds: its failures are news once they are 3 or more of
    about 10, not before, as 2 in 10 are chance at a usual ratio of 1 %), 0 before it, and 0
    again once the burst is 16 s behind (the range's length)."""
    assert 1.0 * RATE_RANGE < RATIO_REQUESTS and 0.5 * RATE_RANGE < MIN_ERRORS
    for seed in range(10):
        _, computed = _burst(seed, BURST + 80)
        b = [values.get("error_ratio", {}).get(B) for values in computed]
        burst = b[BURST + 2 : BURST + 60]  # from the 2nd cycle: 2 errors take a second or two
        assert sum(r is not None and r >= 0.2 for r in burst) >= 40, (seed, burst)
        assert all(r == 0.0 for r in b[20:BURST]), (seed, b[:BURST])  # 10 requests in 16 s
        assert all(r == 0.0 for r in b[BURST + 60 + 16 :]), (seed, b[BURST + 60 :])


def test_the_rates_range_alone_reads_the_burst_as_0_most_cycles() -> None:
    """What the preset did before, on the same burst: the ratio of /b over the rate's range
    alone (a Query that may not widen) is above 0 on 17 to 31 of its 58 cycles from its 2nd
    over these seeds, the preset's own on 40 or more."""
    for seed in range(4):
        rng = random.Random(seed)
        observer = preset_observer("http-service")
        service = _Service()
        narrow_nonzero = widened_nonzero = 0
        for i in range(BURST + 60):
            _serve_cycle(service, rng, i, 0.5 if i >= BURST else 0.0)
            computed = _compute(observer, service, i)
            if i >= BURST + 2:
                narrow = error_ratio(Query(observer.raw, APP, RATE_RANGE)).get(B, 0.0)
                narrow_nonzero += narrow > 0
                widened_nonzero += computed["error_ratio"].get(B, 0.0) > 0
        assert narrow_nonzero < 58 / 2 + 3 and widened_nonzero >= 40, (
            seed,
            narrow_nonzero,
            widened_nonzero,
        )


def test_a_quiet_route_without_errors_stays_at_0() -> None:
    """Without errors, /b (a request a second, read over 16 s) has a ratio of 0 on every
    cycle once the window holds its requests, where the rate's range alone had none on the
    cycles without a request; the service too. /rare (3 a minute, fewer than RATIO_REQUESTS
    within the widest range, 60 s) has none."""
    _, computed = _burst(5, BURST)
    for key in ("{}", B):
        ratios = [values.get("error_ratio", {}).get(key) for values in computed[25:]]
        assert ratios == [0.0] * len(ratios), (key, ratios)
    assert all(RARE not in values.get("error_ratio", {}) for values in computed)


def test_a_route_at_3_requests_a_minute_has_no_error_ratio() -> None:
    """/rare's requests all fail, one every 20 s: fewer than RATIO_REQUESTS within the widest
    range (60 s), it has no error ratio (read over that range, two failed requests of four
    opened a critical incident on a route hardly used; the service's ratio still counts
    them). The rate's range alone had a ratio on the cycles just after each request only."""
    observer = preset_observer("http-service")
    service = _Service()
    ratios, narrow = [], []
    for i in range(180):
        for _ in range(4):
            service.serve("/a")
        if i % 20 == 0:
            service.serve("/rare", failed=True)
        ratios.append(_compute(observer, service, i).get("error_ratio", {}).get(RARE))
        narrow.append(error_ratio(Query(observer.raw, APP, RATE_RANGE)).get(RARE))
    assert ratios == [None] * len(ratios), ratios
    assert sum(r is not None for r in narrow[60:]) <= 120 // 20 * 2, narrow


def _busy(seed: int, cycles: int, step: float) -> tuple[PresetObserver, list[dict[str, Any]]]:
    """A service at about 60 requests a second on three routes (the quietest at 10), 5 to 30
    percent of them failing, scraped every ``step`` seconds."""
    rng = random.Random(seed)
    observer = preset_observer("http-service")
    service = _Service()
    computed = []
    for i in range(cycles):
        for route, per_second, failing in (("/a", 35, 0.05), ("/b", 15, 0.2), ("/c", 10, 0.3)):
            for _ in range(round(per_second * step * rng.uniform(0.7, 1.3))):
                service.serve(route, rng.random() < failing)
        computed.append(_compute(observer, service, i, step))
    return observer, computed


def test_a_busy_service_reads_its_error_ratio_over_the_rates_range_as_before() -> None:
    """A busy service's error ratios are of the rate's range, to the bit, errors over
    requests there (or, where that many errors are chance at the service's usual ratio, no
    more than that ratio), and no rate over a wider range than twice it is computed (its
    quietest route, at 10 a second, counts about RATIO_REQUESTS between the scrapes of the
    rate's range: on some cycles it reads twice the range). At 1 s scrapes and at 200 ms (the
    rate's range then 1.5 s)."""
    for step, range_seconds in ((1.0, 2.0), (0.2, 1.5)):
        observer, computed = _busy(3, 40, step)
        for i in (-3, -2, -1):
            assert set(computed[i]["error_ratio"]) == {"{}", *(f'{{route="/{r}"}}' for r in "abc")}
        last = computed[-1]["error_ratio"]
        assert last["{}"] > 0, last
        # (the observer's usual ratios, its counters' totals as it kept them)
        state = observer.signal_state_[APP]
        widened = Query(observer.raw, APP, range_seconds, widest=60.0, state=state, interval=step)
        assert error_ratio(widened) == last
        rates = {float(k.rsplit(":", 1)[1]) for k in widened.memo if str(k).startswith("rate:")}
        assert rates <= {range_seconds, 2 * range_seconds}, rates
        # sum(rate(errors[range])) / sum(rate(requests[range])), as the preset read it before.
        vector = observer.raw.rate("http_requests_total", range_seconds)
        total = sum(v for (_, key), v in vector.items())
        failed = sum(v for (_, key), v in vector.items() if 'status="500"' in key)
        # Or, chance at the usual ratio of a snapshot of the counters' totals, that ratio.
        snapshots = observer.signal_state_[APP]["usual ratio", ()]
        usual = {e.get("{}", 0.0) / t["{}"] for _, t, e in snapshots if t.get("{}")}
        news = failed / total
        assert last["{}"] == news or (last["{}"] < news and last["{}"] in usual), (last, usual)


def test_an_error_burst_on_a_quiet_route_is_one_alert_found_at_once() -> None:
    """The burst above with the default detector, after WARM cycles of history: half of /b's
    requests (a request a second) fail for 60 cycles. One error_ratio alert (of /b or of the
    service), within 15 cycles (3 errors, news among about 10 requests, take 6 s at 0.5 a
    second, then 3 cycles of moving: 4 to 13 cycles over 6 seeds), that ends back in its band
    after the burst. Over the rate's range alone these seeds had no alert at all (3 of 10
    seeds); read over the range holding MIN_REQUESTS, as a latency, seed 7 had none."""
    for seed in (6, 7, 9):
        rng = random.Random(seed)
        observer = preset_observer("http-service")
        service = _Service()
        opened: dict[str, tuple[int, str]] = {}  # start -> the cycle it opened and its signal
        ended = []
        for i in range(WARM + 150):
            _serve_cycle(service, rng, i, 0.5 if WARM <= i < WARM + 60 else 0.0)
            with handing_data(T0 + i, {APP: T0 + i}):
                result = observer.new_data({APP: service.page()})
            for alert in result.alerts:
                opened.setdefault(alert.annotations["started"], (i - WARM, alert.labels["signal"]))
                if "ended" in alert.annotations:
                    ended.append((i - WARM, alert.annotations["ended"]))
        [(cycle, signal)] = opened.values()
        assert 0 <= cycle < 15 and signal == "error_ratio", (seed, opened)
        [(cycle, why)] = ended
        assert cycle >= 60 and why.startswith("back:"), (seed, ended)


def test_the_routes_past_max_routes_are_read_together() -> None:
    """Past MAX_ROUTES routes, the quietest are one route="other": its requests are theirs
    summed (3 routes at about 0.4 a second, with half of the requests failing from cycle
    BURST), and it is read over the range holding RATIO_REQUESTS of those: a ratio of 0.2 or
    more on 40 or more of the burst's 58 cycles from its 2nd, 0 before."""
    rng = random.Random(1)
    observer = preset_observer("http-service")
    service = _Service()
    other = []
    for i in range(BURST + 60):
        for route in range(MAX_ROUTES):
            for _ in range(5):
                service.serve(f"/busy{route}")
        for route in ("/q1", "/q2", "/q3"):
            if rng.random() < 0.4:
                service.serve(route, i >= BURST and rng.random() < 0.5)
        other.append(_compute(observer, service, i).get("error_ratio", {}).get(OTHER))
    assert all(r == 0.0 for r in other[20:BURST]), other[:BURST]
    assert sum(r is not None and r >= 0.2 for r in other[BURST + 2 :]) >= 40, other[BURST:]


def test_a_route_gone_in_a_restart_is_no_other_route() -> None:
    """A service with three routes restarts (its counters start over) and /b, which failed
    before, is not served after: a widened range still holds /b's older scrapes, and they
    made a ``route="other"`` with an error ratio of 1 for a minute, on a service that never
    had more than MAX_ROUTES routes. The routes it serves keep theirs."""
    observer = preset_observer("http-service")
    service = _Service()
    computed = []
    for i in range(95):
        if i == 30:
            service.requests = {}
        for _ in range(5):
            service.serve("/a")
        if i % 4 == 0:
            service.serve("/c")
        if i < 30 and i % 2 == 0:
            service.serve("/b", failed=True)
        computed.append(_compute(observer, service, i))
    assert all(
        OTHER not in values.get(signal, {})
        for values in computed
        for signal in ("error_ratio", "request_rate", "latency_p50")
    )
    assert computed[-1]["error_ratio"]['{route="/a"}'] == 0.0


def test_a_steady_share_of_failures_is_no_error_ratio_past_its_usual(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service failing 1 % of its requests, /a at about 4 a second and /b at about 1, for
    half an hour: a pair of failures among the 10 to 20 requests a route's ratio is read over
    (0.1 to 0.2, past the 0.05 floor) is chance at that ratio, and reads no more than it. Its
    ratios pass 0.06 on 0.5 % of the cycles or fewer (10 of 5,400; every pair news, on 46, and
    as read before, errors over requests extrapolated to the range's ends, on 2 % or more:
    a critical alert every few minutes)."""

    def cycles_past() -> int:
        rng = random.Random(11)
        observer = preset_observer("http-service")
        service = _Service()
        past = 0
        for i in range(1800):
            for _ in range(rng.choice((3, 4, 5))):
                service.serve("/a", rng.random() < 0.01)
            for _ in range(rng.choice((0, 1, 1, 2))):
                service.serve("/b", rng.random() < 0.01)
            ratios = _compute(observer, service, i).get("error_ratio", {})
            past += sum(ratio > 0.06 for ratio in ratios.values())
        return past

    past = cycles_past()
    monkeypatch.setattr(http_service, "CHANCE", 1.0)
    pairs = cycles_past()
    assert past <= 0.005 * 1800 * 3 < pairs, (past, pairs)


def test_a_route_at_5_a_second_failing_2_of_them_reads_its_ratio() -> None:
    """/b at 5 requests a second, one failing every 20 s for 700 s, then 2 a second for 120
    s: its ratio's range holds 10 requests counted between its scrapes (4 s at 1 s scrapes),
    4 of them failing, news at its usual ratio, and it reads 0.4 on most of the burst's
    cycles. Counted from the rate's range (2 s, its 10 requests extrapolated from 5), 2
    failures of 5 were chance, and it read its usual ratio, 0.013, through the burst."""
    observer = preset_observer("http-service")
    service = _Service()
    ratios = []
    for i in range(820):
        for _ in range(3):
            service.serve("/a")
        failing = 2 if i >= 700 else int(i % 20 == 0)
        for request in range(5):
            service.serve("/b", failed=request < failing)
        if i >= 700:
            ratios.append(_compute(observer, service, i).get("error_ratio", {}).get(B, 0.0))
        else:
            _compute(observer, service, i)
    assert sum(ratio >= 0.3 for ratio in ratios) >= 110, ratios


def test_a_route_served_since_the_usual_ratio_was_taken_is_known_from_its_own() -> None:
    """A route first served at cycle 750, after the usual ratio's snapshot of 10 minutes ago,
    its requests never failing, then a quarter of them from cycle 880: its usual ratio is of
    the oldest snapshot a minute old that has it (0 of hundreds), and the burst is news within
    a few cycles (known from the prior alone, 3 failures of 12 were chance, for 10 minutes)."""
    observer = preset_observer("http-service")
    service = _Service()
    new = '{route="/new"}'
    first = None
    for i in range(960):
        for _ in range(4):
            service.serve("/a")
        if i >= 750:
            for request in range(4):
                service.serve("/new", failed=i >= 880 and request == 0)
        ratio = _compute(observer, service, i).get("error_ratio", {}).get(new, 0.0)
        if first is None and ratio >= 0.05:
            first = i
    assert first is not None and 880 <= first < 890, first
