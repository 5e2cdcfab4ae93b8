"""Which history source a command-line argument names: ``open_source``.

Apart from ``deucalion.replay.sources`` because it knows every kind of source, and the
sources of recordings and Prometheus ranges build on that module.
"""

from __future__ import annotations

from pathlib import Path

from deucalion.errors import ConfigError
from deucalion.replay.prometheus import PrometheusRangeSource
from deucalion.replay.recording import RecordingSource, is_recording_name
from deucalion.replay.sources import CSVSource, HistorySource

__all__ = ["open_source"]


def open_source(spec: str, *, metric: str = "value", allow_partial: bool = False) -> HistorySource:
    """The source ``spec`` names: a Prometheus URL (``http://...``), a recording (``*.om``,
    ``*.om.gz``, ``*.gz``) or CSV files or a directory of them. ``allow_partial`` lets a
    Prometheus answer that says it is partial pass as a warning."""
    if spec.startswith(("http://", "https://")):
        return PrometheusRangeSource(spec, allow_partial=allow_partial)
    path = Path(spec)
    if path.is_dir() or path.suffix == ".csv":
        return CSVSource(path, metric=metric)
    if is_recording_name(path):
        return RecordingSource(path)
    raise ConfigError(
        f"{spec}: not a history source; give a recording (.om.gz), CSV files "
        "(.csv or a directory of them) or a Prometheus URL (http://host:9090)"
    )
