"""Collection: turning this cycle's targets and the desired metrics into scrape results.

- ``result``: ``ScrapeResult`` (what a scrape of one target produced) and ``ScrapeTarget``
  (what collection reads of a target);
- ``scrape``: ``Scraper``, one shared aiohttp session, every target at once, each bounded;
- ``federation``: ``FederationCollector``, every target's samples through a Prometheus server;
- ``collector``: the ``Collector`` the cycle calls, and ``build_collector``, which picks one.

Collection imports nothing of target discovery (``deucalion.targets``): a target is whatever
has what ``ScrapeTarget`` reads. ``FederationCollector`` is imported on first use: a sidecar
that scrapes its targets never loads federation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion._lazy import lazy_attributes
from deucalion.collection.collector import (
    CollectingProvider,
    Collector,
    ProviderCollector,
    ScrapeCollector,
    build_collector,
)
from deucalion.collection.result import ScrapeResult, ScrapeTarget
from deucalion.collection.scrape import Scraper

if TYPE_CHECKING:
    from deucalion.collection.federation import FederationCollector

__all__ = [
    "CollectingProvider",
    "Collector",
    "FederationCollector",
    "ProviderCollector",
    "ScrapeCollector",
    "ScrapeResult",
    "ScrapeTarget",
    "Scraper",
    "build_collector",
]

__getattr__, __dir__ = lazy_attributes(
    globals(), {"FederationCollector": "deucalion.collection.federation"}
)
