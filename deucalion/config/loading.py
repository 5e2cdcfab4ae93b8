"""deucalion's settings: pydantic models, read from files, the environment and arguments.

The one mechanism for every settings model of deucalion (the sidecar's ``Settings``, the
injector's ``InjectorSettings``): sources are layered, later wins, merged, validated once by
the model, and every problem is a ``ConfigError`` naming the key and the source that set it
(``validate_layers``). For the sidecar's settings:

Sources, later wins:

1. the defaults below;
2. ``/etc/deucalion/config.yaml`` when it exists;
3. the YAML file named by ``DEUCALION_CONFIG``;
4. the ``config=`` argument of ``MetricsProvisioner`` (a path or a mapping);
5. ``DEUCALION_*`` environment variables (``DEUCALION_SCRAPE_INTERVAL=5s``; a nested key with
   ``__``: ``DEUCALION_ALERTMANAGER__URLS=http://am:9093``);
6. keyword arguments (``MetricsProvisioner(scrape_interval="5s")``).

Every problem becomes a ``ConfigError`` that names the key and the source that set it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from deucalion.config.environment import (
    ENV_LEGACY,
    ENV_NOT_SETTINGS,
    ENV_OTHER_PREFIXES,
    ENV_PREFIX,
    closest_variable,
    is_service_link,
    not_a_setting,
    section_of,
    setting_variables,
    unknown_variables,
    variables_that_set,
)
from deucalion.config.settings import (
    _TRUE_WORDS,
    AlertmanagerSettings,
    ClientOptions,
    FileSDSettings,
    KubernetesSettings,
    ObserverSettings,
    PresetSettings,
    PrometheusSettings,
    ScrapeOptions,
    Settings,
    TargetSettings,
    TelemetrySettings,
    _enable_section,
    check_labels,
    normalize_target_url,
    parse_duration,
    preset_shorthand,
)
from deucalion.errors import ConfigError

# The models are re-exported: ``deucalion.config.loading`` is the front door to configuration.
__all__ = [
    "AlertmanagerSettings",
    "ClientOptions",
    "FileSDSettings",
    "KubernetesSettings",
    "ObserverSettings",
    "PresetSettings",
    "PrometheusSettings",
    "ScrapeOptions",
    "Settings",
    "TargetSettings",
    "TelemetrySettings",
    "check_labels",
    "closest_variable",
    "environment_layer",
    "load_settings",
    "normalize_target_url",
    "not_a_setting",
    "parse_duration",
    "setting_variables",
    "unknown_variables",
    "validate_layers",
    "variables_that_set",
    "yaml_problem",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

DEFAULT_CONFIG_FILE = Path("/etc/deucalion/config.yaml")
# --- loading -------------------------------------------------------------------------------


def yaml_problem(exc: Exception) -> str:
    """What PyYAML found wrong in a text, and where, without the line of the text it quotes:
    that line may hold a password (in a URL, say)."""
    words = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    what = ": ".join(str(w) for w in words if w)
    if not what:
        # Not a MarkedYAMLError (a ReaderError, say): its message quotes no text.
        return " ".join(str(exc).split())
    mark = getattr(exc, "problem_mark", None)
    return f"{what} at line {mark.line + 1}, column {mark.column + 1}" if mark else what


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    # Imported here, not at the top: PyYAML adds to the application's RSS (benchmarks/
    # results.md), and a sidecar configured by its environment and arguments never reads YAML.
    import yaml

    from deucalion.config.yaml_text import safe_load

    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of settings (key: value), "
            f"not a {type(data).__name__}"
        )
    return data


def _config_variable_layer(environ: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The layer of the file ``DEUCALION_CONFIG`` names. A file that is not there is an error
    naming the variable, unless ``DEUCALION_CONFIG_OPTIONAL`` is true (the injector sets it
    beside the ``deucalion.io/config`` ConfigMap it mounts as optional): then it is a warning
    and no layer, so that a missing ConfigMap does not crash the sidecar, and with it the pod."""
    path = Path(environ["DEUCALION_CONFIG"])
    source = f"config file {path} (from DEUCALION_CONFIG)"
    if path.exists():
        return [(source, _read_yaml(path))]
    if environ.get("DEUCALION_CONFIG_OPTIONAL", "").strip().lower() in _TRUE_WORDS:
        log.warning(
            "config file %s (from DEUCALION_CONFIG) does not exist: running without it, with "
            "the environment's settings. In Kubernetes, the pod's deucalion.io/config annotation "
            "names a ConfigMap that is missing or has no key %s (deucalion.io/config-key): "
            "create it (kubectl create configmap NAME --from-file=%s=FILE) or remove the "
            "annotation",
            path,
            path.name,
            path.name,
        )
        return []
    raise ConfigError(
        f"cannot read config file {path} (from DEUCALION_CONFIG): it does not exist; set "
        "DEUCALION_CONFIG to an existing YAML file, or unset it"
    )


