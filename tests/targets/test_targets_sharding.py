"""Sharding: replicas split one discovery's targets by Prometheus's hashmod of the URL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from deucalion.config.loading import load_settings
from deucalion.config.settings import ShardSettings
from deucalion.errors import ConfigError
from deucalion.targets import CollectingProvider, StaticTargets, Target, build_provider
from deucalion.targets.sharding import (
    ShardedTargets,
    hashmod,
    ordinal_from_hostname,
    shard_index,
    shard_provider,
)

ADDRESSES = [f"10.1.{i // 250}.{i % 250}:9100" for i in range(600)]


def _file_sd(tmp_path: Path, addresses: Sequence[str] = ADDRESSES) -> Path:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps([{"targets": list(addresses), "labels": {"job": "node"}}]))
    return path


async def _replica(path: Path, count: int, index: int) -> set[str]:
    settings = load_settings(
        {"file_sd": {"files": [str(path)]}, "shard": {"count": count, "index": index}},
        environ={},
        default_file=None,
    )
    provider = build_provider(settings)
    try:
        return {t.url for t in await provider.discover()}
    finally:
        await provider.close()


@pytest.mark.parametrize(
    ("value", "modulus", "expected"),
    [
        # The last 8 bytes of MD5, big-endian, as Prometheus's relabelling reads them.
        ("", 1000, int.from_bytes(bytes.fromhex("e9800998ecf8427e"), "big") % 1000),
        ("http://10.0.0.1:9100/metrics", 3, None),
        ("anything", 1, 0),
    ],
)
def test_hashmod_is_md5_last_eight_bytes_big_endian(
    value: str, modulus: int, expected: int | None
) -> None:
    """hashmod reads the second half of the MD5 digest as a big-endian integer."""
    digest = hashlib.md5(value.encode()).hexdigest()
    if expected is None:
        expected = int(digest[16:], 16) % modulus
    assert hashmod(value, modulus) == expected


def test_hashmod_refuses_a_zero_modulus() -> None:
    """A modulus of 0 is an error, as in Prometheus's relabel config."""
    with pytest.raises(ValueError, match="at least 1"):
        hashmod("x", 0)


async def test_three_replicas_cover_every_target_exactly_once(tmp_path: Path) -> None:
    """Three shards over one file_sd list: disjoint, together every target, each a fair share."""
    path = _file_sd(tmp_path)
    shards = [await _replica(path, 3, i) for i in range(3)]
    everything = await _replica(path, 1, 0)
    assert len(everything) == len(ADDRESSES)
    assert set().union(*shards) == everything
    assert sum(len(s) for s in shards) == len(everything)
    # 600 targets over 3 shards: each gets about 200 (a hash, not a round robin).
    assert all(150 < len(s) < 250 for s in shards), [len(s) for s in shards]


async def test_new_targets_never_move_old_ones(tmp_path: Path) -> None:
    """Adding targets to the list leaves every existing target on its replica."""
    before = [await _replica(_file_sd(tmp_path, ADDRESSES[:300]), 3, i) for i in range(3)]
    after = [await _replica(_file_sd(tmp_path, ADDRESSES), 3, i) for i in range(3)]
    for old, new in zip(before, after, strict=True):
        assert old <= new


async def test_changing_the_count_moves_only_the_targets_it_must(tmp_path: Path) -> None:
    """From 3 to 6 replicas a target either stays or moves from shard i to i+3, never elsewhere;
    back from 6 to 3 each returns, so a scale-up and down restores every replica's targets."""
    path = _file_sd(tmp_path)
    three = [await _replica(path, 3, i) for i in range(3)]
    six = [await _replica(path, 6, i) for i in range(6)]
    for i in range(3):
        assert six[i] | six[i + 3] == three[i]
        assert six[i] and six[i + 3]
    # What "must" move is exactly what hashmod 6 puts on the new replicas.
    moved = set().union(*six[3:])
    assert moved == {u for u in set().union(*three) if hashmod(u, 6) >= 3}


