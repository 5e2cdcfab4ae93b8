"""Build deucalion's Grafana dashboards: ``python deploy/grafana/build.py`` writes
``deucalion-anomalies.json`` and ``deucalion-health.json`` beside this file.

The dashboards are code here (one list of panels each) and checked-in JSON there, so they can
be imported without running anything; ``tests/presets/test_presets_rules.py`` checks that the
JSON is what this file builds, and ``tests/integration/test_dashboards_real.py`` runs every panel's
query against a real Prometheus scraping a real deucalion running a preset.
Standard library only: Grafana's JSON model is plain data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCORE = 'deucalion_series_anomaly_score{observer=~"$observer",target=~"$target",metric=~"$signal"}'
PICK = '{observer=~"$observer",target=~"$target",metric=~"$signal"}'


def _variables(*queries: tuple[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}
    ]
    for name, query in queries:
        out.append(
            {
                "name": name,
                "type": "query",
                "datasource": DATASOURCE,
                "query": {"query": query, "refId": name},
                "definition": query,
                "includeAll": True,
                "multi": True,
                "allValue": ".*",
                "current": {"text": "All", "value": "$__all"},
                "refresh": 2,
                "sort": 1,
            }
        )
    return out


def _panel(
    title: str,
    description: str,
    targets: list[tuple[str, str]],
    *,
    unit: str = "short",
    kind: str = "timeseries",
    width: int = 12,
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": expr,
                "legendFormat": legend,
                "datasource": DATASOURCE,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    panels: list[dict[str, Any]],
) -> dict[str, Any]:
    x = y = 0
    for i, panel in enumerate(panels, 1):
        panel["id"] = i
        grid = panel["gridPos"]
        if x + grid["w"] > 24:
            x, y = 0, y + 8
        grid.update(x=x, y=y)
        x += grid["w"]
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["deucalion"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": variables},
        "panels": panels,
    }


def anomalies() -> dict[str, Any]:
    """Scores per target and signal, each signal's value with its expected band, alerts."""
    variables = _variables(
        ("observer", "label_values(deucalion_series_anomaly_score, observer)"),
        ("target", 'label_values(deucalion_series_anomaly_score{observer=~"$observer"}, target)'),
        ("signal", 'label_values(deucalion_series_anomaly_score{observer=~"$observer"}, metric)'),
    )
    panels = [
        _panel(
            "Anomaly score per target",
            "The highest score of any signal of each target.",
            [(f"max by (target) ({SCORE})", "{{target}}")],
        ),
        _panel(
            "Alerts firing",
            "Alerts each observer has firing now (one per target per incident for a preset).",
            [
                (
                    'sum by (observer) (deucalion_alerts_firing{observer=~"$observer"})',
                    "{{observer}}",
                )
            ],
        ),
        _panel(
            "Score per signal",
            "Each signal's score: -log10 of how often ordinary data "
            "does this (5: once in 100,000 cycles).",
            [(SCORE, "{{target}} {{metric}} {{device}}{{mountpoint}}{{route}}")],
            width=24,
        ),
        _panel(
            "Observed value and expected band",
            "Each signal's value and the band its detector expected it in.",
            [
                (f"deucalion_series_value{PICK}", "{{metric}} {{device}}{{route}} value"),
                (f"deucalion_series_expected_lower{PICK}", "{{metric}} {{device}}{{route}} low"),
                (f"deucalion_series_expected_upper{PICK}", "{{metric}} {{device}}{{route}} high"),
            ],
            width=24,
        ),
        _panel(
            "Signals moving most",
            "The ten highest scores now.",
            [(f"topk(10, {SCORE})", "{{target}} {{metric}}")],
            kind="table",
            width=24,
        ),
    ]
    return _dashboard(
        "deucalion-anomalies",
        "deucalion: anomalies",
        "What deucalion's presets and observers see.",
        variables,
        panels,
    )


