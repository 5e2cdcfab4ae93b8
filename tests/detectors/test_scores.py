"""Per-series scores (``Scores``): interpreted, exported with their labels, alerting never."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from deucalion.alerting.alertmanager import AlertSender
from deucalion.alerting.alerts import Alert, Scores, SeriesScore, interpret_result, label_result
from deucalion.config.loading import AlertmanagerSettings
from deucalion.dispatch import CallOutcome
from deucalion.observer import MetricsObserver
from deucalion.provisioner import MetricsProvisioner
from deucalion.targets import Target
from deucalion.telemetry import Telemetry, _SourceCollector

T = "http://node:9100/metrics"


def test_scores_are_exported_and_only_their_alerts_alert() -> None:
    """A Scores result exports every score (the worst per target too) and sends its alerts."""
    result = Scores(
        scores=[
            SeriesScore(T, "m", '{cpu="0"}', 2.0),
            SeriesScore(T, "m", '{cpu="1"}', 9.0),
            SeriesScore(T, "m", '{cpu="2"}', math.nan),
        ],
        alerts=[Alert(labels={"series": '{cpu="1"}'}, target=T, score=9.0)],
    )
    out = interpret_result(result, {T: {}})
    assert [s.series for s in out.series_scores] == ['{cpu="0"}', '{cpu="1"}']  # NaN left out
    assert out.scores == {T: 9.0}
    assert len(out.alerts) == 1 and out.problems == []


def test_scores_below_a_threshold_raise_no_alert() -> None:
    """Scores alone, however high, alert nothing: the observer's policy decides."""
    out = interpret_result(Scores(scores=[SeriesScore(T, "m", "{}", 1e9)]), {T: {}})
    assert out.alerts == [] and out.series_scores[0].score == 1e9


def test_a_malformed_score_is_a_problem_not_an_exception() -> None:
    """Something that is not a SeriesScore with a number is reported and skipped."""
    out = interpret_result(
        Scores(
            scores=[
                SeriesScore(T, "m", "{}", "high"),  # type: ignore[arg-type]
                "x",
            ],  # type: ignore[list-item]
            alerts=["y"],
        ),
        {T: {}},
    )  # type: ignore[list-item]
    assert len(out.problems) == 3 and out.series_scores == [] and out.alerts == []


class _Family(Collector):
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


def test_series_scores_are_a_gauge_labelled_with_the_series_labels() -> None:
    """deucalion_series_anomaly_score carries observer, target, metric and the series' labels;
    a series label named like one of deucalion's becomes exported_<name>."""
    family = _SourceCollector._series_scores(
        {"Obs": [SeriesScore(T, "node_cpu_seconds_total", '{cpu="0",job="x\\"y"}', 7.5)]},
        {T: Target(T, {"job": "node"})},
    )
    registry = CollectorRegistry()
    registry.register(_Family(family))
    text = generate_latest(registry).decode()
    [sample] = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert sample.name == "deucalion_series_anomaly_score" and sample.value == 7.5
    assert sample.labels == {
        "observer": "Obs",
        "target": T,
        "instance": "node:9100",
        "job": "node",
        "metric": "node_cpu_seconds_total",
        "cpu": "0",
        "exported_job": 'x"y',
    }


class _Obs(MetricsObserver):
    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> None:
        return None


def test_alerts_with_one_label_set_are_counted_as_merged() -> None:
    """label_result says how many alerts shared the label set of another."""
    twice = [Alert({"a": "1"}), Alert({"a": "1"}), Alert({"a": "2"})]
    out = label_result(twice, {}, {}, observer="Obs", alert_name="A")
    assert out.merged == 1 and len(out.alerts) == 3
    assert label_result(twice[1:], {}, {}, observer="Obs", alert_name="A").merged == 0


