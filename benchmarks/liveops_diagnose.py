"""Why a preset finds, misses or falsely alerts on a liveops recording: a development aid.

``python -m benchmarks.liveops_diagnose [--preset node-exporter] RECORDING_DIR ...`` replays
each recording's target of the preset through ``PresetObserver.new_data`` in this process (as
``bench_liveops`` does, without the backtest's worker), and prints:

- every alert: when it opened and ended (in cycles from the recording's start), the incident
  it belongs to or ``FALSE``, the signal that opened it, the members and how it ended;
- per incident: per signal series, the cycle (from the incident's start) it first scored at
  the threshold, first moved past its floors (``held >= 1``), its highest fresh score and its
  value against the band it had before the incident (so a miss shows which rule held it back);
- per false alert: the same for the minute around it.

The target's raw samples are cached in ``--cache`` (pickled, owner-only) on first read, so a
second run costs only the detector. Nothing here chooses anything.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_liveops import GRACE, PRESET_TARGET, WARMUP_CYCLES

#: Families cached beyond what the preset desires: what a changed preset might read.
EXTRA_FAMILIES = (
    "node_procs_blocked",
    "node_load5",
    "node_load15",
    "node_schedstat_running_seconds_total",
    "node_schedstat_waiting_seconds_total",
    "node_pressure_cpu_stalled_seconds_total",
    "node_pressure_memory_stalled_seconds_total",
    "node_pressure_io_stalled_seconds_total",
    "node_memory_MemFree_bytes",
    "node_memory_Cached_bytes",
    "node_memory_Committed_AS_bytes",
    "node_memory_Active_anon_bytes",
    "node_vmstat_pgfault",
    "node_vmstat_oom_kill",
    "node_netstat_Tcp_OutSegs",
    "node_netstat_Tcp_InSegs",
    "node_netstat_TcpExt_ListenDrops",
    "node_sockstat_TCP_inuse",
)


def load_cycles(where: Path, target_role: str, desired: set[str], cache: Path) -> list[Any]:
    """The recording's cycles of its ``target_role`` target: ``[(time, target_times, data)]``."""
    from deucalion.replay.recording import RecordingSource

    run = json.loads((where / "run.json").read_text())
    target = run["targets"][target_role]
    wanted = sorted(desired | set(EXTRA_FAMILIES))
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
    name = f"{where.name}-{target_role}-{digest}.pickle"
    path = cache / name
    if path.is_file():
        with path.open("rb") as f:
            cycles: list[Any] = pickle.load(f)
        return cycles
    cycles = []

    async def read() -> None:
        source = RecordingSource(where / "recording.om.gz")
        async for cycle in source.cycles(metrics=wanted):
            samples = cycle.samples.get(target)
            if samples is None:
                continue
            cycles.append((cycle.time, dict(cycle.target_times), {target: samples}))

    asyncio.run(read())
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(cycles, f)
    return cycles


def replay(preset: str, cycles: list[Any], **options: Any) -> dict[str, Any]:
    """Feed ``cycles`` to a fresh preset observer; record every judged series and alert."""
    from deucalion.observer import handing_data
    from deucalion.presets import preset_observer

    observer = preset_observer(preset, **options)
    desired = observer.desired_metrics
    judged: list[dict[tuple[str, str, str], Any]] = []
    original = observer.score

    def score(values: Any, now: float) -> Any:
        items = original(values, now)
        judged.append({item.key: item for item in items})
        return items

    observer.score = score  # type: ignore[method-assign]
    alerts: dict[tuple[str, str], dict[str, Any]] = {}
    times = []
    began = time.process_time()
    for when, target_times, data in cycles:
        data = {t: {m: s for m, s in d.items() if m in desired} for t, d in data.items()}
        before = len(judged)
        with handing_data(when, target_times):
            out = observer.new_data(data)
        if len(judged) == before:
            judged.append({})
        times.append(when)
        for alert in out.alerts:
            key = (alert.target, alert.annotations["started"])
            entry = alerts.setdefault(
                key,
                {
                    "start": when,
                    "opened": when,
                    "labels": dict(alert.labels),
                },
            )
            entry["end"] = when
            entry["annotations"] = dict(alert.annotations)
    return {
        "times": times,
        "judged": judged,
        "alerts": sorted(alerts.values(), key=lambda a: a["start"]),
        "threshold": observer.detector.threshold,
        "cpu_seconds": time.process_time() - began,
    }


def _cycle_of(times: list[float], when: float) -> int:
    import bisect

    return bisect.bisect_left(times, when)


