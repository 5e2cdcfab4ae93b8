"""The collector: what turns each cycle's targets into scrape results.

The cycle always calls a ``Collector``; which one is decided once, from the settings and the
provider, by ``build_collector``:

- a ``prometheus:`` server configured: ``FederationCollector`` (one ``/federate`` request);
- a target provider that delivers the samples itself (a ``CollectingProvider``, such as
  README's JSON API source): ``ProviderCollector``, which asks it;
- otherwise: ``ScrapeCollector``, which scrapes every target at once, each bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from deucalion.collection.result import ScrapeResult, ScrapeTarget
from deucalion.collection.scrape import Scraper

if TYPE_CHECKING:
    from deucalion.config.loading import Settings

__all__ = [
    "CollectingProvider",
    "Collector",
    "ProviderCollector",
    "ScrapeCollector",
    "build_collector",
]


class Collector(Protocol):
    """Turns a cycle's targets into one ``ScrapeResult`` per target; never raises for a
    target's fault."""

    async def collect(self, targets: Sequence[ScrapeTarget]) -> list[ScrapeResult]:
        """One result per target, with the desired samples."""
        ...

    def forget(self, urls: Iterable[str]) -> None:
        """Drop what is kept for targets that are gone."""
        ...

    async def close(self) -> None:
        """Release the sessions; twice is harmless."""
        ...


@runtime_checkable
class CollectingProvider(Protocol):
    """A target provider that also delivers its targets' samples, instead of deucalion scraping
    them (``deucalion.targets`` names it too, as README documents it there)."""

    async def discover(self) -> Sequence[Any]:
        """The targets of this cycle."""
        ...

    async def collect(
        self, targets: Sequence[Any], metrics: Iterable[str] | None
    ) -> list[ScrapeResult]:
        """One result per target, with the samples of ``metrics`` (all when ``None``)."""
        ...

    async def close(self) -> None:
        """Release what the provider holds."""
        ...


class ScrapeCollector:
    """Scrapes every target at once with one ``Scraper``, returning by ``deadline`` seconds
    (a target that has not answered by then is down for the cycle); owns the scraper."""

    def __init__(self, scraper: Scraper, *, deadline: float | None = None) -> None:
        self.scraper = scraper
        self.deadline = deadline

    async def collect(self, targets: Sequence[ScrapeTarget]) -> list[ScrapeResult]:
        """Every target's scrape."""
        return await self.scraper.scrape_all(targets, deadline=self.deadline)

    def forget(self, urls: Iterable[str]) -> None:
        """Drop the scraper's state of targets that are gone."""
        self.scraper.forget(urls)

    async def close(self) -> None:
        """Close the scraper's session."""
        await self.scraper.close()


class ProviderCollector:
    """Asks a ``CollectingProvider`` for its targets' samples (it is closed as a provider, by
    its owner, not here)."""

    def __init__(self, provider: CollectingProvider, metrics: Iterable[str] | None) -> None:
        self.provider = provider
        self.metrics = None if metrics is None else frozenset(metrics)

    async def collect(self, targets: Sequence[ScrapeTarget]) -> list[ScrapeResult]:
        """The provider's results for ``targets``."""
        return await self.provider.collect(targets, self.metrics)

    def forget(self, urls: Iterable[str]) -> None:
        """Nothing is kept per target."""
        return None

    async def close(self) -> None:
        """Nothing of its own to close."""
        return None


def build_collector(
    settings: Settings,
    provider: object,
    metrics: Iterable[str] | None,
    *,
    deadline: float | None = None,
    count_samples: bool | None = None,
) -> Collector:
    """The collector for ``settings`` and ``provider``, keeping ``metrics`` (all when None).

    ``deadline`` bounds a cycle's scrapes (seconds); ``count_samples`` counts every sample of a
    body (by default when ``scrape_samples_scraped`` is desired). Raises ``ConfigError`` for
    desired metrics that are not names or patterns.
    """
    wanted = None if metrics is None else frozenset(metrics)
    if isinstance(provider, CollectingProvider):
        return ProviderCollector(provider, wanted)
    if settings.prometheus is not None:
        # Imported only here: a sidecar that scrapes its targets never loads federation.
        from deucalion.collection.federation import FederationCollector

        return FederationCollector(
            settings.prometheus, body_size_limit=settings.body_size_limit, metrics=wanted
        )
    if count_samples is None:
        count_samples = wanted is not None and "scrape_samples_scraped" in wanted
    scraper = Scraper(
        timeout=settings.effective_scrape_timeout,
        body_size_limit=settings.body_size_limit,
        metrics=wanted,
        compression=settings.scrape_compression,
        count_samples=count_samples,
    )
    return ScrapeCollector(scraper, deadline=deadline)
