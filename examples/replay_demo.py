"""Record the demo's synthetic target, backtest the demo's observer on it, evaluate, plot.

``python examples/replay_demo.py [SECONDS]`` (default 60) records the synthetic target of
``deucalion demo`` (an anomaly injected every 7 s) at 0.5 s to ``replay_demo.om.gz``, writes
the injected anomalies as labelled windows to ``replay_demo_windows.json``, backtests the
demo's robust z-score observer over the recording, prints the summary and the evaluation, and
draws ``examples/replay_demo.png`` (the picture in README).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from deucalion.config.loading import load_settings
from deucalion.demo import DEMO_METRICS, RobustZScoreObserver, SyntheticTarget
from deucalion.replay import backtest
from deucalion.replay.evaluate import evaluate, load_windows
from deucalion.replay.plot import plot
from deucalion.replay.recording import record

HERE = Path(__file__).parent


async def record_demo(seconds: float, path: Path) -> dict[str, list[list[float]]]:
    """Record the synthetic target for ``seconds``; return its injected anomalies as
    labelled windows."""
    target = SyntheticTarget()
    url = await target.start()
    try:
        settings = load_settings(None, environ={}, default_file=None, targets=[url],
                                 scrape_interval=0.5)
        await record(settings, path, metrics=DEMO_METRICS, duration=seconds)
    finally:
        await target.close()
    labelled: dict[str, list[list[float]]] = {}
    for series, start, end in target.injected:
        labelled.setdefault(f"{url} {series}", []).append([start, end])
    return labelled


def main() -> None:
    """Record, backtest, evaluate and plot."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    recording, windows = Path("replay_demo.om.gz"), Path("replay_demo_windows.json")
    injected = asyncio.run(record_demo(seconds, recording))
    windows.write_text(json.dumps(injected, indent=2) + "\n")
    result = backtest(RobustZScoreObserver(DEMO_METRICS), recording.as_posix())
    print(result.summary())
    labelled = load_windows(windows)
    print(evaluate(result, labelled).report())
    print(plot(result, HERE / "replay_demo.png", windows=labelled,
               title="deucalion demo: robust z-score backtest over a recording"))


if __name__ == "__main__":
    main()
