"""Presets: ready observers over a curated handful of derived health signals.

An exporter's raw series are the wrong unit to alert on (an idle node_exporter serves 500 of
them); a preset watches the signals an operator reads instead, computed from them, and alerts
once per target per incident. Select one with ``preset: NAME`` in the config,
``deucalion run --preset NAME``, ``deucalion demo --preset NAME --target URL``,
``deucalion backtest --preset NAME --from RECORDING`` or the pod annotation
``deucalion.io/preset: NAME``; ``deucalion presets show NAME --target URL`` lists what it would
watch on a target.

- ``node-exporter``: a machine's CPU, memory, disks, file systems and network
  (``deucalion.presets.node_exporter``).
- ``http-service``: a service's request rate, error ratio, latency and requests in flight,
  from the common instrumentations (``deucalion.presets.http_service``).

Needs NumPy (``pip install 'deucalion[ml]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deucalion.errors import ConfigError

if TYPE_CHECKING:
    from deucalion.presets.observer import PresetObserver
    from deucalion.presets.signals import Signal

__all__ = ["PRESETS", "preset_observer", "preset_signals"]

#: Preset name -> the module holding its ``SIGNALS``.
PRESETS: Mapping[str, str] = {
    "node-exporter": "deucalion.presets.node_exporter",
    "http-service": "deucalion.presets.http_service",
}


def _check(name: str) -> str:
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}: choose one of {', '.join(PRESETS)} (deucalion presets list)"
        )
    return name


def preset_signals(name: str) -> tuple[Signal, ...]:
    """The signals preset ``name`` watches (``ConfigError`` for an unknown name)."""
    import importlib

    module = importlib.import_module(PRESETS[_check(name)])
    signals: tuple[Signal, ...] = module.SIGNALS
    return signals


def preset_options(name: str) -> Mapping[str, Any]:
    """Preset ``name``'s own defaults for ``PresetObserver`` (its module's ``OPTIONS``)."""
    import importlib

    options: Mapping[str, Any] = getattr(
        importlib.import_module(PRESETS[_check(name)]), "OPTIONS", {}
    )
    return options


def preset_observer(name: str, **options: Any) -> PresetObserver:
    """A ``PresetObserver`` for preset ``name``; ``options`` are its keyword arguments
    (``budget``, ``for_cycles``, ``quiet_cycles``, ...: see ``PresetObserver``), over the
    preset's own defaults (its module's ``OPTIONS``: node-exporter's ``for_cycles`` is 6)."""
    from deucalion.presets.observer import PresetObserver

    signals = preset_signals(name)
    try:
        observer = PresetObserver(name, signals, **{**preset_options(name), **options})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"preset {name}: {exc}") from None
    observer.signals_of_ = preset_signals  # a checkpoint of it takes a later version's
    observer.options_of_ = preset_options  # ... and its defaults for the options not given
    observer.given_ = frozenset(options)
    return observer
