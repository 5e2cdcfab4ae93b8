"""Replay: record what targets serve, read history back (a recording, a Prometheus range, CSV
files), run an unchanged observer over it (backtest), evaluate its detections against labelled
windows (with NAB scoring), and plot the result.

Names are imported on first use: the worker processes never import this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes

if TYPE_CHECKING:
    from deucalion.replay.backtesting import backtest, backtest_async
    from deucalion.replay.evaluate import load_windows
    from deucalion.replay.opening import open_source
    from deucalion.replay.prometheus import PrometheusRangeSource
    from deucalion.replay.recording import RecordingSource, RecordingWriter, record
    from deucalion.replay.results import AlertSpan, BacktestResult
    from deucalion.replay.sources import (
        CSVSource,
        Cycle,
        HistoryError,
        HistorySource,
        SourceStats,
    )

__all__ = [
    "AlertSpan",
    "BacktestResult",
    "CSVSource",
    "Cycle",
    "HistoryError",
    "HistorySource",
    "PrometheusRangeSource",
    "RecordingSource",
    "RecordingWriter",
    "SourceStats",
    "backtest",
    "backtest_async",
    "load_windows",
    "open_source",
    "record",
]

_LAZY = {
    "AlertSpan": "deucalion.replay.results",
    "BacktestResult": "deucalion.replay.results",
    "backtest": "deucalion.replay.backtesting",
    "backtest_async": "deucalion.replay.backtesting",
    "PrometheusRangeSource": "deucalion.replay.prometheus",
    "RecordingSource": "deucalion.replay.recording",
    "RecordingWriter": "deucalion.replay.recording",
    "record": "deucalion.replay.recording",
    "CSVSource": "deucalion.replay.sources",
    "Cycle": "deucalion.replay.sources",
    "HistoryError": "deucalion.replay.sources",
    "HistorySource": "deucalion.replay.sources",
    "SourceStats": "deucalion.replay.sources",
    "open_source": "deucalion.replay.opening",
    "load_windows": "deucalion.replay.evaluate",
}

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
