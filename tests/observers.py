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

    def __init__(
        self, desired: set[str], path: Path, sleep: float = 0.0, result: Any = None
    ) -> None:
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
        record = {
            "pid": os.getpid(),
            "calls": self.calls,
            "start": started,
            "end": time.time(),
            "data": targets_data_dict,
        }
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


class CustomStop(BaseException):
    """A BaseException of the user's own, as a framework might raise to unwind."""


class BaseExceptionObserver(RecordingObserver):
    """Records the call, then raises a BaseException: ``SystemExit``, ``KeyboardInterrupt`` or
    one of its own."""

    def __init__(self, desired: set[str], path: Path, kind: str) -> None:
        super().__init__(desired, path)
        self.kind = kind

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        super().new_data(targets_data_dict)
        if self.kind == "exit":
            sys.exit(0)
        if self.kind == "interrupt":
            raise KeyboardInterrupt
        raise CustomStop("unwinding")


class NeedsCode(Exception):
    """An exception whose ``__init__`` takes two arguments: pickle cannot rebuild it."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} failed with code {code}")
        self.code = code


class UnrebuildableErrorObserver(MetricsObserver):
    """Raises an exception that pickles but cannot be unpickled."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        raise NeedsCode("feature lookup", 42)


class LearningObserver(MetricsObserver):
    """Learns: counts its calls and the values it saw. Returns its state and its pid; turns
    unpicklable (holds a generator) while ``unpicklable_at`` is its call count."""

    def __init__(self, desired: set[str], unpicklable_at: int = 0) -> None:
        super().__init__(desired)
        self.seen = 0
        self.total = 0.0
        self.unpicklable_at = unpicklable_at
        self.scratch: Any = None

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        self.seen += 1
        self.total += sum(
            v for s in targets_data_dict.values() for series in s.values() for v in series.values()
        )
        self.scratch = (n for n in range(3)) if self.seen == self.unpicklable_at else None
        return {"seen": self.seen, "total": self.total, "pid": os.getpid()}


class DataTimeObserver(MetricsObserver):
    """Returns what ``deucalion.data_time()`` and ``data_times()`` answer in ``new_data``."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        import deucalion as dc

        return {
            "cycle": dc.data_time(),
            "targets": {t: dc.data_time(t) for t in targets_data_dict},
            "all": dict(dc.data_times()),
        }


class BallastObserver(MetricsObserver):
    """Fills ``megabytes`` of memory in its worker on the first call, then hangs there."""

    def __init__(self, desired: set[str], megabytes: int) -> None:
        super().__init__(desired)
        self.megabytes = megabytes

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        ballast = b"\x01" * (self.megabytes << 20)  # written, so resident
        time.sleep(3600)
        return len(ballast)


class ModelObserver(MetricsObserver):
    """Carries a model of ``megabytes`` random bytes (nothing can compress it away)."""

    def __init__(self, desired: set[str], megabytes: int) -> None:
        super().__init__(desired)
        self.model = os.urandom(megabytes << 20)

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        return len(self.model)


class DataTimeRecorder(RecordingObserver):
    """Records, beside the call, what ``deucalion.data_time()`` answers for the cycle and per
    target."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        import deucalion as dc

        record = {
            "pid": os.getpid(),
            "wall": time.time(),
            "cycle": dc.data_time(),
            "targets": {t: dc.data_time(t) for t in targets_data_dict},
        }
        with open(self.path, "a") as out:
            out.write(json.dumps(record) + "\n")
        return None


class ExitAlwaysObserver(MetricsObserver):
    """Ends its worker's process on every call (a crash in native code, say)."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        os._exit(3)


class LoggingObserver(MetricsObserver):
    """Logs one line at INFO from ``new_data`` (the application's logging decides where)."""

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        import logging

        logging.getLogger("tests.observers").info("saw %d target(s)", len(targets_data_dict))
        return []
