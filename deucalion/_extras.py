"""Optional extras: a clear error when one a feature needs is not installed.

The ``ml`` extra (NumPy, pandas, scikit-learn, River) is imported only by the features that use
it (``deucalion.history.Window``, ``deucalion.detectors``), never by the core or the worker.
"""

from __future__ import annotations

__all__ = ["MissingExtraError", "missing_extra"]


class MissingExtraError(ImportError):
    """A library an optional feature needs is not installed; the message says what to install.

    An ``ImportError`` (``except ImportError`` still catches it) whose ``name`` is the missing
    module; the ``deucalion`` command prints its message as one line, not a traceback.
    """

    def __init__(self, message: str, *, name: str, extra: str) -> None:
        super().__init__(message, name=name)
        self.extra = extra
        """The extra that brings the module: ``pip install 'deucalion[<extra>]'``."""


def missing_extra(module: str, feature: str, extra: str = "ml") -> MissingExtraError:
    """The error to raise when ``module``, which ``feature`` needs, cannot be imported."""
    return MissingExtraError(
        f"{feature} needs {module}, which is not installed: pip install 'deucalion[{extra}]'",
        name=module,
        extra=extra,
    )
