"""deucalion: anomaly-detection sidecars for services that expose Prometheus metrics.

The package, in the order of the data flow (public modules are the ones README.md's API
section lists; names starting with ``_`` and the modules marked internal may change):

- ``config/``: settings from YAML, ``DEUCALION_*`` variables and arguments (``load_settings``).
- ``targets/``: where targets come from (static, file_sd, Kubernetes, a Prometheus server);
  discovery only.
- ``_http``: credentials, TLS, redaction of secrets, URL checks; used by collection, targets
  and alerting.
- ``collection/`` (internal): the cycle's targets into scrape results: scraping (one aiohttp
  session, every target at once, each bounded) or federation through a Prometheus server.
- ``exposition/``: the text and OpenMetrics parsers; ``parse_exposition``.
- ``observer``: the ``MetricsObserver`` contract, the time of the data, and ``Selection``: which
  samples each observer gets.
- ``provisioner/``: ``MetricsProvisioner``, the one cycle loop and its listeners (the
  observers' feed, a recording); ``runner`` (internal): ``run()``'s event loop and signals.
- ``dispatch/`` (internal): each observer in a worker process of its own.
- ``alerting/``: ``Alert`` and labelling (``alerts``), the alert lifecycle (``lifecycle``), the
  Alertmanager client (``alertmanager``).
- ``telemetry`` (internal): deucalion's own ``/metrics``, ``/healthz``, ``/readyz``, ``/alerts``.
- ``cli/``, ``demo`` (internal): the ``deucalion`` command; ``injector/``: the Kubernetes webhook.

Names are imported on first use, so that an observer's worker process, which imports
``deucalion.observer``, does not pay for aiohttp and pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes
from deucalion._version import __version__
from deucalion.errors import ConfigError, DeucalionError, ParseError

if TYPE_CHECKING:
    from deucalion.alerting import Alert, Scores, SeriesScore
    from deucalion.exposition import parse_exposition
    from deucalion.observer import MetricsObserver, data_at, data_time, data_times
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
    "data_at",
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
    "data_at": "deucalion.observer",
    "data_time": "deucalion.observer",
    "data_times": "deucalion.observer",
    "parse_exposition": "deucalion.exposition",
}

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
