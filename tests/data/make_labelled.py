"""Writes tests/data/labelled/: a tiny NAB-style labelled data set (run it to regenerate).

Three series at 5-minute steps, ``timestamp,value`` with NAB's timestamp format, and
``windows.json`` with each file's anomaly windows (NAB's width: 10 % of the file, split among its
anomalies, centred on each):

- ``daily_spike.csv``: a daily cycle with noise and one spike;
- ``level_shift.csv``: noise around a level that jumps for two and a half hours;
- ``quiet.csv``: noise only, no window (every detection is false).
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROWS = 400
STEP = timedelta(minutes=5)
START = datetime(2024, 1, 1, tzinfo=UTC)
HERE = Path(__file__).parent / "labelled"


def _stamp(row: int) -> str:
    return (START + row * STEP).strftime("%Y-%m-%d %H:%M:%S")


def _window(row: int) -> list[str]:
    half = ROWS // 10 // 2
    return [_stamp(row - half), _stamp(row + half)]


def main() -> None:
    rng = random.Random(16)
    series: dict[str, list[float]] = {}
    windows: dict[str, list[list[str]]] = {}
    values = [10 + 3 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.3) for i in range(ROWS)]
    values[250] += 6.0
    series["daily_spike.csv"], windows["daily_spike.csv"] = values, [_window(250)]
    values = [50 + rng.gauss(0, 1.0) + (12.0 if 300 <= i < 330 else 0.0) for i in range(ROWS)]
    series["level_shift.csv"], windows["level_shift.csv"] = values, [_window(300)]
    series["quiet.csv"], windows["quiet.csv"] = [5 + rng.gauss(0, 0.5) for _ in range(ROWS)], []
    HERE.mkdir(exist_ok=True)
    for name, column in series.items():
        lines = ["timestamp,value"] + [f"{_stamp(i)},{v:.3f}" for i, v in enumerate(column)]
        (HERE / name).write_text("\n".join(lines) + "\n")
    (HERE / "windows.json").write_text(json.dumps(windows, indent=2) + "\n")


if __name__ == "__main__":
    main()
