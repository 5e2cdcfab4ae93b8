"""deucalion's exceptions.

Every error deucalion raises on purpose is a ``DeucalionError``; errors from the libraries it
uses (aiohttp, pydantic, YAML) are translated at the boundary, so a user only ever catches
deucalion's own::

    DeucalionError
    ├── UsageError       a call to the Python API with a value it cannot use (a ValueError)
    ├── UsageTypeError   a call with an argument of a type it cannot use (a TypeError)
    ├── UnknownSeriesError   a detector asked about a series it does not hold (a KeyError)
    ├── OutsideNewDataError  data_time() or the like called outside new_data (a RuntimeError)
    ├── ConfigError      bad or missing configuration: names the file and the key
    │   └── CredentialsError   a token, password or CA file it names cannot be read or used
    ├── ParseError       a metrics exposition that breaks its format: names the line
    ├── ScrapeError      a target that could not be scraped: names the target
    ├── HTTPError        a request to an HTTP API (Prometheus, Kubernetes) failed
    ├── KubernetesError  the pod's annotations could not be read
    ├── ObserverError    what new_data raised, when the exception could not be rebuilt
    ├── InstallTimeout   installing an observer in a new worker ran past observer_timeout
    ├── HistoryError     history (a recording, a Prometheus range, a CSV) could not be read
    ├── ReviewError      a body that is not a valid AdmissionReview
    └── ManifestError    a manifest given to deucalion inject is not YAML of Kubernetes objects

The four at the top are also the built-in exception they replace, so ``except ValueError``
(or ``TypeError``, ``KeyError``, ``RuntimeError``) still catches them.

Every subclass lives here (a test checks it); the modules that raise one name it too.

Each message says what was wrong and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "CredentialsError",
    "DeucalionError",
    "HTTPError",
    "HistoryError",
    "InstallTimeout",
    "KubernetesError",
    "ManifestError",
    "ObserverError",
    "OutsideNewDataError",
    "ParseError",
    "ReviewError",
    "ScrapeError",
    "UnknownSeriesError",
    "UsageError",
    "UsageTypeError",
]


class DeucalionError(Exception):
    """The root of every error deucalion raises on purpose."""


class UsageError(DeucalionError, ValueError):
    """A call to deucalion's Python API with a value it cannot use: an argument out of range
    (``AnomalyDetector(budget=0)``), of the wrong shape, times out of order, or the text or
    file a function was given to read. Also a ``ValueError``."""


class UsageTypeError(DeucalionError, TypeError):
    """A call to deucalion's Python API with an argument of a type it cannot use (a model
    without the methods a detector needs, say). Also a ``TypeError``."""


class UnknownSeriesError(DeucalionError, KeyError):
    """A detector asked about a series it does not hold (``explain(key)``). Also a
    ``KeyError``, whose message it shows as it is (a ``KeyError`` quotes it)."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class OutsideNewDataError(DeucalionError, RuntimeError):
    """What is known only while data is handed to ``new_data`` (``data_time()``,
    ``data_times()``, ``Window.add()`` without ``time=``) was asked outside it. Also a
    ``RuntimeError``."""


class ConfigError(DeucalionError):
    """The configuration is invalid or incomplete.

    The message names the source (file, environment variable or keyword argument) and the key.
    """


class CredentialsError(ConfigError):
    """A credentials or CA file the configuration names cannot be read or used.

    Raised when it is read: at start for a CA file, on every request for a bearer token file
    (tokens rotate, so a file that cannot be read now may be readable at the next request). The
    message names the setting and the file, never the secret.
    """


class ParseError(DeucalionError):
    """A metrics exposition does not follow its format.

    ``lineno`` is the 1-based line where the problem is (``None`` when it concerns the whole
    body) and ``reason`` what is wrong there.
    """

    def __init__(self, reason: str, lineno: int | None = None) -> None:
        self.reason = reason
        self.lineno = lineno
        where = f"line {lineno}: " if lineno is not None else ""
        super().__init__(f"{where}{reason}")


class ScrapeError(DeucalionError):
    """A target could not be scraped (down, too slow, too large, not 2xx, or malformed)."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"scrape of {target} failed: {reason}")


class HTTPError(DeucalionError):
    """A request to an HTTP API failed; ``status`` is the HTTP status when one came back."""

    def __init__(self, reason: str, status: int | None = None, body: bytes = b"") -> None:
        self.reason = reason
        self.status = status
        self.body = body
        """The start of the answer's body when the status was not 2xx (an API's own reason,
        such as Prometheus's ``error``); never shown as it is."""
        super().__init__(reason)


class KubernetesError(DeucalionError):
    """The pod's annotations could not be read."""


class ObserverError(DeucalionError):
    """What ``new_data`` raised, when the exception itself could not be rebuilt here (its
    message and the worker's traceback, as ``__cause__``, still tell what happened)."""


class InstallTimeout(DeucalionError):
    """Installing the observer in a new worker ran past ``observer_timeout``."""


class HistoryError(DeucalionError):
    """History could not be read: the message names the file, server or row, and what to do."""


class ReviewError(DeucalionError):
    """A body that is not a valid AdmissionReview; ``reason`` says what is wrong with it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not a valid AdmissionReview: {reason}")


class ManifestError(DeucalionError):
    """A manifest given to ``deucalion inject`` is not YAML of Kubernetes objects."""


def keyword_hint(key: str, taken: Sequence[str]) -> str:
    """``; did you mean 'x'? (it takes a, b, c)``: what follows the news that a keyword ``key``
    is not one of ``taken``, the keywords a constructor takes (the closest first, when one is
    close), in a ``UsageTypeError`` or the ``ConfigError`` of a config's ``kwargs``."""
    import difflib  # only for a misspelt keyword: the application does not import it to start

    close = difflib.get_close_matches(key, taken, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (it takes {', '.join(taken)})"
