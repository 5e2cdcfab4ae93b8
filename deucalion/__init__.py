"""deucalion: anomaly-detection sidecars for services that expose Prometheus metrics.

Names are imported on first use, so that an observer's worker process, which imports
``deucalion.observer``, does not pay for aiohttp and pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deucalion._version import __version__
from deucalion.errors import ConfigError, DeucalionError, ParseError

if TYPE_CHECKING:
    from deucalion.alerting import Alert, Scores, SeriesScore
    from deucalion.exposition import parse_exposition
    from deucalion.observer import MetricsObserver, data_time, data_times
    from deucalion.provisioner import MetricsProvisioner

__all__ = [
    "Alert",
    "ConfigError",
    "DeucalionError",
    "MetricsObserver",
    "MetricsProvisioner",
    "ParseError",
    "Scores",
    "SeriesScore",
    "__version__",
    "data_time",
    "data_times",
    "parse_exposition",
]

_LAZY = {
    "Alert": "deucalion.alerting",
    "MetricsObserver": "deucalion.observer",
    "MetricsProvisioner": "deucalion.provisioner",
    "Scores": "deucalion.alerting",
    "SeriesScore": "deucalion.alerting",
    "data_time": "deucalion.observer",
    "data_times": "deucalion.observer",
    "parse_exposition": "deucalion.exposition",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deucalion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
