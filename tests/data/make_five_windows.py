"""Writes tests/data/five_windows/: one series of 1,000 points at 1-minute steps with five
labelled windows and a spike at the start of two of them (run it to regenerate).

An observer that alerts on the spikes finds 2 of the 5 windows; evaluation must count the
three others as missed even though such an observer writes no row for them.
"""

from __future__ import annotations

import json
from pathlib import Path

ROWS = 1000
STEP = 60
START = 1_704_067_200  # 2024-01-01T00:00:00Z
WINDOWS = [(200, 239), (350, 389), (500, 539), (650, 689), (800, 839)]
SPIKES = (350, 650)  # at the start of the second and fourth windows
HERE = Path(__file__).parent / "five_windows"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    lines = ["timestamp,value"]
    for row in range(ROWS):
        value = 10.0 if row in SPIKES else 1.0 + 0.1 * (row % 7)
        lines.append(f"{START + STEP * row},{value}")
    (HERE / "spikes.csv").write_text("\n".join(lines) + "\n")
    windows = {"spikes.csv": [[START + STEP * a, START + STEP * b] for a, b in WINDOWS]}
    (HERE / "windows.json").write_text(json.dumps(windows, indent=2) + "\n")


if __name__ == "__main__":
    main()