async def test_alerts_merged_by_their_labels_are_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two alerts with one label set in a result: a warning, once per observer; Alertmanager
    gets one alert per label set."""
    provisioner = MetricsProvisioner(targets=[T])
    sender = provisioner.alert_sender = AlertSender(AlertmanagerSettings(), scrape_interval=15)
    observer = provisioner.register(_Obs(["m"]))
    twice = [Alert({"a": "1"}), Alert({"a": "1"}), Alert({"a": "2"})]
    with caplog.at_level(logging.WARNING):
        await provisioner._on_result(CallOutcome(observer, {}, result=twice))
        await provisioner._on_result(CallOutcome(observer, {}, result=twice))
    merged = [r for r in caplog.records if "same labels" in r.getMessage()]
    assert len(merged) == 1 and "_Obs" in merged[0].getMessage()
    assert len(sender.firing()) == 2


async def test_alerts_of_targets_whose_labels_are_alike_name_the_targets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two metrics paths on one host:port (a preset's one alert per target): their alerts
    have one label set and were merged with advice for an observer's author ('give them
    labels'), which a preset's user cannot follow; it names the targets and their labels."""
    one = "http://app:8080/metrics"
    other = "http://app:8080/actuator/prometheus?token=s3cret"
    provisioner = MetricsProvisioner(targets=[one, other])
    provisioner.alert_sender = AlertSender(AlertmanagerSettings(), scrape_interval=15)
    observer = provisioner.register(_Obs(["m"]))
    handed = {url: Target(url) for url in (one, other)}
    data = {url: {"m": {"{}": 1.0}} for url in (one, other)}
    out = label_result({one: 1.0, other: 2.0}, data, handed, observer="Obs", alert_name="A")
    assert out.merged == 1 and out.merged_targets == sorted([one, other])
    provisioner._feed.targets_handed = lambda observer, data: handed  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        await provisioner._on_result(CallOutcome(observer, data, result={one: 1.0, other: 2.0}))
    [merged] = [r.getMessage() for r in caplog.records if "same labels" in r.getMessage()]
    assert one in merged and "instance" in merged and "targets:" in merged
    assert "s3cret" not in merged


def test_series_scores_of_a_target_that_left_are_dropped() -> None:
    """forget_targets drops the per-series scores of gone targets."""
    telemetry = Telemetry(MetricsProvisioner(targets=[T]))
    other = "http://other:9100/metrics"
    out = interpret_result(
        Scores(scores=[SeriesScore(T, "m", "{}", 1.0), SeriesScore(other, "m", "{}", 2.0)]),
        {},
    )
    telemetry.record_scores("Obs", out.scores, out.series_scores)
    telemetry.forget_targets([T])
    assert [s.target for s in telemetry.series_scores["Obs"]] == [other]
    assert telemetry.scores["Obs"] == {other: 2.0}


class _Discovery:
    def __init__(self, *urls: str) -> None:
        self.targets = [Target(u) for u in urls]

    async def discover(self) -> list[Target]:
        return list(self.targets)


async def test_a_result_for_a_target_that_left_exports_no_score_for_it() -> None:
    """A call that returns after its target left discovery still alerts about that target,
    but exports no score for it: nothing would ever update or drop that score again."""
    other = "http://other:9100/metrics"
    provisioner = MetricsProvisioner(targets=[T, other])
    provisioner.alert_sender = AlertSender(AlertmanagerSettings(), scrape_interval=15)
    observer = provisioner.register(_Obs(["m"]))
    discovery = _Discovery(T, other)
    await provisioner._targets.discover(discovery)
    data: dict[str, dict[str, dict[str, float]]] = {T: {}, other: {}}
    provisioner._feed._note_handed(observer, data, dict(provisioner._targets.by_url))
    discovery.targets = [Target(other)]
    await provisioner._targets.discover(discovery)  # T leaves while the call runs
    result = Scores(
        scores=[SeriesScore(T, "m", "{}", 5.0), SeriesScore(other, "m", "{}", 2.0)],
        alerts=[Alert(labels={"a": "1"}, target=T, score=5.0)],
    )
    await provisioner._on_result(CallOutcome(observer, data, result=result))
    assert provisioner.telemetry.scores["_Obs"] == {other: 2.0}
    assert [s.target for s in provisioner.telemetry.series_scores["_Obs"]] == [other]
    [alert] = provisioner.alert_sender.firing()
    assert alert["labels"]["instance"] == "node:9100"
