"""Where targets come from.

A ``TargetProvider`` answers, every cycle, with the targets to scrape now. ``build_provider``
makes the one the settings ask for:

- ``targets:`` -> ``StaticTargets`` (here);
- ``file_sd:`` -> ``deucalion.targets.file_sd.FileSDTargets``;
- ``kubernetes:`` -> ``deucalion.targets.kubernetes.KubernetesTargets``;
- ``prometheus:`` -> ``deucalion.targets.prometheus.PrometheusTargets`` (federated mode).

The first three may be combined (``CombinedTargets``); with ``shard:`` a replica keeps only
its share of them (``deucalion.targets.sharding``). A provider that also has
``async collect(targets, metrics) -> list[ScrapeResult]`` (a ``CollectingProvider``) delivers
the samples itself and replaces scraping: federated mode does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

from deucalion.errors import ConfigError

if TYPE_CHECKING:
    from deucalion.config.loading import ClientOptions, Settings
    from deucalion.scrape import ScrapeResult

log = logging.getLogger(__name__)

__all__ = [
    "CollectingProvider",
    "CombinedTargets",
    "StaticTargets",
    "Target",
    "TargetProvider",
    "build_provider",
    "target_from_settings",
]


@dataclass(frozen=True)
class Target:
    """One scrape target: its URL (its identity), the labels alerts about it carry, and how
    it is scraped.

    Only ``url`` takes part in equality and hashing; secrets are left out of the repr.
    """

    url: str
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    timeout: float | None = field(default=None, compare=False)
    """Seconds one scrape may take; ``None`` uses the scraper's timeout."""
    basic_auth: tuple[str, str] | None = field(default=None, compare=False, repr=False)
    """``(username, password)`` for HTTP basic authentication."""
    bearer_token: str | None = field(default=None, compare=False, repr=False)
    """A bearer token sent in the Authorization header."""
    bearer_token_file: str | None = field(default=None, compare=False)
    """A file holding the bearer token, read on every scrape (tokens rotate)."""
    ca_file: str | None = field(default=None, compare=False)
    """CA certificates (PEM) to verify the target's certificate with."""
    insecure_skip_verify: bool = field(default=False, compare=False)
    """Accept any certificate."""

    @property
    def instance(self) -> str:
        """Prometheus's ``instance`` label: the one discovery or configuration set (a federated
        Prometheus's relabelled instance, a file_sd or static group's label), else the URL's
        ``host:port``."""
        # As in Prometheus, an empty label is no label: the address stands in for it.
        return self.labels.get("instance") or urlsplit(self.url).netloc.rpartition("@")[2]

    @property
    def job(self) -> str:
        """The ``job`` label: the configured one, else ``deucalion``."""
        return self.labels.get("job", "deucalion")


def target_from_settings(url: str, labels: Mapping[str, str], options: ClientOptions) -> Target:
    """A ``Target`` carrying a configured group's scrape options.

    A ``password_file`` is read here, once, so a missing file is reported when targets are built.
    """
    basic_auth = None
    if options.basic_auth is not None:
        auth = options.basic_auth
        if auth.password_file is not None:
            try:
                password = Path(auth.password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"basic_auth.password_file {auth.password_file}: cannot read "
                                  f"it: {exc.strerror or exc}") from None
        else:
            password = auth.password.get_secret_value() if auth.password else ""
        basic_auth = (auth.username, password)
    return Target(
        url,
        dict(labels),
        timeout=getattr(options, "scrape_timeout", None),
        basic_auth=basic_auth,
        bearer_token=options.bearer_token.get_secret_value() if options.bearer_token else None,
        bearer_token_file=options.bearer_token_file,
        ca_file=options.tls_config.ca_file,
        insecure_skip_verify=options.tls_config.insecure_skip_verify,
    )


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
    from deucalion.targets.sharding import shard_provider

    if settings.prometheus is not None:
        from deucalion.targets.prometheus import PrometheusTargets

        federated = PrometheusTargets(settings.prometheus, body_size_limit=settings.body_size_limit)
        return shard_provider(federated, settings.shard)
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
    provider = providers[0] if len(providers) == 1 else CombinedTargets(providers)
    # A shard keeps only its part of the targets (shard.count replicas split them).
    return shard_provider(provider, settings.shard)
