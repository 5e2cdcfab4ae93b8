"""Optional extras: a clear error when one a feature needs is not installed.

The ``ml`` extra (NumPy, pandas, scikit-learn, River) is imported only by the features that use
it (``deucalion.history.Window``, ``deucalion.detectors``), never by the core or the worker.
"""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(module: str, feature: str, extra: str = "ml") -> ImportError:
    """The error to raise when ``module``, which ``feature`` needs, cannot be imported."""
    error = ImportError(
        f"{feature} needs {module}, which is not installed: pip install 'deucalion[{extra}]'"
    )
    error.name = module
    return error
