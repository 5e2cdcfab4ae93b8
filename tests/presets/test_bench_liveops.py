"""bench_liveops' scoring of a backtest: detections and their delay, false alerts in ordinary
cycles, at most one alert per incident, and alerts that carry what issue 27 asks."""

from __future__ import annotations

from typing import Any

from benchmarks.bench_liveops import WARMUP_CYCLES, evaluate

NODE = "http://node/metrics"
T0 = 1_000_000.0
INCIDENTS = [
    {"kind": "cpu_saturation", "target": NODE, "start": T0 + 1000, "end": T0 + 1120},
    {"kind": "memory_hog", "target": NODE, "start": T0 + 2000, "end": T0 + 2120},
    {"kind": "error_burst", "target": "http://app/metrics", "start": T0 + 2500, "end": T0 + 2620},
]


def _alert(start: float, **labels: str) -> dict[str, Any]:
    full = {"severity": "warning", "preset": "node-exporter", "signal": "cpu_pressure", **labels}
    notes = {
        "signal": "cpu_pressure",
        "value": "0.9",
        "expected_lower": "0",
        "expected_upper": "0.1",
        "started": "2001-09-09T01:46:40+00:00",
        "signals": "x",
    }
    return {"target": NODE, "start": T0 + start, "labels": full, "annotations": notes}


def test_detections_false_alerts_and_one_alert_per_incident() -> None:
    alerts = [_alert(1006), _alert(1500), _alert(100)]  # the one at 100 s is in the warmup
    result = evaluate(alerts, INCIDENTS, NODE, 1.0, T0, T0 + 4000)
    assert [(d["kind"], d["detected"], d["cycles"]) for d in result["incidents"]] == [
        ("cpu_saturation", True, 6),
        ("memory_hog", False, None),
    ]
    assert result["of"] == 2 and result["median_cycles_to_detect"] == 6
    assert result["false_alerts"] == 1  # 1500 s: outside every window, after the warmup
    windows = 120 + 60 + 120 + 60 + 120 + 60
    assert result["ordinary_cycles"] == 4000 - WARMUP_CYCLES - windows
    assert result["at_most_one_alert_per_incident"] and result["alerts_complete"]


def test_a_second_alert_in_an_incident_or_a_missing_label_is_reported() -> None:
    twice = evaluate([_alert(1006), _alert(1100)], INCIDENTS, NODE, 1.0, T0, T0 + 4000)
    assert not twice["at_most_one_alert_per_incident"]
    unlabelled = evaluate([_alert(1006, signal="")], INCIDENTS, NODE, 1.0, T0, T0 + 4000)
    assert not unlabelled["alerts_complete"]


def test_an_alert_resolved_before_its_incident_ended_is_reported() -> None:
    """The alert that found an incident either still fired at its end (and resolved some cycles
    after) or resolved before: an incident's lifetime, not the detector's adapting, ends it."""
    early = {**_alert(1006), "end": T0 + 1050}
    lasting = {**_alert(2010), "end": T0 + 2150}
    result = evaluate([early, lasting], INCIDENTS, NODE, 1.0, T0, T0 + 4000)
    assert [(d["lasted"], d["resolved_after_end"]) for d in result["incidents"]] == [
        (False, -70),
        (True, 30),
    ]
    assert result["alerts_lasting_their_incident"] == 1
    assert result["incidents_with_one_alert"] == 2


def test_the_diagnosis_replays_each_cycle_and_ranks_the_series_by_their_highest_score() -> None:
    """liveops_diagnose's replay judges every signal series each cycle (one entry per cycle,
    one alert per incident), and its table names each series with its highest score."""
    from benchmarks.liveops_diagnose import _series_table, replay

    cycles = []
    for i in range(60):
        cpu = {f'{{cpu="0",mode="{mode}"}}': 0.5 * i for mode in ("idle", "user")}
        data = {
            NODE: {
                "node_cpu_seconds_total": cpu,
                "node_procs_running": {"{}": 2.0},
                "up": {"{}": 1.0},
            }
        }
        cycles.append((T0 + i, {NODE: T0 + i}, data))
    run = replay("node-exporter", cycles)
    assert len(run["judged"]) == len(run["times"]) == 60
    assert run["alerts"] == []  # a steady machine
    table = _series_table(run, 10, 60, show=5)
    assert sorted(line.split()[0] for line in table) == ["cpu_busy", "runnable_per_core"]
    tops = [float(line.split()[2]) for line in table]
    assert tops == sorted(tops, reverse=True)
