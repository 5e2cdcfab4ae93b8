"""Record the demo's synthetic target, backtest the demo's observer on it, evaluate, plot.

``python examples/replay_demo.py [SECONDS] [--out DIR]`` (default 60 s) records the synthetic
target of ``deucalion demo`` (an anomaly injected every 7 s) at 0.5 s to ``DIR/replay_demo.om.gz``,
writes the injected anomalies as labelled windows to ``DIR/replay_demo_windows.json``, backtests
the demo's robust z-score observer over the recording, prints the summary and the evaluation,
and draws ``DIR/replay_demo.png``. DIR is a new temporary directory unless given, so a run never
overwrites a file of the repository; ``--png examples/replay_demo.png`` redraws README's picture.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from deucalion.config.loading import load_settings
from deucalion.demo import DEMO_METRICS, RobustZScoreObserver, SyntheticTarget
from deucalion.replay import backtest
from deucalion.replay.evaluate import evaluate, load_windows
from deucalion.replay.plot import plot
from deucalion.replay.recording import record


async def record_demo(seconds: float, path: Path) -> dict[str, list[list[float]]]:
    """Record the synthetic target for ``seconds``; return its injected anomalies as
    labelled windows."""
    target = SyntheticTarget()
    url = await target.start()
    try:
        settings = load_settings(
            None, environ={}, default_file=None, targets=[url], scrape_interval=0.5
        )
        await record(settings, path, metrics=DEMO_METRICS, duration=seconds)
    finally:
        await target.close()
    labelled: dict[str, list[list[float]]] = {}
    for series, start, end in target.injected:
        labelled.setdefault(f"{url} {series}", []).append([start, end])
    return labelled


def main() -> None:
    """Record, backtest, evaluate and plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "seconds", nargs="?", type=float, default=60.0, help="how long to record (default: 60)"
    )
    parser.add_argument(
        "--out", type=Path, help="where to write (default: a new temporary directory)"
    )
    parser.add_argument("--png", type=Path, help="the picture (default: OUT/replay_demo.png)")
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error(f"SECONDS must be more than 0, not {args.seconds:g}")
    out = args.out or Path(tempfile.mkdtemp(prefix="deucalion-replay-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    recording, windows = out / "replay_demo.om.gz", out / "replay_demo_windows.json"
    injected = asyncio.run(record_demo(args.seconds, recording))
    windows.write_text(json.dumps(injected, indent=2) + "\n")
    result = backtest(RobustZScoreObserver(DEMO_METRICS), recording.as_posix())
    print(result.summary())
    labelled = load_windows(windows)
    print(evaluate(result, labelled).report())
    print(
        plot(
            result,
            args.png or out / "replay_demo.png",
            windows=labelled,
            title="deucalion demo: robust z-score backtest over a recording",
        )
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
