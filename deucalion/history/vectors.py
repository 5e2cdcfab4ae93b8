"""What a ``Window`` hands back: ``Block`` (many series over time) and ``InstantVector`` (one
value per series), both keyed by ``(target, series)`` and backed by NumPy arrays."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Block", "InstantVector", "SeriesRef"]

#: A series of one metric: ``(target URL, series key)``.
SeriesRef = tuple[str, str]


@dataclass(frozen=True, eq=False)
class Block:
    """Series of one metric over a window: row ``i`` is series ``keys[i]``.

    ``values`` and ``times`` are ``[series, points]`` float64 arrays, oldest point first, the
    newest cycle in the last column; NaN in both where a series has no sample (a gap: the
    target was down, the series was absent, or its value was NaN). ``times`` are the scrape
    times (Unix seconds) of the points. ``resolution``, when known, is per series the smallest
    change its values can show (a counter's rates move in steps of its smallest increment per
    scrape interval); detectors never divide by less.
    """

    metric: str
    keys: list[SeriesRef]
    times: np.ndarray
    values: np.ndarray
    resolution: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def latest(self) -> np.ndarray:
        """The newest cycle's value of each series (NaN where it had none)."""
        if self.values.shape[1] == 0:
            return np.full(len(self.keys), np.nan)
        return self.values[:, -1]

    def select(self, rows: np.ndarray) -> Block:
        """The rows ``rows`` (indices or a boolean mask) of this block."""
        index = np.arange(len(self.keys))[rows]
        return Block(
            self.metric,
            [self.keys[i] for i in index],
            self.times[index],
            self.values[index],
            None if self.resolution is None else self.resolution[index],
        )


@dataclass(frozen=True, eq=False)
class InstantVector:
    """One value per series of one metric, as a PromQL instant vector: ``values[i]`` belongs to
    ``keys[i]``. NaN where there is no value (too few samples, a gap)."""

    metric: str
    keys: list[SeriesRef]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def items(self) -> Iterator[tuple[SeriesRef, float]]:
        """``((target, series), value)`` pairs, values as Python floats."""
        return zip(self.keys, self.values.tolist(), strict=True)

    def to_dict(self) -> dict[SeriesRef, float]:
        """``{(target, series): value}``."""
        return dict(self.items())

    def get(self, target: str, series: str = "{}", default: float = math.nan) -> float:
        """The value of one series, or ``default``."""
        for i, key in enumerate(self.keys):
            if key == (target, series):
                return float(self.values[i])
        return default
