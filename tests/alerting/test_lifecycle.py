"""What to send to Alertmanager and when: fire, re-send, resolve (deucalion.alerting.lifecycle)."""

from __future__ import annotations

import pytest

from deucalion.alerting.lifecycle import RESOLVED_RETENTION, AlertLifecycle, rfc3339


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


FIRING = ({"alertname": "A", "observer": "O"}, {"summary": "s"})


def lifecycle(clock: Clock) -> AlertLifecycle:
    return AlertLifecycle(
        resend_interval=60, lifetime=240, clock=clock, generator_url="http://me:9464/alerts"
    )


def test_new_alert_is_sent_at_once_with_its_start() -> None:
    """A new alert is sent at once: startsAt now, endsAt now + lifetime, generatorURL."""
    clock = Clock()
    out = lifecycle(clock).update("o", [FIRING])
    assert out == [
        {
            "labels": FIRING[0],
            "annotations": FIRING[1],
            "startsAt": rfc3339(clock.now),
            "endsAt": rfc3339(clock.now + 240),
            "generatorURL": "http://me:9464/alerts",
        }
    ]


def test_firing_alert_is_resent_every_resend_interval_keeping_its_start() -> None:
    """While reported, an alert is re-sent only once resend_interval passed; startsAt stays."""
    clock = Clock()
    lc = lifecycle(clock)
    start = clock.now
    lc.update("o", [FIRING])
    clock.now += 30
    assert lc.update("o", [FIRING]) == []
    clock.now += 30
    (again,) = lc.update("o", [FIRING])
    assert again["startsAt"] == rfc3339(start)
    assert again["endsAt"] == rfc3339(clock.now + 240)


def test_changed_annotations_are_sent_at_once() -> None:
    """New annotations of a firing alert do not wait for the resend interval."""
    clock = Clock()
    lc = lifecycle(clock)
    lc.update("o", [FIRING])
    clock.now += 1
    (out,) = lc.update("o", [(FIRING[0], {"summary": "worse"})])
    assert out["annotations"] == {"summary": "worse"}


def test_alert_not_reported_is_resolved_and_resent_for_15_minutes() -> None:
    """A missing alert is sent resolved (endsAt now), re-sent while retained, then forgotten."""
    clock = Clock()
    lc = lifecycle(clock)
    lc.update("o", [FIRING])
    clock.now += 15
    resolved_at = clock.now
    (out,) = lc.update("o", [])
    assert out["endsAt"] == rfc3339(resolved_at)
    assert lc.firing() == []
    clock.now += 60
    (again,) = lc.update("o", [])
    assert again["endsAt"] == rfc3339(resolved_at)
    clock.now = resolved_at + RESOLVED_RETENTION
    assert lc.update("o", []) == []
    clock.now += 600
    assert lc.update("o", []) == []


def test_alert_back_after_resolution_is_a_new_alert() -> None:
    """Reported again after being resolved, an alert starts anew."""
    clock = Clock()
    lc = lifecycle(clock)
    lc.update("o", [FIRING])
    clock.now += 10
    lc.update("o", [])
    clock.now += 10
    (out,) = lc.update("o", [FIRING])
    assert out["startsAt"] == rfc3339(clock.now)


def test_observers_do_not_resolve_each_others_alerts() -> None:
    """Alerts are tracked per observer group."""
    clock = Clock()
    lc = lifecycle(clock)
    lc.update("one", [FIRING])
    assert lc.update("two", []) == []
    assert len(lc.firing()) == 1


def test_alerts_are_resent_on_time_without_a_new_call() -> None:
    """resend_due re-sends firing alerts of every group once resend_interval passed, with a new
    endsAt and their start, and resolved ones while retained; no observer call is needed."""
    clock = Clock()
    lc = lifecycle(clock)
    assert lc.next_resend() is None and lc.resend_due() == []
    start = clock.now
    lc.update("hung", [FIRING])
    lc.update("done", [({"alertname": "B", "observer": "P"}, {})])
    clock.now += 10
    lc.update("done", [])  # B resolved
    assert lc.next_resend() == start + 60
    clock.now = start + 59
    assert lc.resend_due() == []
    clock.now = start + 60
    (again,) = lc.resend_due()
    assert again["labels"] == FIRING[0]
    assert again["startsAt"] == rfc3339(start) and again["endsAt"] == rfc3339(clock.now + 240)
    assert lc.resend_due() == []
    clock.now = start + 70
    (resolved,) = lc.resend_due()
    assert resolved["labels"]["alertname"] == "B" and resolved["endsAt"] == rfc3339(start + 10)
    clock.now = start + 10 + RESOLVED_RETENTION
    assert [p["labels"]["alertname"] for p in lc.resend_due()] == ["A"]
    assert lc.next_resend() == clock.now + 60
    assert len(lc.firing()) == 1


def test_many_alerts_starting_or_resolving_at_once_are_logged_in_a_few_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """5,000 new alerts log the first ten and a count, not 5,000 lines; so does resolving."""
    clock = Clock()
    lc = lifecycle(clock)
    alerts = [({"alertname": "A", "n": str(n)}, {}) for n in range(5000)]
    with caplog.at_level("INFO", logger="deucalion.alerting.lifecycle"):
        assert len(lc.update("o", alerts)) == 5000
        assert len(lc.update("o", [])) == 5000
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 22
    assert "4990 more alerts firing (the first 10 are logged above)" in messages
    assert "4990 more alerts resolved (the first 10 are logged above)" in messages


async def test_an_update_in_slices_gives_the_same_answer_as_one_update() -> None:
    """update_in_slices sends and tracks exactly what update does."""
    alerts = [({"alertname": "A", "n": str(n)}, {"v": "1"}) for n in range(2500)]
    one, sliced = lifecycle(Clock()), lifecycle(Clock())
    assert await sliced.update_in_slices("o", alerts) == one.update("o", alerts)
    assert await sliced.update_in_slices("o", alerts[:10]) == one.update("o", alerts[:10])
    assert sliced.firing() == one.firing()
