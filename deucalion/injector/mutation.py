"""What the injector does to a pod, as a pure function: pod in, JSONPatch operations out.

``plan_injection`` decides whether a pod gets the deucalion sidecar (the rules are in
``deucalion.injector.policy``) and returns the RFC 6902 operations that add it; the webhook
sends them to the API server. Nothing here does I/O; ``deucalion.injector.manifest`` applies
the same plan offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deucalion._version import __version__
from deucalion.injector.policy import (
    Skip,
    annotation_problems,
    native_decision,
    opt_in,
    pod_resources_problem,
    port_problem,
    shown,
    windows_pod,
)
from deucalion.injector.settings import ANNOTATIONS_FILE, InjectorSettings

__all__ = [
    "INJECTED",
    "Injection",
    "JsonPatchOp",
    "escape_pointer_token",
    "plan_injection",
    "pod_patch",
    "sidecar_container",
]

JsonPatchOp = dict[str, Any]
"""One RFC 6902 operation, e.g. ``{"op": "add", "path": "/spec/volumes/-", "value": {...}}``."""

#: Value of the status annotation on an injected pod.
INJECTED = "injected"

PODINFO_VOLUME = "deucalion-podinfo"
CONFIG_VOLUME = "deucalion-config"
TMP_VOLUME = "deucalion-tmp"
CONFIG_DIR = "/etc/deucalion/config"
DEFAULT_CONFIG_KEY = "deucalion.yaml"

# A label value: at most 63 characters of [-._a-zA-Z0-9], starting and ending alphanumeric.
_LABEL_VALUE_BAD = re.compile(r"[^-._a-zA-Z0-9]")


def escape_pointer_token(token: str) -> str:
    """Escape one JSON Pointer reference token as RFC 6901 requires (``~`` first, then ``/``)."""
    return token.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Injection:
    """The injector's decision about one pod.

    ``patch`` is empty when the pod is left alone; ``skipped`` then says why and ``reason``
    names the rule (one of ``deucalion.injector.policy.SKIP_REASONS``). ``warnings`` are
    shown to whoever created the pod (kubectl prints admission warnings).
    """

    patch: list[JsonPatchOp] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None
    reason: str | None = None

    @classmethod
    def skip(cls, skip: Skip, warnings: list[str] | None = None) -> Injection:
        """A decision to leave the pod alone; a ``skip`` meant to be seen is also a warning."""
        shown = list(warnings or [])
        if skip.warn:
            shown.append(f"deucalion sidecar not injected: {skip.message}")
        return cls(warnings=shown, skipped=skip.message, reason=skip.reason)

    @property
    def injected(self) -> bool:
        """True when the patch adds the sidecar."""
        return bool(self.patch)


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        c
        for key in ("containers", "initContainers")
        for c in spec.get(key) or ()
        if isinstance(c, Mapping)
    ]


def _alertmanager_env(settings: InjectorSettings) -> list[dict[str, Any]]:
    """The injector's Alertmanager defaults, as deucalion's environment variables."""
    alertmanager = settings.alertmanager
    env: list[dict[str, Any]] = []
    if alertmanager.urls:
        # JSON is how deucalion reads a list from one environment variable.
        urls = json.dumps(alertmanager.urls, separators=(",", ":"))
        env.append({"name": "DEUCALION_ALERTMANAGER__URLS", "value": urls})
    env.append({"name": "DEUCALION_ALERT_NAME", "value": alertmanager.alert_name})
    host_port = alertmanager.first_host_port
    if host_port is not None:
        # The original framework knew one Alertmanager by host and port.
        env.append({"name": "DEUCALION_ALERT_MANAGER_HOST", "value": host_port[0]})
        env.append({"name": "DEUCALION_ALERT_MANAGER_PORT", "value": str(host_port[1])})
    return env


def sidecar_container(
    settings: InjectorSettings,
    *,
    image: str,
    observer: str | None = None,
    config_key: str | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """The deucalion sidecar container for a pod; ``config_key`` set when a ConfigMap is mounted."""
    sidecar = settings.sidecar
    port = sidecar.telemetry_port
    env: list[dict[str, Any]] = [
        # Downward API env vars: on CREATE the pod may have no name yet (generateName), so
        # only the kubelet knows the final name and namespace.
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "DEUCALION_KUBERNETES__ANNOTATIONS_FILE", "value": ANNOTATIONS_FILE},
        {"name": "DEUCALION_TELEMETRY__LISTEN", "value": f"0.0.0.0:{port}"},
    ]
    # Environment variables beat deucalion's config file: with a ConfigMap mounted, the pod's
    # own file says where alerts go, so the injector's defaults stay out of its way.
    if config_key is None:
        env.extend(_alertmanager_env(settings))
    mounts: list[dict[str, Any]] = [
        {"name": PODINFO_VOLUME, "mountPath": ANNOTATIONS_FILE.rsplit("/", 1)[0], "readOnly": True},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]
    if config_key is not None:
        env.append({"name": "DEUCALION_CONFIG", "value": f"{CONFIG_DIR}/{config_key}"})
        # The ConfigMap is optional (see _volumes): a missing file is then a warning in the
        # sidecar's log, not an error that would crash it and take the pod out of its Service.
        env.append({"name": "DEUCALION_CONFIG_OPTIONAL", "value": "true"})
        mounts.append({"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True})
    env.extend({"name": k, "value": v} for k, v in sorted(sidecar.extra_env.items()))

    container: dict[str, Any] = {"name": sidecar.container_name, "image": image}
    if observer is not None:
        container["command"] = ["deucalion", "run", observer]
    elif preset is not None:
        container["command"] = ["deucalion", "run", "--preset", preset]
    container |= {
        "imagePullPolicy": sidecar.image_pull_policy,
        "env": env,
        "ports": [{"name": "deucalion-http", "containerPort": port, "protocol": "TCP"}],
        "resources": sidecar.resources.as_kubernetes(),
        # No startup probe and no readiness probe: Kubernetes counts a container with either
        # as not ready until it passes, and a pod is Ready only when all its containers are,
        # so the watched service would leave its Service while the model loads. Liveness
        # waits out the model's loading instead, on every start.
        "livenessProbe": _probe(
            "/healthz", port, delay=sidecar.startup_grace_seconds, period=10, failures=3
        ),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": sidecar.run_as_user,
            "runAsGroup": sidecar.run_as_user,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return container


def _probe(path: str, port: int, *, delay: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _volumes(config_map: str | None) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": PODINFO_VOLUME,
            "downwardAPI": {
                "items": [
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                ]
            },
        },
        # The root filesystem is read-only; observers and their libraries still need a /tmp.
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if config_map is not None:
        # Optional: a missing ConfigMap must not keep the application's pod from starting; the
        # sidecar (DEUCALION_CONFIG_OPTIONAL) then warns which config file it could not read
        # and runs without it.
        volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": config_map, "optional": True}})
    return volumes


def _metrics_port(
    annotations: Mapping[str, Any], spec: Mapping[str, Any]
) -> tuple[dict[str, int], str | None]:
    """The pod's named container ports when its ``prometheus.io/port`` names one (for the
    sidecar), and a warning when the annotation gives the sidecar no port to scrape."""
    from deucalion.targets.kubernetes import named_ports

    port = str(annotations.get("prometheus.io/port", "")).strip()
    if not port:
        return {}, (
            "deucalion sidecar injected, but the pod has no annotation prometheus.io/port: it "
            "will find no target to watch until it names the port of the metrics (a number "
            "or a container port's name)"
        )
    if port.isdecimal() and port.isascii():
        if 0 < int(port) < 65536:
            return {}, None
        return {}, (
            f"deucalion sidecar injected, but annotation prometheus.io/port is {shown(port)}, "
            "not a port (1 to 65535): it will find no target to watch"
        )
    ports = named_ports(spec)
    if port in ports:
        return ports, None
    known = f"its ports are named {', '.join(sorted(ports))}" if ports else "none is named"
    return {}, (
        f"deucalion sidecar injected, but annotation prometheus.io/port is {shown(port)}, "
        f"which names no container port of the pod ({known}): it will find no target to "
        "watch; set it to the port number, or name the port in the container's ports"
    )


def injected_label_value(version: str = __version__) -> str:
    """The ``deucalion.io/injected`` label's value: the version, made a valid label value."""
    value = _LABEL_VALUE_BAD.sub("-", version)[:63].strip("-._")
    return value or "unknown"


