"""deucalion: anomaly-detection sidecars for services that expose Prometheus metrics."""

from deucalion._version import __version__
from deucalion.errors import ConfigError, DeucalionError, ParseError

__all__ = ["ConfigError", "DeucalionError", "ParseError", "__version__"]
