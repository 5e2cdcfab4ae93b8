"""A recording keeps each target's labels, so replayed alerts carry what live alerts carry.

A recording once kept only each target's URL: a target configured with ``labels: {job:
svc-prom}`` alerted with ``job="svc-prom"`` live and ``job="deucalion"`` in a backtest of its
recording, so Alertmanager routing on a target label could not be checked on history.
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest

import deucalion as dc
from deucalion._http import Credentials
from deucalion.alerting.alerts import alert_labels
from deucalion.collection.result import ScrapeResult
from deucalion.provisioner import CollectedCycle
from deucalion.replay import Cycle, RecordingSource, RecordingWriter, backtest
from deucalion.replay.recording import RecordingListener
from deucalion.targets import Target
from tests.replay_observers import AlertsAbove

T0 = 1_700_000_000.0
#: The sample that carries a target's labels (README, "Record").
TARGET_INFO = "deucalion_record_target_info"
#: A URL with a password and a secret query parameter: neither may reach the file.
SECRET_URL = "http://user:hunter2@a:9100/metrics?token=s3cret"
SHOWN_URL = "http://user:***@a:9100/metrics?token=***"


def _record_live(path: Path, target: Target, values: list[float]) -> None:
    """Record cycles of ``target`` as `deucalion record` does: through the recording listener
    of the provisioner's cycle loop."""

    async def run() -> None:
        listener = RecordingListener(path, metrics=None)
        await listener.open()
        for i, value in enumerate(values):
            result = ScrapeResult(
                target, {"load": {'{cpu="0"}': value}}, up=True, duration=0.01, scraped_at=T0 + i
            )
            await listener.on_cycle(CollectedCycle(T0 + i, [result], {target.url: T0 + i + 0.25}))
        await listener.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("labels", "job", "instance"),
    [
        ({"job": "svc-prom", "team": 'pay"ments\\\n'}, "svc-prom", "a:9100"),
        ({"instance": "checkout-1", "team": "payments"}, "deucalion", "checkout-1"),
    ],
)
def test_a_replayed_alert_carries_the_labels_of_the_live_one(
    tmp_path: Path, labels: dict[str, str], job: str, instance: str
) -> None:
    """`record` of a target with configured labels, then `backtest`: the alert has the same
    label set as live (the target's labels, its job and instance), not job="deucalion"."""
    target = Target(SECRET_URL, labels, credentials=Credentials(bearer_token="tok-secret"))
    path = tmp_path / "lab.om.gz"
    _record_live(path, target, [1.0, 9.0, 1.0])

    result = backtest(AlertsAbove({"load"}), path)
    [alert] = result.alerts
    live = alert_labels(
        dc.Alert({"metric": "load", "series": '{cpu="0"}'}, target=target.url),
        alert_name=alert.labels["alertname"],
        observer="AlertsAbove",
        target=target,
    )
    assert alert.labels == live
    assert alert.labels["job"] == job and alert.labels["instance"] == instance
    assert alert.labels["team"] == labels["team"]
    assert alert.target == SHOWN_URL

    text = gzip.decompress(path.read_bytes()).decode()
    # The target's URL as logs show it, and none of its credentials.
    for secret in ("hunter2", "s3cret", "tok-secret"):
        assert secret not in text


def test_the_labels_are_one_line_a_target_a_cycle_that_any_reader_takes(tmp_path: Path) -> None:
    """The labels are an info sample of the target, at its scrape time, in the cycle; a read
    of some metrics only still gives them."""
    target = Target("http://a:9100/metrics", {"job": "svc-prom", "env": "prod"})
    path = tmp_path / "lab.om"
    _record_live(path, target, [1.0, 2.0])
    lines = path.read_text().splitlines()
    info = [line for line in lines if line.startswith(TARGET_INFO)]
    assert info == [
        f'{TARGET_INFO}{{env="prod",instance="a:9100",job="svc-prom",'
        f'deucalion_target="http://a:9100/metrics"}} 1 {T0 + i + 0.25:.6f}'
        for i in range(2)
    ]

    async def read() -> list[Cycle]:
        return [c async for c in RecordingSource(path).cycles({"nothing_recorded"})]

    cycles = asyncio.run(read())
    assert [c.target_labels for c in cycles] == [
        {target.url: {"env": "prod", "instance": "a:9100", "job": "svc-prom"}}
    ] * 2
    # The info line is no sample: the observers never see it.
    assert all(set(c.samples[target.url]) == {"up", "scrape_duration_seconds"} for c in cycles)


def test_a_recording_without_target_labels_replays_as_before(tmp_path: Path) -> None:
    """Recordings written before targets' labels were recorded (or a cycle that knows none):
    no info line, no labels read back, alerts labelled by the URL alone."""
    url = "http://a:9100/metrics"
    path = tmp_path / "old.om.gz"
    with RecordingWriter(path) as writer:
        for i, value in enumerate([1.0, 9.0, 1.0]):
            writer.write_cycle(Cycle(T0 + i, {url: T0 + i}, {url: {"load": {"{}": value}}}))
    assert TARGET_INFO not in gzip.decompress(path.read_bytes()).decode()

    async def read() -> list[Cycle]:
        return [c async for c in RecordingSource(path).cycles()]

    assert all(c.target_labels is None for c in asyncio.run(read()))
    [alert] = backtest(AlertsAbove({"load"}), path).alerts
    assert alert.labels["job"] == "deucalion" and alert.labels["instance"] == "a:9100"
