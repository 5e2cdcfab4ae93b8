"""The return contract of new_data, alert labels and their validation (alerting.alerts)."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

import deucalion as dc
from deucalion.alerting.alerts import (
    Alert,
    alert_labels,
    alerts_from_result,
    interpret_result,
    label_problems,
    label_result,
)
from deucalion.targets import Target

A = "http://a:9100/metrics"
B = "http://b:9100/metrics"
DATA: dict[str, Any] = {A: {"x": {"{}": 1.0}}, B: {"x": {"{}": 2.0}}}


@pytest.mark.parametrize("result", [None, False, 0, 0.0, [], (), set(), {}, "", iter(())])
def test_nothing_means_no_alert(result: object) -> None:
    """None, False, 0 and empty collections raise no alert."""
    assert alerts_from_result(result, DATA) == []


def test_an_alert_is_sent_as_is() -> None:
    """A returned Alert is the one alert."""
    alert = Alert({"severity": "page"}, {"summary": "s"}, target=A)
    assert alerts_from_result(alert, DATA) == [alert]


def test_an_iterable_of_alerts_is_sent_as_is() -> None:
    """A list, tuple or generator of Alerts gives each of them."""
    alerts = [Alert({"n": "1"}), Alert({"n": "2"})]
    assert alerts_from_result(alerts, DATA) == alerts
    assert alerts_from_result((a for a in alerts), DATA) == alerts


def test_non_alerts_in_a_list_are_reported_not_raised() -> None:
    """A list holding something other than Alerts keeps the Alerts and reports the rest."""
    out = interpret_result([Alert({"n": "1"}), 42], DATA)
    assert out.alerts == [Alert({"n": "1"})]
    assert len(out.problems) == 1 and "item 1" in out.problems[0]


def test_a_dict_keyed_by_targets_gives_one_alert_per_truthy_target() -> None:
    """Targets whose value is None or False get no alert; the others one each, with target."""
    alerts = alerts_from_result({A: "disk filling", B: None}, DATA)
    assert alerts == [Alert(annotations={"description": "disk filling"}, target=A)]
    assert alerts_from_result({A: False, B: True}, DATA) == [Alert(target=B)]


def test_per_target_values_of_every_kind() -> None:
    """A per-target dict is annotations, an Alert gets its target, a list of Alerts too."""
    alerts = alerts_from_result({A: {"why": "spike"}, B: [Alert({"k": "v"})]}, DATA)
    assert alerts == [Alert(annotations={"why": "spike"}, target=A), Alert({"k": "v"}, target=B)]
    assert alerts_from_result({A: Alert(target=B)}, DATA) == [Alert(target=B)]


def test_per_target_numbers_are_scores_and_alert_only_when_non_zero() -> None:
    """{target: number} exports every score; 0 and NaN are no alert."""
    out = interpret_result({A: 0.0, B: 0.93}, DATA)
    assert out.scores == {A: 0.0, B: 0.93}
    assert out.alerts == [Alert(annotations={"value": "0.93"}, target=B, score=0.93)]
    nan = interpret_result({A: math.nan}, DATA)
    assert nan.alerts == [] and math.isnan(nan.scores[A])


def test_alert_scores_are_exported_worst_first() -> None:
    """An Alert's score is exported for its target; the highest of several wins."""
    out = interpret_result(
        [Alert(target=A, score=0.2), Alert({"k": "v"}, target=A, score=0.7)], DATA
    )
    assert out.scores == {A: 0.7}


def test_any_other_dict_is_the_annotations_of_one_alert() -> None:
    """A dict not keyed by targets becomes annotations, with names made valid."""
    alerts = alerts_from_result({"cpu usage": 0.9, "9lives": "x", "nested": [1]}, DATA)
    assert alerts == [Alert(annotations={"cpu_usage": "0.9", "_9lives": "x", "nested": "[1]"})]


def test_a_dict_partly_keyed_by_targets_is_annotations() -> None:
    """Only a dict whose keys are all targets is read per target."""
    assert alerts_from_result({A: "x", "other": "y"}, DATA)[0].target is None


