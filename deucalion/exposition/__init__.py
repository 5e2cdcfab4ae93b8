"""Exposition: the bytes a target serves, parsed into samples.

- ``parser``: :class:`ExpositionParser` (built once per selection, reused for every body) and
  ``parse_exposition``, the front door for both formats.
- ``body``: a body (text, bytes, or the chunks it arrived in) read a piece at a time.
- ``text``: reading Prometheus text 0.0.4 in full, and one line the thorough way.
- ``filtering``: :class:`~deucalion.exposition.filtering.Filter`, reading the selected lines
  of a text 0.0.4 body only.
- ``labels``: what a parser remembers of label blocks, and series keys of unsorted blocks.
- ``openmetrics``: strict OpenMetrics 1.0, line by line; ``openmetrics_bulk``: the bodies client
  libraries write, read in bulk with the same rules.
- ``grammar``: the shared lexical rules (names, label values, canonical series keys).
- ``naming``: which sample names desired metrics select (names, families, regular expressions):
  :class:`Selector`, the one matcher every selection uses.

Names are imported on first use: a worker process, which needs ``naming`` only (through
``deucalion.observer``), does not load the parser and compile its patterns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes

if TYPE_CHECKING:
    from deucalion.exposition.naming import Selector
    from deucalion.exposition.parser import ExpositionParser, is_openmetrics, parse_exposition

__all__ = ["ExpositionParser", "Selector", "is_openmetrics", "parse_exposition"]

_LAZY = {
    "ExpositionParser": "deucalion.exposition.parser",
    "Selector": "deucalion.exposition.naming",
    "is_openmetrics": "deucalion.exposition.parser",
    "parse_exposition": "deucalion.exposition.parser",
}

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