def _env_value(raw: str) -> object:
    """Structured values (lists, mappings) may be written as JSON or YAML flow style."""
    stripped = raw.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            import yaml  # only for flow style that is not JSON; see _read_yaml

            try:
                return yaml.safe_load(stripped)
            except yaml.YAMLError:
                return raw
    return raw


def environment_layer(
    environ: Mapping[str, str],
    prefix: str,
    *,
    ignore: Collection[str] = (),
    ignore_prefixes: tuple[str, ...] = (),
    fields: Collection[str] | None = None,
) -> dict[str, Any]:
    """The settings that ``PREFIX<KEY>`` variables set; ``__`` separates nested keys
    (``DEUCALION_ALERTMANAGER__URLS``). With ``fields``, a variable whose first key is not one
    of them is not a setting: it is skipped, with a warning (for the sidecar's ``DEUCALION_``,
    each such variable but a service link, naming the closest variable; for another prefix,
    when it looks like a typo of a field)."""
    layer: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(prefix) or name in ignore or name.startswith(ignore_prefixes):
            continue
        path = name[len(prefix) :].lower().split("__")
        if fields is not None and path[0] not in fields:
            # Not a setting: Kubernetes service links for a Service named deucalion
            # (DEUCALION_PORT, DEUCALION_SERVICE_HOST), a typo, a variable of the user's own.
            # Refusing them would stop the sidecar from starting.
            _log_not_a_setting(name, path[0], prefix, fields)
            continue
        node = layer
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = _env_value(raw)
    return layer


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    # The variables of the original sidecar injector first: DEUCALION_* ones override them.
    layer: dict[str, Any] = {}
    host = environ.get("DEUCALION_ALERT_MANAGER_HOST")
    if host:
        port = environ.get("DEUCALION_ALERT_MANAGER_PORT", "9093")
        base = host if "://" in host else f"http://{host}"
        layer.setdefault("alertmanager", {})["urls"] = [f"{base}:{port}"]
    if environ.get("DEUCALION_ALERT_NAME"):
        layer.setdefault("alertmanager", {})["alert_name"] = environ["DEUCALION_ALERT_NAME"]
    # DEUCALION_PRESET=NAME is the preset's name, beside DEUCALION_PRESET__BUDGET.
    if environ.get("DEUCALION_PRESET"):
        layer["preset"] = {"name": environ["DEUCALION_PRESET"]}
    return _merge(
        layer,
        environment_layer(
            environ,
            ENV_PREFIX,
            ignore=ENV_NOT_SETTINGS | ENV_LEGACY | {"DEUCALION_PRESET"},
            ignore_prefixes=ENV_OTHER_PREFIXES,
            fields=Settings.model_fields,
        ),
    )


def _expand_shorthands(layer: dict[str, Any]) -> dict[str, Any]:
    """``preset: NAME`` as ``preset: {name: NAME}`` in every source before they are merged, so
    that one source's name and another's budget (the file's ``preset: node-exporter``,
    ``DEUCALION_PRESET__BUDGET=3``) make one preset."""
    if "preset" in layer:
        return {**layer, "preset": preset_shorthand(layer["preset"])}
    return layer


