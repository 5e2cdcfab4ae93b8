"""README's figures, generated from ``benchmarks/results.json`` (and the soak's ``soak.json``).

README.md holds regions between ``<!-- results:begin NAME -->`` and ``<!-- results:end NAME -->``
lines; ``python -m benchmarks.report`` (``make results``) rewrites each region from the results
and leaves every other line of README alone, so the prose around the tables stays hand-written.
``tests/test_readme_results.py`` fails when a region and the results disagree.

Every figure names the run it comes from, with its date and machine, and a target is judged
here, from the figure, so a target the last run missed is printed as missed whatever the prose
says. A section this module does not know is not lost: when it carries ``readme_rows`` (a list
of ``{"what", "deucalion", "instead", "ratio", "target", "met"}``, ``met`` true, false or null)
its rows join the performance table; otherwise the table's notes name it and point to
``results.md``. A known section whose figures moved (a renamed key) gives a row saying the
figure is missing instead of failing the whole report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import HERE, RESULTS_JSON, median

README = HERE.parent / "README.md"
SOAK_JSON = HERE / "soak.json"

Results = Mapping[str, Any]

_REGION = re.compile(
    r"^<!-- results:begin (?P<name>[\w-]+) -->\n(?P<body>.*?)^<!-- results:end (?P=name) -->$",
    re.DOTALL | re.MULTILINE,
)


class ReadmeError(Exception):
    """README's generated regions are malformed or unknown."""


# --- formatting -------------------------------------------------------------------------------


def seconds(value: float) -> str:
    """A duration with three significant figures: ``0.179 ms``, ``120 ms``, ``14.4 s``."""
    if value >= 1:
        return f"{value:.3g} s"
    return f"{_sig(value * 1e3)} ms"


def millis(value: float) -> str:
    """Seconds as a bare number of milliseconds, three significant figures."""
    return _sig(value * 1e3)


