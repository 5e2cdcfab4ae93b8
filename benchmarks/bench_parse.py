"""deucalion.parse_exposition against prometheus_client's text parser, in one run.

Run with ``python -m benchmarks.bench_parse`` from the repository root. The node_exporter body is
captured from a real node_exporter started for the run (Debian's prometheus-node-exporter), or
read from benchmarks/node_exporter.prom when the binary is missing. Repetitions of all contenders
are interleaved, so a slow moment of the machine hits them alike; medians are reported.
"""

from __future__ import annotations

import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from deucalion.exposition.text import ExpositionParser, parse_exposition

FALLBACK = Path(__file__).with_name("node_exporter.prom")
FILTER = ["node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes"]


def node_exporter_body() -> tuple[str, str]:
    """node_exporter's /metrics now, or the captured file; and where it came from."""
    try:
        from tests.integration import servers

        server = servers.start_node_exporter()
    except Exception as exc:  # binary missing or not startable: use the captured body
        print(f"node_exporter unavailable ({exc}); using {FALLBACK.name}", file=sys.stderr)
        return FALLBACK.read_text(), f"captured file {FALLBACK.name}"
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            return response.read().decode(), "live node_exporter"
    finally:
        server.stop()


def synthetic_body(series: int = 100_000, per_metric: int = 100) -> str:
    """A text 0.0.4 body of ``series`` series: gauges and counters with three labels each."""
    lines = []
    for m in range(series // per_metric):
        name = f"synthetic_metric_{m}" + ("_total" if m % 2 else "")
        lines.append(f"# HELP {name} Synthetic metric number {m}.")
        lines.append(f"# TYPE {name} {'counter' if m % 2 else 'gauge'}")
        for s in range(per_metric):
            labels = f'instance="host-{s % 10}:9100",job="node",shard="{s}"'
            lines.append(f"{name}{{{labels}}} {m * 1000.5 + s * 0.25}")
    return "\n".join(lines) + "\n"


def prometheus_client_full(text: str) -> int:
    """prometheus_client's full parse, consumed fully: the number of samples."""
    return sum(len(family.samples) for family in text_string_to_metric_families(text))


def measure(contenders: dict[str, Callable[[], object]], repetitions: int) -> dict[str, float]:
    """Median seconds per call of each contender, repetitions interleaved."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repetitions):
        for name, call in contenders.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


TARGETS = {
    "node_exporter full parse": 10.0,
    "node_exporter filtered parse (3 metrics)": 100.0,
    "synthetic 100,000 series full parse": 10.0,
}


def main(quick: bool = False) -> dict[str, object]:
    """Run every case, print a markdown table, and return it with the numbers by case."""
    repetitions, synthetic_repetitions = (5, 1) if quick else (15, 3)
    node, source = node_exporter_body()
    synthetic = synthetic_body()
    node_samples = prometheus_client_full(node)
    synthetic_samples = prometheus_client_full(synthetic)
    parser = ExpositionParser(FILTER)
    # Every contender must read what the reference reads before its speed counts.
    assert sum(map(len, parse_exposition(node).values())) == node_samples
    assert sum(map(len, parse_exposition(synthetic).values())) == synthetic_samples
    assert set(parser.parse(node)) <= set(FILTER)

    cases = {
        "node_exporter full parse": (
            node_samples,
            measure(
                {
                    "prometheus_client": lambda: prometheus_client_full(node),
                    "deucalion": lambda: parse_exposition(node),
                },
                repetitions,
            ),
        ),
        "node_exporter filtered parse (3 metrics)": (
            node_samples,
            measure(
                {
                    "prometheus_client": lambda: prometheus_client_full(node),
                    "deucalion": lambda: parser.parse(node),
                },
                repetitions,
            ),
        ),
        "synthetic 100,000 series full parse": (
            synthetic_samples,
            measure(
                {
                    "prometheus_client": lambda: prometheus_client_full(synthetic),
                    "deucalion": lambda: parse_exposition(synthetic),
                },
                synthetic_repetitions,
            ),
        ),
    }
    results: dict[str, dict[str, float]] = {}
    lines = [
        "## Parse (bench_parse)",
        "",
        f"node_exporter body: {source}, {len(node):,} bytes, {node_samples:,} samples. "
        "Against `prometheus_client.parser.text_string_to_metric_families`, consumed fully; "
        f"medians of {repetitions} interleaved runs ({synthetic_repetitions} for 100,000 "
        "series).",
        "",
        "| case | samples | prometheus_client | deucalion | speed-up | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for case, (samples, medians) in cases.items():
        theirs, ours = medians["prometheus_client"], medians["deucalion"]
        ratio = theirs / ours
        results[case] = {
            "samples": float(samples),
            "prometheus_client_seconds": theirs,
            "deucalion_seconds": ours,
            "ratio": ratio,
        }
        verdict = "met" if ratio >= TARGETS[case] else "missed"
        lines.append(
            f"| {case} | {samples:,} | {theirs * 1e3:.2f} ms | {ours * 1e3:.3f} ms "
            f"| {ratio:.1f}x | >= {TARGETS[case]:g}x: **{verdict}** |"
        )
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    return {"markdown": markdown, "cases": results}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
