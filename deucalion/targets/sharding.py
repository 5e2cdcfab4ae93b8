"""Sharding: several replicas split the targets of one central discovery between them.

Each target is kept by the replica whose index equals ``hashmod(url, count)``: the MD5 of the
URL, its last 8 bytes read as a big-endian unsigned integer, modulo ``count``. That is the hash
of Prometheus's ``hashmod`` relabelling, so a deucalion shard and a Prometheus shard configured
with the same modulus over the same value agree, and a target stays on one replica for as long
as ``count`` does (its observers' state with it).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from deucalion.errors import ConfigError, UsageError
from deucalion.targets.provider import TargetProvider
from deucalion.targets.target import Target

if TYPE_CHECKING:
    from deucalion.config.settings import ShardSettings

__all__ = [
    "ShardedTargets",
    "hashmod",
    "ordinal_from_hostname",
    "shard_index",
    "shard_provider",
]

# A StatefulSet names its pods <name>-<ordinal>; the hostname is the pod's name.
_ORDINAL = re.compile(r"-(\d+)$")


def hashmod(value: str, modulus: int) -> int:
    """Prometheus's ``hashmod``: MD5 of ``value``, last 8 bytes big-endian, modulo ``modulus``."""
    if modulus < 1:
        raise UsageError(f"the modulus must be at least 1, not {modulus}")
    digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def ordinal_from_hostname(hostname: str) -> int | None:
    """The ordinal that ends a StatefulSet pod's hostname (``deucalion-2`` -> 2), or None."""
    match = _ORDINAL.search(hostname.split(".", 1)[0])
    return int(match.group(1)) if match else None


def shard_index(settings: ShardSettings, hostname: str | None = None) -> int:
    """This replica's index: the configured one, else the hostname's StatefulSet ordinal.

    Raises ``ConfigError`` when neither gives an index below ``count``.
    """
    if settings.index is not None:
        return settings.index
    if hostname is None:
        hostname = os.environ.get("HOSTNAME") or socket.gethostname()
    ordinal = ordinal_from_hostname(hostname)
    if ordinal is None:
        raise ConfigError(
            f"shard.index is not set and the hostname {hostname!r} does not end in a "
            "StatefulSet ordinal (-0, -1, ...): set shard.index (DEUCALION_SHARD__INDEX) or run "
            "the replicas as a StatefulSet"
        )
    if ordinal >= settings.count:
        raise ConfigError(
            f"the hostname {hostname!r} gives shard index {ordinal}, but shard.count is "
            f"{settings.count}: set shard.count (DEUCALION_SHARD__COUNT) to the StatefulSet's "
            "replicas"
        )
    return ordinal


class ShardedTargets:
    """The targets of ``provider`` that belong to shard ``index`` of ``count``."""

    def __init__(self, provider: TargetProvider, *, count: int, index: int) -> None:
        if not 0 <= index < count:
            raise UsageError(f"shard index {index} is not in 0..{count - 1}")
        self.provider = provider
        self.count = count
        self.index = index
        # Each URL's verdict, for the targets of the last discovery only (so it never grows
        # past them): a cycle hashes only new targets, not thousands on the event loop.
        self._kept: dict[str, bool] = {}

    def keeps(self, target: Target) -> bool:
        """True when ``target`` belongs to this shard."""
        return hashmod(target.url, self.count) == self.index

    @property
    def last_error(self) -> str | None:
        """The wrapped provider's problem, if any."""
        return getattr(self.provider, "last_error", None)

    async def discover(self) -> Sequence[Target]:
        """The wrapped provider's targets that this shard keeps."""
        targets = await self.provider.discover()
        known, kept = self._kept, {}
        for target in targets:
            verdict = known.get(target.url)
            kept[target.url] = self.keeps(target) if verdict is None else verdict
        self._kept = kept
        return [t for t in targets if kept[t.url]]

    async def close(self) -> None:
        """Close the wrapped provider."""
        await self.provider.close()


def shard_provider(provider: TargetProvider, settings: ShardSettings | None) -> TargetProvider:
    """``provider`` limited to this replica's shard; unchanged when there is one shard.

    Raises ``ConfigError`` when the index cannot be found (see ``shard_index``).
    """
    if settings is None or settings.count == 1:
        return provider
    return ShardedTargets(provider, count=settings.count, index=shard_index(settings))
