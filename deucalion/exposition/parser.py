"""The front door of parsing: :class:`ExpositionParser` and :func:`parse_exposition`.

A parser is built once for a selection of metrics and reused for every body (the ``Scraper``
holds one): what it learns from one body (the label orders and label sets it has seen, the
lines of selected metrics it has read) is its own, bounded, and makes the next body quicker.
Nothing is shared between parsers or kept by the module.

The OpenMetrics parser (``openmetrics``, ``openmetrics_bulk``: most of the package's compiled
patterns) is imported when the first OpenMetrics body is read, not with this module: a sidecar
whose targets all serve text 0.0.4 never loads it. ``openmetrics_loaded`` tells whether it is
loaded, so that a caller on an event loop can have the first OpenMetrics body (and the import,
milliseconds) read in a thread.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from deucalion.errors import ParseError
from deucalion.exposition.body import Body
from deucalion.exposition.filtering import Filter
from deucalion.exposition.grammar import Samples
from deucalion.exposition.labels import LabelMemory
from deucalion.exposition.naming import Selector
from deucalion.exposition.text import count_samples, read_full

__all__ = ["ExpositionParser", "is_openmetrics", "openmetrics_loaded", "parse_exposition"]

_OPENMETRICS = "deucalion.exposition.openmetrics"


class ExpositionParser:
    """A parser for one selection of metrics, built once and reused for every body.

    ``metrics`` holds desired metrics as :class:`~deucalion.exposition.naming.Selector` reads
    them (sample or family names, regular expressions such as ``node_.*``, ``.*`` for every
    sample), or is a ``Selector``; ``None`` keeps every sample. Selected lines are checked in
    full. In text 0.0.4, with a handful of exact names, the other lines are checked for how
    they start (not for their UTF-8) and the last line in full; otherwise every line is checked
    in full. In
    OpenMetrics, the lines of families none of whose samples is kept are checked for their
    grammar and their place in the body. Safe to share between threads.
    """

    def __init__(self, metrics: Iterable[str] | Selector | None = None) -> None:
        if metrics is None or isinstance(metrics, Selector):
            self.selector = metrics
        else:
            self.selector = Selector.from_desired(metrics)
        selector = self.selector
        self._filter = None if selector is None or selector.everything else Filter(selector)
        self._memory = LabelMemory()

    @property
    def metrics(self) -> frozenset[str] | None:
        """The desired metrics (names and patterns), None when every sample is kept."""
        if self.selector is None:
            return None
        return self.selector.names | frozenset(self.selector.patterns)

    def wants(self, name: str) -> bool:
        """Whether the sample called ``name`` is kept."""
        return self._filter is None or self._filter.selects(name)

    def parse(self, body: Body, *, openmetrics: bool = False) -> Samples:
        """Parse one exposition; see :func:`parse_exposition`. ``body`` may also be the list
        of byte chunks it arrived in, which is emptied as it is read."""
        if self._filter is not None and not openmetrics:
            return self._filter.read(body, self._memory)[0]
        return self.read(body, openmetrics=openmetrics)[0]

    def read(
        self, body: Body, *, openmetrics: bool = False, count: bool = False
    ) -> tuple[Samples, int | None]:
        """The selected samples of ``body`` and, when ``count``, how many sample lines it has
        (every sample, selected or not, as Prometheus's ``scrape_samples_scraped``)."""
        if openmetrics:
            from deucalion.exposition.openmetrics import parse_openmetrics  # see the docstring

            text = body if isinstance(body, str) else _decode(body)
            wants = None if self._filter is None else self._filter.selects
            samples = parse_openmetrics(text, wants, self._memory)
            return samples, count_samples(text) if count else None
        if self._filter is None:
            samples, counted = read_full(body, self._memory)
            return samples, counted if count else None
        return self._filter.read(body, self._memory, count=count)


def _decode(data: bytes | bytearray | memoryview | list[bytes]) -> str:
    if isinstance(data, list):
        joined = b"".join(data)
        data.clear()
        data = joined
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError as exc:
        lineno = bytes(memoryview(data)[: exc.start]).count(b"\n") + 1
        raise ParseError(f"invalid UTF-8 at byte {exc.start}", lineno) from None


def parse_exposition(
    text: Body, *, openmetrics: bool = False, metrics: Iterable[str] | None = None
) -> Samples:
    """Parse a Prometheus text 0.0.4 (or, with ``openmetrics=True``, OpenMetrics 1.0) body.

    Returns ``{sample name: {series: value}}``; the series is the label set in Prometheus
    notation, labels sorted by name (``{cpu="0",mode="idle"}``, ``{}`` for none). ``metrics``
    keeps only the selected samples (see :class:`ExpositionParser`). When a series appears
    twice, the last sample wins. ``bytes`` are decoded as UTF-8. Anything that breaks the
    format raises :class:`~deucalion.errors.ParseError` naming the line. To parse many bodies,
    keep an :class:`ExpositionParser`: it learns from each.
    """
    return ExpositionParser(metrics).parse(text, openmetrics=openmetrics)


def openmetrics_loaded() -> bool:
    """Whether the OpenMetrics parser is imported already (the first OpenMetrics body read in
    this process imports it)."""
    return _OPENMETRICS in sys.modules


def is_openmetrics(content_type: str) -> bool:
    """Whether a response's Content-Type header announces the OpenMetrics text format."""
    return content_type.split(";", 1)[0].strip().lower() == "application/openmetrics-text"
