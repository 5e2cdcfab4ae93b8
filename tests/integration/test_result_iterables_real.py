"""A generator of alerts and a returned function, through a real provisioner to a real
Alertmanager (issue 24 item 10)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

import deucalion as dc
from deucalion.provisioner import MetricsProvisioner
from tests.integration import servers
from tests.integration.test_alerting_real import Target, active_alerts, eventually, target

__all__ = ["target"]  # the fixture, imported for the tests below


class GeneratorAlerts(dc.MetricsObserver):
    """Returns its alerts as a generator (README: "an iterable of them")."""

    observer_name = "generator"

    def __init__(self) -> None:
        super().__init__({"spike"})

    def new_data(self, targets_data_dict: dict[str, Any]) -> Any:
        return (
            dc.Alert({"which": str(i)}, target=url) for url in targets_data_dict for i in range(2)
        )


class ForgotTheCall(dc.MetricsObserver):
    """Returns a function instead of calling it."""

    observer_name = "forgot"

    def __init__(self) -> None:
        super().__init__({"spike"})

    def new_data(self, targets_data_dict: dict[str, Any]) -> Any:
        return lambda: None


async def test_a_generator_of_alerts_is_sent_and_a_function_is_no_alert(
    alertmanager: servers.Server, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    provisioner = MetricsProvisioner(
        targets=[target.url],
        scrape_interval=0.3,
        telemetry={"enabled": False},
        alertmanager={"urls": [alertmanager.url]},
        shutdown_grace_period=5,
    )
    provisioner.register(GeneratorAlerts())
    provisioner.register(ForgotTheCall())
    with caplog.at_level(logging.ERROR, logger="deucalion"):
        async with aiohttp.ClientSession() as session:
            async with provisioner:

                async def settled() -> bool:
                    called = all(w.stats.calls >= 3 for w in provisioner.workers)
                    return called and len(await active_alerts(session, alertmanager.url)) >= 2

                await eventually(settled)
            alerts = await active_alerts(session, alertmanager.url)
    assert sorted((a["labels"]["observer"], a["labels"]["which"]) for a in alerts) == [
        ("generator", "0"),
        ("generator", "1"),
    ]
    assert all(w.stats.errors == 0 for w in provisioner.workers)
    assert "observer forgot returned something deucalion cannot send" in caplog.text
    assert "returned the callable" in caplog.text