def health() -> dict[str, Any]:
    """deucalion itself: cycles, scrapes, workers, calls, alert delivery."""
    variables = _variables(("instance", "label_values(deucalion_cycles_total, instance)"))
    me = '{instance=~"$instance"}'
    panels = [
        _panel(
            "Cycles per second",
            "Cycles run (one per scrape interval).",
            [(f"rate(deucalion_cycles_total{me}[$__rate_interval])", "{{instance}}")],
            unit="ops",
            width=8,
        ),
        _panel(
            "Overruns per second",
            "Cycles that took longer than the scrape interval.",
            [(f"rate(deucalion_cycle_overruns_total{me}[$__rate_interval])", "{{instance}}")],
            unit="ops",
            width=8,
        ),
        _panel(
            "Cycle duration",
            "How long the last cycle took.",
            [(f"deucalion_cycle_duration_seconds{me}", "{{instance}}")],
            unit="s",
            width=8,
        ),
        _panel(
            "Targets up",
            "Whether each target answered deucalion's last scrape.",
            [(f"deucalion_target_up{me}", "{{target}}")],
            width=8,
        ),
        _panel(
            "Scrape durations",
            "How long each target's last scrape took.",
            [(f"deucalion_target_scrape_duration_seconds{me}", "{{target}}")],
            unit="s",
            width=8,
        ),
        _panel(
            "Observers up",
            "Whether each observer's worker process is up.",
            [(f"deucalion_observer_up{me}", "{{observer}}")],
            width=8,
        ),
        _panel(
            "Worker restarts",
            "Worker processes replaced (crashed or hung), per hour.",
            [(f"increase(deucalion_observer_restarts_total{me}[1h])", "{{observer}}")],
            width=8,
        ),
        _panel(
            "Observer call duration",
            "new_data calls, median and 99th percentile.",
            [
                (
                    f"histogram_quantile(0.5, sum by (le, observer) (rate("
                    f"deucalion_observer_call_duration_seconds_bucket{me}[$__rate_interval])))",
                    "{{observer}} p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le, observer) (rate("
                    f"deucalion_observer_call_duration_seconds_bucket{me}[$__rate_interval])))",
                    "{{observer}} p99",
                ),
            ],
            unit="s",
            width=8,
        ),
        _panel(
            "Observer errors and timeouts",
            "new_data calls that raised or timed out.",
            [
                (
                    f"rate(deucalion_observer_errors_total{me}[$__rate_interval])",
                    "{{observer}} errors",
                ),
                (
                    f"rate(deucalion_observer_timeouts_total{me}[$__rate_interval])",
                    "{{observer}} timeouts",
                ),
            ],
            unit="ops",
            width=8,
        ),
        _panel(
            "Alert queue",
            "Alerts waiting to be sent, per Alertmanager.",
            [(f"deucalion_alerts_queued{me}", "{{alertmanager}}")],
            width=8,
        ),
        _panel(
            "Alertmanager errors",
            "Alerts in failed requests, refused, or dropped.",
            [
                (
                    f"rate(deucalion_alerts_failed_total{me}[$__rate_interval])",
                    "{{alertmanager}} failed",
                ),
                (
                    f"rate(deucalion_alerts_rejected_total{me}[$__rate_interval])",
                    "{{alertmanager}} rejected",
                ),
                (
                    f"rate(deucalion_alerts_dropped_total{me}[$__rate_interval])",
                    "{{alertmanager}} dropped",
                ),
            ],
            unit="ops",
            width=8,
        ),
        _panel(
            "Alerts sent",
            "Alerts Alertmanager accepted.",
            [(f"rate(deucalion_alerts_sent_total{me}[$__rate_interval])", "{{alertmanager}}")],
            unit="ops",
            width=8,
        ),
    ]
    return _dashboard(
        "deucalion-health",
        "deucalion: health",
        "deucalion's own cycles, scrapes, workers and alert delivery.",
        variables,
        panels,
    )


DASHBOARDS = {"deucalion-anomalies.json": anomalies, "deucalion-health.json": health}


def render(build: Any) -> str:
    """A dashboard's JSON as checked in."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    for name, build in DASHBOARDS.items():
        (HERE / name).write_text(render(build), encoding="utf-8")
        print(f"wrote {HERE / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
