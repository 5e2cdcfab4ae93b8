"""Dispatch: data ready to ``new_data`` starting in the worker.

deucalion's ``ObserverWorker`` (a ``ProcessPoolExecutor(max_workers=1)`` whose initializer
installs the observer once, called with ``run_in_executor``) against:

- the socket-pair worker it replaced (issue 12), from the figures recorded just before it was
  removed (``benchmarks/dispatch_socketpair.json``: same benchmark, same machine, same day);
- a process pool that pickles the observer with every call
  (``executor.submit(run_observer, cloudpickle.dumps(observer), data)``), what one writes
  without installing the observer once;
- the same executor fed the data as a plain pickled dict, without deucalion's series-key
  encoding (``deucalion/dispatch/payload.py``: keys only when they change, values as one
  array), which shows whether that encoding still pays inside an executor call.

Each is timed from just before the hand-off to the first line of ``new_data`` (the observer
returns ``time.time()``), with payloads of 100 to 100,000 series and models of 1 MB and 100 MB,
interleaved so that the load of a shared machine hits all alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import pickle
import time
from pathlib import Path
from typing import Any

import cloudpickle

from benchmarks._common import run
from benchmarks.report import median, ms, table
from deucalion.dispatch import CallOutcome, ObserverWorker
from deucalion.observer import MetricsObserver, TargetsData

SERIES = (100, 10_000, 100_000)
MODELS = {"1 MB": 10**6, "100 MB": 100 * 10**6}
TARGETS = 10
TARGET_MS = 5.0
SOCKET_PAIR = Path(__file__).with_name("dispatch_socketpair.json")


class ModelObserver(MetricsObserver):
    """Carries a model of a given size; ``new_data`` returns when it started."""

    def __init__(self, model_bytes: int) -> None:
        super().__init__({"node_cpu_seconds_total"})
        # Random bytes: a model that neither pickling nor the pipe can compress away.
        self.model = os.urandom(model_bytes)

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return time.time()


def run_observer(payload: bytes, data: TargetsData) -> Any:
    """The baseline's worker function: unpickle the observer, then call it."""
    observer = cloudpickle.loads(payload)
    return observer.new_data(data)


_installed: Any = None


def install(payload: bytes) -> None:
    """The plain variant's initializer: the observer, once."""
    global _installed
    _installed = pickle.loads(payload)


def call_plain(data: TargetsData) -> Any:
    """The plain variant's call: the data as pickle carries it."""
    return _installed.new_data(data)


def payload(series: int) -> TargetsData:
    """``series`` series of one metric, spread over 10 targets."""
    per_target = max(1, series // TARGETS)
    return {
        f"http://10.0.0.{t}:9100/metrics": {
            "node_cpu_seconds_total": {
                f'{{cpu="{i // 8}",mode="m{i % 8}"}}': float(i) for i in range(per_target)
            }
        }
        for t in range(TARGETS)
    }


async def _measure(reps: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    outcomes: asyncio.Queue[CallOutcome] = asyncio.Queue()
    observers = {name: ModelObserver(size) for name, size in MODELS.items()}
    # One worker per model and size: each sees the same series every call, as an observer
    # sees its targets cycle after cycle.
    workers = {
        (name, n): ObserverWorker(o, on_result=outcomes.put_nowait)
        for name, o in observers.items()
        for n in SERIES
    }
    spawn = multiprocessing.get_context("spawn")
    pools = {
        name: concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn)
        for name in MODELS
    }
    plain = {
        key: concurrent.futures.ProcessPoolExecutor(
            max_workers=1,
            mp_context=spawn,
            initializer=install,
            initargs=(cloudpickle.dumps(observers[key[0]]),),
        )
        for key in workers
    }
    datas = {n: payload(n) for n in SERIES}
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        model: {str(n): {"executor": [], "plain": [], "baseline": []} for n in SERIES}
        for model in MODELS
    }
    try:
        await asyncio.gather(*(w.start() for w in workers.values()))
        for pool in [*pools.values(), *plain.values()]:
            await loop.run_in_executor(pool, os.getpid)  # start the processes now
        for _ in range(reps):
            for model in MODELS:
                for n, data in datas.items():
                    got = samples[model][str(n)]
                    ready = time.time()
                    workers[model, n].submit(data)
                    outcome = await outcomes.get()
                    got["executor"].append(outcome.result - ready)
                    ready = time.time()
                    started = await loop.run_in_executor(plain[model, n], call_plain, data)
                    got["plain"].append(started - ready)
                    ready = time.time()
                    started = await loop.run_in_executor(
                        pools[model], run_observer, cloudpickle.dumps(observers[model]), data
                    )
                    got["baseline"].append(started - ready)
    finally:
        await asyncio.gather(*(w.close() for w in workers.values()))
        for pool in [*pools.values(), *plain.values()]:
            pool.shutdown(wait=True)
    return samples


