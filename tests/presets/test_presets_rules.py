"""The Prometheus rules and Grafana dashboards shipped in deploy/: valid, unit-tested, built
from their code, and reading only metrics deucalion exports."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "deucalion-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "deucalion-rules.test.yaml"
GRAFANA = DEPLOY / "grafana"
SIGNAL_SCORES = "deucalion:preset_signal_score:max_over_window"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed: apt-get install prometheus")
    return path


def test_promtool_checks_the_rules() -> None:
    run = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 11 rules found" in run.stdout


def test_promtool_unit_tests_pass() -> None:
    """The rules fire (and stay quiet) as deploy/prometheus/deucalion-rules.test.yaml says."""
    run = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=RULE_TESTS.parent,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _build_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("deucalion_grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_dashboards_are_what_build_py_makes() -> None:
    """Edit build.py, then run it: the JSON beside it must not drift from the code."""
    build = _build_module()
    for name, make in build.DASHBOARDS.items():
        assert (GRAFANA / name).read_text(encoding="utf-8") == build.render(make), (
            f"deploy/grafana/{name} is stale: run python deploy/grafana/build.py"
        )


def _exported_names() -> set[str]:
    """Every metric name deucalion's /metrics can serve (counters with _total, histograms with
    their samples), read from the telemetry module's families."""
    source = (Path(__file__).resolve().parents[2] / "deucalion" / "telemetry.py").read_text()
    names = set(re.findall(r'"(deucalion_[a-z_]+)"', source))
    out = set(names)
    for name in names:
        out |= {name + "_total", name + "_bucket", name + "_sum", name + "_count"}
    return out


def dashboard_queries() -> list[tuple[str, str, str]]:
    """``(dashboard, panel title, expr)`` of every panel query and template variable."""
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            out.extend((path.name, panel["title"], t["expr"]) for t in panel["targets"])
    return out


def test_rules_and_dashboards_read_only_what_deucalion_exports() -> None:
    exported = _exported_names()
    text = RULES.read_text(encoding="utf-8") + "".join(e for *_, e in dashboard_queries())
    used = set(re.findall(r"\bdeucalion_[a-z_]+", text))
    assert used and used <= exported, sorted(used - exported)


def test_the_rules_severity_follows_the_presets_signals() -> None:
    """The recording rule of the presets' critical signals names exactly the signals the
    presets label critical, and the warning one leaves exactly those out: a signal made
    critical in a preset and not here would page as a warning through Prometheus. Each alert
    reads the recorded scores of its own severity."""
    import yaml

    from deucalion.presets import PRESETS, preset_signals

    critical = {
        s.name for name in PRESETS for s in preset_signals(name) if s.severity == "critical"
    }
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    matched = {}
    for rule in rules:
        if rule.get("record") == SIGNAL_SCORES:
            [(op, names)] = re.findall(r'metric(=~|!~)"([^"]+)"', rule["expr"])
            matched[rule["labels"]["severity"]] = (op, set(names.split("|")))
        elif "alert" in rule:
            severity = rule["labels"]["severity"]
            assert f'{SIGNAL_SCORES}{{severity="{severity}"}}' in rule["expr"], severity
    assert critical and matched == {"warning": ("!~", critical), "critical": ("=~", critical)}


def test_the_preset_rules_alert_at_once_and_resolve_when_the_preset_does() -> None:
    """No `for:` (`for: 1m` missed a 30 s burst the preset alerted on) and the highest score of
    a window of the preset's quiet_cycles at the default scrape_interval (the score drops to 0
    when the signal is back, while the preset's alert fires for those cycles more), as the
    rules' comment says; the promtool case of the 30 s burst checks both in Prometheus. The
    window is in the recording rules only, and no annotation names it (it stays true when a
    user changes the windows, as the comment tells them to)."""
    import inspect

    import yaml

    from deucalion.config.loading import Settings, parse_duration
    from deucalion.presets.observer import PresetObserver

    quiet = inspect.signature(PresetObserver).parameters["quiet_cycles"].default
    window = quiet * Settings().scrape_interval
    text = RULES.read_text(encoding="utf-8")
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    durations = set()
    for rule in rules:
        assert "for" not in rule, rule.get("alert") or rule["record"]
        found = re.findall(r"max_over_time\([a-z_]+\{[^}]*\}\[(\w+)\]\)", rule["expr"])
        if "record" in rule:
            assert len(found) == 1, rule["record"]
            durations |= set(found)
        else:
            assert not found and "[" not in rule["expr"], rule["alert"]
            assert not re.search(r"\d+[smh]\b", " ".join(rule["annotations"].values()))
    [duration] = durations
    assert parse_duration(duration) == window
    assert f"keeps firing {duration} after the last score" in " ".join(text.split())
    assert len([r for r in rules if "record" in r]) == 3
    assert "set the three windows" in " ".join(text.split())


def test_the_preset_alert_is_labelled_with_its_target_not_its_signal() -> None:
    """One incident on one target is one alert: the preset alerts' labels are the target's
    (read from deucalion_anomaly_score, which has no signal or route labels), so the signal on
    top, which changes during an incident, is in the annotations only (the promtool case of
    an incident whose top signal changes checks it in Prometheus)."""
    import yaml

    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    alerts = [r for r in rules if "alert" in r]
    assert {r["alert"] for r in alerts} == {"DeucalionPresetAnomaly"} and len(alerts) == 2
    for rule in alerts:
        expr = " ".join(rule["expr"].split())
        assert "group without () (deucalion:preset_target_score:max_over_window)" in expr
        assert "group_left (severity)" in expr and "topk" not in expr
        assert "max by (observer, target, instance, job, severity)" in expr
        assert "{{ .Labels.metric }}" in rule["annotations"]["signal"]
        assert not set(rule["labels"]) - {"severity"}


def test_every_panel_has_a_query_title_and_unique_id() -> None:
    for path in GRAFANA.glob("*.json"):
        board = json.loads(path.read_text(encoding="utf-8"))
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and all(p["targets"] for p in board["panels"])
        assert all(p["title"] and p["description"] for p in board["panels"])
