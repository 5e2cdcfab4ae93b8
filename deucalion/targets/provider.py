"""What every source of targets is: a ``TargetProvider``; and the two that combine others.

Submodules of ``deucalion.targets`` import from here and from ``deucalion.targets.target``,
never from the package itself, whose ``build_provider`` imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from deucalion.targets.target import Target

__all__ = ["CombinedTargets", "StaticTargets", "TargetProvider"]


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
