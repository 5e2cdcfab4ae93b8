"""Offline checks of Kubernetes objects: the API's schemas and the Pod Security Standards.

``schema_problems`` validates an object against the OpenAPI schemas that kubernetes-validate
ships, for the oldest and newest Kubernetes versions deucalion supports (strict: unknown fields
are errors, as ``kubectl apply --validate=strict`` makes them). ``restricted_problems`` checks
a pod against the "restricted" Pod Security Standard, rule by rule as the Kubernetes
documentation states them (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import kubernetes_validate

#: The oldest supported version (native sidecars need 1.29) and the newest schemas shipped.
OLDEST = "1.29.0"
NEWEST = kubernetes_validate.latest_version()
SUPPORTED = (OLDEST, NEWEST)

#: Custom resources: their CRDs' schemas are not shipped, so they are checked by hand instead.
CUSTOM_KINDS = {
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}

# Where each workload kind keeps its pod template.
_TEMPLATES = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def schema_problems(obj: Mapping[str, Any], versions: Iterable[str] = SUPPORTED) -> list[str]:
    """Why ``obj`` fails each version's strict schema (empty when it passes them all)."""
    if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
        return []
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(dict(obj), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{version}: {obj.get('kind')} at {where or '/'}: {exc.message}")
    return problems


def as_pod(spec: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A named Pod around a pod ``spec`` (a template has no name; a Pod needs one)."""
    meta = dict(metadata or {})
    meta.pop("generateName", None)
    meta.setdefault("name", "checked")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": dict(spec)}


def pod_templates(obj: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The pod (template) in ``obj``: the object itself for a Pod, its template for workloads."""
    if obj.get("kind") == "Pod":
        yield obj
        return
    path = _TEMPLATES.get(str(obj.get("kind")))
    if path is None:
        return
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if isinstance(node, Mapping):
        yield node


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


# Baseline's allowed capabilities and sysctls; restricted allows adding NET_BIND_SERVICE only.
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_problems(pod: Mapping[str, Any]) -> list[str]:
    """Every way a Pod or pod template breaks the "restricted" Pod Security Standard.

    Restricted includes baseline: no host namespaces, privileged containers, hostPath volumes,
    host ports, unsafe sysctls or extra capabilities; then volumes of the listed types only, no
    privilege escalation, non-root, a RuntimeDefault or Localhost seccomp profile, and every
    capability dropped but NET_BIND_SERVICE.
    """
    spec = pod.get("spec") or {}
    pod_security = spec.get("securityContext") or {}
    problems: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"spec.{field} is true")
    for sysctl in pod_security.get("sysctls") or ():
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl.get('name')} is not a safe one")
    for volume in spec.get("volumes") or ():
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume.get('name')!r} is of type {sorted(kinds)}")
    pod_non_root = pod_security.get("runAsNonRoot")
    if pod_security.get("runAsUser") == 0:
        problems.append("spec.securityContext.runAsUser is 0")
    pod_seccomp = (pod_security.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"spec.securityContext.seccompProfile is {pod_seccomp}")
    se_linux = pod_security.get("seLinuxOptions") or {}
    if (
        se_linux.get("type", "") not in _SELINUX_TYPES
        or se_linux.get("user")
        or se_linux.get("role")
    ):
        problems.append("spec.securityContext.seLinuxOptions is not allowed")
    for container in _containers(spec):
        name = f"container {container.get('name')!r}"
        security = container.get("securityContext") or {}
        if security.get("privileged"):
            problems.append(f"{name} is privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name} does not set allowPrivilegeEscalation: false")
        non_root = security.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            problems.append(f"{name} does not run as non-root (runAsNonRoot: true)")
        if security.get("runAsUser") == 0:
            problems.append(f"{name} sets runAsUser: 0")
        seccomp = (security.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name} has no RuntimeDefault or Localhost seccomp profile")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or ()):
            problems.append(f"{name} does not drop ALL capabilities")
        extra = set(capabilities.get("add") or ()) - {"NET_BIND_SERVICE"}
        if extra:
            problems.append(f"{name} adds capabilities {sorted(extra)}")
        if security.get("procMount", "Default") != "Default":
            problems.append(f"{name} has procMount {security['procMount']}")
        for port in container.get("ports") or ():
            if port.get("hostPort"):
                problems.append(f"{name} uses host port {port['hostPort']}")
        se_linux = security.get("seLinuxOptions") or {}
        if (
            se_linux.get("type", "") not in _SELINUX_TYPES
            or se_linux.get("user")
            or se_linux.get("role")
        ):
            problems.append(f"{name} sets seLinuxOptions that are not allowed")
    return problems
