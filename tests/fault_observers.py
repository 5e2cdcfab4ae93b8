"""Observers for the fault tests. They run in worker processes, so this module imports little.

Like tests/observers.py they write what they saw as JSON lines; these write a summary (which
metrics, how many series, the longest series key) rather than the data, which can be huge.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from deucalion.observer import MetricsObserver, TargetsData


class SummaryObserver(MetricsObserver):
    """Records per target: ``up``, ``scrape_samples_scraped`` and each metric's series count."""

    def __init__(self, desired: set[str], path: Path) -> None:
        super().__init__(desired)
        self.path = str(path)

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        targets = {}
        for url, samples in targets_data_dict.items():
            targets[url] = {
                "up": samples.get("up", {}).get("{}"),
                "samples_scraped": samples.get("scrape_samples_scraped", {}).get("{}"),
                "series": {name: len(series) for name, series in samples.items()},
                "longest_key": max((len(k) for s in samples.values() for k in s), default=0),
            }
        with open(self.path, "a") as out:
            out.write(
                json.dumps({"pid": os.getpid(), "time": time.time(), "targets": targets}) + "\n"
            )
        return None


class MemoryErrorOnceObserver(SummaryObserver):
    """Runs out of memory on the first call ever (a marker file remembers), then records."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        marker = Path(self.path + ".oom")
        if not marker.exists():
            marker.touch()
            # A real allocation failure, not a hand-raised MemoryError.
            bytearray(2**62)
        return super().new_data(targets_data_dict)


class CountingObserver(MetricsObserver):
    """Keeps in one small file its call count and how many targets were up in the last call."""

    def __init__(self, desired: set[str], path: Path) -> None:
        super().__init__(desired)
        self.path = str(path)
        self.calls = 0

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        self.calls += 1
        up = sum(1 for s in targets_data_dict.values() if s.get("up", {}).get("{}") == 1.0)
        with_data = sum(1 for s in targets_data_dict.values() if s.get("node_load1"))
        temporary = self.path + ".tmp"
        with open(temporary, "w") as out:
            json.dump(
                {"pid": os.getpid(), "calls": self.calls, "up": up, "with_data": with_data}, out
            )
        os.replace(temporary, self.path)
        return None


class ResumingObserver(MetricsObserver):
    """Learns a call count; writes, per call, its class, count, ``setting`` and pid."""

    observer_name = "resuming"

    def __init__(self, desired: set[str], path: Path, setting: int = 0) -> None:
        super().__init__(desired)
        self.path = str(path)
        self.setting = setting
        self.calls = 0

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        self.calls += 1
        with open(self.path, "a") as out:
            out.write(
                json.dumps(
                    {
                        "class": type(self).__name__,
                        "calls": self.calls,
                        "setting": self.setting,
                        "pid": os.getpid(),
                    }
                )
                + "\n"
            )
        return None


class OtherResumingObserver(ResumingObserver):
    """Another class under the same observer name, ``resuming``."""


class UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class UnprintableErrorObserver(SummaryObserver):
    """Records the call, then raises an exception that cannot be printed."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        super().new_data(targets_data_dict)
        raise UnprintableError("hidden")


class UnpicklableResultObserver(MetricsObserver):
    """Returns a value that neither pickle nor cloudpickle can carry back (a lock)."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        import threading

        return threading.Lock()


def _load_hanging(desired: set[str], path: str) -> Any:
    """What unpickling a ``HangOnLoadObserver`` runs: note this pid, then never return."""
    with open(path, "a") as out:
        out.write(f"{os.getpid()}\n")
    time.sleep(3600)


class HangOnLoadObserver(MetricsObserver):
    """Its unpickling in the worker hangs (after appending the worker's pid to ``path``)."""

    observer_name = "hangs-on-load"

    def __init__(self, desired: set[str], path: Path) -> None:
        super().__init__(desired)
        self.path = str(path)

    def __reduce__(self) -> Any:
        return _load_hanging, (set(self.desired_metrics), self.path)

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return None


class SpawningObserver(MetricsObserver):
    """Starts a child that ignores SIGTERM at each call (its pid appended to ``path``), then
    hangs when ``hang`` is set."""

    def __init__(self, desired: set[str], path: Path, hang: bool) -> None:
        super().__init__(desired)
        self.observer_name = "spawning-hung" if hang else "spawning-calm"
        self.path = str(path)
        self.hang = hang

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        import subprocess

        child = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 600"])
        with open(self.path, "a") as out:
            out.write(f"{child.pid}\n")
        if self.hang:
            time.sleep(3600)
        return None
