"""Alert latency: an anomaly injected into a target until the alert shows in a real Alertmanager.

A target serves ``anomaly_injection`` (0, or the number of the injection); the observer
returns a ``deucalion.alerting.alerts.Alert`` labelled with that number when it is not 0, so every
injection is a new alert. The time from setting the value to the alert being listed by
``GET /api/v2/alerts`` is reported in seconds and in scrape intervals (median and p99). Until the
alerting layer sends alerts, no alert arrives and the benchmark reports itself skipped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks._common import run
from benchmarks.report import median, percentile, table
from deucalion.observer import MetricsObserver, TargetsData
from tests.helpers import TargetServer
from tests.integration.servers import ServerUnavailable, start_alertmanager

INTERVAL = 0.5
FIRST_ALERT_WITHIN = 10.0
METRIC = "anomaly_injection"


class InjectionObserver(MetricsObserver):
    """Raises one alert per injection it sees, labelled with the injection's number."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        from deucalion.alerting.alerts import Alert

        alerts = []
        for samples in targets_data_dict.values():
            value = samples.get(METRIC, {}).get("{}", 0.0)
            if value:
                alerts.append(
                    Alert(
                        labels={"injection": str(int(value))},
                        annotations={"summary": "injected anomaly"},
                    )
                )
        return alerts or None


async def _visible(session: aiohttp.ClientSession, url: str, injection: int) -> bool:
    async with session.get(f"{url}/api/v2/alerts") as response:
        alerts = await response.json()
    return any(a.get("labels", {}).get("injection") == str(injection) for a in alerts)


async def _measure(am_url: str, reps: int) -> list[float] | None:
    from deucalion.provisioner import MetricsProvisioner

    state = {"value": 0}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=f"{METRIC} {state['value']}\n")

    target = TargetServer()
    url = target.add("/metrics", handler)
    await target.start()
    provisioner = MetricsProvisioner(
        targets=[url],
        scrape_interval=INTERVAL,
        alertmanager={"urls": [am_url]},
        telemetry={"enabled": False},
    )
    provisioner.register(InjectionObserver({METRIC}))
    latencies: list[float] = []
    try:
        async with provisioner, aiohttp.ClientSession() as session:
            await asyncio.sleep(2 * INTERVAL)
            for injection in range(1, reps + 1):
                state["value"] = injection
                injected = time.monotonic()
                limit = FIRST_ALERT_WITHIN if injection == 1 else 10 * FIRST_ALERT_WITHIN
                while not await _visible(session, am_url, injection):
                    if time.monotonic() - injected > limit:
                        return None if injection == 1 else latencies
                    await asyncio.sleep(0.01)
                latencies.append(time.monotonic() - injected)
                state["value"] = 0
                # Injections land at random points of the interval, as real anomalies do.
                await asyncio.sleep(INTERVAL * (1 + (injection * 0.37) % 1))
    finally:
        await target.close()
    return latencies


def main(quick: bool = False) -> dict[str, Any]:
    """Inject 5 (``quick``) or 50 anomalies, one after the other."""
    reps = 5 if quick else 50
    title = "## Alert latency (bench_alert_latency)\n\n"
    try:
        from deucalion.alerting.alerts import Alert  # noqa: F401 - only checks the contract exists
    except ImportError:
        return {
            "markdown": title + "skipped: alerting not available (no deucalion.alerting)\n",
            "skipped": "alerting not available",
        }
    try:
        am = start_alertmanager()
    except ServerUnavailable as exc:
        return {"markdown": title + f"skipped: {exc}\n", "skipped": str(exc)}
    try:
        latencies = run(_measure(am.url, reps))
    finally:
        am.stop()
    if latencies is None:
        return {
            "markdown": title + "skipped: alerting not available (no alert reached "
            f"Alertmanager within {FIRST_ALERT_WITHIN:g}s)\n",
            "skipped": "alerting not available",
        }
    mid, p99 = median(latencies), percentile(latencies, 99)
    markdown = (
        title + f"From setting the target's value to the alert listed by Alertmanager's API, "
        f"scrape interval {INTERVAL:g}s, {len(latencies)} of {reps} injections seen.\n\n"
        + table(
            ["", "seconds", "scrape intervals"],
            [
                ["median", f"{mid:.3f}", f"{mid / INTERVAL:.2f}"],
                ["p99", f"{p99:.3f}", f"{p99 / INTERVAL:.2f}"],
            ],
        )
    )
    return {
        "markdown": markdown,
        "interval_s": INTERVAL,
        "latencies_s": latencies,
        "median_intervals": mid / INTERVAL,
        "p99_intervals": p99 / INTERVAL,
    }


if __name__ == "__main__":
    print(main(quick=True)["markdown"])
