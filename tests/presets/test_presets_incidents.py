"""A preset's incident lives as long as its condition: it fires while the signals that moved
are away from the band they had when it opened (whatever the detector now scores them), absorbs
what moves meanwhile, resolves when they are back, and is bounded when a level never comes back
(the new normal) or an incident goes on too long."""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

import pytest

from deucalion.alerting.alerts import Scores
from deucalion.detectors.base import Detector, Explanation
from deucalion.errors import ConfigError
from deucalion.observer import handing_data
from deucalion.presets import preset_observer
from deucalion.presets.observer import PresetObserver
from deucalion.presets.signals import Query, Signal, SignalValues

NODE = "http://node:9100/metrics"
T0 = 1_700_000_000.0


class _AdaptingDetector(Detector):
    """Takes a new level for the normal within three cycles, as a detector does in minutes: a
    value is expected within 0.05 of the median of the series' last 5 values, scored 4 out of
    that band and 0 inside (its threshold follows its budget as ``AnomalyDetector``'s)."""

    def __init__(self, budget: float) -> None:
        self.threshold = math.log10(10_000 / budget)
        self.past: dict[Any, list[float]] = {}
        self.last: dict[Any, tuple[float, float, float]] = {}

    def update(self, values: Any, resolution: Any = None, *, times: Any = None) -> Any:
        scores = {}
        for key, (_, value) in values.items():
            past = self.past.setdefault(key, [])
            centre = statistics.median(past[-5:]) if past else value
            scores[key] = 4.0 if abs(value - centre) > 0.05 + 1e-9 else 0.0
            self.last[key] = (centre, value, scores[key])
            past.append(value)
            del past[:-5]
        return scores

    def explain(self, key: Any) -> Explanation:
        centre, value, score = self.last[key]
        return Explanation("spike", centre - 0.05, centre + 0.05, value, score, key)

    def forget(self, keys: Any) -> None:
        for key in keys:
            self.past.pop(key, None)


def _signal(name: str) -> Signal:
    def compute(q: Query) -> SignalValues:
        return q.gauge(name)

    return Signal(name, f"the {name}", "ratio", compute, (name,), "up", floor=0.1)


def _observer(**options: Any) -> PresetObserver:
    options.setdefault("for_cycles", 2)
    options.setdefault("quiet_cycles", 10)
    return PresetObserver(
        "test", [_signal("a"), _signal("b")], detector=_AdaptingDetector, **options
    )


def _run(
    observer: PresetObserver, values: list[tuple[float, float]], start: int = 0
) -> list[Scores]:
    """Feed ``(a, b)`` per cycle on one target, from cycle ``start``."""
    results = []
    for i, (a, b) in enumerate(values, start):
        with handing_data(T0 + i, {NODE: T0 + i}):
            results.append(observer.new_data({NODE: {"a": {"{}": a}, "b": {"{}": b}}}))
    return results


def _firing(results: list[Scores]) -> list[int]:
    return [i for i, r in enumerate(results) if r.alerts]


def _merged(results: list[Scores]) -> list[int]:
    """The cycles (one a second) an incident's alert was first sent with a label set that was
    firing, or resolved (on the cycle after it was last sent) less than 300 s ago (Alertmanager's
    default ``group_interval``): Alertmanager takes it for the alert it told of, and no
    receiver hears of it."""
    last_sent: dict[frozenset[tuple[str, str]], tuple[int, str]] = {}
    out = []
    for i, result in enumerate(results):
        for alert in result.alerts:
            labels = frozenset(alert.labels.items())
            earlier = last_sent.get(labels)
            started = alert.annotations["started"]
            if earlier is not None and earlier[1] != started and i - (earlier[0] + 1) < 300:
                out.append(i)
            last_sent[labels] = (i, started)
    return out


