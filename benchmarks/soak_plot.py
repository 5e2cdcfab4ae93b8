"""Plot the soak's curves: ``python -m benchmarks.soak_plot`` turns benchmarks/soak.json into
benchmarks/soak.png. Needs matplotlib, which is not a dependency of deucalion (a plot is a
bonus; the table in results.md has the same numbers)."""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks.report import HERE


def plot(samples: list[dict[str, Any]]) -> bool:
    """Write soak.png from the soak's samples; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    times = [s["t"] for s in samples]
    axes[0].plot(times, [s["rss"] / 2**20 for s in samples], label="application RSS MB")
    axes[0].plot(times, [s["workers_rss"] / 2**20 for s in samples], label="worker RSS MB")
    axes[0].set_ylim(bottom=0)
    axes[0].legend()
    axes[1].plot(times, [s["fds"] for s in samples], label="open fds")
    axes[1].set_ylim(bottom=0)
    axes[1].legend()
    axes[1].set_xlabel("seconds")
    figure.suptitle("make soak: 50 targets every 100 ms")
    figure.savefig(HERE / "soak.png")
    plt.close(figure)
    return True


def main() -> int:
    samples = json.loads((HERE / "soak.json").read_text())["samples"]
    if not plot(samples):
        print("matplotlib is not installed: pip install matplotlib", file=sys.stderr)
        return 1
    print(HERE / "soak.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