def _series_table(run: dict[str, Any], lo: int, hi: int, show: int) -> list[str]:
    """Per series, between cycles ``lo`` and ``hi``: first at threshold, first moving, top."""
    threshold = run["threshold"]
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for i in range(max(0, lo), min(hi, len(run["judged"]))):
        for key, item in run["judged"][i].items():
            row = rows.setdefault(key, {"scored": None, "moved": None, "top": -1.0, "at": None})
            if row["scored"] is None and item.fresh >= threshold:
                row["scored"] = i - lo
            if row["moved"] is None and item.held >= 1:
                row["moved"] = i - lo
            if item.fresh > row["top"]:
                row["top"] = item.fresh
                row["at"] = (i - lo, item.value, item.lower, item.upper, item.kind)
    ranked = sorted(rows.items(), key=lambda kv: -kv[1]["top"])[:show]
    lines = []
    for key, row in ranked:
        name = key[0] + ("" if key[2] == "{}" else key[2])
        at, value, lower, upper, kind = row["at"]
        lines.append(
            f"    {name:42s} top {row['top']:5.2f} @{at:<5d} value {value:<10.4g} band "
            f"{lower:.4g}..{upper:.4g} {kind:11s} first>=thr {row['scored']} moved {row['moved']}"
        )
    return lines


def diagnose(where: Path, preset: str, cache: Path, show: int, **options: Any) -> None:
    from deucalion.presets import preset_observer

    role = PRESET_TARGET[preset]
    every = json.loads((where / "incidents.json").read_text())
    target = json.loads((where / "run.json").read_text())["targets"][role]
    incidents = [i for i in every if i["target"] == target]
    desired = set(preset_observer(preset).desired_metrics)
    started = time.monotonic()
    cycles = load_cycles(where, role, desired, cache)
    loaded = time.monotonic() - started
    run = replay(preset, cycles, **options)
    times = run["times"]
    first = times[0]
    print(
        f"\n=== {where} ({preset}): {len(times)} cycles, threshold {run['threshold']:.2f}, "
        f"read in {loaded:.0f} s, replayed in {run['cpu_seconds']:.0f} s CPU"
    )
    # As bench_liveops: an alert in any incident's window (another target's too) is not false.
    windows = [(i["start"], i["end"] + GRACE, i["kind"]) for i in every]
    scored_from = first + WARMUP_CYCLES
    false = 0
    for alert in run["alerts"]:
        owner = next((k for lo, hi, k in windows if lo <= alert["start"] <= hi), None)
        if owner is None and alert["start"] >= scored_from:
            false += 1
        verdict = owner or ("FALSE" if alert["start"] >= scored_from else "warmup")
        a = alert["annotations"]
        c = _cycle_of(times, alert["start"])
        print(
            f"  alert @{c} ({time.strftime('%H:%M:%S', time.gmtime(alert['start']))}) "
            f"-> @{_cycle_of(times, alert['end'])} [{verdict}] opened by "
            f"{alert['labels']['signal']}; top {a['signal']}={a['value']} "
            f"({a['expected_lower']}..{a['expected_upper']}, {a['kind']}); "
            f"signals {a['signals']}; ended: {a.get('ended', 'open')}"
        )
        if verdict == "FALSE":
            print("\n".join(_series_table(run, c - 10, c + 5, show)))
    print(f"  false alerts: {false}")
    for incident in incidents:
        lo, hi = _cycle_of(times, incident["start"]), _cycle_of(times, incident["end"])
        hit = next(
            (a for a in run["alerts"] if incident["start"] <= a["start"] <= incident["end"]), None
        )
        found = "MISSED" if hit is None else f"found in {_cycle_of(times, hit['start']) - lo}"
        print(f"  incident {incident['kind']} @{lo}..{hi}: {found}")
        print("\n".join(_series_table(run, lo, hi, show)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.liveops_diagnose")
    parser.add_argument("recordings", nargs="+", type=Path)
    parser.add_argument("--preset", default="node-exporter")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/liveops-diagnose"))
    parser.add_argument("--show", type=int, default=8, help="series shown per window")
    parser.add_argument(
        "--set", action="append", default=[], help="NAME=VALUE: a constant of the preset observer"
    )
    parser.add_argument(
        "--signal", action="append", default=[], help="SIGNAL.FIELD=VALUE: a signal's floor..."
    )
    args = parser.parse_args(argv)
    import dataclasses
    import importlib

    from deucalion.presets import PRESETS, observer

    module = importlib.import_module(PRESETS[args.preset])
    for assignment in args.signal:
        name, _, value = assignment.partition("=")
        signal, _, field = name.partition(".")
        module.SIGNALS = tuple(
            dataclasses.replace(s, **{field: float(value)}) if s.name == signal else s
            for s in module.SIGNALS
        )

    for assignment in args.set:
        name, _, value = assignment.partition("=")
        where, _, name = name.rpartition(".")
        owner = importlib.import_module(f"deucalion.presets.{where}") if where else observer
        setattr(owner, name, type(getattr(owner, name))(value))
    for where in args.recordings:
        diagnose(where, args.preset, args.cache, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
