"""What new_data returns, through a real provisioner to a real Alertmanager (issue 13)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import numpy as np

import deucalion as dc
from deucalion.provisioner import MetricsProvisioner
from tests.integration import servers
from tests.integration.test_alerting_real import Target, active_alerts, eventually, target

__all__ = ["target"]  # the fixture, imported for the tests below


class NumpyVerdict(dc.MetricsObserver):
    """Returns ``score > threshold`` computed by NumPy: alone, or per target in a dict."""

    def __init__(self, score: float, per_target: bool, observer_name: str) -> None:
        super().__init__({"spike"})
        self.score = score
        self.per_target = per_target
        self.observer_name = observer_name

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        verdict = np.float64(self.score) > np.float64(0.5)  # numpy.bool under NumPy 2
        if self.per_target:
            return {url: verdict for url in targets_data_dict}
        return verdict


async def test_a_numpy_false_sends_no_alert_and_a_numpy_true_does(
    alertmanager: servers.Server, target: Target
) -> None:
    """numpy.bool False, alone or per target, is no anomaly; numpy.bool True is one alert."""
    provisioner = MetricsProvisioner(
        targets=[target.url],
        scrape_interval=0.3,
        telemetry={"enabled": False},
        alertmanager={"urls": [alertmanager.url]},
        shutdown_grace_period=5,
    )
    for name, score, per_target in [
        ("false_alone", 0.1, False),
        ("false_per_target", 0.1, True),
        ("true_alone", 0.9, False),
        ("true_per_target", 0.9, True),
    ]:
        provisioner.register(NumpyVerdict(score, per_target, name))
    async with aiohttp.ClientSession() as session:
        async with provisioner:

            async def settled() -> bool:
                alerts = await active_alerts(session, alertmanager.url)
                called = all(w.stats.calls >= 3 for w in provisioner.workers)
                return called and len(alerts) >= 2

            await eventually(settled)
        # Stopped: every alert the observers' results stood for has been sent.
        alerts = await active_alerts(session, alertmanager.url)
    assert sorted(a["labels"]["observer"] for a in alerts) == ["true_alone", "true_per_target"]
    assert all(a["annotations"].get("description") != "False" for a in alerts)


class ManyAlerts(dc.MetricsObserver):
    """Returns one alert per series it invents: a result far larger than any batch."""

    def __init__(self, count: int) -> None:
        super().__init__({"spike"})
        self.count = count

    def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> Any:
        return [dc.Alert(labels={"series": str(n)}) for n in range(self.count)]


async def test_a_result_of_many_alerts_leaves_the_event_loop_its_turns(
    alertmanager: servers.Server, target: Target
) -> None:
    """20,000 alerts are handled while the event loop keeps taking turns, and all reach
    Alertmanager."""
    provisioner = MetricsProvisioner(
        targets=[target.url],
        scrape_interval=2,
        telemetry={"enabled": False},
        alertmanager={"urls": [alertmanager.url], "queue_size": 30_000},
        shutdown_grace_period=10,
    )
    provisioner.register(ManyAlerts(20_000))
    turns_during_handling: list[int] = []
    async with aiohttp.ClientSession() as session, provisioner:
        sender = provisioner.alert_sender
        assert sender is not None
        # Handling a result starts with counting the call and ends with queueing its alerts.
        record_call, send = provisioner.telemetry.record_call, sender.send
        turns = 0
        started_at: list[int] = []

        def call_recorded(*args: Any, **kwargs: Any) -> None:
            started_at.append(turns)
            record_call(*args, **kwargs)

        def sent(payloads: list[Any]) -> None:
            if len(payloads) >= 20_000 and started_at:
                turns_during_handling.append(turns - started_at[-1])
            send(payloads)

        provisioner.telemetry.record_call = call_recorded  # type: ignore[method-assign]
        sender.send = sent  # type: ignore[method-assign]

        async def ticker() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        ticking = asyncio.create_task(ticker())
        try:

            async def all_delivered() -> bool:
                alerts = await active_alerts(session, alertmanager.url)
                return bool(turns_during_handling) and len(alerts) == 20_000

            await eventually(all_delivered)
        finally:
            ticking.cancel()
    # One turn at least per slice of 1,000 alerts; handled in one block, it would be none.
    assert turns_during_handling[0] >= 20