def test_an_incident_fires_while_its_signals_stay_away_and_resolves_when_they_are_back() -> None:
    """a steps up at 10 and stays there; the detector takes its new level for the normal
    within cycles (its score falls to 0) and keeps its band moving with b, which creeps up
    from 12, jumps at 42 and then sits at 0.6, twice where it was before the incident, while a
    comes back at 45. Judged against the bands the detector has now, b's jump is over when it
    is back at 0.6; judged against the band b had when the incident opened (0.3, floor 0.1),
    it is still away: one alert fires from 11 until b is back (70) and quiet for 10 cycles."""
    values = [(0.3, 0.3)] * 10 + [(0.9, 0.3)] * 2
    values += [(0.9, 0.3 + 0.01 * i) for i in range(1, 31)]  # 12..41: b creeps to 0.6
    values += [(0.9, 0.9)] * 3 + [(0.3, 0.6)] * 25 + [(0.3, 0.3)] * 20  # 42..44, 45..69, 70..89
    observer = _observer()
    results = _run(observer, values[:31])
    detector = observer.detector
    assert isinstance(detector, _AdaptingDetector)
    assert detector.last["a", NODE, "{}"][2] == 0.0  # a is away, its score has fallen
    results += _run(observer, values[31:], 31)
    assert _firing(results) == list(range(11, 80))
    assert len({frozenset(a.labels.items()) for r in results for a in r.alerts}) == 1
    [during] = results[60].alerts
    assert set(during.annotations["signals"].split(",")) == {"a", "b"}
    # b is exported as the alert sees it (a rule on the score fires as long): at its highest
    # score of the incident, against its band before it.
    [b] = [s for s in results[60].scores if s.metric == "b"]
    assert (b.score, b.value, b.upper) == (4.0, 0.6, pytest.approx(0.35))
    [b] = [s for s in results[85].scores if s.metric == "b"]
    assert b.score == 0.0
    assert "b <= 0.4" in during.annotations["until"] and "ended" not in during.annotations
    [last] = results[79].alerts
    assert last.annotations["ended"].startswith("back")
    assert last.annotations["started"] == "2023-11-14T22:13:30+00:00"  # T0 + 10


def test_a_signal_moving_during_an_incident_joins_it_instead_of_alerting_again() -> None:
    """b moves 20 cycles into a's incident: no second alert, b is named with a."""
    values = [(0.3, 0.3)] * 10 + [(0.9, 0.3)] * 20 + [(0.9, 0.9)] * 10 + [(0.3, 0.3)] * 20
    results = _run(_observer(), values)
    assert _firing(results) == list(range(11, 50))
    assert {a.labels["signal"] for r in results for a in r.alerts} == {"a"}
    assert set(results[45].alerts[0].annotations["signals"].split(",")) == {"a", "b"}


def test_the_alert_shows_its_highest_reading_and_keeps_its_text_through_a_dip() -> None:
    """a, whose moves last through a cycle back (``back_cycles=2``, as an error ratio's),
    steps from 0.3 to 0.9 at 10, dips back to 0.3 for one cycle at 20 and holds 0.9 again.
    The alert shows a at 0.9 against its band at 0.3 throughout: it showed the dip's reading,
    inside its band ("is 0.3, expected 0.25 to 0.35"), and its text changed with each cycle's
    reading (each change is sent to Alertmanager at once)."""
    values = [(0.3, 0.3)] * 10 + [(0.9, 0.3)] * 10 + [(0.3, 0.3)] + [(0.9, 0.3)] * 15
    signals = [dataclasses.replace(_signal(name), back_cycles=2) for name in "ab"]
    observer = PresetObserver(
        "test", signals, detector=_AdaptingDetector, for_cycles=2, quiet_cycles=10
    )
    results = _run(observer, values)
    assert _firing(results) == list(range(11, 36))
    texts = [r.alerts[0].annotations for r in results[11:]]
    assert all(t == texts[0] for t in texts), {t["summary"] for t in texts}
    assert (texts[0]["signal"], texts[0]["value"]) == ("a", "0.9")
    assert texts[0]["summary"].startswith(f"a on {NODE} is 0.9 ratio, expected 0.25 to 0.35")


