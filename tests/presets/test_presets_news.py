"""An incident does not swallow a later one: a series starting to move long after the
incident's last news is an incident of its own, sent to Alertmanager as a new alert; and a
young preset on sub-second scrapes finds an obvious regression."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from deucalion.alerting.alerts import Scores
from deucalion.alerting.lifecycle import AlertLifecycle, rfc3339
from deucalion.observer import handing_data
from deucalion.presets import preset_observer
from deucalion.presets.observer import PresetObserver
from deucalion.presets.signals import Query, Signal, SignalValues
from tests.presets.test_presets_incidents import NODE, T0, _AdaptingDetector

NEWS = 40  # NEWS_CYCLES for these tests: the detector here adapts within cycles


def _per_device(name: str) -> Signal:
    def compute(q: Query) -> SignalValues:
        return q.gauge(name, ("device",))

    return Signal(name, f"the {name}", "ratio", compute, (name,), "up", floor=0.1)


def _observer(monkeypatch: pytest.MonkeyPatch, news: int = NEWS) -> PresetObserver:
    import deucalion.presets.observer as module

    monkeypatch.setattr(module, "NEWS_CYCLES", news)
    return PresetObserver(
        "test",
        [_per_device("a"), _per_device("b")],
        for_cycles=2,
        quiet_cycles=10,
        settle_cycles=1000,  # the level a holds is never taken for the normal here
        detector=_AdaptingDetector,
    )


def _run(observer: PresetObserver, values: list[tuple[float, float, float]]) -> list[Scores]:
    """Feed ``(a{device="x"}, a{device="y"}, b{device="x"})`` per cycle on one target."""
    results = []
    for i, (ax, ay, bx) in enumerate(values):
        cycle = {
            "a": {'{device="x"}': ax, '{device="y"}': ay},
            "b": {'{device="x"}': bx},
        }
        with handing_data(T0 + i, {NODE: T0 + i}):
            results.append(observer.new_data({NODE: cycle}))
    return results


def _steps(*stretches: tuple[int, tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    return [values for cycles, values in stretches for _ in range(cycles)]


def _opened(results: list[Scores]) -> list[tuple[int, str, str]]:
    """``(cycle, opener signal, start)`` of each incident, in the order they opened."""
    seen: dict[str, tuple[int, str, str]] = {}
    for i, result in enumerate(results):
        for alert in result.alerts:
            start = alert.annotations["started"] + alert.labels["signal"]
            seen.setdefault(start, (i, alert.labels["signal"], alert.annotations["started"]))
    return sorted(seen.values())


def test_a_move_long_after_an_incidents_last_news_is_an_incident_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a{x} steps up at 10 and stays there, holding its incident open; b{x} moving NEWS + 20
    cycles later ends it (superseded, saying so) and opens a new one: two alerts. Moving
    within NEWS cycles of the incident's last news, it joins it: one alert."""
    late = _steps((10, (0.3, 0.3, 0.3)), (NEWS + 30, (0.9, 0.3, 0.3)), (20, (0.9, 0.3, 0.9)))
    results = _run(_observer(monkeypatch), late)
    opened = _opened(results)
    assert [(cycle, signal) for cycle, signal, _ in opened] == [(11, "a"), (NEWS + 41, "b")]
    [last] = [a for a in results[NEWS + 41].alerts if a.labels["signal"] == "a"]
    assert last.annotations["ended"].startswith('superseded: b{device="x"} moved')
    assert not any(a.labels["signal"] == "a" for r in results[NEWS + 42 :] for a in r.alerts)

    soon = _steps((10, (0.3, 0.3, 0.3)), (NEWS - 10, (0.9, 0.3, 0.3)), (20, (0.9, 0.3, 0.9)))
    results = _run(_observer(monkeypatch), soon)
    assert [signal for _, signal, _ in _opened(results)] == ["a"]
    [alert] = results[-1].alerts
    assert "b" in alert.annotations["signals"]


