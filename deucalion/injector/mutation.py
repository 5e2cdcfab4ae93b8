"""What the injector does to a pod, as a pure function: pod in, JSONPatch operations out.

``plan_injection`` decides whether a pod gets the deucalion sidecar and returns the RFC 6902
operations that add it; the webhook sends them to the API server.
Nothing here does I/O; ``deucalion.injector.manifest`` applies the same plan offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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

_OPT_OUT = frozenset({"false", "no", "off", "0", "disabled"})
# A ConfigMap name is a DNS-1123 subdomain; its keys are restricted like file names.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_OBSERVER_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def escape_pointer_token(token: str) -> str:
    """Escape one JSON Pointer reference token as RFC 6901 requires (``~`` first, then ``/``)."""
    return token.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Injection:
    """The injector's decision about one pod.

    ``patch`` is empty when the pod is left alone, and ``skipped`` then says why; ``warnings``
    are shown to whoever created the pod (kubectl prints admission warnings).
    """

    patch: list[JsonPatchOp] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def injected(self) -> bool:
        """True when the patch adds the sidecar."""
        return bool(self.patch)


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _container_names(spec: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            if isinstance(container, Mapping):
                names.add(str(container.get("name", "")))
    return names


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
        mounts.append({"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True})
    env.extend({"name": k, "value": v} for k, v in sorted(sidecar.extra_env.items()))

    container: dict[str, Any] = {"name": sidecar.container_name, "image": image}
    if observer is not None:
        container["command"] = ["deucalion", "run", observer]
    container |= {
        "imagePullPolicy": sidecar.image_pull_policy,
        "env": env,
        "ports": [{"name": "deucalion-http", "containerPort": port, "protocol": "TCP"}],
        "resources": sidecar.resources.as_kubernetes(),
        # The AD app loads its model before deucalion's server is up: the startup probe gives
        # it five minutes before liveness may restart it.
        "startupProbe": _probe("/healthz", port, period=5, failures=60),
        "livenessProbe": _probe("/healthz", port, period=10, failures=3),
        # No readiness probe: a pod is Ready only when every container is, and the service it
        # watches must not leave its Service while the model loads or a worker restarts.
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


def _probe(path: str, port: int, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
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
        # sidecar then says which config file it could not read.
        volumes.append({"name": CONFIG_VOLUME,
                        "configMap": {"name": config_map, "optional": True}})
    return volumes


def plan_injection(pod: Mapping[str, Any], settings: InjectorSettings) -> Injection:
    """Decide whether ``pod`` (a Pod or a pod template, as a dict) gets the sidecar.

    Returns the JSONPatch that adds the sidecar container, its volumes and the status
    annotation, or an empty patch with the reason when the pod opted out, is already injected
    or carries an annotation the injector cannot use. A pod that runs to completion
    (``restartPolicy`` Never or OnFailure, as in Jobs) gets a native sidecar: an init container
    with ``restartPolicy: Always`` (see ``SidecarSettings.native_sidecar``). ``pod`` is not
    modified.
    """
    names = settings.annotations
    spec = pod.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("containers"), list):
        return Injection(skipped="the object has no pod spec with containers")
    annotations = _annotations(pod)
    opt = str(annotations.get(names.inject, "")).strip().lower()
    if opt in _OPT_OUT:
        return Injection(skipped=f"annotated {names.inject}: {annotations[names.inject]!r}")
    if annotations.get(names.status) == INJECTED:
        return Injection(skipped=f"already injected ({names.status}: {INJECTED})")
    if settings.sidecar.container_name in _container_names(spec):
        return Injection(skipped=f"already has a container {settings.sidecar.container_name!r}")

    taken = {v.get("name") for v in spec.get("volumes") or () if isinstance(v, Mapping)}
    ours = {PODINFO_VOLUME, TMP_VOLUME, CONFIG_VOLUME} & taken
    if ours:
        return Injection(skipped=f"the pod already has volumes named {sorted(ours)}")

    image = str(annotations.get(names.image) or settings.sidecar.image).strip()
    if not image or any(c.isspace() for c in image):
        return Injection(skipped=f"annotation {names.image} is not an image reference: {image!r}")
    observer = annotations.get(names.observer)
    if observer is not None and not _OBSERVER_REF.match(str(observer)):
        return Injection(skipped=f"annotation {names.observer} must be MODULE:CLASS: {observer!r}")
    config_map = annotations.get(names.config)
    config_key = None
    if config_map is not None:
        config_map = str(config_map)
        if len(config_map) > 253 or not _DNS_SUBDOMAIN.match(config_map):
            return Injection(
                skipped=f"annotation {names.config} is not a ConfigMap name: {config_map!r}"
            )
        config_key = str(annotations.get(names.config_key) or DEFAULT_CONFIG_KEY)
        if not _CONFIG_KEY.match(config_key):
            return Injection(
                skipped=f"annotation {names.config_key} is not a ConfigMap key: {config_key!r}"
            )

    warnings: list[str] = []
    if str(annotations.get("prometheus.io/scrape", "")).lower() != "true":
        warnings.append(
            "deucalion sidecar injected, but the pod has no annotation prometheus.io/scrape: "
            '"true": it will find no target to watch'
        )
    port = settings.sidecar.telemetry_port
    for other in spec.get("containers") or ():
        ports = other.get("ports") if isinstance(other, Mapping) else None
        if any(isinstance(p, Mapping) and p.get("containerPort") == port for p in ports or ()):
            warnings.append(
                f"container {other.get('name')!r} also uses port {port}: the deucalion sidecar "
                f"will not be able to serve its health checks (set the injector's telemetry_port)"
            )
    if spec.get("hostNetwork") is True:
        warnings.append(
            f"the pod uses hostNetwork: the deucalion sidecar binds port "
            f"{settings.sidecar.telemetry_port} on the node"
        )

    container = sidecar_container(
        settings,
        image=image,
        observer=str(observer) if observer is not None else None,
        config_key=config_key,
    )
    mode = settings.sidecar.native_sidecar
    if mode == "always" or (mode == "auto" and spec.get("restartPolicy", "Always") != "Always"):
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
    volumes = _volumes(config_map)
    if spec.get("volumes"):
        patch += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes]
    else:
        # "add" on a missing (or null) member creates it; appending with "-" would fail.
        patch.append({"op": "add", "path": "/spec/volumes", "value": volumes})
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        patch.append(
            {"op": "add", "path": "/metadata", "value": {"annotations": {names.status: INJECTED}}}
        )
    elif not isinstance(metadata.get("annotations"), Mapping):
        patch.append(
            {"op": "add", "path": "/metadata/annotations", "value": {names.status: INJECTED}}
        )
    else:
        path = "/metadata/annotations/" + escape_pointer_token(names.status)
        patch.append({"op": "add", "path": path, "value": INJECTED})
    return Injection(patch=patch, warnings=warnings)


def pod_patch(pod: Mapping[str, Any], settings: InjectorSettings) -> list[JsonPatchOp]:
    """The JSONPatch operations that inject ``pod``; empty when it is left alone."""
    return plan_injection(pod, settings).patch
