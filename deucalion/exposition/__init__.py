"""Exposition: the bytes a target serves, parsed into samples.

- ``text``: the Prometheus text format 0.0.4, with filtering of desired names before labels
  are parsed; ``parse_exposition`` is the front door for both formats.
- ``openmetrics``: strict OpenMetrics 1.0.
- ``grammar``: the shared lexical rules (names, label values, canonical series keys).
- ``naming``: which sample names a desired metric name selects (families and suffixes).
"""

from deucalion.exposition.text import is_openmetrics, parse_exposition

__all__ = ["is_openmetrics", "parse_exposition"]