def test_the_index_comes_from_a_statefulset_hostname() -> None:
    """Without shard.index, the pod's ordinal (deucalion-2) is its index."""
    assert ordinal_from_hostname("deucalion-2") == 2
    assert ordinal_from_hostname("deucalion-12.deucalion.monitoring.svc") == 12
    assert ordinal_from_hostname("deucalion") is None
    assert shard_index(ShardSettings(count=3), hostname="deucalion-shard-2") == 2
    assert shard_index(ShardSettings(count=3, index=1), hostname="deucalion-shard-2") == 1


@pytest.mark.parametrize(
    ("hostname", "problem"),
    [("laptop", "does not end in a StatefulSet ordinal"), ("deucalion-3", "shard.count is 3")],
)
def test_a_missing_or_impossible_index_says_what_to_set(hostname: str, problem: str) -> None:
    """No ordinal, or one past count, is a ConfigError naming the settings to change."""
    with pytest.raises(ConfigError, match=problem) as caught:
        shard_index(ShardSettings(count=3), hostname=hostname)
    assert "DEUCALION_SHARD__" in str(caught.value)


def test_an_index_past_the_count_is_a_config_error() -> None:
    """shard.index must be below shard.count; the error names the key."""
    with pytest.raises(ConfigError, match=r"shard.*must be below shard.count"):
        load_settings(
            {"targets": ["http://a:1/m"], "shard": {"count": 2, "index": 2}},
            environ={},
            default_file=None,
        )


def test_the_shard_comes_from_the_environment() -> None:
    """DEUCALION_SHARD__COUNT and __INDEX set the shard, as every section's variables do."""
    settings = load_settings(
        environ={
            "DEUCALION_TARGETS": "http://a:1/m",
            "DEUCALION_SHARD__COUNT": "4",
            "DEUCALION_SHARD__INDEX": "3",
        },
        default_file=None,
    )
    assert settings.shard == ShardSettings(count=4, index=3)


async def test_a_federated_shard_collects_only_its_targets() -> None:
    """Federated mode sharded: discovery keeps this shard's targets, and the collector the
    settings build (federation) collects just those, as any collector does."""
    from deucalion.collection import FederationCollector, build_collector
    from deucalion.config.loading import load_settings

    settings = load_settings(
        {"prometheus": {"url": "http://prometheus:9090"}, "shard": {"count": 2, "index": 1}},
        environ={},
        default_file=None,
    )
    provider = build_provider(settings)
    assert isinstance(provider, ShardedTargets) and not isinstance(provider, CollectingProvider)
    collector = build_collector(settings, provider, {"up"})
    assert isinstance(collector, FederationCollector)
    await collector.close()
    await provider.close()


async def test_a_scraped_shard_is_not_a_collector() -> None:
    """A shard is a provider only: it discovers, and never collects."""
    sharded = shard_provider(
        StaticTargets([Target("http://a:1/m")]), ShardSettings(count=2, index=0)
    )
    assert isinstance(sharded, ShardedTargets)
    assert not isinstance(sharded, CollectingProvider)
    assert shard_provider(StaticTargets([]), None).__class__ is StaticTargets


async def test_verdicts_are_kept_only_for_current_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A target is hashed once while it stays; what is remembered shrinks with the targets."""
    import deucalion.targets.sharding as sharding

    calls: list[str] = []
    real = sharding.hashmod

    def counting(value: str, modulus: int) -> int:
        calls.append(value)
        return real(value, modulus)

    monkeypatch.setattr(sharding, "hashmod", counting)
    urls = [f"http://n{i}:9100/metrics" for i in range(30)]
    inner = StaticTargets([Target(u) for u in urls])
    sharded = ShardedTargets(inner, count=3, index=0)
    first = await sharded.discover()
    assert await sharded.discover() == first
    assert len(calls) == 30
    sharded.provider = StaticTargets([Target(u) for u in urls[:10]])
    assert await sharded.discover() == [t for t in first if t.url in urls[:10]]
    assert len(calls) == 30 and len(sharded._kept) == 10
