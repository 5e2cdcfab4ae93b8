"""Names a package exports but imports only when first used (PEP 562).

A package lists, per name, the module that defines it; ``lazy_attributes`` gives it the
``__getattr__`` and ``__dir__`` that import that module on first use and keep the value in the
package's namespace. Keeps ``import deucalion`` (and the worker processes) free of what they
do not use: NumPy, pandas, aiohttp.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``: each
    name of ``where`` is imported from the module it maps to when first asked for."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # asked for once: later lookups find it without this call
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    return __getattr__, __dir__
