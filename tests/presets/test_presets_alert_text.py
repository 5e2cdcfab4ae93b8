"""A preset alert's text (issue 27, issue 26 item 5): its summary names the target (only the
``instance`` label did) and an annotation names the anomaly kind of the signal that moved most,
the detector's component, beside the labels and annotations it had."""

from __future__ import annotations

import dataclasses
from typing import Any

from deucalion.detectors.anomaly import KINDS
from tests.presets.test_presets import APP, NODE, T0, WARM, _observer, _run, _steady


def test_the_summary_names_the_target_and_an_annotation_the_kind() -> None:
    observer = _observer(for_cycles=3)
    _run(observer, [_steady(i) for i in range(WARM)])
    results = _run(observer, [_steady(i, a=0.9, b=0.6) for i in range(WARM, WARM + 6)], WARM)
    alert = next(iter(results[-1].alerts))
    notes = alert.annotations
    assert notes["summary"].startswith(f"a on {NODE} is 0.9 "), notes["summary"]
    # A step from 0.3 to 0.9 held for cycles: a spike, or already a level shift.
    assert notes["kind"] in ("spike", "level_shift") and notes["kind"] in KINDS
    assert notes["kind"].replace("_", " ") in notes["description"]
    assert {
        "summary",
        "description",
        "signal",
        "value",
        "expected_lower",
        "expected_upper",
        "started",
        "signals",
        "until",
    } <= set(notes)
    assert alert.labels == {"severity": "warning", "preset": "test", "signal": "a"}


def test_a_secret_in_the_target_url_stays_out_of_the_summary() -> None:
    """The observer gets the URL it scrapes, a ?token= with it; the summary shows it as ***,
    as logs and labels do."""
    secret = "http://node:9100/metrics?token=s3cret"

    def moved(i: int, **values: float) -> dict[str, dict[str, dict[str, float]]]:
        return {secret: _steady(i, **values)[NODE]}

    observer = _observer(for_cycles=3)
    _run(observer, [moved(i) for i in range(WARM)])
    results = _run(observer, [moved(i, a=0.9) for i in range(WARM, WARM + 4)], WARM)
    alert = next(iter(results[-1].alerts))
    assert "s3cret" not in alert.annotations["summary"]
    assert "token=***" in alert.annotations["summary"]


def test_an_incident_whose_target_goes_down_ends_saying_so_not_back() -> None:
    """An open incident whose target stops answering (no value for its signals) resolves after
    the quiet cycles saying it had no value: its signals were not "back in their bands"."""
    observer = _observer(for_cycles=3)
    _run(observer, [_steady(i) for i in range(WARM)])
    opened = _run(observer, [_steady(i, a=0.9) for i in range(WARM, WARM + 5)], WARM)
    assert any(alert.annotations.get("signal") == "a" for alert in opened[-1].alerts)
    down = _run(observer, [{APP: _steady(i)[APP]} for i in range(WARM + 5, WARM + 60)], WARM + 5)
    ended = [a.annotations["ended"] for r in down for a in r.alerts if "ended" in a.annotations]
    assert len(ended) == 1 and ended[0].startswith("no value:"), ended


def test_a_band_of_one_value_reads_as_that_value() -> None:
    """A band whose two ends print alike reads "expected 0", not "expected 0 to 0"."""
    from deucalion.presets.incidents import words

    [top] = [m for m in _moved_once() if m.name == "a"]
    flat = dataclasses.replace(top, lower=0.0, upper=0.0)
    summary, _ = words(NODE, flat, "2026-12-07T00:00:00+00:00", [])
    assert ", expected 0, since" in summary, summary
    summary, _ = words(NODE, dataclasses.replace(top, lower=0.0, upper=0.5), "now", [])
    assert ", expected 0 to 0.5, since" in summary, summary


def _moved_once() -> list[Any]:
    observer = _observer(for_cycles=3)
    _run(observer, [_steady(i) for i in range(WARM)])
    values = {("a", NODE, "{}"): 0.9, ("b", NODE, "{}"): 0.3}
    return observer.score(values, T0 + WARM)


def test_a_score_past_meaning_reads_as_over_30() -> None:
    """A score is "once in 10^score points": a far spike's extrapolated tail scores thousands
    ("score 3.69e+03" in a latency regression's alert, a number an operator compares and
    that means nothing more than 30); past 30 it reads "over 30", under it as it is."""
    from deucalion.presets.incidents import words

    [top] = [m for m in _moved_once() if m.name == "a"]
    _, far = words(NODE, dataclasses.replace(top, score=3688.5), "now", [])
    _, near = words(NODE, dataclasses.replace(top, score=5.25), "now", [])
    assert "score over 30)" in far and "3.69e+03" not in far, far
    assert "score 5.25)" in near, near


def test_a_time_to_full_reads_as_a_duration() -> None:
    """A signal in seconds reads as a duration: "is 3.9 h, expected 7 days", not the walk's
    "is 1.39e+04 seconds, expected 6.048e+05"; its annotations keep the numbers."""
    from deucalion.presets.incidents import words

    [top] = [m for m in _moved_once() if m.name == "a"]
    seconds = dataclasses.replace(top.signal, unit="seconds")
    full = dataclasses.replace(
        top, signal=seconds, value=13_900.0, lower=604_800.0, upper=604_800.0
    )
    summary, _ = words(NODE, full, "now", [])
    assert " is 3.9 h, expected 7 days, since now" in summary, summary
    soon = dataclasses.replace(full, value=1_500.0, lower=86_400.0, upper=604_800.0)
    summary, _ = words(NODE, soon, "now", [])
    assert " is 25 min, expected 24 h to 7 days," in summary, summary