def test_a_string_or_number_is_one_alert_with_it_as_annotation() -> None:
    """A string is the description, a number the value (and a score)."""
    assert alerts_from_result("odd", DATA) == [Alert(annotations={"description": "odd"})]
    out = interpret_result(3.5, DATA)
    assert out.alerts == [Alert(annotations={"value": "3.5"}, score=3.5)]
    assert out.scores == {None: 3.5}
    assert alerts_from_result(True, DATA) == [Alert()]


def test_labels_are_layered_with_observer_last() -> None:
    """External labels < target labels < instance/job < alertname < the alert's < observer."""
    target = Target(A, {"team": "db", "job": "node", "cluster": "override"})
    labels = alert_labels(
        Alert({"severity": "page", "observer": "fake"}, target=A),
        alert_name="DeucalionAnomaly",
        observer="MyObserver",
        external_labels={"cluster": "eu1", "env": "prod"},
        target=target,
    )
    assert labels == {
        "cluster": "override",
        "env": "prod",
        "team": "db",
        "instance": "a:9100",
        "job": "node",
        "alertname": "DeucalionAnomaly",
        "severity": "page",
        "observer": "MyObserver",
    }


def test_an_alert_may_set_its_own_alertname() -> None:
    """alertname comes from the config unless the alert sets it."""
    labels = alert_labels(Alert({"alertname": "DiskFull"}), alert_name="X", observer="O")
    assert labels["alertname"] == "DiskFull"


def test_label_result_labels_with_the_targets_handed_and_reports_problems() -> None:
    """Alerts carry the labels of the targets given; an unknown target is a warning, a bad
    label an error, and the valid alerts are kept."""
    target = Target(A, {"job": "node"})
    out = label_result(
        {A: 0.5, B: "high"},
        DATA,
        {A: target},
        observer="Obs",
        alert_name="Anomaly",
        external_labels={"env": "prod"},
    )
    assert [labels for labels, _ in out.alerts] == [
        {
            "env": "prod",
            "job": "node",
            "instance": "a:9100",
            "alertname": "Anomaly",
            "observer": "Obs",
        },
        {"env": "prod", "alertname": "Anomaly", "observer": "Obs"},
    ]
    assert out.scores == {A: 0.5} and out.errors == []
    assert len(out.warnings) == 1 and B in out.warnings[0]
    bad = label_result(Alert({"bad-name": "v"}), DATA, {}, observer="Obs", alert_name="X")
    assert bad.alerts == [] and "Obs" in bad.errors[0] and "bad-name" in bad.errors[0]


def test_label_problems_name_the_invalid_label() -> None:
    """Invalid names and non-string or non-UTF-8 values are reported."""
    assert label_problems({"ok": "v"}) == []
    problems = label_problems({"bad-name": "v", "n": 3, "s": "\ud800"})
    assert len(problems) == 3
    assert "'bad-name'" in problems[0]


def test_alerts_module_imports_only_the_standard_library() -> None:
    """Worker processes import deucalion.alerting.alerts without aiohttp or pydantic."""
    code = (
        "import sys, deucalion.alerting.alerts; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('aiohttp', 'pydantic', 'yaml', 'prometheus_client')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_alert_is_exported() -> None:
    """dc.Alert is the Alert type."""
    assert dc.Alert is Alert


class bool_:
    """Stands in for numpy.bool_: not a bool, not a number, but true or false."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value


def test_numpy_style_booleans_mean_true_and_false() -> None:
    """score > threshold on a NumPy value is a bool_: False is no anomaly, True one alert."""
    data = {"http://a/metrics": {}, "http://b/metrics": {}}
    result = {"http://a/metrics": bool_(False), "http://b/metrics": bool_(True)}
    alerts = interpret_result(result, data).alerts
    assert [a.target for a in alerts] == ["http://b/metrics"]
    assert interpret_result(bool_(False), data).alerts == []


def test_a_targets_own_instance_label_is_the_alerts_instance() -> None:
    """A target whose discovery set instance (a relabelled one) gives alerts that instance."""
    target = Target(A, {"instance": "node-a", "job": "node"})
    labels = alert_labels(
        Alert(target=A), alert_name="DeucalionAnomaly", observer="O", target=target
    )
    assert labels["instance"] == "node-a"