def test_a_member_scored_again_is_news_that_keeps_the_incident_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a{x} moves again (further away: scored again) NEWS - 10 cycles after it opened the
    incident; b{x} moving NEWS - 10 cycles after that joins it: one alert."""
    values = _steps(
        (10, (0.3, 0.3, 0.3)),
        (NEWS - 10, (0.9, 0.3, 0.3)),
        (NEWS - 10, (1.5, 0.3, 0.3)),
        (20, (1.5, 0.3, 0.9)),
    )
    results = _run(_observer(monkeypatch), values)
    assert [signal for _, signal, _ in _opened(results)] == ["a"]


def test_a_new_incident_with_the_same_labels_is_a_new_alert_in_alertmanager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a{y} moving long after a{x}'s incident ends it (superseded) and opens one of the same
    opener signal (a). Alertmanager tells alerts apart by labels, and merges one whose label set
    is firing or resolved within its group_interval into the alert it told of: the new one was
    sent a cycle after the old one's last with the same labels, and no receiver heard of it. It
    is labelled episode 2, sent on the cycle the old one's last alert is: the lifecycle fires it
    with its own start and resolves the first on the next cycle."""
    values = _steps((10, (0.3, 0.3, 0.3)), (NEWS + 30, (0.9, 0.3, 0.3)), (20, (0.9, 0.9, 0.3)))
    results = _run(_observer(monkeypatch), values)
    assert [signal for _, signal, _ in _opened(results)] == ["a", "a"]
    now = [T0]
    lifecycle = AlertLifecycle(resend_interval=60.0, lifetime=240.0, clock=lambda: now[0])
    starts: dict[str, int] = {}  # startsAt -> the cycle the alert was first sent
    resolved: dict[str, int] = {}  # startsAt -> the cycle it was sent resolved
    for i, result in enumerate(results):
        now[0] = T0 + i
        for payload in lifecycle.update("g", [(a.labels, a.annotations) for a in result.alerts]):
            starts.setdefault(payload["startsAt"], i)
            if payload["endsAt"] == rfc3339(now[0]):
                resolved.setdefault(payload["startsAt"], i)
    first, second = sorted(starts, key=starts.__getitem__)
    assert starts[second] == NEWS + 41 and resolved[first] == NEWS + 42
    assert second not in resolved
    [ended, opened] = sorted(results[NEWS + 41].alerts, key=lambda a: "episode" in a.labels)
    assert ended.annotations["ended"].startswith("superseded")
    assert ended.labels == {"severity": "warning", "preset": "test", "signal": "a"}
    assert opened.labels == {**ended.labels, "episode": "2"}


def test_an_incident_of_another_signal_after_one_ended_is_sent_at_once() -> None:
    """b opens an incident the cycle after a's ended: other labels (signal b, no episode),
    sent at once."""
    observer = PresetObserver(
        "test",
        [_per_device("a"), _per_device("b")],
        for_cycles=2,
        quiet_cycles=3,
        detector=_AdaptingDetector,
    )
    values = _steps((10, (0.3, 0.3, 0.3)), (3, (0.9, 0.3, 0.3)), (3, (0.3, 0.3, 0.3)))
    values += _steps((10, (0.3, 0.3, 0.9)))
    results = _run(observer, values)
    opened = _opened(results)
    assert [signal for _, signal, _ in opened] == ["a", "b"]
    assert opened[1][0] == 17  # b moved at 16, held 2 cycles at 17
    assert "episode" not in results[17].alerts[0].labels


_LES = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
APP = "http://app:8080/metrics"


def _http_run(kind: str, at: int, step: float = 0.2) -> list[int]:
    """An http-service preset on a service scraped every ``step`` seconds, serving 0 to 8
    requests a scrape (about 30 ms, a few slow ones), from cycle ``at`` ten times slower
    (``latency``) or half of them failing (``errors``): the cycles (from ``at``) its alerts
    came on."""
    rng = random.Random(1)
    observer = preset_observer("http-service")
    ok = failed = count = total = 0.0
    buckets = dict.fromkeys(_LES, 0.0)
    alerts = []
    for i in range(at + 30):
        for _ in range(rng.randint(0, 8)):
            latency = rng.lognormvariate(-3.5, 0.6) * (8 if rng.random() < 0.03 else 1)
            latency *= 10 if kind == "latency" and i >= at else 1
            if kind == "errors" and i >= at and rng.random() < 0.5:
                failed += 1
            else:
                ok += 1
            for le in _LES:
                buckets[le] += le == "+Inf" or latency <= float(le)
            count, total = count + 1, total + latency
        sample: dict[str, Any] = {
            "http_requests_total": {
                '{method="GET",status="200"}': ok,
                '{method="GET",status="500"}': failed,
            },
            "http_request_duration_seconds_bucket": {
                f'{{le="{le}"}}': value for le, value in buckets.items()
            },
            "http_request_duration_seconds_count": {"{}": count},
            "http_request_duration_seconds_sum": {"{}": total},
        }
        when = T0 + i * step
        with handing_data(when, {APP: when}):
            result = observer.new_data({APP: sample})
        alerts += [i - at] if result.alerts else []
    return alerts


