"""Observers used by the tests. They run in worker processes, so this module imports little.

Each records what it saw as JSON lines in a file, since the worker's state is out of the test's
reach.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from deucalion.observer import MetricsObserver, TargetsData


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records an observer wrote so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RecordingObserver(MetricsObserver):
    """Records every call: its pid, a per-process call counter, times and the data."""

    def __init__(self, desired: set[str], path: Path, sleep: float = 0.0,
                 result: Any = None) -> None:
        super().__init__(desired)
        self.path = str(path)
        self.sleep = sleep
        self.calls = 0
        self.result = result

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        started = time.time()
        self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)
        record = {"pid": os.getpid(), "calls": self.calls, "start": started, "end": time.time(),
                  "data": targets_data_dict}
        with open(self.path, "a") as out:
            out.write(json.dumps(record) + "\n")
        return self.result


class RaisingObserver(RecordingObserver):
    """Records the call, then raises."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        super().new_data(targets_data_dict)
        raise ValueError("model exploded")


class ExitOnceObserver(RecordingObserver):
    """Kills its own process on the first call ever (a marker file remembers), then records."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        marker = Path(self.path + ".exited")
        if not marker.exists():
            marker.touch()
            os._exit(3)
        return super().new_data(targets_data_dict)


class HangOnceObserver(RecordingObserver):
    """Hangs on the first call ever (a marker file remembers), then records."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        marker = Path(self.path + ".hung")
        if not marker.exists():
            marker.touch()
            time.sleep(3600)
        return super().new_data(targets_data_dict)


class ModulesObserver(MetricsObserver):
    """Returns the names of the modules loaded in its worker process."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return sorted(sys.modules)


class TimeoutRaisingObserver(RecordingObserver):
    """Records the call, then raises TimeoutError (as a model calling a service might)."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        super().new_data(targets_data_dict)
        raise TimeoutError("the feature store timed out")


class InterpreterObserver(MetricsObserver):
    """Returns what its worker's interpreter was given: ``sys.argv``, ``sys.path``, the cwd."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return {"argv": sys.argv, "path": sys.path, "cwd": os.getcwd()}


class UnpicklableResultObserver(MetricsObserver):
    """Returns a value that pickle cannot carry back (a generator)."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return (n for n in range(3))


class UnpicklableErrorObserver(MetricsObserver):
    """Raises an exception that neither pickle nor cloudpickle can carry (it holds a generator)."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        error = ValueError("feature store unreachable")
        error.pending = (n for n in range(3))  # type: ignore[attr-defined]
        raise error


class UnloadableObserver(MetricsObserver):
    """Cannot be unpickled in its worker: as if a library it needs were missing there."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        raise ModuleNotFoundError("No module named 'feature_store'")

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return None


class DyingOnLoadObserver(MetricsObserver):
    """Ends its worker's process while being unpickled there (a crash in native code, say)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        os._exit(7)

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return None
