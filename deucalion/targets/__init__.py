"""Where targets come from.

A ``TargetProvider`` answers, every cycle, with the targets to scrape now. ``build_provider``
makes the one the settings ask for:

- ``targets:`` -> ``StaticTargets`` (here);
- ``file_sd:`` -> ``deucalion.targets.file_sd.FileSDTargets``;
- ``kubernetes:`` -> ``deucalion.targets.kubernetes.KubernetesTargets``;
- ``prometheus:`` -> ``deucalion.targets.prometheus.PrometheusTargets`` (federated mode).

``Target`` (in ``deucalion.targets.target``) is what every provider answers with. The first
three may be combined (``CombinedTargets``). A provider that also has
``async collect(targets, metrics) -> list[ScrapeResult]`` (a ``CollectingProvider``) delivers
the samples itself and replaces scraping: federated mode does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from deucalion.errors import ConfigError
from deucalion.targets.target import Target, target_from_settings

if TYPE_CHECKING:
    from deucalion.config.settings import Settings
    from deucalion.scrape import ScrapeResult

log = logging.getLogger(__name__)

__all__ = [
    "CollectingProvider",
    "CombinedTargets",
    "StaticTargets",
    "Target",
    "TargetProvider",
]


class TargetProvider(Protocol):
    """A source of targets, asked once per cycle."""

    async def discover(self) -> Sequence[Target]:
        """The targets to scrape in this cycle."""
        ...

    async def close(self) -> None:
        """Release what the provider holds (files watched, sessions)."""
        ...


class StaticTargets:
    """A fixed list of targets, from the ``targets:`` setting."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self._targets = tuple(targets)

    async def discover(self) -> Sequence[Target]:
        """The configured targets."""
        return self._targets

    async def close(self) -> None:
        """Nothing to release."""
        return None


@runtime_checkable
class CollectingProvider(TargetProvider, Protocol):
    """A provider that also delivers its targets' samples, instead of deucalion scraping them."""

    async def collect(self, targets: Sequence[Target], metrics: Iterable[str] | None
                      ) -> list[ScrapeResult]:
        """One result per target, with the samples of ``metrics`` (all when ``None``)."""
        ...


class CombinedTargets:
    """The union of several providers' targets; a URL found twice keeps its first labels."""

    def __init__(self, providers: Sequence[TargetProvider]) -> None:
        self.providers = tuple(providers)

    @property
    def last_error(self) -> str | None:
        """The problems the providers report, if any."""
        errors = [e for p in self.providers if (e := getattr(p, "last_error", None))]
        return "; ".join(errors) or None

    async def discover(self) -> Sequence[Target]:
        """Every provider's targets, in the order of the providers."""
        seen: dict[str, Target] = {}
        for provider in self.providers:
            for target in await provider.discover():
                seen.setdefault(target.url, target)
        return list(seen.values())

    async def close(self) -> None:
        """Close every provider."""
        for provider in self.providers:
            await provider.close()


def build_provider(settings: Settings) -> TargetProvider:
    """The provider the settings configure: ``prometheus``, or the union of ``targets``,
    ``file_sd`` and ``kubernetes``. Raises ``ConfigError`` when no source is configured."""
    if settings.prometheus is not None:
        from deucalion.targets.prometheus import PrometheusTargets

        return PrometheusTargets(settings.prometheus, body_size_limit=settings.body_size_limit)
    providers: list[TargetProvider] = []
    if settings.targets:
        providers.append(StaticTargets([target_from_settings(t.url, t.labels, t)
                                        for t in settings.targets]))
    if settings.file_sd is not None:
        from deucalion.targets.file_sd import FileSDTargets

        # Read a password_file now, so a missing one is a start-up error, not a cycle's.
        target_from_settings("http://check/", {}, settings.file_sd)
        providers.append(FileSDTargets(settings.file_sd))
    if settings.kubernetes is not None:
        from deucalion.targets.kubernetes import KubernetesTargets

        target_from_settings("http://check/", {}, settings.kubernetes)
        providers.append(KubernetesTargets(settings.kubernetes))
    if not providers:
        raise ConfigError(
            "no targets configured: list them under targets: in the config file "
            "(DEUCALION_CONFIG=/path/config.yaml), set DEUCALION_TARGETS=http://host:port/"
            "metrics, configure file_sd, kubernetes or prometheus, or pass "
            "MetricsProvisioner(targets=[...])"
        )
    return providers[0] if len(providers) == 1 else CombinedTargets(providers)