def _sig(value: float) -> str:
    """Three significant figures (``0.179``, ``1.18``, ``17.0``, ``120``, ``14,447``)."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def times(ratio: float) -> str:
    """A ratio: ``14.5x``, ``120x``, ``1.27x``."""
    return f"{_sig(ratio)}x"


def mib(value: float) -> str:
    """Bytes as MB of 2**20, as the footprint benchmark counts them."""
    return f"{value / 2**20:.1f}"


def mega(value: float) -> str:
    """Bytes as MB of 10**6, as body sizes are given."""
    return f"{value / 1e6:.0f}"


# --- the performance table --------------------------------------------------------------------


@dataclass
class Row:
    """One line of the performance table; ``met`` None when the row has no target."""

    what: str
    deucalion: str
    instead: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    run: str = ""

    def cells(self, runs: Mapping[str, str]) -> list[str]:
        target = self.target
        if self.met is not None:
            target += ": met" if self.met else ": **missed**"
        return [
            self.what,
            self.deucalion,
            self.instead,
            self.ratio,
            target,
            runs.get(self.run, self.run),
        ]


def _parse_rows(parse: Results) -> Iterator[Row]:
    cases = parse["cases"]
    full = cases["node_exporter, full"]
    cold = parse["cold"]
    cold_ratio = cold["prometheus_client"] / cold["deucalion"]
    yield Row(
        f"parse node_exporter's output ({full['samples']} samples), everything",
        seconds(full["deucalion_s"]),
        f"prometheus_client {seconds(full['prometheus_client_s'])}",
        f"{times(full['ratio'])} (first parse in a fresh process: {times(cold_ratio)})",
        ">= 10x (>= 5x first parse)",
        full["ratio"] >= 10 and cold_ratio >= 5,
    )
    names, pattern = cases["node_exporter, 3 names"], cases["node_exporter, `node_.*`"]
    back = parse["back_to_back"]
    yield Row(
        "parse node_exporter's output, 3 metrics desired / `node_.*`",
        f"{millis(names['deucalion_s'])} / {seconds(pattern['deucalion_s'])}",
        f"prometheus_client {millis(names['prometheus_client_s'])} / "
        f"{seconds(pattern['prometheus_client_s'])} (full)",
        f"{times(names['ratio'])} / {times(pattern['ratio'])} (back to back, caches "
        f"warm: {times(back['prometheus_client'] / back['deucalion'])})",
        ">= 100x (3 metrics, interleaved)",
        names["ratio"] >= 100,
    )
    unsorted = cases["unsorted, varying label sets, full"]
    stamped = cases["3% timestamps, escapes, UTF-8, full"]
    yield Row(
        f"parse {unsorted['samples']:,} series with unsorted, varying label sets / "
        "timestamps, escapes and UTF-8",
        f"{millis(unsorted['deucalion_s'])} / {seconds(stamped['deucalion_s'])}",
        f"prometheus_client {millis(unsorted['prometheus_client_s'])} / "
        f"{seconds(stamped['prometheus_client_s'])}",
        f"{times(unsorted['ratio'])} / {times(stamped['ratio'])}",
        ">= 10x",
        min(unsorted["ratio"], stamped["ratio"]) >= 10,
    )
    om_full, om_names = cases["OpenMetrics, full"], cases["OpenMetrics, 3 names"]
    yield Row(
        f"parse {om_full['samples']:,} series of OpenMetrics, everything / 3 families desired",
        f"{millis(om_full['deucalion_s'])} / {seconds(om_names['deucalion_s'])}",
        f"prometheus_client's OpenMetrics parser {millis(om_full['prometheus_client_s'])}"
        f" / {seconds(om_names['prometheus_client_s'])}",
        f"{times(om_full['ratio'])} / {times(om_names['ratio'])}",
        ">= 10x",
        min(om_full["ratio"], om_names["ratio"]) >= 10,
    )
    modern = cases.get("OpenMetrics as clients write it, full")
    if modern is not None:
        modern_names = cases["OpenMetrics as clients write it, 3 names"]
        yield Row(
            f"parse {modern['samples']:,} samples of OpenMetrics as clients write it "
            "(histograms with exemplars and `_created`, summaries, `# UNIT`, info, "
            "stateset), everything / 3 families desired",
            f"{millis(modern['deucalion_s'])} / {seconds(modern_names['deucalion_s'])}",
            "prometheus_client's OpenMetrics parser "
            f"{millis(modern['prometheus_client_s'])} / "
            f"{seconds(modern_names['prometheus_client_s'])}",
            f"{times(modern['ratio'])} / {times(modern_names['ratio'])}",
            ">= 10x",
            modern["ratio"] >= 10,
        )
    churn = cases.get("label churn, every value new, full")
    colds = parse.get("cold_cases")
    if churn is not None and colds:
        firsts = " / ".join(times(c["ratio"]) for c in colds.values())
        yield Row(
            f"first parse: {churn['samples']:,} series whose label values are all new "
            "(label churn) / in a fresh process, " + " / ".join(colds),
            seconds(churn["deucalion_s"]),
            f"prometheus_client {seconds(churn['prometheus_client_s'])}",
            f"{times(churn['ratio'])} / {firsts}",
            ">= 5x",
            min([churn["ratio"], *(c["ratio"] for c in colds.values())]) >= 5,
        )
    setup = parse.get("selection_setup")
    if setup:
        yield Row(
            f"set up a selection of {setup['counts'][-1]:,.0f} names / regular expressions",
            f"{seconds(setup['names_s'][-1])} / {seconds(setup['patterns_s'][-1])}",
            "",
            "",
            "names < 100 ms, linear",
            setup["names_s"][-1] < 0.1,
        )
    large = cases["100,000 series, unsorted labels, full"]
    yield Row(
        f"parse {large['samples']:,} series (unsorted labels)",
        seconds(large["deucalion_s"]),
        f"prometheus_client {seconds(large['prometheus_client_s'])}",
        times(large["ratio"]),
        ">= 10x",
        large["ratio"] >= 10,
    )
    scaling = parse["scaling"]
    every, whole = scaling["seconds"]["all names"][-1], scaling["seconds"]["full"][-1]
    over = scaling["all_names_over_full_at_largest"]
    yield Row(
        f"desire every one of {scaling['names'][-1]:,} metric names of a "
        f"{scaling['sizes'][-1]:,}-series body",
        seconds(every),
        f"the full parse {seconds(whole)}",
        times(over),
        "<= 1.2x the full parse",
        over <= 1.2,
    )
    everything, two = parse["memory"]["all"], parse["memory"]["2 names"]
    yield Row(
        f"peak memory parsing a {everything['series']:,}-series "
        f"({mega(everything['body_bytes'])} MB) body, everything / 2 names",
        f"{mega(everything['peak_bytes'])} / {mega(two['peak_bytes'])} MB",
        f"body + result {mega(everything['body_bytes'] + everything['result_bytes'])} / "
        f"{mega(two['body_bytes'] + two['result_bytes'])} MB",
        f"{everything['ratio']:.2f}x / {two['ratio']:.2f}x",
        "<= 1.3x body + result",
        max(everything["ratio"], two["ratio"]) <= 1.3,
    )


def _cycle_rows(cycle: Results) -> Iterator[Row]:
    sizes = cycle["sizes"]
    at = sizes["200"]
    limit = cycle.get("target", {}).get("limit", 4.0)
    largest = max(sizes, key=int)
    extrapolated = " (extrapolated)" if at["baseline_extrapolated"] else ""
    yield Row(
        f"scrape cycle, 200 targets answering after {at['ideal_s'] * 1e3:.0f} ms",
        seconds(at["cycle_s"]),
        f"sequential `requests` + prometheus_client {seconds(at['baseline_s'])}{extrapolated}",
        f"{times(at['speedup_over_baseline'])} faster; {times(at['ratio_to_ideal'])} the "
        f"ideal ({int(largest):,} targets: {seconds(sizes[largest]['cycle_s'])}; growth "
        f"exponent {cycle['cycle_exponent']:.2f})",
        f"<= {limit:g}x ideal",
        at["ratio_to_ideal"] <= limit,
    )
    yield Row(
        "the same 200 targets, fetched by a bare aiohttp client (every body at once, "
        "nothing parsed or handed off): the floor",
        seconds(at["cycle_s"]),
        f"aiohttp alone {seconds(at['bare_fetch_s'])}",
        f"{times(at['cycle_s'] / at['bare_fetch_s'])} the floor",
    )
    observers = cycle["observers"]
    few, many = min(observers, key=int), max(observers, key=int)
    yield Row(
        f"{few} to {many} observers on 10 targets, cycle start to the last `new_data`",
        f"{millis(observers[few]['to_last_new_data_s'])} to "
        f"{seconds(observers[many]['to_last_new_data_s'])}",
        "",
        f"growth exponent {cycle['observer_exponent']:.2f}",
    )


def _dispatch_rows(dispatch: Results) -> Iterator[Row]:
    models = sorted(
        {key.split("/")[0] for key in dispatch if "/" in key}, key=lambda m: float(m.split()[0])
    )
    at = [dispatch[f"{m}/10000"] for m in models]
    target = dispatch.get("target", {})
    limit = target.get("limit_ms", 5.0)
    executor = [a["executor_s"] for a in at]
    independent = max(executor) < 2 * min(executor) + 1e-3
    yield Row(
        f"hand-off to an observer, 10,000 series, {' / '.join(models)} model",
        " / ".join(millis(v) for v in executor) + " ms",
        "a pool pickling the observer each call: "
        + " / ".join(millis(a["baseline_s"]) for a in at)
        + " ms",
        " / ".join(times(a["baseline_s"] / a["executor_s"]) for a in at),
        f"< {limit:g} ms, independent of model size",
        independent and max(executor) * 1e3 < limit,
    )
    small = [dispatch[f"{models[0]}/{n}"] for n in (10000, 100000)]
    if all(s.get("socket_pair_s") for s in small):
        yield Row(
            "hand-off, 10,000 / 100,000 series, against the socket-pair worker issue 12 "
            "replaced (recorded in a run of its own before its removal: not side by side)",
            " / ".join(millis(s["executor_s"]) for s in small) + " ms",
            "socket pair " + " / ".join(millis(s["socket_pair_s"]) for s in small) + " ms",
            " / ".join(_than(s["executor_s"], s["socket_pair_s"]) for s in small),
        )
    largest = dispatch[f"{models[0]}/100000"]
    yield Row(
        "hand-off of 100,000 series, series keys sent only when they change "
        "(`deucalion/dispatch/payload.py`)",
        seconds(largest["executor_s"]),
        f"the data dict as pickle carries it {seconds(largest['plain_pickle_s'])}",
        f"{times(largest['plain_pickle_s'] / largest['executor_s'])} faster",
    )


def _than(ours: float, theirs: float) -> str:
    """How our time compares with theirs: ``1.93x slower`` or ``1.28x faster``."""
    return f"{times(ours / theirs)} slower" if ours > theirs else f"{times(theirs / ours)} faster"


def _alert_rows(alert: Results) -> Iterator[Row]:
    if "skipped" in alert:
        yield Row("alert latency, anomaly to Alertmanager", f"not measured: {alert['skipped']}")
        return
    interval = alert["interval_s"]
    yield Row(
        f"alert latency, anomaly to Alertmanager ({interval:g} s interval, "
        f"{len(alert['latencies_s'])} anomalies)",
        f"median {alert['median_intervals']:.2f}, p99 {alert['p99_intervals']:.2f} "
        f"intervals ({alert['median_intervals'] * interval:.2f} / "
        f"{alert['p99_intervals'] * interval:.2f} s)",
    )


def _footprint_rows(footprint: Results) -> Iterator[Row]:
    cpu = footprint["cpu_per_cycle_s"]
    processes = sorted(footprint["processes"].values(), key=lambda p: p["name"])
    ratio = cpu["deucalion"] / cpu["prometheus"]
    parts = ", ".join(f"{p['name']} {p['cpu_per_cycle_s'] * 1e3:.2f}" for p in processes)
    yield Row(
        f"CPU per cycle, one node_exporter every 1 s for {footprint['duration_s']:.0f} s, "
        "every process",
        f"{millis(cpu['deucalion'])} ms ({parts})",
        f"Prometheus {millis(cpu['prometheus'])} ms; the original sidecar about 3 ms",
        times(ratio),
        "within 1.2x Prometheus",
        ratio <= 1.2,
    )
    pss = footprint["pss_bytes"]
    parts = ", ".join(f"{p['name']} {mib(p['pss'])}" for p in processes)
    yield Row(
        "memory, every process deucalion starts (peak)",
        f"{mib(pss['deucalion'])} MB PSS ({parts})",
        f"Prometheus {mib(pss['prometheus'])} MB PSS; the original sidecar about 70 MB",
        times(pss["deucalion"] / pss["prometheus"]),
        "< 64 MB PSS",
        pss["deucalion"] / 2**20 < 64,
    )


#: The sections the performance table knows, in its order, with the rows each gives.
PERFORMANCE: dict[str, Callable[[Results], Iterator[Row]]] = {
    "bench_parse": _parse_rows,
    "bench_cycle": _cycle_rows,
    "bench_dispatch": _dispatch_rows,
    "bench_alert_latency": _alert_rows,
    "bench_footprint": _footprint_rows,
}
#: Sections with a table elsewhere (README's Detection quality and presets, results.md only).
ELSEWHERE = {"bench_detection", "bench_liveops", "bench_history", "bench_replay"}


def _rows_of(name: str, section: Results) -> list[Row]:
    """The rows a section gives, or one row saying which figure the results lack."""
    rows: list[Row] = []
    try:
        if "error" in section:
            rows = [Row(f"`{name}`", "the last run failed: see `benchmarks/results.md`")]
        elif name in PERFORMANCE:
            rows.extend(PERFORMANCE[name](section))
        else:
            rows.extend(
                Row(
                    str(r.get("what", "")),
                    str(r.get("deucalion", "")),
                    str(r.get("instead", "")),
                    str(r.get("ratio", "")),
                    str(r.get("target", "")),
                    r.get("met"),
                )
                for r in section["readme_rows"]
            )
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError) as exc:
        rows = [
            Row(
                f"`{name}`",
                f"figure missing from its last run ({type(exc).__name__}: "
                f"{exc}); see `benchmarks/results.md`",
            )
        ]
    for row in rows:
        row.run = name
    return rows


def stamp(section: Results) -> str:
    """When and where a section was measured."""
    date = f"{section['date']} UTC" if "date" in section else "date not recorded"
    mode = "quick run" if section.get("quick") else "full run"
    machine = section.get("machine", "machine not recorded")
    return f"{date}, {mode}, {machine}"


def _when(section: Any) -> str:
    """A section's date alone, for a figure whose run the performance table lists."""
    if isinstance(section, Mapping) and "date" in section:
        return f"{section['date']} UTC"
    return "date not recorded"