def main(quick: bool = False) -> dict[str, Any]:
    """Run the comparison; ``quick`` runs 5 calls per combination instead of 20."""
    reps = 5 if quick else 20
    measured = run(_measure(reps))
    recorded = json.loads(SOCKET_PAIR.read_text())["figures"] if SOCKET_PAIR.exists() else {}
    rows = []
    results: dict[str, Any] = {}
    for model in MODELS:
        for n in SERIES:
            got = measured[model][str(n)]
            ours, simple, theirs = (median(got[k]) for k in ("executor", "plain", "baseline"))
            socket_pair = recorded.get(f"{model}/{n}", {}).get("deucalion_s")
            rows.append(
                [
                    model,
                    f"{n:,}",
                    ms(ours),
                    ms(socket_pair) if socket_pair is not None else "-",
                    f"{ours / socket_pair:.2f}x" if socket_pair else "-",
                    ms(simple),
                    f"{simple / ours:.2f}x",
                    ms(theirs),
                    f"{theirs / ours:.1f}x",
                ]
            )
            results[f"{model}/{n}"] = {
                "executor_s": ours,
                "plain_pickle_s": simple,
                "baseline_s": theirs,
                "socket_pair_s": socket_pair,
                "samples": got,
            }
    at_10k = [results[f"{m}/10000"]["executor_s"] * 1000 for m in MODELS]
    independent = max(at_10k) < 2 * min(at_10k) + 1
    verdict = "met" if independent and max(at_10k) < TARGET_MS else "missed"
    results["target"] = {
        "ms_at_10000": at_10k,
        "limit_ms": TARGET_MS,
        "independent_of_model": independent,
        "verdict": verdict,
    }
    markdown = (
        "## Dispatch (bench_dispatch)\n\n"
        f"Data ready to `new_data` starting in the worker, median of {reps} calls each; data of "
        f"{TARGETS} targets, the same series every call. Executor: deucalion's "
        "`ProcessPoolExecutor(max_workers=1)` per observer, observer installed once by its "
        "initializer, data sent with `run_in_executor`, series keys only when they change. "
        "Socket pair: the hand-written worker issue 12 removed, as recorded just before "
        "(`dispatch_socketpair.json`, a quick run on the same shared machine). Plain pickle: "
        "the same executor fed the data dict as pickle carries it, without deucalion's "
        "series-key encoding. "
        "Baseline: a process pool pickling the observer with every call. The machine is "
        "shared with other sessions: compare within a row, as ratios.\n\n"
        + table(
            [
                "model",
                "series",
                "executor ms",
                "socket pair ms (recorded)",
                "executor / socket pair",
                "plain pickle ms",
                "plain / executor",
                "baseline ms",
                "baseline / executor",
            ],
            rows,
        )
        + f"\nTarget: independent of model size and under {TARGET_MS:g} ms at 10,000 "
        f"series: **{verdict}** ({', '.join(f'{v:.2f}' for v in at_10k)} ms for "
        f"{' / '.join(MODELS)}).\n"
    )
    return {"markdown": markdown, **results}


if __name__ == "__main__":
    print(main(quick=True)["markdown"])
