"""Where targets come from.

A ``TargetProvider`` answers, every cycle, with the targets to scrape now. ``StaticTargets`` is
the ``targets:`` list of the configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["StaticTargets", "Target", "TargetProvider"]


@dataclass(frozen=True)
class Target:
    """One scrape target: its URL (its identity) and the labels alerts about it carry."""

    url: str
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def instance(self) -> str:
        """``host:port``, Prometheus's ``instance`` label."""
        parts = urlsplit(self.url)
        return parts.netloc.rpartition("@")[2]

    @property
    def job(self) -> str:
        """The ``job`` label: the configured one, else ``deucalion``."""
        return self.labels.get("job", "deucalion")


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
        return self._targets

    async def close(self) -> None:
        return None
