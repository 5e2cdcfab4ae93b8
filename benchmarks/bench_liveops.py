"""Presets on a recording of real services under ordinary load with labelled incidents.

The recording (``benchmarks/liveops_harness.py record``) holds a real node_exporter and a real
instrumented aiohttp service, scraped every second for over an hour under varying load, with
seven real incidents injected (CPU burn, memory hog, disk write storm, loopback network flood,
fork storm, latency regression, error burst); ``benchmarks/liveops/incidents.json`` holds their
windows. Each preset is backtested on it, unchanged, beside a plain observer (the library's
``DetectorObserver`` with its default detector over every raw series of the same metrics: what
a user watching raw series would run), and measured:

- every incident of the preset's target detected, and the time to detection in cycles (the
  first alert starting inside the incident's window);
- at most one alert per incident (alerts starting in its window and its minute after), and
  whether the alert that found it was still firing when the incident ended (an incident's
  lifetime: it resolves when the incident is over, not when the detector has adapted), and how
  many cycles after the end it resolved;
- false alerts per target per 10,000 cycles of ordinary load (alerts starting outside every
  incident's window and its minute after, once the detectors have warmed up);
- cost: CPU per cycle of ``new_data`` and the PSS of a process that runs the observer over the
  recording, preset and plain observer side by side.

    DEUCALION_LIVEOPS=/work/recordings/liveops python -m benchmarks bench_liveops
    DEUCALION_LIVEOPS=/work/recordings/liveops:/work/recordings/liveops2 python -m benchmarks ...

(several recordings, ``:``-separated: each is backtested, the first one's figures are the ones
the README shows and the only one the cost is measured on). Why an incident was found late or
missed, or what raised a false alert: ``python -m benchmarks.liveops_diagnose DIR``.

The recording directory holds ``recording.om.gz`` and ``incidents.json``; without one, the
benchmark says how to make it. The machine is shared and loaded while it records and replays:
the figures are noisy, and the recording's "ordinary load" is whatever the machine did then.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import table

HERE = Path(__file__).resolve().parent
#: The labels and run description committed with the benchmark.
DATA = HERE / "liveops"
#: Seconds after an incident's end during which an alert still belongs to it (recovery).
GRACE = 60.0
#: Cycles the default detector learns before it scores (AnomalyDetector's warmup).
WARMUP_CYCLES = 300
#: Which target each preset is for.
PRESET_TARGET = {"node-exporter": "node", "http-service": "http"}


def _recording_dirs() -> list[Path]:
    """The recordings' directories: ``DEUCALION_LIVEOPS``, several separated by ``:`` (the
    first is the one the README reports and the cost is measured on)."""
    given = os.environ.get("DEUCALION_LIVEOPS", str(DATA))
    return [Path(p) for p in given.split(os.pathsep) if p]


def _observer(kind: str, preset: str) -> Any:
    from deucalion.presets import preset_observer

    if kind == "preset":
        return preset_observer(preset)
    from deucalion.detectors import DetectorObserver

    metrics = preset_observer(preset).desired_metrics - {"up"}
    observer = DetectorObserver(desired_metrics=metrics)
    observer.observer_name = f"plain-{preset}"
    return observer


def evaluate(
    alerts: list[dict[str, Any]],
    incidents: list[dict[str, Any]],
    target: str,
    interval: float,
    first: float,
    last: float,
    scores: dict[str, list[tuple[float, float]]] | None = None,
) -> dict[str, Any]:
    """Detections, times to detection and false alerts of ``alerts`` on ``target``; for each
    incident, the highest score of a series of the target during it (``scores``: a backtest's
    per series), so a miss shows how far it was."""
    mine = sorted((a for a in alerts if a["target"] == target), key=lambda a: a["start"])
    windows = [(i["start"], i["end"] + GRACE) for i in incidents]
    detections = []
    for incident in incidents:
        if incident["target"] != target:
            continue
        hit = next((a for a in mine if incident["start"] <= a["start"] <= incident["end"]), None)
        during = [a for a in mine if incident["start"] <= a["start"] <= incident["end"] + GRACE]
        end = None if hit is None else hit.get("end")
        detections.append(
            {
                # Issue 27: at most one alert per target per incident.
                "alerts": len(during),
                # The alert that found it still firing at the incident's end (None: not found),
                # and the cycles from the incident's end to its resolution (None: still open).
                "lasted": None if hit is None else end is None or end >= incident["end"],
                "resolved_after_end": None
                if hit is None or end is None
                else round((end - incident["end"]) / interval),
                "kind": incident["kind"],
                "detected": hit is not None,
                "cycles": None
                if hit is None
                else round((hit["start"] - incident["start"]) / interval),
                "signal": None
                if hit is None
                else hit["labels"].get("signal", hit["labels"].get("metric")),
                "named": None if hit is None else hit["annotations"].get("signals", ""),
                "highest_score": _highest(scores or {}, target, incident["start"], incident["end"]),
            }
        )
    scored_from = first + WARMUP_CYCLES * interval
    false = [
        a
        for a in mine
        if a["start"] >= scored_from and not any(lo <= a["start"] <= hi for lo, hi in windows)
    ]
    inside = sum(max(0.0, min(hi, last) - max(lo, scored_from)) for lo, hi in windows)
    ordinary = max(0.0, last - scored_from - inside) / interval
    ttd = [d["cycles"] for d in detections if d["detected"]]
    return {
        "at_most_one_alert_per_incident": all(d["alerts"] <= 1 for d in detections),
        "incidents_with_one_alert": sum(d["alerts"] == 1 for d in detections),
        "alerts_lasting_their_incident": sum(bool(d["lasted"]) for d in detections),
        # Labels that route (severity, preset, signal) and the annotations an operator reads.
        "alerts_complete": all(_complete(a) for a in mine),
        "incidents": detections,
        "detected": sum(d["detected"] for d in detections),
        "of": len(detections),
        "median_cycles_to_detect": statistics.median(ttd) if ttd else None,
        "alerts": len(mine),
        "false_alerts": len(false),
        "false_signals": [a["labels"].get("signal", a["labels"].get("metric")) for a in false],
        "ordinary_cycles": round(ordinary),
        "false_per_10k_cycles": round(len(false) / ordinary * 10_000, 2) if ordinary else None,
    }


#: What every preset alert carries (issue 27, "alerts worth reading").
ALERT_LABELS = ("severity", "preset", "signal")
ALERT_ANNOTATIONS = ("signal", "value", "expected_lower", "expected_upper", "started")


def _complete(alert: dict[str, Any]) -> bool:
    if "preset" not in alert["labels"]:
        return True  # a plain observer's alert: not a preset's
    return all(alert["labels"].get(k) for k in ALERT_LABELS) and all(
        alert["annotations"].get(k) for k in ALERT_ANNOTATIONS
    )


def _highest(
    scores: dict[str, list[tuple[float, float]]], target: str, start: float, end: float
) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for name, points in scores.items():
        if not name.startswith(target + " "):
            continue
        for when, score in points:
            if start <= when <= end and (best is None or score > best[1]):
                best = (name.partition(" ")[2], round(score, 2))
    return best


def backtest_one(kind: str, preset: str, recording: Path) -> tuple[list[dict[str, Any]], Any]:
    from deucalion.replay.backtesting import backtest

    result = backtest(_observer(kind, preset), str(recording), progress=False, keep_scores=True)
    alerts = [
        {
            "target": a.target,
            "start": a.start,
            "end": a.end,
            "labels": a.labels,
            "annotations": a.annotations,
        }
        for a in result.alerts
    ]
    return alerts, result


def cost(kind: str, preset: str, recording: Path, target: str, cycles: int) -> dict[str, float]:
    """CPU per new_data call and the process's PSS, feeding ``cycles`` recorded cycles of
    ``target`` to the observer in this process (run it in a fresh one)."""
    import asyncio

    from deucalion.exposition.naming import family_selects
    from deucalion.observer import handing_data
    from deucalion.replay.recording import RecordingSource

    observer = _observer(kind, preset)
    desired = observer.desired_metrics
    times: list[float] = []

    async def feed() -> None:
        source = RecordingSource(recording)
        async for cycle in source.cycles(metrics=observer.desired_metrics):
            samples = cycle.samples.get(target, {})
            # As live: the synthetic up only for an observer that desires it.
            data = {target: {m: s for m, s in samples.items() if family_selects(desired, m)}}
            with handing_data(cycle.time, cycle.target_times):
                started = time.process_time()
                observer.new_data(data)
                times.append(time.process_time() - started)
            if len(times) >= cycles:
                break

    asyncio.run(feed())
    pss = 0
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    steady = times[WARMUP_CYCLES:] or times
    return {
        "cycles": len(times),
        "cpu_ms_median": statistics.median(steady) * 1000,
        "cpu_ms_mean": statistics.fmean(steady) * 1000,
        "pss_mb": pss / 1e6,
    }


def _cost_in_subprocess(
    kind: str, preset: str, recording: Path, target: str, cycles: int
) -> dict[str, float]:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_liveops",
            "cost",
            kind,
            preset,
            str(recording),
            target,
            str(cycles),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main(quick: bool = False) -> dict[str, Any]:
    """Backtest both presets and their plain observers on each recording; measure their cost
    on the first."""
    places = _recording_dirs()
    recording = places[0] / "recording.om.gz"
    if not recording.is_file():
        note = (
            f"no recording at {recording}: make one with `python -m "
            "benchmarks.liveops_harness record --out DIR` (67 minutes), then run "
            "`DEUCALION_LIVEOPS=DIR python -m benchmarks bench_liveops`"
        )
        return {"markdown": f"## bench_liveops\n\nnot run: {note}\n", "skipped": note}
    out = on_recording(places[0], quick=quick, measure_cost=True)
    out["other_recordings"] = [
        on_recording(where, quick=quick, measure_cost=False)
        for where in places[1:]
        if (where / "recording.om.gz").is_file()
    ]
    out["markdown"] = "\n".join(
        _markdown(r, first=i == 0) for i, r in enumerate([out, *out["other_recordings"]])
    )
    return out


def on_recording(where: Path, *, quick: bool, measure_cost: bool) -> dict[str, Any]:
    """Both presets (and, unless ``quick``, their plain observers) backtested on the recording
    in ``where``."""
    recording = where / "recording.om.gz"
    run = json.loads((where / "run.json").read_text())
    incidents = json.loads((where / "incidents.json").read_text())
    targets: dict[str, str] = run["targets"]
    interval = 1.0
    out: dict[str, Any] = {
        "recording": str(recording),
        "incidents": incidents,
        "seed": run.get("seed", 0),
        "presets": {},
    }
    for preset, which in PRESET_TARGET.items():
        target = targets[which]
        entry: dict[str, Any] = {}
        for kind in ("preset", "plain"):
            if quick and kind == "plain":
                continue
            started = time.monotonic()
            alerts, result = backtest_one(kind, preset, recording)
            first, last = result.first_time, result.last_time
            entry[kind] = evaluate(alerts, incidents, target, interval, first, last, result.scores)
            entry[kind]["threshold"] = getattr(
                getattr(_observer(kind, preset), "detector", None), "threshold", None
            )
            entry[kind]["backtest_seconds"] = round(time.monotonic() - started, 1)
            entry[kind]["steps"] = result.steps
            entry[kind]["alert_list"] = [
                {
                    "start": a["start"],
                    "target": a["target"],
                    "labels": a["labels"],
                    "summary": a["annotations"].get("summary", ""),
                }
                for a in alerts
            ]
            if measure_cost:
                entry[kind]["cost"] = _cost_in_subprocess(
                    kind, preset, recording, target, 600 if quick else 1800
                )
        out["presets"][preset] = entry
    return out


def _markdown(out: dict[str, Any], *, first: bool = True) -> str:
    rows = []
    for preset, entry in out["presets"].items():
        for kind, r in entry.items():
            missed = [d["kind"] for d in r["incidents"] if not d["detected"]]
            cost = r.get("cost")
            rows.append(
                [
                    preset if kind == "preset" else f"plain observer, {preset} metrics",
                    f"{r['detected']}/{r['of']}"
                    + (f" (missed {', '.join(missed)})" if missed else ""),
                    r["median_cycles_to_detect"],
                    f"{r['false_alerts']} in {r['ordinary_cycles']} cycles "
                    f"({r['false_per_10k_cycles']} per 10,000)",
                    ("yes" if r.get("at_most_one_alert_per_incident") else "no")
                    + f" ({r.get('incidents_with_one_alert')} of {r['of']} with one)",
                    f"{r.get('alerts_lasting_their_incident')} of {r['of']}",
                    f"{cost['cpu_ms_median']:.2f}" if cost else "-",
                    f"{cost['pss_mb']:.0f}" if cost else "-",
                ]
            )
    order = ", ".join(i["kind"] for i in out["incidents"])
    lines = [
        ("## bench_liveops" if first else f"### bench_liveops, also on {out['recording']}"),
        "",
        "Presets backtested unchanged on a recording of a real node_exporter and a real "
        "instrumented aiohttp service (1 s scrapes, over an hour, seven injected "
        "incidents), beside a plain DetectorObserver over every raw series of the same "
        "metrics. Time to detection in cycles (median); false alerts outside the "
        "incidents' windows after the detectors' warmup; at most one alert per incident; "
        "incidents whose first alert still fired at their end; "
        "CPU per new_data call (median, ms) and PSS (MB) of a process running the "
        "observer over the recording.",
        "",
        f"Recording `{out['recording']}` (harness seed {out.get('seed', 0)}; incidents in "
        f"this order: {order}).",
        "",
        table(
            [
                "observer",
                "incidents detected",
                "cycles to detect",
                "false alerts",
                "<= 1 alert per incident",
                "alert lasts the incident",
                "CPU ms/cycle",
                "PSS MB",
            ],
            rows,
        ),
    ]
    for preset, entry in out["presets"].items():
        for d in entry["preset"]["incidents"]:
            best = d["highest_score"]
            lasted = d.get("lasted")
            ended = d.get("resolved_after_end")
            lines.append(
                f"- {preset}, {d['kind']}: "
                + (
                    f"detected after {d['cycles']} cycles by {d['signal']} "
                    f"(with: {d['named']}); {d['alerts']} alert(s); the first "
                    + (
                        "still open at the recording's end"
                        if ended is None
                        else f"resolved {ended} cycles after its end"
                        if lasted
                        else f"resolved {-ended} cycles before its end"
                    )
                    if d["detected"]
                    else "not detected"
                    + (
                        f" (highest score {best[1]} of {best[0]}, "
                        f"threshold {entry['preset']['threshold']:.2f})"
                        if best
                        else ""
                    )
                )
            )
    return "\n".join(lines) + "\n"


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_liveops")
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("cost")
    c.add_argument("kind", choices=("preset", "plain"))
    c.add_argument("preset")
    c.add_argument("recording", type=Path)
    c.add_argument("target")
    c.add_argument("cycles", type=int)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "cost":
        print(json.dumps(cost(args.kind, args.preset, args.recording, args.target, args.cycles)))
        return 0
    result = main(quick=args.quick)
    print(result["markdown"])
    Path(os.environ.get("DEUCALION_LIVEOPS_OUT", "/dev/null")).write_text(
        json.dumps({k: v for k, v in result.items() if k != "markdown"}, indent=1, default=str)
    )
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
