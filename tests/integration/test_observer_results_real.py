"""What new_data returns, through a real provisioner to a real Alertmanager (issue 13)."""

from __future__ import annotations

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
        targets=[target.url], scrape_interval=0.3, telemetry={"enabled": False},
        alertmanager={"urls": [alertmanager.url]}, shutdown_grace_period=5)
    for name, score, per_target in [("false_alone", 0.1, False), ("false_per_target", 0.1, True),
                                    ("true_alone", 0.9, False), ("true_per_target", 0.9, True)]:
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
