"""What the commands share: settings, metric lists and observers given by import path.

``deucalion.cli.commands`` and ``deucalion.replay.cli`` both build observers from the command
line and the config file; this module is theirs, so neither imports the other.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deucalion.errors import ConfigError, keyword_hint
from deucalion.observer import MetricsObserver

if TYPE_CHECKING:
    from deucalion.config.loading import Settings

__all__ = [
    "add_budget_option",
    "build_observers",
    "check_preset",
    "configured_budget",
    "configured_in",
    "duration_seconds",
    "load_object",
    "metric_list",
    "metrics_of_a_preset",
    "needs_metrics_option",
    "preset_budget",
    "preset_source",
    "settings_from",
    "settings_running",
]


def duration_seconds(*, zero: str | None = None) -> Callable[[str], float]:
    """An argparse type for a duration option: seconds or a Prometheus duration (``30s``),
    never negative; 0 only where ``zero`` says what it means (for the error message)."""

    def parse(text: str) -> float:
        from deucalion.config.settings import parse_duration

        if text.strip().startswith("-"):
            zero_means = f", or 0 to run {zero}" if zero else ""
            raise argparse.ArgumentTypeError(
                f"{text!r} is negative: give seconds or a duration such as 30s or 5m{zero_means}"
            )
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if seconds == 0 and zero is None:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text!r}")
        return seconds

    return parse


def preset_budget(text: str) -> float:
    """An argparse type for ``--budget``: a positive number (the config's ``preset.budget``)."""
    from pydantic import ValidationError

    from deucalion.config.settings import PresetSettings

    try:
        return PresetSettings.model_validate({"budget": text}).budget
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"])
        raise argparse.ArgumentTypeError(message.removeprefix("Value error, ")) from None


def configured_budget(preset: object, running: str) -> float:
    """The budget of the configuration's ``preset`` section (a ``PresetSettings`` or None)
    for the preset ``running``: the section's when it names no preset (the budget of
    whichever preset the command runs) or names that one; else (``--preset`` replacing the
    one it names) the default, 1."""
    budget = getattr(preset, "budget", None)
    if getattr(preset, "name", None) not in (None, running):
        return 1.0
    return float(budget) if isinstance(budget, int | float) else 1.0


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    """``--budget X``: the preset's false-alert budget (``preset.budget`` in the config)."""
    parser.add_argument(
        "--budget",
        type=preset_budget,
        metavar="X",
        help="the preset's false alerts per target per 10,000 cycles of ordinary load "
        "(default: the config's preset.budget, else 1); higher alerts on smaller moves",
    )


def metric_list(text: str | None) -> list[str] | None:
    """The metrics of a comma-separated ``--metrics`` (None when not given)."""
    from deucalion._http import comma_separated

    return comma_separated(text) if text else None


def settings_from(path: str | None) -> Settings:
    """The settings of the config file ``path`` (or the default one) and the environment."""
    from deucalion.config.loading import load_settings

    return load_settings(path)


def settings_running(path: str | None, preset: str | None) -> Settings:
    """``settings_from(path)`` for a command that runs a preset: ``preset`` (``--preset``) when
    given, else the configuration's own, is checked with every problem of the configuration,
    in one message (as ``check-config`` does), not after them: the next error a fixed
    configuration met was the misspelt preset."""
    from deucalion.config.loading import load_settings
    from deucalion.config.settings import unknown_preset
    from deucalion.presets import PRESETS

    wrong = None if not preset or preset in PRESETS else unknown_preset(preset, PRESETS)
    try:
        # --preset replaces the configuration's preset: its name is checked only when it runs.
        settings = load_settings(path, known_presets=None if preset else PRESETS)
    except ConfigError as exc:
        if wrong is None:
            raise
        listed = str(exc).removeprefix("invalid configuration:\n  ")
        raise ConfigError(f"invalid configuration:\n  --preset: {wrong}\n  {listed}") from None
    if wrong is not None:
        raise ConfigError(f"--preset: {wrong}")
    return settings


def _import_failed(path: str, what: str, exc: BaseException) -> ConfigError:
    """The error for a module that raised while it was imported: where, what, and the line."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    # The innermost frame outside the import machinery is the user's line that failed.
    inside = [f for f in frames if not f.filename.startswith("<frozen ")]
    if inside and not isinstance(exc, SyntaxError):  # a SyntaxError names its own line
        where = f" (at {inside[-1].filename}:{inside[-1].lineno})"
    return ConfigError(
        f"{path}: importing {what} failed: {type(exc).__name__}: {exc}{where}; "
        "fix it or install what it imports"
    )


def _working_directory_on_path() -> None:
    # The console script's sys.path starts with its own bin/, not the working directory, so
    # `deucalion run mymodule:Class` could not see ./mymodule.py while `python -m deucalion`
    # could. As uvicorn and celery do, the working directory goes first; the observers'
    # worker processes are spawned with this sys.path, so they import the module too.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def load_object(path: str) -> Any:
    """The object at ``module:name`` or ``file.py:name``.

    A module is imported from the working directory first, then from the installed packages;
    a file's directory joins ``sys.path``. Any failure is a ``ConfigError`` naming the path.
    """
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
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise _import_failed(path, str(file), exc) from None
        # Worker processes cannot import a module loaded from a file path: send it by value.
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    else:
        _working_directory_on_path()
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            if exc.name is not None and f"{module_path}.".startswith(f"{exc.name}."):
                raise ConfigError(
                    f"{path}: cannot import {module_path}: no module {exc.name!r} in the "
                    f"working directory ({os.getcwd()}) or the installed packages"
                ) from None
            raise _import_failed(path, module_path, exc) from None
        except Exception as exc:
            raise _import_failed(path, module_path, exc) from None
    try:
        obj = module
        for part in name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        close = difflib.get_close_matches(name, [n for n in dir(module) if n[:1] != "_"], n=1)
        hint = f"; did you mean {module_path}:{close[0]}?" if close else ""
        raise ConfigError(f"{path}: {module_path} has no {name!r}{hint}") from None
    return obj


def _desired_metrics_optional(cls: Any) -> bool:
    """Whether ``cls`` can be built without a ``desired_metrics`` argument (it has its own)."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("desired_metrics")
    if parameter is None:
        # No such parameter: the class names its metrics itself, unless it takes **kwargs.
        return not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    default = parameter.default
    if default is inspect.Parameter.empty:
        return False
    # An empty default (DetectorObserver's ``()``) is no metrics, not a default set of them.
    return not (isinstance(default, tuple | list | set | frozenset | str) and not default)


def _is_detector(obj: Any) -> bool:
    try:
        from deucalion.detectors.base import Detector
    except ImportError:  # a plain install, without NumPy: then it is no detector either
        return False
    return isinstance(obj, type) and issubclass(obj, Detector)


def _not_an_observer(path: str, obj: Any) -> str:
    """Why ``obj`` at ``path`` cannot be run as an observer, and what runs it."""
    if _is_detector(obj):
        return (
            f"{path}: {obj.__name__} is a detector, not a MetricsObserver class: a detector "
            "runs through the ready observer, deucalion.detectors:DetectorObserver (its "
            "default detector, kwargs: {budget: ...}), or a subclass of it in your file "
            f"whose __init__ calls super().__init__({obj.__name__}(), desired_metrics) "
            "(run file.py:Class)"
        )
    what = f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
    return f"{path}: {what}, not a MetricsObserver class"


def metrics_of_a_preset(command: str, preset: str) -> str:
    """The error for ``--metrics`` with a preset and no observer: it would be ignored."""
    return (
        f"{command} --metrics: it selects the metrics of observers (MODULE:CLASS or "
        f"observers: in the config); the preset {preset} watches its own signals "
        f"(deucalion presets show {preset}): leave --metrics out"
    )


def needs_metrics_option(path: str, settings: Settings) -> bool:
    """Whether the configured observer ``path`` runs only with ``--metrics``: its entry names
    no ``desired_metrics`` and its class has no default for them (``path`` is imported)."""
    entry = settings.observers.get(path)
    if entry is None or entry.desired_metrics is not None:
        return False
    cls = load_object(path)
    return isinstance(cls, type) and not _desired_metrics_optional(cls)


def configured_in(path: str | None) -> str | None:
    """The config file whose ``observers:`` entries a command builds, for its errors: ``-c
    FILE``'s, else ``DEUCALION_CONFIG``'s, else the default file when present."""
    if path:
        return path
    if os.environ.get("DEUCALION_CONFIG"):
        return os.environ["DEUCALION_CONFIG"]
    from deucalion.config.loading import DEFAULT_CONFIG_FILE

    return str(DEFAULT_CONFIG_FILE) if DEFAULT_CONFIG_FILE.is_file() else None


def build_observers(
    paths: Sequence[str],
    settings: Settings,
    metrics: list[str] | None,
    *,
    config_file: str | None = None,
) -> list[MetricsObserver]:
    """The observers ``paths`` name (every configured one when none), each built with its
    desired metrics (``metrics`` when given, else its configured ones, else the class's own
    default) and configured kwargs. An error about a configured entry names ``config_file``
    (``configured_in``), where the entry is to be fixed."""
    configured = settings.observers
    entry_in = f"{config_file}: " if config_file else ""
    paths = list(paths) or list(configured)
    if not paths:
        raise ConfigError(
            "no observer to run: name one (deucalion run module:Class), list "
            "them under observers: in the config file, or run a preset (--preset NAME, "
            "or preset: NAME in the config file; deucalion presets list)"
        )
    observers = []
    for path in paths:
        # Imported first: a path that does not import is the problem to report.
        cls = load_object(path)
        if not (isinstance(cls, type) and issubclass(cls, MetricsObserver)):
            raise ConfigError(_not_an_observer(path, cls))
        entry = configured.get(path)
        kwargs = dict(entry.kwargs) if entry is not None else {}
        desired = metrics or (entry.desired_metrics if entry is not None else None)
        if desired is not None:
            kwargs["desired_metrics"] = set(desired)
        elif not _desired_metrics_optional(cls):
            if entry is not None:
                # Configured, but its entry leans on a default the class does not have.
                raise ConfigError(
                    f"{entry_in}observers: {path!r}: desired_metrics is missing, and "
                    f"{cls.__name__} has no default for it: add desired_metrics: [name, ...] "
                    "to the entry, or pass --metrics a,b"
                )
            raise ConfigError(
                f"{path}: its desired metrics are unknown: pass --metrics a,b or configure "
                f"observers: {{{path!r}: {{desired_metrics: [...]}}}}"
            )
        try:
            observers.append(cls(**kwargs))
        except TypeError as exc:
            unknown = _unknown_keyword(cls, kwargs, exc)
            if unknown is not None and entry is not None and unknown in entry.kwargs:
                # A typo in the config's kwargs: the key, where it is and what was meant.
                raise ConfigError(
                    f"{entry_in}observers: {path!r}: kwargs: {unknown!r} is no argument of "
                    f"{cls.__name__}{_did_you_mean(unknown, cls)}"
                ) from None
            raise ConfigError(
                f"{path}: cannot construct it with {', '.join(sorted(kwargs)) or 'no arguments'}"
                f": {exc}"
            ) from None
        except ValueError as exc:
            # A value it refuses: from the config's kwargs (or --metrics), named with them.
            given = (
                f"{entry_in}observers: {path!r}: kwargs"
                if entry is not None and entry.kwargs
                else path
            )
            raise ConfigError(f"{given}: {exc}") from None
    return observers


def _unknown_keyword(cls: type, kwargs: dict[str, Any], exc: TypeError) -> str | None:
    """The keyword of ``kwargs`` that ``cls`` takes no argument of, when that is why it
    raised ``exc`` (else None: the TypeError came from inside the constructor)."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    unknown = [key for key in kwargs if key not in parameters]
    return unknown[0] if unknown and repr(unknown[0]) in str(exc) else None


def _did_you_mean(key: str, cls: type) -> str:
    """``; did you mean 'x'? (it takes a, b, c)`` for a keyword ``cls`` does not take."""
    taken = [
        name
        for name, p in inspect.signature(cls).parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    return keyword_hint(key, taken)


def check_preset(name: str, where: str) -> None:
    """Refuse an unknown preset, naming where it was given. The presets are a stage of the
    data flow, which the configuration (read by every stage) does not import, so the name is
    checked here, where a command wires the stages together."""
    from deucalion.config.settings import unknown_preset
    from deucalion.presets import PRESETS

    if name not in PRESETS:
        raise ConfigError(f"{where}: {unknown_preset(name, PRESETS)}")


def preset_source(config: str | None) -> str:
    """Where the configuration's ``preset`` came from, for an error about it: the environment
    wins over the file, as the settings' sources do."""
    for variable in ("DEUCALION_PRESET__NAME", "DEUCALION_PRESET"):
        if os.environ.get(variable):
            return variable
    path = config or os.environ.get("DEUCALION_CONFIG") or "/etc/deucalion/config.yaml"
    return f"config file {path}: preset"
