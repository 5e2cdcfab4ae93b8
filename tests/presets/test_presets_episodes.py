"""A preset's incident that follows another of the same signal on the same target within
Alertmanager's ``group_interval`` is a new label set (``episode``), so a receiver hears of it:
Alertmanager merges an alert whose label set is firing, or resolved less than about 5 minutes
ago (its resolve not yet flushed), into the one it told of, and tells no one."""

from __future__ import annotations

from deucalion.alerting.alerts import Scores
from tests.presets.test_presets_incidents import _merged, _observer, _run


def _incidents(results: list[Scores]) -> list[tuple[int, str | None]]:
    """``(cycle it was first sent, its episode label)`` of each incident, by its start."""
    seen: dict[str, tuple[int, str | None]] = {}
    for i, result in enumerate(results):
        for alert in result.alerts:
            seen.setdefault(alert.annotations["started"], (i, alert.labels.get("episode")))
    return sorted(seen.values())


def _bursts(*starts: int, length: int = 5, cycles: int = 700) -> list[tuple[float, float]]:
    """``(a, b)`` per cycle: a at 0.9 for ``length`` cycles from each of ``starts``, else 0.3."""
    return [(0.9 if any(s <= i < s + length for s in starts) else 0.3, 0.3) for i in range(cycles)]


def test_an_incident_soon_after_another_of_its_signal_is_a_new_label_set() -> None:
    """Bursts of a at 10, 60 and 110 s, each its own incident (back for quiet_cycles between):
    the second and third came 35 s after the earlier one's resolve with the same labels
    (severity, preset, signal a), and Alertmanager would have told no one of them. They are
    labelled episode 2 and 3. At 500 s every earlier label set resolved more than 300 s ago:
    the fourth has no episode label again, and the fifth, 60 s after it, takes the smallest
    free one (2, resolved 420 s before), so a flapping signal makes few label sets."""
    results = _run(_observer(), _bursts(10, 60, 110, 500, 560))
    assert _incidents(results) == [
        (11, None),
        (61, "2"),
        (111, "3"),
        (501, None),
        (561, "2"),
    ]
    assert _merged(results) == []
    assert {k for r in results for a in r.alerts for k in a.labels} == {
        "severity",
        "preset",
        "signal",
        "episode",
    }
