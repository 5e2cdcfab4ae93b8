"""Dispatch: data ready to ``new_data`` starting in the worker, deucalion against a pool that
pickles the observer with every call.

deucalion's ``ObserverWorker`` installs the observer in its worker process once; each call
sends only the data. The baseline is what one writes without that: ``ProcessPoolExecutor
.submit(run_observer, cloudpickle.dumps(observer), data)``. Both are timed from just before the
hand-off to the first line of ``new_data`` (the observer returns ``time.time()``), with
payloads of 100 to 100,000 series and models of 1 MB and 100 MB. Pickling the data alone
(``pickle.dumps`` and ``loads`` in this process) is timed too, to show what the hand-off is made
of.

A worker keeps the series keys it was last sent, so deucalion is timed twice: as in a
deployment, where each observer sees the same targets' series every cycle (one worker per
payload size, "steady"), and at its worst, with every call's series new to the worker (one
worker taking the sizes in turn, "new series every call").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import pickle
import time
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
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    observers = {name: ModelObserver(size) for name, size in MODELS.items()}
    # One worker per model and size (steady series), and one per model taking every size in
    # turn (series new to it on every call).
    steady = {(name, n): ObserverWorker(o, on_result=outcomes.put_nowait)
              for name, o in observers.items() for n in SERIES}
    changing = {name: ObserverWorker(o, on_result=outcomes.put_nowait)
                for name, o in observers.items()}
    workers = [*steady.values(), *changing.values()]
    pools = {name: concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")) for name in MODELS}
    datas = {n: payload(n) for n in SERIES}
    try:
        await asyncio.gather(*(w.start() for w in workers))
        for pool in pools.values():
            await loop.run_in_executor(pool, os.getpid)  # spawn the baseline's process now
        for model in MODELS:
            samples[model] = {str(n): {"deucalion": [], "latency_field": [], "changing": [],
                                       "baseline": []} for n in SERIES}
        for _ in range(reps):
            # Interleaved: every combination once per round, so noise hits all alike.
            for model in MODELS:
                for n, data in datas.items():
                    got = samples[model][str(n)]
                    ready = time.time()
                    steady[model, n].submit(data)
                    outcome = await outcomes.get()
                    got["deucalion"].append(outcome.result - ready)
                    got["latency_field"].append(outcome.latency)
                    ready = time.time()
                    changing[model].submit(data)
                    outcome = await outcomes.get()
                    got["changing"].append(outcome.result - ready)
                    ready = time.time()
                    started = await loop.run_in_executor(
                        pools[model], run_observer, cloudpickle.dumps(observers[model]), data)
                    got["baseline"].append(started - ready)
    finally:
        await asyncio.gather(*(w.close() for w in workers))
        for pool in pools.values():
            pool.shutdown(wait=True)
    pickling: dict[str, dict[str, float]] = {}
    for n, data in datas.items():
        dumps, loads = [], []
        for _ in range(max(3, reps // 2)):
            started = time.perf_counter()
            blob = pickle.dumps(data)
            dumps.append(time.perf_counter() - started)
            started = time.perf_counter()
            pickle.loads(blob)
            loads.append(time.perf_counter() - started)
        pickling[str(n)] = {"dumps_s": median(dumps), "loads_s": median(loads),
                            "bytes": len(blob)}
    return {"samples": samples, "pickling": pickling}


def main(quick: bool = False) -> dict[str, Any]:
    """Run the comparison; ``quick`` runs 5 calls per combination instead of 30."""
    reps = 5 if quick else 30
    measured = run(_measure(reps))
    rows = []
    results: dict[str, Any] = {}
    for model in MODELS:
        for n in SERIES:
            got = measured["samples"][model][str(n)]
            pick = measured["pickling"][str(n)]
            ours, theirs = median(got["deucalion"]), median(got["baseline"])
            rows.append([model, f"{n:,}", ms(ours), ms(median(got["changing"])),
                         ms(median(got["latency_field"])), ms(theirs), f"{theirs / ours:.1f}x",
                         f"{ms(pick['dumps_s'])} + {ms(pick['loads_s'])}",
                         f"{pick['bytes'] / 1e6:.2f}"])
            results[f"{model}/{n}"] = {"deucalion_s": ours, "baseline_s": theirs,
                                       "pickle": pick, "samples": got}
    at_10k = [results[f"{m}/10000"]["deucalion_s"] * 1000 for m in MODELS]
    independent = max(at_10k) < 2 * min(at_10k) + 1
    verdict = "met" if independent and max(at_10k) < TARGET_MS else "missed"
    results["target"] = {"ms_at_10000": at_10k, "limit_ms": TARGET_MS,
                         "independent_of_model": independent, "verdict": verdict}
    markdown = (
        "## Dispatch (bench_dispatch)\n\n"
        f"Data ready to `new_data` starting in the worker, median of {reps} calls each; data of "
        f"{TARGETS} targets. deucalion steady: the same series every call, as an observer sees "
        "its targets cycle after cycle; new series every call: deucalion's worst case. "
        "Baseline: a process pool pickling the observer with every call. "
        "`CallOutcome.latency` is deucalion's own measure (from its hand-off in the call task). "
        "The last columns pickle the data alone in this process.\n\n"
        + table(["model", "series", "deucalion ms (steady)", "deucalion ms (new series every "
                 "call)", "CallOutcome.latency ms", "baseline ms", "baseline / deucalion",
                 "pickle dumps + loads ms", "pickled MB"], rows)
        + f"\nTarget (steady): independent of model size and under {TARGET_MS:g} ms at 10,000 "
        "series: "
        f"**{verdict}** ({', '.join(f'{v:.2f}' for v in at_10k)} ms for "
        f"{' / '.join(MODELS)}).\n"
    )
    return {"markdown": markdown, **results}


if __name__ == "__main__":
    print(main(quick=True)["markdown"])