def test_a_permanent_new_level_ends_as_the_new_normal_and_swallows_no_later_incident() -> None:
    """a steps up at 10 and never comes back. Once it has held its new level for settle_cycles
    cycles without the detector scoring it, the incident resolves saying so, a does not reopen
    one, and b moving later is an alert of its own."""
    values = [(0.3, 0.3)] * 10 + [(0.9, 0.3)] * 60 + [(0.9, 0.9)] * 5 + [(0.9, 0.3)] * 20
    results = _run(_observer(settle_cycles=20), values)
    firing = _firing(results)
    # The detector scores a at 10, 11 and 12 (its median is 0.3 until then): 20 from 13.
    assert firing[: firing.index(32) + 1] == list(range(11, 33))
    [last] = results[32].alerts
    assert last.annotations["ended"].startswith("new normal")
    assert not any(results[i].alerts for i in range(33, 70))
    assert {results[i].alerts[0].labels["signal"] for i in (72, 74)} == {"b"}


def test_an_incident_that_keeps_scoring_ends_after_max_cycles() -> None:
    """a swings between two levels far from its old one, scored every cycle: the incident
    resolves after max_cycles, saying so."""
    values = [(0.3, 0.3)] * 10 + [((0.9, 0.7)[i % 2], 0.3) for i in range(40)]
    results = _run(_observer(settle_cycles=1000, max_cycles=15), values)
    assert _firing(results)[:15] == list(range(11, 26))
    assert results[25].alerts[0].annotations["ended"].startswith("longest incident")
    assert not results[26].alerts


@pytest.mark.parametrize("option", ["quiet_cycles", "settle_cycles", "max_cycles"])
def test_an_incidents_cycles_must_be_positive_integers(option: str) -> None:
    """A zero or fractional count is a ConfigError naming the option."""
    with pytest.raises(ConfigError, match=option):
        preset_observer("node-exporter", **{option: 0})
    with pytest.raises(ConfigError, match=option):
        preset_observer("node-exporter", **{option: 2.5})


class _EpisodeDetector(Detector):
    """Scores a series 4 on the cycle it first leaves its band (0.25 to 0.35) and 0 while it
    stays out, as a detector scores a ramp: its start is the rare event, the rest is the same
    episode."""

    def __init__(self, budget: float) -> None:
        self.threshold = math.log10(10_000 / budget)
        self.out: dict[Any, bool] = {}
        self.last: dict[Any, tuple[float, float]] = {}

    def update(self, values: Any, resolution: Any = None, *, times: Any = None) -> Any:
        scores = {}
        for key, (_, value) in values.items():
            out = not 0.25 <= value <= 0.35
            scores[key] = 4.0 if out and not self.out.get(key) else 0.0
            self.out[key] = out
            self.last[key] = (value, scores[key])
        return scores

    def explain(self, key: Any) -> Explanation:
        value, score = self.last[key]
        return Explanation("spike", 0.25, 0.35, value, score, key)

    def forget(self, keys: Any) -> None:
        pass


def _ramp_observer() -> PresetObserver:
    return PresetObserver("test", [_signal("a")], for_cycles=2, detector=_EpisodeDetector)


def _a(values: list[float]) -> list[dict[str, Any]]:
    return [{NODE: {"a": {"{}": v}}} for v in values]


def _feed(observer: PresetObserver, cycles: list[dict[str, Any]]) -> list[Scores]:
    results = []
    for i, cycle in enumerate(cycles):
        with handing_data(T0 + i, {NODE: T0 + i}):
            results.append(observer.new_data(cycle))
    return results


def test_a_ramp_scored_at_its_start_alerts_once_it_passes_the_floor() -> None:
    """a ramps from 0.3: the detector scores it on its first step out of the band (0.38, under
    the floor of 0.1 from the band's centre) and never again; two cycles later it is past the
    floor, judged against the band it left, and the incident opens with the ramp's score."""
    results = _feed(_ramp_observer(), _a([0.3] * 10 + [0.38 + 0.04 * i for i in range(8)]))
    assert _firing(results) == list(range(12, 18))  # 0.42 at 11, held for 2 cycles at 12
    [alert] = results[12].alerts
    assert alert.score == 4.0 and alert.annotations["kind"] == "spike"
    [a] = results[12].scores
    assert a.score == 4.0  # exported at the score that armed it: a rule on it agrees


