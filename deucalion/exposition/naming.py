"""Prometheus's naming rules that both the parser and the observers' selection follow.

Imported by worker processes (through ``deucalion.observer``), so it imports ``re`` only.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["FAMILY_SUFFIXES", "METRIC_NAME", "family_selects"]

#: Suffixes by which a family name also selects its samples (prometheus_client's naming).
FAMILY_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info")

#: A valid metric name.
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def family_selects(desired: Collection[str], sample_name: str) -> bool:
    """Whether ``sample_name`` is desired: named itself, or its family is (``x`` -> ``x_sum``)."""
    if sample_name in desired:
        return True
    return any(
        sample_name.endswith(suffix) and sample_name[: -len(suffix)] in desired
        for suffix in FAMILY_SUFFIXES
    )