def performance(results: Results) -> str:
    """The Performance table: what each known section (and any section giving readme_rows)
    measured, its target judged from the figure, and the runs' dates and machines."""
    rows: list[Row] = []
    for name in PERFORMANCE:
        if name in results:
            rows.extend(_rows_of(name, results[name]))
        else:
            rows.append(Row(f"`{name}`", "not measured: no such section in results.json", run=name))
    extra = [
        name
        for name in sorted(results)
        if name not in PERFORMANCE
        and isinstance(results[name], Mapping)
        and "readme_rows" in results[name]
    ]
    for name in extra:
        rows.extend(_rows_of(name, results[name]))
    used = [name for name in [*PERFORMANCE, *extra] if name in results]
    runs = {
        name: f"`{name}`, {str(results[name].get('date', '?')).split()[0]}"
        + (", quick" if results[name].get("quick") else "")
        for name in used
    }
    lines = ["| what | deucalion | instead | ratio | target | run |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row.cells(runs)) + " |" for row in rows]
    missed = [row.what for row in rows if row.met is False]
    lines += [
        "",
        "Targets missed in the last run: "
        + ("none." if not missed else f"{len(missed)} ({'; '.join(missed)})."),
    ]
    lines += [
        "",
        "Runs (each on this project's 2-core machine, shared with other work; the load "
        "average is the machine's at the end of the run):",
        "",
    ]
    lines += [f"- `{name}`: {stamp(results[name])}" for name in used]
    other = [
        name
        for name in sorted(results)
        if name not in PERFORMANCE and name not in ELSEWHERE and name not in extra
    ]
    if other:
        lines += [
            "",
            "In `results.json` but not tabled here (see `benchmarks/results.md`): "
            + ", ".join(f"`{name}` ({_when(results[name])})" for name in other)
            + ".",
        ]
    return "\n".join(lines) + "\n"


# --- where CPU and memory go --------------------------------------------------------------------


def costs(results: Results) -> str:
    """A cycle's CPU by part (bench_cycle) and the RSS each import adds (bench_footprint)."""
    lines = []
    cycle = results.get("bench_cycle", {})
    split = cycle.get("cpu_split_s") if isinstance(cycle, Mapping) else None
    if split:
        total = sum(split.values())
        parts = ", ".join(
            f"{part} {seconds(value)} ({value / total:.0%})"
            for part, value in sorted(split.items(), key=lambda kv: -kv[1])
        )
        lines.append(
            f"A cycle's CPU, by part (one node_exporter, cycles back to back; "
            f"`bench_cycle`, {_when(cycle)}): {parts}."
        )
    footprint = results.get("bench_footprint", {})
    for key, whose in (
        ("import_rss_mb", "the application's"),
        ("worker_import_rss_mb", "an observer's worker's"),
    ):
        imports = footprint.get(key) if isinstance(footprint, Mapping) else None
        if imports:
            total = imports.get("total")
            parts = ", ".join(
                f"{name} {mb:.1f}"
                for name, mb in sorted(imports.items(), key=lambda kv: -kv[1])
                if name != "total" and mb >= 0.05
            )
            lines.append(
                f"The RSS each import adds to {whose} fresh interpreter, largest "
                f"first, in MB (`bench_footprint`, {_when(footprint)}): {parts}"
                + (f"; {total:.1f} in all." if total is not None else ".")
            )
    if not lines:
        return "No cycle or footprint results: run `make bench`.\n"
    return "\n\n".join(lines) + "\n"


# --- the detection quality tables (issue 26) ---------------------------------------------------

#: The detector issue 26's targets are judged on, as bench_detection names it.
DEFAULT_DETECTOR = "AnomalyDetector (default)"
#: Issue 26: NAB standard profile, cross-validated, at least this.
NAB_TARGET = 65.0
#: Issue 26: false alerts on normal data at most this many times the budget.
BUDGET_SLACK = 2.0
#: Issue 26: series-updates per CPU second, at least this.
SPEED_TARGET = 100_000
#: bench_detection's noise kinds, as README names them, in README's order.
NOISE_KINDS = {
    "gaussian": "Gaussian noise",
    "heavy": "heavy-tailed noise (t, 3)",
    "ticks": "counter ticks",
    "seasonal": "daily pattern and noise",
    "weekly": "weekly pattern and noise, from its second week",
}
#: Anomaly kinds in README's order (others follow as the results hold them).
ANOMALY_KINDS = ["spike", "level_shift", "variance", "seasonal", "stuck", "trend", "weekly"]


def verdict(met: bool) -> str:
    """A target judged: ``met`` or a bold ``**missed**``."""
    return "met" if met else "**missed**"


def _millions(per_s: float) -> str:
    """Updates per second in millions: ``0.42 million``, ``1.3 million``, ``316 million``."""
    value = per_s / 1e6
    return f"{value:,.0f} million" if value >= 10 else f"{value:.2g} million"


def _detection(results: Results) -> Mapping[str, Any] | None:
    detection = results.get("bench_detection")
    return detection if isinstance(detection, Mapping) else None


def _no_detection(detection: Mapping[str, Any] | None) -> str | None:
    """The sentence standing for a detection region whose run is absent or failed, if so."""
    if detection is None:
        return "No detection results: run `python -m benchmarks bench_detection`.\n"
    if "error" in detection:
        return (
            "The last `bench_detection` run failed: see `benchmarks/results.md` "
            f"({_when(detection)}).\n"
        )
    return None


def quality(results: Results) -> str:
    """The Detection quality table from bench_detection: NAB scores, speed, and issue 26's NAB
    and speed targets judged on the default detector."""
    detection = _detection(results)
    absent = _no_detection(detection)
    if absent is not None or detection is None:
        return absent or ""
    lines = [
        "| detector | NAB standard, cross-validated (in-sample) | low FP, CV | low FN, CV | "
        "windows found, false detections (standard, CV) | series-updates/s, one core |",
        "|---|---|---|---|---|---|",
    ]
    scored = [
        (name, figures)
        for name, figures in detection.items()
        if isinstance(figures, Mapping) and "nab" in figures
    ]

    def cv(figures: Mapping[str, Any], profile: str) -> float:
        nab = figures["nab"]
        return float(nab["cv"][profile]["score"] if "cv" in nab else nab["all"][profile])

    def standard(item: tuple[str, Mapping[str, Any]]) -> float:
        try:
            return -cv(item[1], "standard")
        except (KeyError, TypeError, ValueError):
            return 0.0

    for name, figures in sorted(scored, key=standard):
        try:
            whole = figures["nab"]["all"]
            held = figures["nab"].get("cv", {}).get("standard", {})
            found = (
                f"{held['detected']} of {held['windows']}, {held['false_positives']}"
                if "detected" in held
                else ""
            )
            speed = _millions(figures["series_per_s"])
            if "keyed_series_per_s" in figures:
                speed += f" ({_millions(figures['keyed_series_per_s'])} through a dict per cycle)"
            cells = [
                name,
                f"**{cv(figures, 'standard'):.1f}** ({whole['standard']:.1f})",
                f"{cv(figures, 'reward_low_FP_rate'):.1f}",
                f"{cv(figures, 'reward_low_FN_rate'):.1f}",
                found,
                speed,
            ]
        except (KeyError, TypeError) as exc:
            cells = [name, f"figure missing ({type(exc).__name__}: {exc})", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Targets (issue 26), judged on `AnomalyDetector()` from this run:", ""]
    default = detection.get(DEFAULT_DETECTOR)
    try:
        if not isinstance(default, Mapping):
            raise KeyError(DEFAULT_DETECTOR)
        nab = cv(default, "standard")
        lines.append(
            f"- NAB standard, cross-validated, >= {NAB_TARGET:g}: {nab:.1f}, "
            f"{verdict(nab >= NAB_TARGET)}."
        )
        speeds = [float(default["series_per_s"])]
        speeds += [float(default["keyed_series_per_s"])] if "keyed_series_per_s" in default else []
        lines.append(
            f"- >= {SPEED_TARGET:,} series-updates per CPU second (10,000 series, "
            f"one core; through a dict per cycle): "
            f"{' / '.join(_millions(v) for v in speeds)}, "
            f"{verdict(min(speeds) >= SPEED_TARGET)}."
        )
    except (KeyError, TypeError, ValueError) as exc:
        lines.append(f"- figure missing from the last run ({type(exc).__name__}: {exc}).")
    lines += ["", f"Run: `bench_detection`, {stamp(detection)}."]
    return "\n".join(lines) + "\n"


def _rate(value: float) -> str:
    """False alerts per 10,000 points: ``0.21``, ``1.34``, ``46.1``."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def false_alerts(results: Results) -> str:
    """False alerts per series per 10,000 points of normal data at each budget, per noise kind
    and on the real node_exporter recording, each judged against issue 26's 2x of the budget."""
    detection = _detection(results)
    absent = _no_detection(detection)
    if absent is not None or detection is None:
        return absent or ""
    try:
        noise: Mapping[str, Mapping[str, float]] = detection["budget"]
        budgets = sorted({b for rates in noise.values() for b in rates}, key=float)
        real = detection.get("real")
        rows: list[tuple[str, Mapping[str, float], Mapping[str, Any]]] = [
            (NOISE_KINDS.get(kind, kind), rates, {})
            for kind, rates in sorted(
                noise.items(),
                key=lambda kv: (
                    list(NOISE_KINDS).index(kv[0]) if kv[0] in NOISE_KINDS else len(NOISE_KINDS)
                ),
            )
        ]
        if isinstance(real, Mapping):
            whole = real["budgets"]
            # Judged on the series that moved: one that never does cannot alert, and counted
            # in, an idle node's constant series made the rate per series look a third of it.
            moved = "moving_series" in real
            rows.append(
                (
                    f"real node_exporter, {real['moving_series']} of its {real['series']} "
                    f"series that moved, {real['minutes']:.0f} min at "
                    f"{real['interval_s']:.0f} s"
                    if moved
                    else f"real node_exporter, {real['series']} series, "
                    f"{real['minutes']:.0f} min at {real['interval_s']:.0f} s",
                    {b: r["per_10k_moving" if moved else "per_10k"] for b, r in whole.items()},
                    {
                        b: {
                            "per_series_per_day": r["per_moving_series_per_day"],
                            "per_10k_second_half": r["per_10k_moving_second_half"],
                        }
                        if moved
                        else r
                        for b, r in whole.items()
                    },
                )
            )
        lines = [
            "| false alerts per series per 10,000 points | "
            + " | ".join(f"budget {b}" for b in budgets)
            + " |",
            "|---" * (len(budgets) + 1) + "|",
        ]
        missed: dict[str, list[str]] = {b: [] for b in budgets}
        for what, rates, details in rows:
            cells = [what]
            for budget in budgets:
                if budget not in rates:
                    cells.append("not measured")
                    continue
                rate, limit = float(rates[budget]), BUDGET_SLACK * float(budget)
                cell = _rate(rate)
                if rate > limit:
                    cell = f"**{cell}** (missed: {rate / float(budget):.1f}x)"
                    missed[budget].append(f"{_short(what)} {rate / float(budget):.1f}x")
                elif rate * BUDGET_SLACK < float(budget):
                    # Under: fewer false alerts than asked for, so less recall than it allows.
                    fewer = f"{float(budget) / rate:.1f}x fewer" if rate > 0 else "0 alerts"
                    cell = f"**{cell}** (under: {fewer})"
                    missed[budget].append(f"{_short(what)} {fewer}")
                detail = details.get(budget)
                if isinstance(detail, Mapping) and "per_series_per_day" in detail:
                    cell += f" ({detail['per_series_per_day']:.0f} a series a day"
                    if "per_10k_second_half" in detail:
                        cell += f"; {_rate(detail['per_10k_second_half'])} in the second half"
                    cell += ")"
                cells.append(cell)
            lines.append("| " + " | ".join(cells) + " |")
        judged = [
            f"budget {b} {verdict(not missed[b])}"
            + (f" ({', '.join(missed[b])})" if missed[b] else "")
            for b in budgets
        ]
        lines += [
            "",
            f"Target (issue 26): within {BUDGET_SLACK:g}x of the budget (over or under) on "
            "every noise kind and on the real recording: " + "; ".join(judged) + ".",
        ]
        first = detection.get("budget_first_week", {}).get("weekly")
        if isinstance(first, Mapping) and first:
            lines += [
                "",
                "In its first week a weekly series alerts "
                + ", ".join(f"{float(n):.1f} times at budget {b}" for b, n in first.items())
                + " (its first weekend is news to it, and the Monday after); the row above "
                "counts from its second week.",
            ]
        if isinstance(real, Mapping) and "moving_series" in real:
            lines += [
                "",
                f"Over all {real['series']} series of the recording (the "
                f"{real['series'] - real['moving_series']} that never moved cannot alert): "
                + ", ".join(
                    f"{_rate(r['per_10k'])} at budget {b}" for b, r in real["budgets"].items()
                )
                + " per series per 10,000 points.",
            ]
        if isinstance(real, Mapping) and isinstance(real.get("RangeDetector"), Mapping):
            other = real["RangeDetector"]
            lines += [
                "",
                "`RangeDetector` on the same recording: "
                f"{_rate(other['per_10k'])} per series per 10,000 points "
                f"({other['per_series_per_day']:.0f} a series a day).",
            ]
    except (KeyError, TypeError, ValueError) as exc:
        lines = [
            f"False alerts on noise: figure missing from the last run "
            f"({type(exc).__name__}: {exc}); see `benchmarks/results.md`."
        ]
    lines += ["", f"Run: `bench_detection`, {stamp(detection)}."]
    return "\n".join(lines) + "\n"


def _short(what: str) -> str:
    """A false-alert row's name for the verdict: ``heavy-tailed noise``, ``real node_exporter``."""
    return what.split(" (")[0].split(",")[0]


def recall(results: Results) -> str:
    """Recall per anomaly kind on synthetic series (with the false alerts before each), and
    the share of incidents injected into the real recording that were found."""
    detection = _detection(results)
    absent = _no_detection(detection)
    if absent is not None or detection is None:
        return absent or ""
    try:
        per_detector: Mapping[str, Mapping[str, Mapping[str, float]]] = detection["recall"]
        present = [k for k in ANOMALY_KINDS if any(k in v for v in per_detector.values())]
        present += sorted({k for v in per_detector.values() for k in v} - set(present))
        lines = [
            "| recall within 150 points (false alerts per 10,000 points before) | "
            + " | ".join(k.replace("_", " ") for k in present)
            + " |",
            "|---" * (len(present) + 1) + "|",
        ]
        for name, kinds in per_detector.items():
            label = "`AnomalyDetector()`" if name == DEFAULT_DETECTOR else f"`{name}`"
            cells = [label] + [
                f"{kinds[k]['recall']:.2f} ({kinds[k]['false_per_10k_before']:.1f})"
                if k in kinds
                else ""
                for k in present
            ]
            lines.append("| " + " | ".join(cells) + " |")
        default = per_detector.get(DEFAULT_DETECTOR, {})
        explained = [k for k in present if "named_its_kind" in default.get(k, {})]
        if explained:
            lines += [
                "",
                "Explained alerts: of `AnomalyDetector()`'s first alert within 150 points of "
                "each anomaly, the share named its kind, and the share whose observed value "
                "lies outside the expected band the alert gives: "
                + ", ".join(
                    f"{k.replace('_', ' ')} {default[k]['named_its_kind']:.2f} / "
                    f"{default[k]['outside_band']:.2f}"
                    for k in explained
                )
                + ".",
            ]
        injected = detection.get("real", {}).get("injected")
        if injected:
            found = ", ".join(
                f"{kind.replace('_', ' ')} {share:.2f}"
                for kind, share in sorted(injected.items(), key=lambda kv: _kind_order(kv[0]))
            )
            lines += [
                "",
                "Incidents injected into moving gauges of the real node_exporter "
                f"recording, share found by `AnomalyDetector()`: {found}.",
            ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        lines = [
            f"Recall: figure missing from the last run ({type(exc).__name__}: {exc}); "
            "see `benchmarks/results.md`."
        ]
    lines += ["", f"Run: `bench_detection`, {stamp(detection)}."]
    return "\n".join(lines) + "\n"


def _kind_order(kind: str) -> int:
    return ANOMALY_KINDS.index(kind) if kind in ANOMALY_KINDS else len(ANOMALY_KINDS)


# --- presets on a recording (issue 27) ----------------------------------------------------------

#: Issue 27: the median time to detection, in cycles, at most this.
DETECTION_CYCLES_TARGET = 10
#: Issue 27: false alerts per target per 10,000 cycles, at most this.
FALSE_ALERTS_TARGET = 1.0


def liveops(results: Results) -> str:
    """Each preset and a plain observer over the same metrics, backtested on the recording of
    real services with injected incidents (bench_liveops), and issue 27's targets judged on
    each preset."""
    section = results.get("bench_liveops")
    if not isinstance(section, Mapping):
        return "No preset results: run `python -m benchmarks bench_liveops`.\n"
    if "skipped" in section:
        return f"Not measured: {section['skipped']}.\n"
    if "error" in section:
        return (
            f"The last `bench_liveops` run failed: see `benchmarks/results.md` "
            f"({_when(section)}).\n"
        )
    lines = [
        "| observer | incidents detected | median cycles to detect | false alerts in "
        "ordinary cycles (per 10,000) | CPU per cycle | PSS |",
        "|---|---|---|---|---|---|",
    ]
    targets: list[str] = []
    # A second recording (bench_liveops' other_recordings) gets rows of its own, numbered by
    # its harness seed (recording N was made with seed N), else by its place in the run.
    recordings = [section, *section.get("other_recordings", [])]
    numbers = [r.get("seed") or n for n, r in enumerate(recordings, 1)]
    try:
        for n, recording in zip(numbers, recordings, strict=True):
            which = f", recording {n}" if len(recordings) > 1 else ""
            for preset, entry in recording["presets"].items():
                for kind, label in (
                    ("preset", f"`{preset}` preset{which}"),
                    ("plain", f"plain observer, same metrics{which}"),
                ):
                    if kind in entry:
                        lines.append(
                            "| "
                            + " | ".join([label, *_liveops_cells(entry[kind], kind == "preset")])
                            + " |"
                        )
                targets.append(_liveops_targets(preset, entry["preset"], which))
        for n, recording in zip(numbers, recordings, strict=True):
            incidents = recording.get("incidents", [])
            steps = next(iter(recording["presets"].values()))["preset"].get("steps")
            if steps:
                name = f"Recording {n}" if len(recordings) > 1 else "The recording"
                lines += [
                    "",
                    f"{name}: {steps:,} cycles at 1 s ({steps / 60:.0f} minutes), "
                    f"{len(incidents)} incidents injected ("
                    + ", ".join(i["kind"].replace("_", " ") for i in incidents)
                    + ").",
                ]
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        lines = [
            f"Presets: figure missing from the last run ({type(exc).__name__}: {exc}); "
            "see `benchmarks/results.md`."
        ]
    if len(recordings) > 1:
        try:
            targets += [
                _liveops_pooled(preset, [r["presets"][preset]["preset"] for r in recordings])
                for preset in section["presets"]
            ]
        except (KeyError, TypeError) as exc:
            targets.append(f"- pooled: figure missing from the last run ({exc})")
    if targets:
        lines += ["", "Targets (issue 27), judged on each preset from this run:", "", *targets]
    lines += ["", f"Run: `bench_liveops`, {stamp(section)}."]
    return "\n".join(lines) + "\n"


def _liveops_cells(result: Mapping[str, Any], detail: bool) -> list[str]:
    detected = f"{result['detected']} of {result['of']}"
    if detail:
        hits = [
            f"{d['kind'].replace('_', ' ')} in {d['cycles']} cycles"
            for d in result["incidents"]
            if d["detected"]
        ]
        misses = [d["kind"].replace("_", " ") for d in result["incidents"] if not d["detected"]]
        parts = hits + ([f"missed: {', '.join(misses)}"] if misses else [])
        detected += f" ({'; '.join(parts)})" if parts else ""
    ttd = result.get("median_cycles_to_detect")
    per = result.get("false_per_10k_cycles")
    cost = result.get("cost", {})
    return [
        detected,
        "none detected" if ttd is None else f"{ttd:g}",
        f"{result['false_alerts']} in {result['ordinary_cycles']:,}"
        + (f" ({per:.0f})" if per is not None else ""),
        f"{cost['cpu_ms_median']:.1f} ms" if "cpu_ms_median" in cost else "not measured",
        f"{cost['pss_mb']:.0f} MB" if "pss_mb" in cost else "not measured",
    ]


def _liveops_targets(
    preset: str, result: Mapping[str, Any], which: str = "", counted: str = ""
) -> str:
    every = result["detected"] == result["of"]
    ttd = result.get("median_cycles_to_detect")
    per = result.get("false_per_10k_cycles")
    fast = ttd is not None and ttd <= DETECTION_CYCLES_TARGET
    quiet = per is not None and per <= FALSE_ALERTS_TARGET
    return (
        f"- `{preset}`{which}: every incident detected {verdict(every)} "
        f"({result['detected']} of {result['of']}); median time to detection <= "
        f"{DETECTION_CYCLES_TARGET} cycles "
        f"{verdict(fast)} ({'none detected' if ttd is None else f'{ttd:g}'}); false alerts "
        f"<= {FALSE_ALERTS_TARGET:g} per target per 10,000 cycles {verdict(quiet)} "
        f"({counted}{'not measured' if per is None else f'{per:.1f}'})"
        + (
            ""
            if "incidents_with_one_alert" not in result
            else f"; at most one alert per incident "
            f"{verdict(bool(result.get('at_most_one_alert_per_incident')))} "
            f"({result['incidents_with_one_alert']} of {result['of']} with one)"
        )
        + "."
    )


def _liveops_pooled(preset: str, results: Sequence[Mapping[str, Any]]) -> str:
    """The targets judged on every recording at once: one recording's hour holds about 2,400
    ordinary cycles, too few to tell 1 false alert per 10,000 from 4."""
    cycles = [d["cycles"] for r in results for d in r["incidents"] if d["detected"]]
    false = sum(r["false_alerts"] for r in results)
    ordinary = sum(r["ordinary_cycles"] for r in results)
    pooled = {
        "detected": sum(r["detected"] for r in results),
        "of": sum(r["of"] for r in results),
        "median_cycles_to_detect": median(cycles) if cycles else None,
        "false_per_10k_cycles": 10_000 * false / ordinary if ordinary else None,
    }
    return _liveops_targets(
        preset,
        pooled,
        f", the {len(results)} recordings pooled",
        counted=f"{false} in {ordinary:,}: ",
    )


# --- the soak -----------------------------------------------------------------------------------


def soak(soak_results: Results | None) -> str:
    """What the last ``make soak`` saw, from soak.json."""
    if not soak_results or not soak_results.get("samples"):
        return "No soak recorded: run `make soak`.\n"
    samples = soak_results["samples"]
    verdicts = soak_results.get("verdicts", {})
    last = samples[-1]
    return (
        f"The last soak ran {soak_results['targets']} targets every "
        f"{soak_results['interval_s'] * 1e3:.0f} ms for {soak_results['seconds']:.0f} s "
        f"({stamp({**soak_results, 'quick': False})}): application RSS "
        f"{verdicts.get('application RSS MB (second third -> last third)', '?')} MB from the "
        f"second to the last third of the run, worker {verdicts.get('worker RSS MB', '?')} MB, "
        f"{_fds(verdicts)}; {last['cycles']:,} cycles, {last['overruns']:,} of them overran the "
        f"interval, {last['calls']:,} calls to the observer, {last['dropped']} dropped, "
        f"{last.get('restarts', 0)} worker restarts.\n"
    )


def _fds(verdicts: Mapping[str, Any]) -> str:
    """The soak's file-descriptor verdict, as the soak of the day words it."""
    if "open fds, most in the second third -> in the last third" in verdicts:
        return (
            f"open file descriptors, most in the second third -> in the last, "
            f"{verdicts['open fds, most in the second third -> in the last third']}"
        )
    return (
        f"{verdicts.get('fds after the first third', '?')} open file descriptors after the "
        "first third"
    )


# --- README -------------------------------------------------------------------------------------


def load(
    results_path: Path = RESULTS_JSON, soak_path: Path = SOAK_JSON
) -> tuple[Results, Results | None]:
    """The benchmark results and the soak's, as the files hold them."""
    results = json.loads(results_path.read_text())
    soak_results = json.loads(soak_path.read_text()) if soak_path.exists() else None
    return results, soak_results


def render(results: Results, soak_results: Results | None) -> dict[str, str]:
    """Every README region's generated text, by region name."""
    return {
        "performance": performance(results),
        "costs": costs(results),
        "quality": quality(results),
        "false-alerts": false_alerts(results),
        "recall": recall(results),
        "liveops": liveops(results),
        "soak": soak(soak_results),
    }


def regions(text: str) -> dict[str, str]:
    """The generated regions of a README's text, by name."""
    found: dict[str, str] = {}
    for match in _REGION.finditer(text):
        if match.group("name") in found:
            raise ReadmeError(f"README has two regions named {match.group('name')!r}")
        found[match.group("name")] = match.group("body")
    begins = re.findall(r"^<!-- results:begin ([\w-]+) -->$", text, re.MULTILINE)
    unclosed = [name for name in begins if name not in found]
    if unclosed:
        raise ReadmeError(
            f"README region(s) {', '.join(unclosed)} have no matching "
            "'<!-- results:end NAME -->' line"
        )
    return found


def update(text: str, rendered: Mapping[str, str]) -> str:
    """``text`` with each region's body replaced by its rendering."""
    present = regions(text)
    unknown = sorted(set(present) - set(rendered))
    if unknown:
        raise ReadmeError(
            f"README region(s) {', '.join(unknown)} are not generated by "
            "benchmarks/readme.py: rename them or add a renderer"
        )

    def body(match: re.Match[str]) -> str:
        name = match.group("name")
        return f"<!-- results:begin {name} -->\n{rendered[name]}<!-- results:end {name} -->"

    return _REGION.sub(body, text)