def _log_not_a_setting(name: str, key: str, prefix: str, fields: Collection[str]) -> None:
    if prefix == ENV_PREFIX:
        # The sidecar's: the closest of every variable deucalion reads, nested ones included.
        if is_service_link(name):
            log.debug("environment variable %s is not a setting: ignored", name)
        else:
            log.warning("%s", not_a_setting(name, closest_variable(name)))
        return
    import difflib  # only for a variable that is not a setting, not on every start

    hint = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.8)
    if hint:
        log.warning(
            "environment variable %s is not a setting and is ignored; did you mean %s?",
            name,
            prefix + hint[0].upper(),
        )
    else:
        log.debug("environment variable %s is not a setting: ignored", name)


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; anything else (lists included) is replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _source_of(loc: tuple[int | str, ...], layers: list[tuple[str, dict[str, Any]]]) -> str:
    """The last source that set ``loc`` (or its nearest parent), for the error message."""
    for depth in range(len(loc), 0, -1):
        for source, layer in reversed(layers):
            node: Any = layer
            for part in loc[:depth]:
                in_mapping = isinstance(node, Mapping) and part in node
                in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
                if in_mapping or in_list:
                    node = node[part]
                else:
                    break
            else:
                return str(source)
    return "the defaults"


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The settings model that the key at ``loc`` belongs to, for "known keys" hints."""
    annotation: Any = root
    for part in loc:
        annotation = section_of(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]  # part is an index or a key
        else:
            return None
    annotation = section_of(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _describe(
    error: Mapping[str, Any],
    layers: list[tuple[str, dict[str, Any]]],
    root: type[BaseModel],
    env_prefix: str,
) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    key = ".".join(str(p) for p in loc) or "(top level)"
    # A check of the whole model (loc empty) concerns every source together.
    source = (
        _source_of(loc, layers)
        if loc
        else (" + ".join(name for name, _ in layers) or "the defaults")
    )
    if source.startswith("environment"):
        source = (
            "environment variable "
            + env_prefix
            + "__".join(str(p).upper() for p in loc if isinstance(p, str))
        )
    if error["type"] == "extra_forbidden":
        import difflib  # only for a typo, not on every start

        parent = _model_at(root, loc[:-1])
        known = sorted(parent.model_fields) if parent else []
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"{source}: unknown key {key!r}{suggestion} (known keys: {', '.join(known)})"
    plain = _plain_message(error, root, loc, in_environment=source.startswith("environment"))
    message = plain or str(error["msg"]).removeprefix("Value error, ")
    return f"{source}: {key}: {message}"


# pydantic's wrong-type errors, as deucalion words its own ("'soon' is not a duration: ...").
_WHOLE_NUMBER = frozenset({"int_parsing", "int_type", "int_from_float", "int_parsing_size"})
_NUMBER = frozenset({"float_parsing", "float_type"})
_BOOLEAN = frozenset({"bool_parsing", "bool_type"})
_MAPPING = frozenset({"model_type", "model_attributes_type", "dict_type"})
_LIST = frozenset({"list_type"})
_TEXT = frozenset({"string_type"})


def _shown(value: object, loc: tuple[int | str, ...] = ()) -> str:
    """A wrong value as an error may quote it: a short scalar, else only its kind (a long
    string in the wrong key may be a secret), and only its kind under a key of credentials
    (``basic_auth: "admin:hunter2"``, where a section goes, was quoted)."""
    secret = any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)
    if not secret and (
        isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 30)
    ):
        return repr(value)
    return f"a {type(value).__name__}"


#: Parts of a key that hold credentials: a wrong value under one is never quoted.
_SECRET_WORDS = ("auth", "password", "token", "secret", "credential", "key", "bearer")


def _plain_message(
    error: Mapping[str, Any],
    root: type[BaseModel],
    loc: tuple[int | str, ...],
    *,
    in_environment: bool,
) -> str | None:
    """A one-line message saying what to write, for pydantic's wrong-type errors (None for
    the others, whose messages are deucalion's own or plain enough)."""
    kind = error["type"]
    shown = _shown(error.get("input"), loc)
    parent = _model_at(root, loc[:-1]) if loc else None
    field = parent.model_fields.get(str(loc[-1])) if parent is not None and loc else None
    default = field.default if field is not None else None
    if kind in _WHOLE_NUMBER:
        example = default if isinstance(default, int) and not isinstance(default, bool) else 100
        return f"{shown} is not a whole number: write one such as {example}"
    if kind in _NUMBER:
        return f"{shown} is not a number: write one such as 1 or 0.5"
    if kind in _BOOLEAN:
        return f"{shown} is neither true nor false: write true or false"
    if kind in _LIST:
        how = " (comma-separated, or JSON: [...])" if in_environment else ""
        return f"{shown} is not a list: write a list{how}"
    if kind in _TEXT:
        return f"{shown} is not text: write a string"
    if kind in _MAPPING:
        section = _model_at(root, loc)
        known = f" ({', '.join(sorted(section.model_fields))})" if section is not None else ""
        enable = ""
        if field is not None and any(
            getattr(m, "func", None) is _enable_section for m in field.metadata
        ):
            enable = "true (its defaults), false, or "
        how = (
            ' (as JSON, {"key": "value"}, or one variable per key, joined by __)'
            if in_environment
            else ""
        )
        return f"{shown} is not a section: write {enable}a mapping of its keys{known}{how}"
    return None


