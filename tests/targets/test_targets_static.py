"""Static targets: the targets: list with per-group labels and scrape options."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from deucalion._http import Credentials
from deucalion.config.loading import Settings, load_settings
from deucalion.errors import ConfigError
from deucalion.targets import CombinedTargets, StaticTargets, Target, build_provider


def _settings(**config: object) -> Settings:
    return load_settings(config, environ={}, default_file=None)


async def test_groups_carry_labels_and_options() -> None:
    """Each target of a group gets the group's labels, scheme, timeout and credentials."""
    settings = _settings(
        targets=[
            {
                "targets": ["a:1", "b:2"],
                "labels": {"job": "api"},
                "scheme": "https",
                "scrape_timeout": "3s",
                "basic_auth": {"username": "u", "password": "pw"},
                "tls_config": {"insecure_skip_verify": True},
            },
            "http://c:3/m",
        ],
        scrape_interval="10s",
    )
    provider = build_provider(settings)
    assert isinstance(provider, StaticTargets)
    a, b, c = await provider.discover()
    assert (a.url, b.url, c.url) == ("https://a:1/metrics", "https://b:2/metrics", "http://c:3/m")
    assert dict(a.labels) == {"job": "api"} and c.labels == {}
    assert a.timeout == 3.0 and a.credentials.basic_auth == ("u", "pw")
    assert a.credentials.insecure_skip_verify
    assert c.timeout is None and c.credentials.basic_auth is None


def test_target_identity_pickling_and_repr() -> None:
    """A Target is its URL: options don't change equality, it pickles, secrets stay out of repr."""
    target = Target(
        "http://a:1/metrics",
        {"job": "x"},
        timeout=1.0,
        credentials=Credentials(basic_auth=("u", "hunter2")),
    )
    assert target == Target("http://a:1/metrics")
    assert pickle.loads(pickle.dumps(target)).credentials.basic_auth == ("u", "hunter2")
    assert "hunter2" not in repr(target)


def test_secrets_never_in_config_errors_or_reprs() -> None:
    """A password shows as SecretStr and a config error about its group does not echo it."""
    settings = _settings(targets=[{"url": "a:1", "bearer_token": "tok3n"}])
    assert "tok3n" not in repr(settings)
    with pytest.raises(ConfigError) as info:
        _settings(
            targets=[
                {
                    "url": "a:1",
                    "bearer_token": "tok3n",
                    "basic_auth": {"username": "u", "password": "pw55"},
                }
            ]
        )
    assert "tok3n" not in str(info.value) and "pw55" not in str(info.value)
    assert "only one of basic_auth, bearer_token" in str(info.value)


def test_per_group_interval_is_refused_with_reason() -> None:
    """A per-group scrape_interval is an error that says what to do instead."""
    with pytest.raises(ConfigError, match=r"targets\.0\.scrape_interval: a per-group"):
        _settings(targets=[{"targets": ["a:1"], "scrape_interval": "5s"}])


def test_group_timeout_longer_than_interval_is_refused() -> None:
    """A group's scrape_timeout may not exceed the cycle's interval."""
    with pytest.raises(ConfigError, match=r"targets\.0\.scrape_timeout \(20s\)"):
        _settings(targets=[{"url": "a:1", "scrape_timeout": "20s"}], scrape_interval="10s")


def test_federated_mode_excludes_other_sources() -> None:
    """prometheus: together with targets: is refused, naming both."""
    with pytest.raises(ConfigError, match="remove targets, file_sd and kubernetes"):
        _settings(targets=["a:1"], prometheus={"url": "http://p:9090"})


async def test_sources_combine(tmp_path: Path) -> None:
    """targets: and file_sd: together give the union, a URL listed twice once."""
    (tmp_path / "t.yaml").write_text("- targets: [a:1, b:2]\n  labels: {from: file}\n")
    provider = build_provider(
        _settings(targets=["a:1"], file_sd={"files": [str(tmp_path / "*.yaml")]})
    )
    assert isinstance(provider, CombinedTargets)
    targets = await provider.discover()
    assert [(t.url, dict(t.labels)) for t in targets] == [
        ("http://a:1/metrics", {}),
        ("http://b:2/metrics", {"from": "file"}),
    ]
    await provider.close()


def test_no_source_is_a_clear_error() -> None:
    """Without any target source, build_provider says how to configure one."""
    with pytest.raises(ConfigError, match="no targets configured"):
        build_provider(_settings())


async def test_a_configured_instance_label_is_the_targets_instance() -> None:
    """instance is the group's instance label when set (not empty), else the URL's host:port."""
    provider = build_provider(
        _settings(
            targets=[
                {"targets": ["10.0.0.7:8080"], "labels": {"instance": "checkout-1", "job": "api"}},
                {"targets": ["10.0.0.8:8080"], "labels": {"instance": ""}},
                "http://10.0.0.9:8080/m",
            ]
        )
    )
    named, empty, plain = await provider.discover()
    assert named.instance == "checkout-1" and named.job == "api"
    assert empty.instance == "10.0.0.8:8080"
    assert plain.instance == "10.0.0.9:8080"
