"""History: the recent past of each series, and Prometheus's functions over it.

- ``labels``: series keys as data (``series_labels``, ``series_key``); standard library only.
- ``window``: ``Window``, the last N cycles or T seconds of every series, in NumPy arrays.
- ``promql``: ``rate``, ``increase`` and ``bucket_quantile`` exactly as Prometheus computes
  them, for one series or thousands at once; ``CounterRates``, each counter's rate between
  its consecutive samples, one sample at a time, as an online detector is fed.
- ``vectors``: ``Block`` and ``InstantVector``, what a window hands back.

Everything but ``labels`` needs NumPy (``pip install 'deucalion[ml]'``); names are imported
on first use, so importing this package costs nothing until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes
from deucalion.history.labels import series_key, series_labels, without_label

if TYPE_CHECKING:
    from deucalion.history.promql import CounterRates, bucket_quantile, increase, rate
    from deucalion.history.vectors import Block, InstantVector
    from deucalion.history.window import Window

__all__ = [
    "Block",
    "CounterRates",
    "InstantVector",
    "Window",
    "bucket_quantile",
    "increase",
    "rate",
    "series_key",
    "series_labels",
    "without_label",
]

_LAZY = {
    "Block": "deucalion.history.vectors",
    "CounterRates": "deucalion.history.promql",
    "InstantVector": "deucalion.history.vectors",
    "Window": "deucalion.history.window",
    "bucket_quantile": "deucalion.history.promql",
    "increase": "deucalion.history.promql",
    "rate": "deucalion.history.promql",
}

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
