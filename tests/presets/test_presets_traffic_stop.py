"""A service whose requests stop: its request rate falls to 0, the lowest it can be, which is
below a band reaching 0 or under it (a rate of a few requests a second has one): the stop of a
service at 6 requests a second alerts within seconds, one at 3 (under the floor) does not, and
the ordinary quiet seconds of either do not."""

from __future__ import annotations

import random

from deucalion.alerting.alerts import Alert
from deucalion.observer import handing_data
from deucalion.presets import preset_observer
from deucalion.presets.http_service import SIGNALS
from deucalion.presets.incidents import beyond
from tests.presets.test_presets import APP, T0

REQUEST_RATE = next(s for s in SIGNALS if s.name == "request_rate")
STOP = 700  # the cycle the requests stop: the detector has learned the load by then


def _stopping(per_second: float, seed: int, cycles: int = STOP + 60) -> list[tuple[Alert, ...]]:
    """A service at ``per_second`` requests a second (Poisson) on one route, scraped every
    second, whose requests stop at ``STOP``: each cycle's alerts."""
    rng = random.Random(seed)
    observer = preset_observer("http-service")
    total = 0.0
    alerts = []
    for i in range(cycles):
        if i < STOP:
            # Poisson arrivals within the second: exponential gaps.
            gap = rng.expovariate(per_second)
            while gap < 1.0:
                total += 1
                gap += rng.expovariate(per_second)
        page = {
            "http_requests_total": {'{handler="/a",status="200"}': total},
            "up": {"{}": 1.0},
        }
        with handing_data(T0 + i, {APP: T0 + i}):
            alerts.append(observer.new_data({APP: page}).alerts)
    return alerts


def test_a_rate_of_0_is_below_a_band_reaching_under_0_by_the_floors() -> None:
    """A rate of 0 against a band of -6 to 18 (a service at 6 a second): a fall of 6, past the
    floors; against a band of -7 to 13 (3 a second) a fall of 3, under them; 1 is in both."""
    least = max(REQUEST_RATE.floor, REQUEST_RATE.relative * 6.0)
    assert beyond(REQUEST_RATE, 0.0, -6.0, 18.0, least)
    assert not beyond(REQUEST_RATE, 1.0, -6.0, 18.0, least)
    assert not beyond(REQUEST_RATE, 0.0, -7.0, 13.0, REQUEST_RATE.floor)
    # A band whose low edge is above 0 is left as before: by a value under it.
    assert beyond(REQUEST_RATE, 0.5, 1.0, 19.0, least)
    assert not beyond(REQUEST_RATE, 1.5, 1.0, 19.0, least)


def test_a_service_at_6_requests_a_second_that_stops_alerts_within_seconds() -> None:
    """The walk's: 6 requests a second, then none: one alert, on the request rate, within 10
    cycles of the stop (none before it), saying it is 0 where over 0 was expected; the band's
    low edge was under 0, and no alert came."""
    for seed in (1, 2, 3):
        alerts = _stopping(6.0, seed)
        assert not any(alerts[:STOP]), seed
        opened = [i for i in range(STOP, len(alerts)) if alerts[i]]
        assert opened, seed
        assert opened[0] - STOP <= 10, (seed, opened[0] - STOP)
        [alert] = alerts[opened[0]]
        assert alert.labels["signal"] == "request_rate"
        assert all(alerts[opened[0] :]), seed  # one incident, open while the stop lasts
        # Its words: not "is 0, expected 0 to 15.82" (the band as exported, from 0), which
        # read as inside it; it ends on any request.
        notes = alert.annotations
        assert " is 0 requests/s, expected over 0 up to " in notes["summary"], notes
        assert notes["until"].startswith("request_rate over 0 to "), notes


def test_a_service_at_3_requests_a_second_that_stops_does_not_alert() -> None:
    """3 requests a second falling to 0 is a fall of 3/s, under the request rate's floor."""
    alerts = _stopping(3.0, 1)
    assert not any(alerts)
