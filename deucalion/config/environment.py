"""Which ``DEUCALION_*`` environment variables deucalion reads: the names of the settings'
variables, taken from the settings model (``DEUCALION_SCRAPE_INTERVAL``,
``DEUCALION_ALERTMANAGER__URLS``), and the few that are no setting (``DEUCALION_CONFIG``,
``DEUCALION_LOG_LEVEL``, ...). Any other name is most likely a typo, which a variable would
otherwise pass in silence: ``unknown_variables`` finds them, each with the closest name read,
for ``deucalion check-config`` and the warning at start. Only names: never values, which may be
secrets.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from deucalion.config.settings import Settings

__all__ = [
    "ENV_LEGACY",
    "ENV_NOT_SETTINGS",
    "ENV_OTHER_PREFIXES",
    "ENV_PREFIX",
    "closest_variable",
    "is_service_link",
    "not_a_setting",
    "section_of",
    "setting_variables",
    "unknown_variables",
    "variables_that_set",
]

ENV_PREFIX = "DEUCALION_"
# DEUCALION_* variables that are not settings: the config file itself (and whether it may be
# missing: the injector's optional ConfigMap), the command's log level,
# the progress lines' interval, test switches, and the injector's own settings (read by
# deucalion.injector.settings) and the benchmarks'.
ENV_NOT_SETTINGS = {
    "DEUCALION_CONFIG",
    "DEUCALION_CONFIG_OPTIONAL",
    "DEUCALION_LOG_LEVEL",
    "DEUCALION_PROGRESS_INTERVAL",
    "DEUCALION_REQUIRE_INTEGRATION",
}
ENV_OTHER_PREFIXES = (
    "DEUCALION_INJECTOR_",
    "DEUCALION_SOAK_",
    "DEUCALION_BENCH_",
    "DEUCALION_LIVEOPS",
)
# The original sidecar injector's variables, read by deucalion.config.loading.
ENV_LEGACY = {
    "DEUCALION_ALERT_MANAGER_HOST",
    "DEUCALION_ALERT_MANAGER_PORT",
    "DEUCALION_ALERT_NAME",
}
# What Kubernetes sets in every pod of a namespace that has a Service named deucalion (service
# links): not settings, and no typo of one.
_SERVICE_LINK = re.compile(
    r"DEUCALION_(?:SERVICE_HOST|SERVICE_PORT(?:_\w+)?"
    r"|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)"
)


def is_service_link(name: str) -> bool:
    """Whether ``name`` is one of the variables Kubernetes sets for a Service named deucalion."""
    return _SERVICE_LINK.fullmatch(name) is not None


def section_of(annotation: Any) -> Any:
    """The settings model in ``X | None`` (a section that may be left out), else the annotation
    itself."""
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


def setting_variables(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> list[str]:
    """The name of every environment variable that sets a key of ``model``: each section's
    (``DEUCALION_ALERTMANAGER``, a mapping written as JSON) and each key's in it
    (``DEUCALION_ALERTMANAGER__URLS``), read from the model's fields."""
    names = []
    for field, info in model.model_fields.items():
        name = prefix + field.upper()
        names.append(name)
        section = section_of(info.annotation)
        if isinstance(section, type) and issubclass(section, BaseModel):
            names.extend(setting_variables(section, name + "__"))
    return names


def _sets_a_key(name: str) -> bool:
    """Whether ``DEUCALION_<KEY>[__<KEY>...]`` names a key of ``Settings``: each part a field of
    the section above it, down to a field that is no section (a mapping's key may follow)."""
    model: Any = Settings
    for part in name[len(ENV_PREFIX) :].lower().split("__"):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            # Below a mapping setting, a key of it (external_labels__team); nothing is below
            # a value.
            kinds = get_args(model) if get_origin(model) in (Union, types.UnionType) else [model]
            return any(get_origin(kind) is dict for kind in kinds)
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = section_of(field.annotation)
    return True


def _in_a_section(name: str) -> bool:
    """Whether ``DEUCALION_<KEY>__...`` goes below a key of ``Settings``: it is read into that
    key, and a part that names nothing there is an error the settings report (not a variable
    ignored: it was said to be ignored, then refused)."""
    head, below, _ = name[len(ENV_PREFIX) :].lower().partition("__")
    return bool(below) and head in Settings.model_fields


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each ``DEUCALION_*`` variable of ``environ`` that deucalion does not read, sorted, with
    the known variable closest to its name (None when none is close): a typo like
    ``DEUCALION_ALERTMANAGER_UR`` that would otherwise pass in silence. Kubernetes service links
    (``DEUCALION_SERVICE_HOST``, ...) are not in it. Only names are looked at, never values
    (which may be secrets)."""
    unknown = []
    for name in sorted(environ):
        if (
            not name.startswith(ENV_PREFIX)
            or name in ENV_NOT_SETTINGS
            or name in ENV_LEGACY
            or name.startswith(ENV_OTHER_PREFIXES)
            or is_service_link(name)
            or _sets_a_key(name)
            or _in_a_section(name)
        ):
            continue
        unknown.append((name, closest_variable(name)))
    return unknown


def variables_that_set(environ: Mapping[str, str]) -> list[str]:
    """The ``DEUCALION_*`` variables of ``environ`` that set a key of the settings (the
    original injector's included), sorted: what ``deucalion check-config`` names beside the
    file it checks. Only names, never values."""
    return sorted(
        name
        for name in environ
        if name.startswith(ENV_PREFIX)
        and name not in ENV_NOT_SETTINGS
        and not name.startswith(ENV_OTHER_PREFIXES)
        and not is_service_link(name)
        and (name in ENV_LEGACY or _sets_a_key(name))
    )


def closest_variable(name: str) -> str | None:
    """The variable deucalion reads whose name is closest to ``name``, if one is close."""
    import difflib  # only for a variable that is not a setting, not on every start

    known = [*setting_variables(), *sorted(ENV_NOT_SETTINGS), *sorted(ENV_LEGACY)]
    # Without the prefix every name shares, which would make them all look close.
    hint = difflib.get_close_matches(
        name.removeprefix(ENV_PREFIX), [k.removeprefix(ENV_PREFIX) for k in known], n=1
    )
    return ENV_PREFIX + hint[0] if hint else None


def not_a_setting(name: str, closest: str | None) -> str:
    """The warning for a variable ``unknown_variables`` found: its name, never its value."""
    if closest is None:
        return f"environment variable {name} is not a setting and is ignored"
    return f"environment variable {name} is not a setting and is ignored; did you mean {closest}?"
