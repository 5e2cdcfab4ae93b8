"""Which pods get the sidecar: the injector's rules, as pure functions of a pod spec.

``opt_in`` is the one place that reads a pod's choice (its ``deucalion.io/inject`` label or
annotation); the webhook and ``deucalion inject -f`` both go through it via ``plan_injection``.
``annotation_problems`` checks the other ``deucalion.io/*`` annotations (whole values, with
``fullmatch``), ``native_decision`` whether the sidecar is a native one by the pod's kind, the
mode and the cluster's version. The other checks find pods the API server would reject once
patched, or where the sidecar could not run (a Windows pod, a port already taken, pod-level
resources too small for the sidecar), so the injector leaves them alone instead. Each check
answers with a ``Skip``: a short ``reason`` (a metric label) and a message for the admission
warning and the log.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from deucalion.injector.settings import NATIVE_SIDECAR_VERSION, ImageReference, InjectorSettings

__all__ = [
    "SKIP_REASONS",
    "Skip",
    "annotation_problems",
    "containers",
    "native_decision",
    "opt_in",
    "parse_quantity",
    "pod_resources_problem",
    "port_problem",
    "runs_to_completion",
    "shown",
    "windows_pod",
]

#: Every ``Skip.reason``: the label values of the injector's skip counter.
SKIP_REASONS = (
    "not-a-pod",
    "opted-out",
    "already-injected",
    "invalid-annotation",
    "no-image",
    "windows",
    "port-taken",
    "volume-taken",
    "pod-resources",
    "runs-to-completion",
    "kubernetes-version",
)

# A ConfigMap name is a DNS-1123 subdomain; its keys are restricted like file names. Matched
# with fullmatch: "$" would also accept a trailing newline, which the API server refuses.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_OBSERVER_REF = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_OPT_OUT = frozenset({"false", "no", "off", "0", "disabled"})
_OPT_IN = frozenset({"true", "yes", "on", "1", "enabled"})

# Kubernetes quantities: a decimal number with an SI or binary suffix, or an exponent.
_QUANTITY = re.compile(
    r"([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?"
)
_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


@dataclass(frozen=True)
class Skip:
    """Why a pod is left without the sidecar.

    ``reason`` is one of ``SKIP_REASONS``; ``message`` says what and what to do; ``warn`` is
    True when whoever created the pod should see it (an admission warning), False for the
    ordinary cases (opted out, already injected).
    """

    reason: str
    message: str
    warn: bool = True


def _metadata_map(pod: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    metadata = pod.get("metadata")
    found = metadata.get(key) if isinstance(metadata, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def opt_in(pod: Mapping[str, Any], key: str) -> tuple[Literal["in", "out", "default"], Skip | None]:
    """The pod's own choice, from its ``key`` label or annotation (either may say it).

    ``"out"`` when either says false (no, off, 0, disabled), ``"in"`` when one says true (yes,
    on, 1, enabled) and none false, ``"default"`` when neither is set. The ``Skip`` is set for
    ``"out"`` and for a value that is neither, which is an ``invalid-annotation`` skip: a typo
    must not inject a pod its owner meant to keep out.
    """
    choices: list[tuple[str, str]] = []
    for kind in ("labels", "annotations"):
        value = _metadata_map(pod, kind).get(key)
        if value is not None:
            shown = repr(str(value)) if len(str(value)) <= 40 else repr(str(value)[:36] + "...")
            choices.append((f"{kind[:-1]} {key}: {shown}", str(value).strip().lower()))
    for where, value in choices:
        if value in _OPT_OUT:
            return "out", Skip("opted-out", f"opted out by its {where}", warn=False)
    for where, value in choices:
        if value not in _OPT_IN:
            return "default", Skip(
                "invalid-annotation",
                f"its {where} is neither true nor false; not injected until it says which",
            )
    return ("in" if choices else "default"), None


def containers(spec: Mapping[str, Any], *keys: str) -> Iterator[Mapping[str, Any]]:
    """The containers of ``spec`` under ``keys`` (default: containers and initContainers)."""
    for key in keys or ("containers", "initContainers"):
        for container in spec.get(key) or ():
            if isinstance(container, Mapping):
                yield container


def runs_to_completion(spec: Mapping[str, Any]) -> bool:
    """True for pods whose containers end (restartPolicy Never or OnFailure: Jobs)."""
    return bool(spec.get("restartPolicy", "Always") != "Always")


def windows_pod(spec: Mapping[str, Any]) -> bool:
    """True for a pod that runs on Windows: ``spec.os.name`` says so, or its nodeSelector
    picks Windows nodes (where a Linux sidecar image cannot run)."""
    os_field, selector = spec.get("os"), spec.get("nodeSelector")
    named = isinstance(os_field, Mapping) and os_field.get("name") == "windows"
    selected = isinstance(selector, Mapping) and selector.get("kubernetes.io/os") == "windows"
    return named or selected


def port_problem(spec: Mapping[str, Any], port: int) -> str | None:
    """Why the sidecar cannot have ``port`` in this pod, or None.

    Containers of a pod share its network: a second listener on the port cannot bind. With
    ``hostNetwork`` each container port is a host port too, and the API server rejects a pod
    that declares one twice.
    """
    for container in containers(spec):
        for entry in container.get("ports") or ():
            if not isinstance(entry, Mapping):
                continue
            if port in (entry.get("containerPort"), entry.get("hostPort")):
                where = "the node's network (hostNetwork)" if spec.get("hostNetwork") else "it"
                return (
                    f"container {container.get('name')!r} already uses port {port} in "
                    f"{where}: the sidecar could not listen there (the injector's "
                    "sidecar.telemetry_port sets another)"
                )
    return None


def parse_quantity(text: object) -> Fraction:
    """A Kubernetes quantity (``50m``, ``64Mi``, ``1.5``, ``1e3``) as an exact number.

    Raises ``ValueError`` for anything else.
    """
    match = _QUANTITY.fullmatch(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def _amounts(container: Mapping[str, Any], kind: str) -> dict[str, Fraction]:
    resources = container.get("resources")
    values = resources.get(kind) if isinstance(resources, Mapping) else None
    if not isinstance(values, Mapping):
        return {}
    return {name: parse_quantity(value) for name, value in values.items()}


def _requests(owner: Mapping[str, Any]) -> dict[str, Fraction]:
    # A request left out defaults to the limit, for containers and pods alike.
    return _amounts(owner, "limits") | _amounts(owner, "requests")


def pod_resources_problem(spec: Mapping[str, Any], sidecar: Mapping[str, Any]) -> str | None:
    """Why pod-level ``spec.resources`` cannot hold the sidecar too, or None.

    The API server requires a pod's requests to cover its containers' requests together
    (native sidecars run beside the main containers, so they add to them; plain init
    containers run alone before them) and every container's limit to be within the pod's.
    """
    pod = spec.get("resources")
    if not isinstance(pod, Mapping) or not pod:
        return None
    try:
        pod_requests, pod_limits = _requests(spec), _amounts(spec, "limits")
        running = [c for c in containers(spec, "containers")]
        running += [
            c for c in containers(spec, "initContainers") if c.get("restartPolicy") == "Always"
        ]
        running.append(sidecar)
        sums: dict[str, Fraction] = {}
        for container in running:
            for name, amount in _requests(container).items():
                sums[name] = sums.get(name, Fraction(0)) + amount
        sidecar_limits = _amounts(sidecar, "limits")
    except ValueError as exc:
        return f"its resources cannot be read ({exc})"
    for name, limit in pod_limits.items():
        mine = sidecar_limits.get(name)
        if mine is not None and mine > limit:
            return (
                f"the sidecar's {name} limit is above the pod-level limit "
                f"({pod['limits'][name]}): raise it or lower the injector's "
                "sidecar.resources"
            )
    for name, request in pod_requests.items():
        if sums.get(name, Fraction(0)) > request:
            shown = (pod.get("requests") or {}).get(name) or pod["limits"][name]
            return (
                f"the pod-level {name} request ({shown}) does not cover its containers' "
                "requests with the sidecar's: raise it or lower the injector's "
                "sidecar.resources"
            )
    return None


def shown(value: object, limit: int = 60) -> str:
    """A value from the pod, quoted and cut short: admission warnings over 256 characters may
    be truncated by the API server, and a quoted value shows a newline as \\n."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def annotation_problems(
    annotations: Mapping[str, Any], settings: InjectorSettings
) -> tuple[Skip | None, list[str]]:
    """A skip for an unusable ``deucalion.io/*`` annotation, and warnings for doubtful ones
    (an image without a registry, a key deucalion does not read)."""
    names = settings.annotations
    warnings: list[str] = []

    def bad(key: str, what: str, hint: str = "") -> Skip:
        return Skip(
            "invalid-annotation",
            f"annotation {key} is not {what}: {shown(annotations[key])}{hint}",
        )

    image = annotations.get(names.image)
    if image is not None:
        try:
            problem = ImageReference(str(image).strip()).problem()
        except ValueError:
            return bad(names.image, "an image reference"), warnings
        if problem is not None:
            warnings.append(f"annotation {names.image}: {problem}")
    observer = annotations.get(names.observer)
    if observer is not None and not _OBSERVER_REF.fullmatch(str(observer)):
        return bad(names.observer, "MODULE:CLASS"), warnings
    preset = annotations.get(names.preset)
    if preset is not None:
        from deucalion.presets import PRESETS

        if str(preset).strip() not in PRESETS:
            close = difflib.get_close_matches(str(preset).strip(), PRESETS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return bad(names.preset, f"a preset ({', '.join(PRESETS)})", hint), warnings
        if observer is not None:
            return (
                Skip(
                    "invalid-annotation",
                    f"annotations {names.preset} and {names.observer} both name what to run: "
                    "keep one",
                ),
                warnings,
            )
    config_map = annotations.get(names.config)
    if config_map is not None and (
        len(str(config_map)) > 253 or not _DNS_SUBDOMAIN.fullmatch(str(config_map))
    ):
        return bad(names.config, "a ConfigMap name"), warnings
    config_key = annotations.get(names.config_key)
    if config_key is not None:
        if config_map is None:
            warnings.append(f"annotation {names.config_key} has no effect without {names.config}")
        elif len(str(config_key)) > 253 or not _CONFIG_KEY.fullmatch(str(config_key)):
            return bad(names.config_key, "a ConfigMap key"), warnings
    known = {
        names.inject,
        names.image,
        names.observer,
        names.preset,
        names.config,
        names.config_key,
        names.status,
    }
    prefix = names.inject.rpartition("/")[0] + "/"
    for key in sorted(k for k in annotations if k.startswith(prefix) and k not in known):
        warnings.append(f"annotation {key} is not one deucalion reads (a typo?)")
    return None, warnings


def native_decision(
    spec: Mapping[str, Any],
    choice: str,
    settings: InjectorSettings,
    version: tuple[int, int] | None,
) -> bool | Skip:
    """Whether the sidecar is a native one (an init container), or why the pod gets none.

    ``choice`` is ``opt_in``'s; ``version`` the cluster's, None when unknown.
    """
    mode = settings.sidecar.native_sidecar
    too_old = version is not None and version < NATIVE_SIDECAR_VERSION
    needed = ".".join(map(str, NATIVE_SIDECAR_VERSION))
    if runs_to_completion(spec):
        if mode == "never":
            return Skip(
                "runs-to-completion",
                "the pod runs to completion and native sidecars are off "
                "(sidecar.native_sidecar: never): a plain sidecar would keep it "
                "running forever",
            )
        if choice != "in":
            # A native sidecar starts before the main containers, which wait until it runs:
            # an image that cannot be pulled would hold the Job. Only its owner may accept that.
            return Skip(
                "runs-to-completion",
                f"the pod runs to completion (a Job?): its containers would wait for "
                f"the sidecar to start; label or annotate it "
                f'{settings.annotations.inject}: "true" to accept that',
            )
        if too_old or (version is None and mode == "auto"):
            known = "unknown" if version is None else ".".join(map(str, version))
            return Skip(
                "kubernetes-version",
                f"the pod runs to completion and needs a native sidecar (Kubernetes "
                f"{needed} or newer); the cluster's version is {known} "
                f"(cluster.kubernetes_version, --kubernetes-version)",
            )
        return True
    if mode == "always":
        if too_old:
            return Skip(
                "kubernetes-version",
                f"sidecar.native_sidecar is always, but Kubernetes "
                f"{'.'.join(map(str, version or ()))} rejects native sidecars "
                f"(they need {needed} or newer)",
            )
        return True
    return False