def load_settings(
    config: str | os.PathLike[str] | Mapping[str, Any] | Settings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    default_file: Path | None = DEFAULT_CONFIG_FILE,
    known_presets: Collection[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read and validate the settings from every source, later sources winning.

    Raises ``ConfigError`` listing every problem, each with its key and source; with
    ``known_presets``, a ``preset`` name that is none of them is one of those problems.
    """
    environ = os.environ if environ is None else environ
    if isinstance(config, Settings):
        if overrides:
            config = config.model_dump()
        else:
            return config
    layers: list[tuple[str, dict[str, Any]]] = []
    if default_file is not None and default_file.is_file():
        layers.append((f"config file {default_file}", _read_yaml(default_file)))
    if environ.get("DEUCALION_CONFIG"):
        layers.extend(_config_variable_layer(environ))
    if isinstance(config, str | os.PathLike):
        layers.append((f"config file {config}", _read_yaml(Path(config))))
    elif isinstance(config, Mapping):
        layers.append(("the config= argument", dict(config)))
    elif config is not None:
        raise ConfigError(
            f"config= must be a path to a YAML file or a mapping of settings, "
            f"not {type(config).__name__}"
        )
    env_layer = _env_layer(environ)
    if env_layer:
        layers.append(("environment", env_layer))
    if overrides:
        layers.append(("keyword arguments", dict(overrides)))
    layers = [(source, _expand_shorthands(layer)) for source, layer in layers]
    context = {"presets": list(known_presets)} if known_presets is not None else None
    return validate_layers(Settings, layers, env_prefix=ENV_PREFIX, context=context)


def validate_layers(
    model: type[M],
    layers: list[tuple[str, dict[str, Any]]],
    *,
    env_prefix: str,
    context: Mapping[str, Any] | None = None,
) -> M:
    """``model`` from ``layers`` (``(source, settings)``, later wins), deep-merged.

    Raises ``ConfigError`` listing every problem, each with its key and the source that set it
    (an ``environment`` layer is named by its variable, ``env_prefix`` + ``KEY__SUBKEY``);
    ``context`` is pydantic's validation context, for checks the model cannot make alone.
    """
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = _merge(merged, layer)
    try:
        return model.model_validate(merged, context=context)
    except ValidationError as exc:
        problems = [_describe(error, layers, model, env_prefix) for error in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
