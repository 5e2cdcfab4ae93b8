"""Exposition bodies for the parse benchmarks: what exporters other than node_exporter write.

Each is deterministic (seeded), so runs compare. ``node_exporter_text()`` is a real
node_exporter's output (live when the binary is installed, else the captured file).
"""

from __future__ import annotations

import random
import sys
import urllib.request
from pathlib import Path

CAPTURED = Path(__file__).with_name("node_exporter.prom")


def node_exporter_text() -> tuple[str, str]:
    """node_exporter's /metrics now, or the captured file; and where it came from."""
    try:
        from tests.integration import servers

        server = servers.start_node_exporter()
    except Exception as exc:  # binary missing or not startable: use the captured body
        print(f"node_exporter unavailable ({exc}); using {CAPTURED.name}", file=sys.stderr)
        return CAPTURED.read_text(), f"captured file {CAPTURED.name}"
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            return response.read().decode(), "live node_exporter"
    finally:
        server.stop()


def unsorted_labels(series: int = 10_000, per_metric: int = 50, seed: int = 1) -> str:
    """Labels in declared order, not sorted by name (client_python, Java), and label sets that
    vary from series to series (a label present on some series only)."""
    rnd = random.Random(seed)
    lines = []
    for m in range(series // per_metric):
        name = f"app_requests_{m}_total"
        lines.append(f"# HELP {name} Requests of kind {m}.")
        lines.append(f"# TYPE {name} counter")
        for s in range(per_metric):
            labels = [
                ("method", rnd.choice(["GET", "POST", "PUT"])),
                ("handler", f"/api/v{m % 3}/item{s}"),
                ("status", str(200 + s % 5)),
            ]
            if s % 3 == 0:
                labels.append(("zone", f"z{s % 4}"))
            if s % 4 == 1:
                labels.insert(0, ("tenant", f"t{s % 7}"))
            block = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{block}}} {rnd.random() * 1000}")
    return "\n".join(lines) + "\n"


def timestamps_escapes_utf8(series: int = 10_000, per_metric: int = 50, seed: int = 2) -> str:
    """3 % of samples with a timestamp, escapes in some label values, UTF-8 in help and values."""
    rnd = random.Random(seed)
    lines = []
    for m in range(series // per_metric):
        name = f"mixed_metric_{m}"
        lines.append(f"# HELP {name} Mixed ünïcode help \\n {m}.")
        lines.append(f"# TYPE {name} gauge")
        for s in range(per_metric):
            path = 'path="C:\\\\dir\\"x\\"",' if s % 10 == 0 else ""
            timestamp = f" {1700000000000 + s}" if rnd.random() < 0.03 else ""
            lines.append(
                f'{name}{{{path}instance="hést-{s}",job="jöb"}} {rnd.random() * 1e6:.6g}{timestamp}'
            )
    return "\n".join(lines) + "\n"


def openmetrics(series: int = 10_000, per_metric: int = 50) -> str:
    """An OpenMetrics body: counters and gauges with two labels, ``# EOF`` at the end."""
    lines = []
    for m in range(series // per_metric):
        name = f"om_metric_{m}"
        kind = "counter" if m % 2 else "gauge"
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"# HELP {name} Metric {m}.")
        sample = f"{name}_total" if m % 2 else name
        lines.extend(
            f'{sample}{{instance="host-{s}",job="node"}} {s * 1.5}' for s in range(per_metric)
        )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def many_series(series: int, per_metric: int = 100, seed: int = 3) -> str:
    """A large body of ``series`` series: ``series // per_metric`` metrics whose three labels
    are written unsorted, as a big application's client library writes them."""
    rnd = random.Random(seed)
    lines = []
    for m in range(max(1, series // per_metric)):
        name = f"service_metric_{m}" + ("_total" if m % 2 else "")
        lines.append(f"# HELP {name} Metric number {m}.")
        lines.append(f"# TYPE {name} {'counter' if m % 2 else 'gauge'}")
        lines.extend(
            f'{name}{{shard="{s}",job="api",instance="host-{s % 10}:8080"}} {rnd.randrange(10**9)}'
            for s in range(min(per_metric, series))
        )
    return "\n".join(lines) + "\n"


def openmetrics_modern(families: int = 100, per_family: int = 8, seed: int = 4) -> str:
    """OpenMetrics as prometheus_client and the Go client write it: histograms (``le`` among
    sorted labels, ``_count``, ``_sum``, ``_created``) with exemplars on some buckets, counters
    with ``_created`` and an exemplar now and then, gauges with ``# UNIT``, summaries with
    quantiles, info and stateset families; ``# EOF`` at the end."""
    rnd = random.Random(seed)
    buckets = [
        "0.005",
        "0.01",
        "0.025",
        "0.05",
        "0.1",
        "0.25",
        "0.5",
        "1.0",
        "2.5",
        "5.0",
        "10.0",
        "+Inf",
    ]
    created = 1.7e9
    lines = []
    for f in range(families):
        kind = ("histogram", "counter", "gauge", "summary", "info", "stateset")[f % 6]
        name = f"app_{kind}_{f}" + ("_seconds" if kind in ("histogram", "gauge", "summary") else "")
        lines.append(f"# HELP {name} The {kind} number {f}.")
        lines.append(f"# TYPE {name} {kind}")
        if kind in ("histogram", "gauge", "summary"):
            lines.append(f"# UNIT {name} seconds")
        for s in range(per_family):
            labels = f'method="{("GET", "POST")[s % 2]}",path="/api/v1/item{s}"'
            stamp = f"{created + rnd.random() * 1e5:.9e}"
            if kind == "histogram":
                count = 0
                for le in buckets:
                    count += rnd.randrange(50)
                    exemplar = ""
                    if rnd.random() < 0.2:
                        exemplar = (
                            f' # {{trace_id="{rnd.getrandbits(64):016x}"}} '
                            f"{rnd.random():.4f} {created + rnd.random() * 1e5:.3f}"
                        )
                    lines.append(f'{name}_bucket{{le="{le}",{labels}}} {count}.0{exemplar}')
                lines.append(f"{name}_count{{{labels}}} {count}.0")
                lines.append(f"{name}_sum{{{labels}}} {rnd.random() * count:.6f}")
                lines.append(f"{name}_created{{{labels}}} {stamp}")
            elif kind == "counter":
                exemplar = (
                    f' # {{trace_id="{rnd.getrandbits(64):016x}"}} 1.0'
                    if rnd.random() < 0.3
                    else ""
                )
                lines.append(f"{name}_total{{{labels}}} {rnd.randrange(10**6)}.0{exemplar}")
                lines.append(f"{name}_created{{{labels}}} {stamp}")
            elif kind == "gauge":
                lines.append(f"{name}{{{labels}}} {rnd.random() * 100:.6f}")
            elif kind == "summary":
                for q in ("0.5", "0.9", "0.99"):
                    lines.append(f'{name}{{{labels},quantile="{q}"}} {rnd.random():.6f}')
                lines.append(f"{name}_count{{{labels}}} {rnd.randrange(1000)}.0")
                lines.append(f"{name}_sum{{{labels}}} {rnd.random() * 100:.6f}")
                lines.append(f"{name}_created{{{labels}}} {stamp}")
            elif kind == "info":
                lines.append(f'{name}_info{{{labels},version="1.{s}.{f}"}} 1.0')
            else:
                state = rnd.randrange(3)
                for i, value in enumerate(("idle", "running", "stopped")):
                    lines.append(
                        f'{name}{{{labels},{name}="{value}"}} {1.0 if i == state else 0.0}'
                    )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
