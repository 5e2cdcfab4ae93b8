"""The range detector's ready observer against a real node_exporter: quiet at idle, then a burn.

The observed CPU is node_exporter's own (``process_cpu_seconds_total``), burnt by scraping it
from several threads at once: the machine's CPUs are shared with other work, so their idle is
not ours to promise, while an idle node_exporter's CPU is.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import deucalion as dc
from deucalion.detectors.nab import RangeObserver
from deucalion.observer import TargetsData
from tests.helpers import wait_for
from tests.integration.servers import Server

INTERVAL = 0.5
WARMUP = 40  # cycles: 20 s of idle CPU to learn from
BURN = """
import sys, threading, urllib.request
def hammer():
    while True:
        urllib.request.urlopen(sys.argv[1]).read()
for _ in range(8):
    threading.Thread(target=hammer, daemon=True).start()
print("hammering", flush=True)
threading.Event().wait()
"""
# Cycles from the burn's start to its alert: it shows in the next rate or two; a loaded
# machine has room (the cycles are counted from when the burn runs, not from its start-up).
FIRES_WITHIN = 10


class RecordingRangeObserver(RangeObserver):
    """A RangeObserver that also writes each cycle's alerts to a JSON-lines file."""

    def __init__(self, path: Path, **options: object) -> None:
        super().__init__({"process_cpu_seconds_total"}, **options)
        self.path = str(path)
        self.cycle = 0

    def new_data(self, targets_data_dict: TargetsData) -> dc.Scores:
        result = super().new_data(targets_data_dict)
        self.cycle += 1
        record = {
            "cycle": self.cycle,
            "alerts": [
                {"labels": dict(a.labels), "annotations": dict(a.annotations)}
                for a in result.alerts
            ],
        }
        with open(self.path, "a") as out:
            out.write(json.dumps(record) + "\n")
        return result


def _cycles(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def test_quiet_at_idle_and_fires_within_a_few_cycles_of_a_cpu_burn(
    node_exporter: Server, tmp_path: Path
) -> None:
    """Idle CPU after warm-up gives no alert; a scrape storm's CPU gives one within a few
    cycles."""
    path = tmp_path / "cycles.jsonl"
    url = f"{node_exporter.url}/metrics"
    provisioner = dc.MetricsProvisioner(
        targets=[url], scrape_interval=INTERVAL, telemetry={"enabled": False}
    )
    provisioner.register(RecordingRangeObserver(path, warmup=WARMUP, window=WARMUP))
    burners: list[asyncio.subprocess.Process] = []
    try:
        async with provisioner:
            idle_until = WARMUP + 20  # 10 s of idle after the warm-up
            await wait_for(lambda: len(_cycles(path)) >= idle_until, within=90)
            idle_alerts = [c for c in _cycles(path) if c["alerts"]]
            burners = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-c", BURN, url, stdout=asyncio.subprocess.PIPE
                )
            ]
            assert burners[0].stdout is not None
            assert await asyncio.wait_for(burners[0].stdout.readline(), 30) == b"hammering\n"
            started = len(_cycles(path))
            await wait_for(lambda: any(c["alerts"] for c in _cycles(path)[started:]), within=30)
            fired = next(c for c in _cycles(path)[started:] if c["alerts"])
    finally:
        for burner in burners:
            burner.kill()
            await burner.wait()
    assert idle_alerts == []
    assert int(str(fired["cycle"])) - started <= FIRES_WITHIN
    alert = fired["alerts"][0]  # type: ignore[index]
    assert alert["labels"]["metric"] == "process_cpu_seconds_total"
    assert alert["annotations"]["kind"] in {"record", "recent"}
    assert " .. " in alert["annotations"]["expected_range"]
    assert float(alert["annotations"]["observed"]) >= 0
