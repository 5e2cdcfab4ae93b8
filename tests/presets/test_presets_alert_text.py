"""A preset alert's text (issue 27, issue 26 item 5): its summary names the target (only the
``instance`` label did) and an annotation names the anomaly kind of the signal that moved most,
the detector's component, beside the labels and annotations it had."""

from __future__ import annotations

from deucalion.detectors.anomaly import KINDS
from tests.presets.test_presets import NODE, WARM, _observer, _run, _steady


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
