"""Where targets come from.

A ``TargetProvider`` answers, every cycle, with the targets to scrape now. ``build_provider``
makes the one the settings ask for:

- ``targets:`` -> ``StaticTargets`` (here);
- ``file_sd:`` -> ``deucalion.targets.file_sd.FileSDTargets``;
- ``kubernetes:`` -> ``deucalion.targets.kubernetes.KubernetesTargets``;
- ``prometheus:`` -> ``deucalion.targets.prometheus.PrometheusTargets`` (federated mode).

``Target`` (in ``deucalion.targets.target``) is what every provider answers with; the
protocols and the combining providers are in ``deucalion.targets.provider``, which the
submodules import (never this package, whose ``build_provider`` imports them). The first
three may be combined (``CombinedTargets``); with ``shard:`` a replica keeps only its share of
them (``deucalion.targets.sharding``).

Providers only discover: the samples are collected by ``deucalion.collection`` (scraping, or
federation through the Prometheus server whose targets ``prometheus:`` lists). A provider that
also has ``async collect(targets, metrics) -> list[ScrapeResult]`` (a ``CollectingProvider``,
defined in ``deucalion.collection`` and named here, where README documents it) is asked for
the samples instead of scraping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deucalion.collection.collector import CollectingProvider
from deucalion.errors import ConfigError
from deucalion.targets.provider import (
    CombinedTargets,
    StaticTargets,
    TargetProvider,
)
from deucalion.targets.target import Target, target_from_settings

if TYPE_CHECKING:
    from deucalion.config.settings import Settings

__all__ = [
    "CollectingProvider",
    "CombinedTargets",
    "StaticTargets",
    "Target",
    "TargetProvider",
]


NO_TARGETS = (
    "no targets configured: list them under targets: in the config file "
    "(DEUCALION_CONFIG=/path/config.yaml), set DEUCALION_TARGETS=http://host:port/"
    "metrics, configure file_sd, kubernetes or prometheus, or pass "
    "MetricsProvisioner(targets=[...])"
)


def require_targets(settings: Settings) -> None:
    """Raises the ``ConfigError`` ``build_provider`` would when the settings configure no
    source of targets, building nothing: a command refuses before it starts (and before it
    prints progress of a run that never began)."""
    if (
        settings.prometheus is None
        and not settings.targets
        and settings.file_sd is None
        and settings.kubernetes is None
    ):
        raise ConfigError(NO_TARGETS)


def build_provider(settings: Settings) -> TargetProvider:
    """The provider the settings configure: ``prometheus`` (its targets; their samples come by
    federation, see ``deucalion.collection.build_collector``), or the union of ``targets``,
    ``file_sd`` and ``kubernetes``. Raises ``ConfigError`` when no source is configured."""
    from deucalion.targets.sharding import shard_provider

    if settings.prometheus is not None:
        from deucalion.targets.prometheus import PrometheusTargets

        federated = PrometheusTargets(settings.prometheus, body_size_limit=settings.body_size_limit)
        return shard_provider(federated, settings.shard)
    providers: list[TargetProvider] = []
    if settings.targets:
        providers.append(
            StaticTargets([target_from_settings(t.url, t.labels, t) for t in settings.targets])
        )
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
        raise ConfigError(NO_TARGETS)
    provider = providers[0] if len(providers) == 1 else CombinedTargets(providers)
    # A shard keeps only its part of the targets (shard.count replicas split them).
    return shard_provider(provider, settings.shard)
