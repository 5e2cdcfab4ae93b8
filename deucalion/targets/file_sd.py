"""Targets from files in Prometheus's file_sd format.

Each file (JSON or YAML) holds a list of groups ``{targets: [host:port, ...], labels: {...}}``.
Files are found by glob, read again when their modification time or size changes (checked at
every ``discover``) and all of them every ``refresh_interval``. A file that cannot be read or
parsed keeps its last good targets and is logged once, naming the file and the problem.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from deucalion.config.loading import check_labels, normalize_target_url, yaml_problem
from deucalion.config.yaml_text import safe_load
from deucalion.errors import UsageError
from deucalion.targets.target import Target, target_from_settings

if TYPE_CHECKING:
    from deucalion.config.loading import FileSDSettings

__all__ = ["FileSDTargets", "parse_file_sd"]

log = logging.getLogger(__name__)


def parse_file_sd(text: str, *, scheme: str = "http") -> list[tuple[str, dict[str, str]]]:
    """``(url, labels)`` of every target in one file_sd file's text (JSON or YAML).

    ``__scheme__`` and ``__metrics_path__`` labels set the URL, as in Prometheus; other labels
    starting with ``__`` are dropped. Raises ``ValueError`` saying what is wrong and where.
    """
    data: Any = safe_load(text)  # JSON is YAML, so one parser reads both
    if data is None:
        return []
    if not isinstance(data, list):
        raise UsageError(f"expected a list of target groups, got a {type(data).__name__}")
    found: list[tuple[str, dict[str, str]]] = []
    for index, group in enumerate(data):
        where = f"group {index}"
        if not isinstance(group, Mapping):
            raise UsageError(f"{where}: expected a mapping with targets and labels")
        unknown = set(group) - {"targets", "labels"}
        if unknown:
            raise UsageError(
                f"{where}: unknown key {sorted(unknown)[0]!r} (known: labels, targets)"
            )
        targets = group.get("targets") or []
        labels = group.get("labels") or {}
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise UsageError(f"{where}: targets must be a list of host:port strings")
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise UsageError(f"{where}: labels must map label names to string values")
        group_scheme = labels.get("__scheme__", scheme)
        path = labels.get("__metrics_path__", "")
        public = {k: v for k, v in labels.items() if not k.startswith("__")}
        try:
            check_labels(public)
            for target in targets:
                url = target if "://" in target else f"{group_scheme}://{target}"
                if path and "://" not in target:
                    url = url.rstrip("/") + "/" + path.lstrip("/")
                found.append((normalize_target_url(url), dict(public)))
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return found


@dataclass
class _File:
    stamp: tuple[int, int] = (0, 0)
    """``(mtime_ns, size)`` when last read."""
    targets: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """The last good targets."""
    error: str | None = None


class FileSDTargets:
    """Targets listed in file_sd files; changes are picked up without a restart."""

    def __init__(self, settings: FileSDSettings) -> None:
        self.settings = settings
        self._files: dict[str, _File] = {}
        self._last_full_read = float("-inf")
        self._targets: list[Target] = []

    @property
    def last_error(self) -> str | None:
        """The problems of the files that currently keep their last good targets, if any."""
        errors = [f"{path}: {f.error}" for path, f in sorted(self._files.items()) if f.error]
        return "; ".join(errors) or None

    async def discover(self) -> Sequence[Target]:
        """The targets of every matching file, read again where a file changed."""
        # Globbing and reading touch the disk: off the event loop.
        return await asyncio.to_thread(self._refresh)

    async def close(self) -> None:
        """Nothing is held open between cycles."""
        return None

    def _refresh(self) -> list[Target]:
        now = time.monotonic()
        full = now - self._last_full_read >= self.settings.refresh_interval
        if full:
            self._last_full_read = now
        paths = sorted({p for pattern in self.settings.files for p in glob.glob(pattern)})
        changed = set(paths) != set(self._files)
        for gone in set(self._files) - set(paths):
            del self._files[gone]
        for path in paths:
            entry = self._files.setdefault(path, _File())
            try:
                stat = os.stat(path)
            except OSError as exc:
                self._fail(path, entry, f"cannot stat it: {exc.strerror or exc}")
                continue
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == entry.stamp and not full:
                continue
            entry.stamp = stamp
            changed = True
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                found = parse_file_sd(text, scheme=self.settings.scheme)
            except OSError as exc:
                self._fail(path, entry, f"cannot read it: {exc.strerror or exc}")
                continue
            except yaml.YAMLError as exc:
                self._fail(path, entry, f"not a valid file_sd file: {yaml_problem(exc)}")
                continue
            except ValueError as exc:
                problem = " ".join(str(exc).split())
                self._fail(path, entry, f"not a valid file_sd file: {problem}")
                continue
            if entry.error is not None:
                log.info("file_sd file %s is valid again", path)
            entry.error = None
            entry.targets = found
        if changed:
            self._targets = self._build()
        return list(self._targets)

    def _fail(self, path: str, entry: _File, problem: str) -> None:
        if entry.error != problem:
            log.warning(
                "file_sd file %s: %s; keeping its last good targets (%d)",
                path,
                problem,
                len(entry.targets),
            )
        entry.error = problem

    def _build(self) -> list[Target]:
        seen: dict[str, Target] = {}
        for _path, entry in sorted(self._files.items()):
            for url, labels in entry.targets:
                # The first file listing a URL wins, as a target is identified by its URL.
                seen.setdefault(url, target_from_settings(url, labels, self.settings))
        return list(seen.values())