def _metadata_patch(
    pod: Mapping[str, Any], additions: dict[str, dict[str, str]]
) -> list[JsonPatchOp]:
    """``add`` operations that set ``additions`` (``{"labels": {...}, ...}``) in the pod's
    metadata, creating the maps (or the metadata) that are missing."""
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        value = {key: dict(entries) for key, entries in additions.items()}
        return [{"op": "add", "path": "/metadata", "value": value}]
    patch: list[JsonPatchOp] = []
    for key, entries in additions.items():
        if not isinstance(metadata.get(key), Mapping):
            patch.append({"op": "add", "path": f"/metadata/{key}", "value": dict(entries)})
            continue
        patch += [
            {"op": "add", "path": f"/metadata/{key}/{escape_pointer_token(name)}", "value": value}
            for name, value in entries.items()
        ]
    return patch


def plan_injection(
    pod: Mapping[str, Any],
    settings: InjectorSettings,
    *,
    kubernetes_version: tuple[int, int] | None = None,
) -> Injection:
    """Decide whether ``pod`` (a Pod or a pod template, as a dict) gets the sidecar.

    Returns the JSONPatch that adds the sidecar container, its volumes, the status annotation
    and the ``deucalion.io/injected`` label, or an empty patch with the reason when the pod is
    left alone: it opted out (label or annotation), is already injected, carries an annotation
    the injector cannot use, or would be rejected by the API server once patched (a Windows
    pod, the sidecar's port taken, pod-level resources too small). ``kubernetes_version``
    (default: ``settings.cluster``) decides whether native sidecars may be used. ``pod`` is
    not modified.
    """
    names = settings.annotations
    spec = pod.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("containers"), list):
        return Injection.skip(
            Skip("not-a-pod", "the object has no pod spec with containers", warn=False)
        )
    choice, opted = opt_in(pod, names.inject)
    if opted is not None:
        return Injection.skip(opted)
    annotations = _annotations(pod)
    if annotations.get(names.status) == INJECTED:
        return Injection.skip(
            Skip("already-injected", f"already injected ({names.status}: {INJECTED})", warn=False)
        )
    if any(c.get("name") == settings.sidecar.container_name for c in _containers(spec)):
        return Injection.skip(
            Skip(
                "already-injected",
                f"it already has a container {settings.sidecar.container_name!r}",
                warn=False,
            )
        )
    problem, warnings = annotation_problems(annotations, settings)
    if problem is not None:
        return Injection.skip(problem, warnings)

    taken = {v.get("name") for v in spec.get("volumes") or () if isinstance(v, Mapping)}
    ours = {PODINFO_VOLUME, TMP_VOLUME, CONFIG_VOLUME} & taken
    if ours:
        return Injection.skip(
            Skip("volume-taken", f"the pod already has volumes named {sorted(ours)}"), warnings
        )
    if windows_pod(spec):
        return Injection.skip(
            Skip(
                "windows",
                "it is a Windows pod (spec.os.name or its "
                "nodeSelector); the sidecar runs on Linux only",
            ),
            warnings,
        )
    port = settings.sidecar.telemetry_port
    taken_port = port_problem(spec, port)
    if taken_port is not None:
        return Injection.skip(Skip("port-taken", taken_port), warnings)

    image = str(annotations.get(names.image) or settings.sidecar.image or "").strip()
    if not image:
        return Injection.skip(
            Skip(
                "no-image",
                f"neither the annotation {names.image} nor the "
                "injector's sidecar.image names an image",
            ),
            warnings,
        )
    if kubernetes_version is None:
        kubernetes_version = settings.cluster.version
    native = native_decision(spec, choice, settings, kubernetes_version)
    if isinstance(native, Skip):
        return Injection.skip(native, warnings)

    config_map = annotations.get(names.config)
    observer = annotations.get(names.observer)
    container = sidecar_container(
        settings,
        image=image,
        observer=str(observer) if observer is not None else None,
        preset=str(annotations[names.preset]).strip() if names.preset in annotations else None,
        config_key=(
            str(annotations.get(names.config_key) or DEFAULT_CONFIG_KEY)
            if config_map is not None
            else None
        ),
    )
    if spec.get("hostNetwork") is True:
        # The port is the node's: declared as a host port, the scheduler keeps two such pods
        # off one node instead of letting the second sidecar fail to bind.
        container["ports"][0]["hostPort"] = port
    fits = pod_resources_problem(spec, container)
    if fits is not None:
        return Injection.skip(Skip("pod-resources", fits), warnings)

    if str(annotations.get("prometheus.io/scrape", "")).lower() != "true":
        warnings.append(
            "deucalion sidecar injected, but the pod has no annotation prometheus.io/scrape: "
            '"true": it will find no target to watch'
        )
    else:
        ports, port_warning = _metrics_port(annotations, spec)
        if port_warning is not None:
            warnings.append(port_warning)
        if ports:
            # A named prometheus.io/port, as Kubernetes allows: the sidecar cannot see the
            # pod's container ports in its Downward API files, so it is told them.
            value = json.dumps(ports, separators=(",", ":"), sort_keys=True)
            container["env"].append({"name": "DEUCALION_KUBERNETES__PORTS", "value": value})
    if native:
        # A plain container would keep a Job's pod running forever after its work is done; a
        # native sidecar (an init container that restarts) ends with the pod's main containers.
        container["restartPolicy"] = "Always"
        where = "initContainers"
    else:
        where = "containers"
    if spec.get(where):
        patch: list[JsonPatchOp] = [{"op": "add", "path": f"/spec/{where}/-", "value": container}]
    else:
        patch = [{"op": "add", "path": f"/spec/{where}", "value": [container]}]
    volumes = _volumes(str(config_map) if config_map is not None else None)
    if spec.get("volumes"):
        patch += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes]
    else:
        # "add" on a missing (or null) member creates it; appending with "-" would fail.
        patch.append({"op": "add", "path": "/spec/volumes", "value": volumes})
    # The label lets a PodMonitor (or kubectl get -l) find injected pods and their version.
    patch += _metadata_patch(
        pod,
        {
            "annotations": {names.status: INJECTED},
            "labels": {names.injected: injected_label_value()},
        },
    )
    return Injection(patch=patch, warnings=warnings)


def pod_patch(pod: Mapping[str, Any], settings: InjectorSettings) -> list[JsonPatchOp]:
    """The JSONPatch operations that inject ``pod``; empty when it is left alone."""
    return plan_injection(pod, settings).patch
