"""Collection: turning this cycle's targets and the desired metrics into scrape results.

- ``result``: ``ScrapeResult`` (what a scrape of one target produced) and ``ScrapeTarget``
  (what collection reads of a target);
- ``scrape``: ``Scraper``, one shared aiohttp session, every target at once, each bounded;
- ``federation``: ``FederationCollector``, every target's samples through a Prometheus server;
- ``collector``: the ``Collector`` the cycle calls, and ``build_collector``, which picks one.

Collection imports nothing of target discovery (``deucalion.targets``): a target is whatever
has what ``ScrapeTarget`` reads.
"""

from __future__ import annotations

from deucalion.collection.collector import (
    CollectingProvider,
    Collector,
    ProviderCollector,
    ScrapeCollector,
    build_collector,
)
from deucalion.collection.federation import FederationCollector
from deucalion.collection.result import ScrapeResult, ScrapeTarget
from deucalion.collection.scrape import Scraper

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