def test_a_series_scored_long_before_it_passes_the_floor_does_not_alert() -> None:
    """A score at the threshold arms a series for ARM_CYCLES cycles only: a value that passes
    the floor later, unscored, is no move (the detector took its level for the normal)."""
    from deucalion.presets.observer import ARM_CYCLES

    values = [0.3] * 10 + [0.38] * (ARM_CYCLES + 2) + [0.7] * 5
    assert not _firing(_feed(_ramp_observer(), _a(values)))
    values = [0.3] * 10 + [0.38] * (ARM_CYCLES - 2) + [0.7] * 5
    assert _firing(_feed(_ramp_observer(), _a(values)))


def test_cycles_without_a_value_count_towards_a_series_being_armed() -> None:
    """ARM_CYCLES counts cycles, not cycles with values: a series armed before its target went
    down for longer than that is no longer armed when it comes back past its floor."""
    from deucalion.presets.observer import ARM_CYCLES

    down: list[dict[str, Any]] = [{NODE: {}}] * (ARM_CYCLES + 2)
    cycles = _a([0.3] * 10 + [0.38]) + down + _a([0.7] * 5)
    assert not _firing(_feed(_ramp_observer(), cycles))
    cycles = _a([0.3] * 10 + [0.38]) + down[: ARM_CYCLES - 4] + _a([0.7] * 5)
    assert _firing(_feed(_ramp_observer(), cycles))


def _alone_observer() -> PresetObserver:
    """a (a utilisation: ``alone=5``) and b (a cause), for_cycles 2."""
    busy = dataclasses.replace(_signal("a"), alone=5)
    return PresetObserver(
        "test", [busy, _signal("b")], for_cycles=2, quiet_cycles=10, detector=_AdaptingDetector
    )


def test_a_signal_with_alone_opens_an_incident_on_its_own_only_once_its_move_lasts() -> None:
    """a moves for 4 cycles (under its alone=5): no alert; for 8: an alert from its fifth
    cycle, started at its first."""
    brief = [(0.3, 0.3)] * 10 + [(0.9, 0.3)] * 4 + [(0.3, 0.3)] * 20
    assert not _firing(_run(_alone_observer(), brief))
    lasting = [(0.3, 0.3)] * 10 + [(0.9, 0.3)] * 8 + [(0.3, 0.3)] * 20
    results = _run(_alone_observer(), lasting)
    assert _firing(results)[0] == 14  # moved from 10, held 5 cycles at 14
    assert results[14].alerts[0].annotations["started"] == "2023-11-14T22:13:30+00:00"  # T0+10


def test_a_signal_with_alone_moving_with_a_cause_opens_an_incident_in_for_cycles() -> None:
    """a and b move together for 3 cycles: one alert from the second, as without alone."""
    values = [(0.3, 0.3)] * 10 + [(0.9, 0.9)] * 3 + [(0.3, 0.3)] * 20
    results = _run(_alone_observer(), values)
    assert _firing(results)[0] == 11
    assert set(results[11].alerts[0].annotations["signals"].split(",")) == {"a", "b"}


