"""A small stand-in for the seed example's model module (``pm``).

``load()`` returns a model whose ``predict`` scores a target's data: the largest absolute
robust z-score of its values against the values seen so far. It keeps state between calls,
as a real model in an observer's worker process would.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any


class StandInModel:
    """Scores each series by how far its newest value is from its recent median."""

    def __init__(self, window: int = 30) -> None:
        self.window = window
        self.history: dict[tuple[str, str], deque[float]] = {}

    def predict(self, target_data: dict[str, dict[str, Any]]) -> float:
        score = 0.0
        for metric, series in target_data.items():
            for labels, value in series.items():
                past = self.history.setdefault((metric, labels), deque(maxlen=self.window))
                if len(past) >= 5:
                    median = statistics.median(past)
                    mad = statistics.median(abs(v - median) for v in past) or 1e-9
                    score = max(score, abs(value - median) / (1.4826 * mad))
                past.append(value)
        return round(score, 3)


def load() -> StandInModel:
    """The model, as ``pm.load()`` in the seed example expects."""
    return StandInModel()
