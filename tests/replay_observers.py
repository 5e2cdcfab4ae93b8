"""Observers the replay tests run; they run in worker processes, so this module imports little."""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

import deucalion as dc
from deucalion.observer import MetricsObserver, TargetsData


class RobustZScore(MetricsObserver):
    """A robust z-score per series over a sliding window; the worst series' score per target,
    an alert (that score) when it passes ``threshold``, else 0."""

    def __init__(self, desired_metrics: set[str], threshold: float = 5.0, window: int = 30) -> None:
        super().__init__(desired_metrics)
        self.threshold = threshold
        self.window = window
        self.history: dict[tuple[str, str, str], deque[float]] = {}

    def new_data(self, targets_data_dict: TargetsData) -> dict[str, float]:
        scores: dict[str, float] = {}
        for target, samples in targets_data_dict.items():
            worst = 0.0
            for metric, per_series in samples.items():
                if metric == "up":
                    continue
                for series, value in per_series.items():
                    past = self.history.setdefault(
                        (target, metric, series), deque(maxlen=self.window)
                    )
                    if len(past) >= 10 and math.isfinite(value):
                        ordered = sorted(past)
                        median = ordered[len(ordered) // 2]
                        mad = sorted(abs(v - median) for v in ordered)[len(ordered) // 2]
                        scale = max(1.4826 * mad, 1e-9 + 1e-3 * abs(median))
                        worst = max(worst, abs(value - median) / scale)
                    past.append(value)
            scores[target] = worst if worst >= self.threshold else 0.0
        return scores


class SeenObserver(MetricsObserver):
    """Writes, per call, the data and the times ``dc.data_time()`` gave, as JSON lines."""

    def __init__(self, desired_metrics: set[str], path: str) -> None:
        super().__init__(desired_metrics)
        self.path = path

    def new_data(self, targets_data_dict: TargetsData) -> None:
        record: dict[str, Any] = {"data": targets_data_dict}
        try:
            record.update(time=dc.data_time(), times=dict(dc.data_times()))
        except RuntimeError:  # the live worker before issue 12 tells no data time
            pass
        with open(self.path, "a") as out:
            out.write(json.dumps(record) + "\n")


class RaisesAfter(MetricsObserver):
    """Returns 0 per target, then raises from call ``after`` on (every call)."""

    def __init__(self, desired_metrics: set[str], after: int) -> None:
        super().__init__(desired_metrics)
        self.after = after
        self.calls = 0

    def new_data(self, targets_data_dict: TargetsData) -> Any:
        self.calls += 1
        if self.calls >= self.after:
            raise RuntimeError(f"model failed at call {self.calls}")
        return dict.fromkeys(targets_data_dict, 0.0)


class AlertsAbove(MetricsObserver):
    """Alerts on each series whose value is at least ``threshold``, with that value as the
    alert's score, and returns nothing else: like an alert-only detector, it writes a score only
    on the steps where it alerts."""

    def __init__(self, desired_metrics: set[str], threshold: float = 5.0) -> None:
        super().__init__(desired_metrics)
        self.threshold = threshold

    def new_data(self, targets_data_dict: TargetsData) -> list[dc.Alert]:
        return [
            dc.Alert({"metric": metric, "series": series}, target=target, score=value)
            for target, samples in targets_data_dict.items()
            for metric, per_series in samples.items()
            for series, value in per_series.items()
            if value >= self.threshold
        ]
