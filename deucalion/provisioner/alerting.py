"""The provisioner's outputs: deucalion's HTTP server and the alert sender, started after the
workers and, at a stop, given a bounded time to deliver what is queued.

Firing alerts are deliberately not resolved at a stop, as Prometheus does not resolve them when
it stops: they expire at their endsAt (4 x max(scrape interval, resend interval) after the last
send). A restarted or rolled-over deucalion picks them up again without a resolve-and-fire
flap, and a crash ends them just as a clean stop does.
"""

from __future__ import annotations

import asyncio
import logging

from deucalion.alerting.alertmanager import AlertSender
from deucalion.config.loading import Settings
from deucalion.telemetry import Telemetry

__all__ = ["flush_alerts", "start_alerting"]

log = logging.getLogger(__name__)


async def start_alerting(
    settings: Settings, telemetry: Telemetry, *, alerts: bool
) -> AlertSender | None:
    """Start deucalion's HTTP server (when enabled), then, when there may be ``alerts``, the
    alert sender, whose alerts link to the server's ``/alerts``."""
    if settings.telemetry.enabled:
        await telemetry.start(settings.telemetry.listen)
    if not alerts:
        return None
    server = telemetry.server
    sender = AlertSender(
        settings.alertmanager,
        scrape_interval=settings.scrape_interval,
        generator_url=f"{server.public_url}/alerts" if server is not None else "",
    )
    await sender.start()
    return sender


async def flush_alerts(sender: AlertSender, flush: float) -> None:
    """Give the alerts queued in ``sender`` up to ``flush`` seconds to be sent (none for 0).

    The workers are closed by then, so their alerts are no longer re-sent: only what is queued
    is delivered.
    """
    await sender.stop_resending()
    waiting = [c for c in sender.clients if c.queued]
    if flush <= 0:
        return
    if waiting:
        # Said, or a stop with an Alertmanager down looks like a hang.
        log.warning(
            "stopping: waiting up to %.3gs for %d queued alert(s) to reach %s; "
            "stop again (a second SIGINT/SIGTERM) to drop them and stop now",
            flush,
            sum(c.queued for c in waiting),
            ", ".join(f"Alertmanager {c.name}" for c in waiting),
        )
    try:
        async with asyncio.timeout(flush):
            await sender.flush()
    except TimeoutError:
        pass