def _recovery_run(monkeypatch: pytest.MonkeyPatch, recovery_cycles: int) -> list[Scores]:
    """a (either direction hurts) creeps down by steps the detector takes in while b's
    incident is open, then comes back at once to where it was before it, after it ended."""
    import deucalion.presets.observer as module

    monkeypatch.setattr(module, "RECOVERY_CYCLES", recovery_cycles)
    both = dataclasses.replace(_signal("a"), direction="both")
    observer = PresetObserver(
        "test", [both, _signal("b")], for_cycles=2, quiet_cycles=10, detector=_AdaptingDetector
    )
    creep = [0.5 - 0.04 * (i // 3) for i in range(3, 21)]  # 0.46 down to 0.26, 3 cycles each
    values = [(0.5, 0.3)] * 10 + [(a, 0.9) for a in creep] + [(0.26, 0.9)] * 12
    values += [(0.26, 0.3)] * 20 + [(0.5, 0.3)] * 20
    return _run(observer, values)


def test_a_signal_back_where_it_was_before_an_incident_is_recovery_not_an_incident(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """a, held down during b's incident, coming back to its old level after it: no second
    alert while it is within RECOVERY_CYCLES of the incident's end; one without that rule."""
    results = _recovery_run(monkeypatch, 300)
    assert {a.labels["signal"] for r in results for a in r.alerts} == {"b"}
    assert not any(r.alerts for r in results[62:])
    results = _recovery_run(monkeypatch, 0)
    assert any(a.labels["signal"] == "a" for r in results[62:] for a in r.alerts)


def test_a_signal_moving_away_soon_after_an_incident_still_opens_one() -> None:
    """Recovery is a return to the band before the incident: a rising past its floor 10
    cycles after b's incident ended is an incident of its own."""
    values = [(0.3, 0.3)] * 10 + [(0.3, 0.9)] * 20 + [(0.3, 0.3)] * 20 + [(0.9, 0.3)] * 10
    results = _run(_observer(), values)
    assert any(a.labels["signal"] == "a" for r in results[50:] for a in r.alerts)


def test_the_alert_names_a_member_s_new_peak_even_scored_before_it_passed_its_floor() -> None:
    """b joins a's incident under a's score, its move ends, and a second move of b passes its
    floor with the score of an earlier cycle (9; 6 this cycle): the alert names b at 9. It
    kept naming a, "moved most (score 5)", with b listed first among the others at 9."""
    from deucalion.presets.incidents import Incident, Moved

    a, b = _signal("a"), _signal("b")
    opener = Moved(a, NODE, "{}", 5.0, 0.9, 0.25, 0.35, 3, 5.0, "level_shift")
    incident = Incident(T0, opener, opener, {})
    incident.absorb([opener], 1, 4.0)
    incident.absorb([Moved(b, NODE, "{}", 3.0, 0.5, 0.25, 0.35, 3, 3.0, "spike")], 2, 4.0)
    again = Moved(b, NODE, "{}", 9.0, 0.8, 0.25, 0.35, 3, 6.0, "spike")
    incident.absorb([again], 10, 4.0)
    assert incident.top is again
    # Its dip back into the band, the move's peak held: the alert keeps the reading at 9.
    incident.absorb([Moved(b, NODE, "{}", 9.0, 0.3, 0.25, 0.35, 3, 0.0, "spike")], 11, 4.0)
    assert incident.top is again


def test_each_of_repeated_error_bursts_is_an_incident() -> None:
    """A service at 20 requests a second and 2 % errors (a million served), whose error ratio
    goes to 50 % for a minute, four times two minutes apart and once more after ten: each
    burst is one alert, opened within 15 cycles of its start, and nothing between. (The
    detector took the first burst for the series' habit, its recent extremes and record of
    events: the next three scored 0 and the fifth was found 16 to 30 cycles late. An incident
    whose members came back into their bands is now unlearned.)"""
    import numpy as np

    rng = np.random.default_rng(27)
    target = "http://127.0.0.1:9/metrics"
    observer = preset_observer("http-service")
    bursts = (300, 420, 540, 700, 1300)
    # Watched from when it had served a million requests, 2 % failing: its usual ratio (of a
    # service watched from its start, every burst is in it, and those after the third are
    # chance at a third of its requests failing).
    ok, failed = 980_000.0, 20_000.0
    opened: dict[str, int] = {}
    results = []
    for i in range(1400):
        requests = rng.poisson(20)
        errors = rng.binomial(requests, 0.5 if any(b <= i < b + 60 for b in bursts) else 0.02)
        ok, failed = ok + requests - errors, failed + errors
        cycle = {
            target: {
                "http_requests_total": {'{code="200"}': ok, '{code="500"}': failed},
            }
        }
        with handing_data(T0 + i, {target: T0 + i}):
            out = observer.new_data(cycle)
        results.append(out)
        for alert in out.alerts:
            opened.setdefault(alert.annotations["started"], i)
    starts = sorted(opened.values())
    assert len(starts) == len(bursts), starts
    assert all(0 <= at - burst < 15 for at, burst in zip(starts, bursts, strict=True)), starts
    # Each a label set Alertmanager tells a receiver of: the second to the fourth came 32 to
    # 72 s after the earlier one resolved, with its labels, and it told no one of them.
    assert _merged(results) == []