@pytest.mark.parametrize(
    ("kind", "at", "step"),
    [
        ("latency", 200, 0.2),
        ("latency", 350, 0.2),
        ("errors", 200, 0.2),
        ("errors", 350, 0.2),
        ("errors", 350, 1.0),
        ("errors", 1000, 1.0),
    ],
)
def test_a_young_preset_finds_an_obvious_regression(kind: str, at: int, step: float) -> None:
    """At 200 ms scrapes a rate over the last two or three scrapes counts a handful of
    requests: a quantile or ratio of them swings to nothing and back, and a move ended on the
    first scrape without a slow or failed request. Rates span MIN_RATE_SECONDS at least, and
    a move of the error ratio or a latency survives a one-scrape dip (at 1 s scrapes too, at
    4 requests a second), so a 10x latency regression or an error ratio from 0 to 50 % after
    200 to 1,000 cycles of history alerts within 10 cycles."""
    alerts = _http_run(kind, at, step)
    assert any(0 <= cycle < 10 for cycle in alerts), alerts


def test_an_incident_opened_on_a_young_history_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """With YOUNG_CYCLES 30: a{x}'s incident, opened on its 12th cycle, says its detector was young;
    b{x}'s, opened past cycle 30, does not."""
    import deucalion.presets.incidents as incidents

    monkeypatch.setattr(incidents, "YOUNG_CYCLES", 30)
    late = _steps((10, (0.3, 0.3, 0.3)), (NEWS + 30, (0.9, 0.3, 0.3)), (20, (0.9, 0.3, 0.9)))
    results = _run(_observer(monkeypatch), late)
    [first] = results[11].alerts
    assert "after 12 cycles of history: the detector was young" in first.annotations["description"]
    [second] = results[-1].alerts
    assert second.labels["signal"] == "b" and "young" not in second.annotations["description"]


def test_a_move_of_a_signal_with_back_cycles_survives_a_one_cycle_dip() -> None:
    """A signal of a handful of requests (``back_cycles=2``: an error ratio) dips back into
    its band for a scrape while the service fails: a, out from 10 with a dip at 11, opens an
    incident once it has moved 2 cycles, at 12 (the dip does not count). With back_cycles=1
    the dip ends the move and a new one from 12 opens it at 13. Back for 2 cycles in a row,
    the move ends: out at 10, back at 11 and 12, out from 13 opens one at 14."""
    from tests.presets.test_presets_incidents import _run as run_two
    from tests.presets.test_presets_incidents import _signal

    def observer(back: int) -> PresetObserver:
        a = dataclasses.replace(_signal("a"), back_cycles=back)
        return PresetObserver(
            "test", [a, _signal("b")], for_cycles=2, quiet_cycles=10, detector=_AdaptingDetector
        )

    def first(results: list[Scores]) -> int:
        return next(i for i, r in enumerate(results) if r.alerts)

    dip = [(0.3, 0.3)] * 10 + [(0.9, 0.3), (0.3, 0.3)] + [(0.9, 0.3)] * 5
    assert first(run_two(observer(2), dip)) == 12
    assert first(run_two(observer(1), dip)) == 13
    back = [(0.3, 0.3)] * 10 + [(0.9, 0.3)] + [(0.3, 0.3)] * 2 + [(0.9, 0.3)] * 5
    assert first(run_two(observer(2), back)) == 14


def test_a_more_severe_signal_moving_in_a_warning_incident_is_a_new_critical_alert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a (a warning) opens an incident; b, critical, moving 20 cycles later did join it, and
    the alert stayed a warning, which Alertmanager routes as one (an error ratio rising in a
    request-rate incident paged nobody). It ends the warning ("more severe") and opens a
    critical alert of its own; a later warning move joins that one."""
    import deucalion.presets.observer as module

    monkeypatch.setattr(module, "NEWS_CYCLES", NEWS)
    critical = dataclasses.replace(_per_device("b"), severity="critical")
    observer = PresetObserver(
        "test",
        [_per_device("a"), critical],
        for_cycles=2,
        quiet_cycles=10,
        settle_cycles=1000,
        detector=_AdaptingDetector,
    )
    values = _steps(
        (10, (0.3, 0.3, 0.3)), (20, (0.9, 0.3, 0.3)), (20, (0.9, 0.3, 0.9)), (20, (0.9, 0.9, 0.9))
    )
    results = _run(observer, values)
    assert [(cycle, signal) for cycle, signal, _ in _opened(results)] == [(11, "a"), (31, "b")]
    [last] = [a for a in results[31].alerts if a.labels["signal"] == "a"]
    assert last.annotations["ended"] == (
        'superseded: b{device="x"} moved, more severe than its warning'
    )
    [alert] = results[-1].alerts
    assert alert.labels["severity"] == "critical"
    assert 'a{device="y"}' in alert.annotations["signals"]
