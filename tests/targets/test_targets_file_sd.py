"""file_sd: Prometheus's target files, re-read when they change."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from deucalion.config.loading import FileSDSettings
from deucalion.targets.file_sd import FileSDTargets, parse_file_sd


def _write(path: Path, groups: object, *, bump: int = 0) -> None:
    path.write_text(json.dumps(groups))
    # Filesystems with coarse timestamps: move the mtime on explicitly, so a change is seen.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


def _provider(pattern: Path, **options: object) -> FileSDTargets:
    return FileSDTargets(FileSDSettings.model_validate({"files": [str(pattern)], **options}))


def test_parse_groups_yaml_and_json() -> None:
    """Both formats give URLs with scheme and path, labels, and honour __metrics_path__."""
    text = "- targets: [a:1, 'b:2']\n  labels: {job: x, __metrics_path__: /m, __meta_x: y}\n"
    assert parse_file_sd(text) == [("http://a:1/m", {"job": "x"}), ("http://b:2/m", {"job": "x"})]
    assert parse_file_sd(json.dumps([{"targets": ["c:3"]}]), scheme="https") == [
        ("https://c:3/metrics", {})
    ]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{targets: [a:1]}", "expected a list"),
        ("- targets: a:1", "targets must be a list"),
        ("- targets: [a:1]\n  labelz: {}", "unknown key 'labelz'"),
        ("- targets: [a:1]\n  labels: {'bad-name': x}", "not a valid label name"),
        ("- targets: [a:1]\n  labels: {'team\\n': x}", "not a valid label name"),
    ],
)
def test_parse_rejects_malformed_groups(text: str, problem: str) -> None:
    """A malformed file raises ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=problem):
        parse_file_sd(text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("- targets: [a:1]\n  labels: {team: a}\n  targets: [b:2]", "targets"),
        ('[{"targets": ["a:1"], "labels": {"team": "a", "team": "b"}}]', "team"),
    ],
)
def test_a_key_given_twice_is_refused(text: str, key: str) -> None:
    """A duplicate key, in YAML or JSON, is refused as Prometheus's strict reading does."""
    with pytest.raises(yaml.YAMLError, match=f"found the key '{key}' twice"):
        parse_file_sd(text)


async def test_changes_are_picked_up_without_restart(tmp_path: Path) -> None:
    """A target added to a file, or a new file matching the glob, appears at the next discover."""
    first = tmp_path / "a.json"
    _write(first, [{"targets": ["127.0.0.1:1"], "labels": {"job": "a"}}])
    provider = _provider(tmp_path / "*.json")
    assert [t.url for t in await provider.discover()] == ["http://127.0.0.1:1/metrics"]

    _write(first, [{"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {"job": "a"}}], bump=1)
    _write(tmp_path / "b.json", [{"targets": ["127.0.0.1:3"], "labels": {"team": "b"}}])
    targets = await provider.discover()
    assert {t.url: dict(t.labels) for t in targets} == {
        "http://127.0.0.1:1/metrics": {"job": "a"},
        "http://127.0.0.1:2/metrics": {"job": "a"},
        "http://127.0.0.1:3/metrics": {"team": "b"},
    }
    (tmp_path / "b.json").unlink()
    assert len(await provider.discover()) == 2
    await provider.close()


async def test_broken_file_keeps_last_good_targets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file broken mid-life keeps its last good targets and the log names file and problem."""
    path = tmp_path / "t.yaml"
    _write(path, [{"targets": ["127.0.0.1:1"]}])
    provider = _provider(path)
    assert len(await provider.discover()) == 1
    path.write_text("- targets: [127.0.0.1:1\n")  # unclosed flow sequence
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 2_000_000_000))
    with caplog.at_level(logging.WARNING):
        assert [t.url for t in await provider.discover()] == ["http://127.0.0.1:1/metrics"]
    assert str(path) in caplog.text and "not a valid file_sd file" in caplog.text
    assert provider.last_error is not None and str(path) in provider.last_error
    _write(path, [{"targets": ["127.0.0.1:9"]}], bump=3)
    assert [t.url for t in await provider.discover()] == ["http://127.0.0.1:9/metrics"]
    assert provider.last_error is None


async def test_group_options_apply_to_file_targets(tmp_path: Path) -> None:
    """The file_sd section's scrape options (timeout, bearer token) reach every target."""
    path = tmp_path / "t.json"
    _write(path, [{"targets": ["127.0.0.1:1"]}])
    provider = _provider(path, scrape_timeout="2s", bearer_token="s3cret")
    (target,) = await provider.discover()
    assert target.timeout == 2.0 and target.credentials.bearer_token == "s3cret"
    assert "s3cret" not in repr(target)


async def test_an_instance_label_in_a_file_is_the_targets_instance(tmp_path: Path) -> None:
    """A group's instance label names its target, as in Prometheus; others keep host:port."""
    path = tmp_path / "targets.json"
    _write(
        path,
        [
            {"targets": ["10.0.0.7:9100"], "labels": {"instance": "db-primary"}},
            {"targets": ["10.0.0.8:9100"]},
        ],
    )
    named, plain = await _provider(path).discover()
    assert named.instance == "db-primary" and named.labels["instance"] == "db-primary"
    assert plain.instance == "10.0.0.8:9100"


async def test_a_broken_file_is_not_quoted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that is not YAML is logged with line, column and problem, not with its line,
    which may hold a password."""
    path = tmp_path / "t.yaml"
    path.write_text("- targets: [deucalion:s3cr3t@host:9100\n")
    provider = _provider(path)
    with caplog.at_level(logging.WARNING):
        assert await provider.discover() == []
    assert "s3cr3t" not in caplog.text and "at line 2, column 1" in caplog.text
    assert provider.last_error is not None and "s3cr3t" not in provider.last_error


@pytest.mark.parametrize(
    "group",
    [
        {"targets": ["me:s3cr3t@host:9100"]},
        {"targets": ["http://me:s3cr3t@host:9100/m"]},
        {"targets": ["host:9100"], "labels": {"__scheme__": "http://me:s3cr3t@x"}},
    ],
)
def test_credentials_in_a_target_are_refused_without_repeating_them(
    group: dict[str, object],
) -> None:
    """user:password@ in a file's target, however it gets there, is refused as in targets:, so
    it never reaches the scrape logs or labels, and the reason does not repeat it."""
    with pytest.raises(ValueError, match="basic_auth") as info:
        parse_file_sd(json.dumps([group]))
    assert "s3cr3t" not in str(info.value)
