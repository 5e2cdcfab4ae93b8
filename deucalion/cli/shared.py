"""What the commands share: settings, metric lists and observers given by import path.

``deucalion.cli.commands`` and ``deucalion.replay.cli`` both build observers from the command
line and the config file; this module is theirs, so neither imports the other.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deucalion.errors import ConfigError
from deucalion.observer import MetricsObserver

if TYPE_CHECKING:
    from deucalion.config.loading import Settings

__all__ = ["build_observers", "load_object", "metric_list", "settings_from"]


def metric_list(text: str | None) -> list[str] | None:
    """The metrics of a comma-separated ``--metrics`` (None when not given)."""
    from deucalion._http import comma_separated

    return comma_separated(text) if text else None


def settings_from(path: str | None) -> Settings:
    """The settings of the config file ``path`` (or the default one) and the environment."""
    from deucalion.config.loading import load_settings

    return load_settings(path)


def load_object(path: str) -> Any:
    """The object at ``module:name`` or ``file.py:name`` (a file's directory joins sys.path)."""
    module_path, sep, name = path.rpartition(":")
    if not sep or not module_path or not name:
        raise ConfigError(f"{path!r} is not an import path: write module:Class or file.py:Class")
    if module_path.endswith(".py") or os.sep in module_path:
        file = Path(module_path).resolve()
        if not file.is_file():
            raise ConfigError(f"{path}: no such file {file}")
        sys.path.insert(0, str(file.parent))
        module_name = f"deucalion_app_{file.stem}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{path}: cannot load {file} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        # Worker processes cannot import a module loaded from a file path: send it by value.
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    else:
        try:
            module = importlib.import_module(module_path)
        except ImportError as exc:
            raise ConfigError(f"{path}: cannot import {module_path}: {exc}") from None
    try:
        obj = module
        for part in name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigError(f"{path}: {module_path} has no {name!r}") from None
    return obj


def build_observers(
    paths: Sequence[str], settings: Settings, metrics: list[str] | None
) -> list[MetricsObserver]:
    """The observers ``paths`` name (every configured one when none), each built with its
    desired metrics (``metrics`` when given, else its configured ones) and configured kwargs."""
    from deucalion.config.loading import ObserverSettings

    configured = settings.observers
    paths = list(paths) or list(configured)
    if not paths:
        raise ConfigError(
            "no observer to run: name one (deucalion run module:Class) or list "
            "them under observers: in the config file"
        )
    observers = []
    for path in paths:
        entry = configured.get(path)
        if entry is None:
            if metrics is None:
                raise ConfigError(
                    f"{path}: its desired metrics are unknown: pass --metrics a,b or configure "
                    f"observers: {{{path!r}: {{desired_metrics: [...]}}}}"
                )
            entry = ObserverSettings(desired_metrics=metrics)
        cls = load_object(path)
        try:
            observers.append(
                cls(desired_metrics=set(metrics or entry.desired_metrics), **entry.kwargs)
            )
        except TypeError as exc:
            raise ConfigError(
                f"{path}: cannot construct it with desired_metrics and kwargs "
                f"{sorted(entry.kwargs)}: {exc}"
            ) from None
    return observers
