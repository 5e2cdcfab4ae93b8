"""The sidecar's own pod as its target, from the pod's ``prometheus.io/*`` annotations.

``prometheus.io/scrape: "true"``, ``prometheus.io/port``, ``prometheus.io/path`` (default
``/metrics``) and ``prometheus.io/scheme`` (default ``http``) give the target
``<scheme>://localhost:<port><path>``. The annotations are read from a Downward API file when
one is mounted (no API permission needed), else from the Kubernetes API with the pod's service
account. The pod's name, namespace and labels (sanitized to label names) label the target, so
alerts say which pod they concern.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deucalion._http import APIClient, Credentials, HTTPError
from deucalion.errors import KubernetesError
from deucalion.targets.target import Target, target_from_settings

if TYPE_CHECKING:
    from deucalion.config.loading import KubernetesSettings

__all__ = ["KubernetesTargets", "parse_downward_file", "sanitize_label_name"]

log = logging.getLogger(__name__)

_LINE = re.compile(r'^([^=]+)="((?:[^"\\]|\\.)*)"\s*$')
_GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
#: Seconds one request to the Kubernetes API may take.
API_TIMEOUT = 10.0


def _unquote_go(escaped: str) -> str:
    """The string a Go-quoted (``strconv.Quote``) value stands for, without its quotes."""

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "xuU":
            return chr(int(code[1:], 16))
        if code[0] in "01234567" and len(code) == 3:
            return chr(int(code, 8))
        return _SIMPLE_ESCAPES.get(code, code)

    return _GO_ESCAPE.sub(replace, escaped)


def parse_downward_file(text: str) -> dict[str, str]:
    """The ``key="value"`` lines of a Downward API labels or annotations file."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            found[match.group(1)] = _unquote_go(match.group(2))
    return found


def named_ports(spec: object) -> dict[str, int]:
    """The named container ports (``{"http": 8080}``) of a pod spec (a dict, as the API
    returns it), its init containers' included: what a named ``prometheus.io/port`` means."""
    ports: dict[str, int] = {}
    if not isinstance(spec, Mapping):
        return ports
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or ():
            if not isinstance(container, Mapping):
                continue
            for entry in container.get("ports") or ():
                if not isinstance(entry, Mapping):
                    continue
                name, number = entry.get("name"), entry.get("containerPort")
                if isinstance(name, str) and name and type(number) is int and 0 < number < 65536:
                    ports[name] = number
    return ports


def sanitize_label_name(name: str) -> str:
    """A Kubernetes label key as a Prometheus label name (``app.kubernetes.io/name`` ->
    ``app_kubernetes_io_name``), as Prometheus's kubernetes_sd does."""
    cleaned = _INVALID_LABEL_CHARS.sub("_", name)
    if cleaned[:1].isdigit():
        cleaned = "_" + cleaned
    return cleaned.lstrip("_") or "_"


class KubernetesTargets:
    """The pod's own metrics endpoint, from its annotations.

    Paths, the API URL and the environment are injectable for tests; by default they are the
    Downward API mount, the in-cluster service account and ``os.environ``.
    """

    def __init__(
        self,
        settings: KubernetesSettings,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._environ = os.environ if environ is None else environ
        self._api: APIClient | None = None
        self._targets: list[Target] = []
        self._fetched_at = float("-inf")
        self._problem: str | None = None
        # The named container ports of the pod object the API returned, for a named port.
        self._api_ports: dict[str, int] = {}
        self.last_error: str | None = None
        """Why the last discovery failed (the last good targets are kept), or None."""

    async def discover(self) -> Sequence[Target]:
        """The pod's target, or none when its annotations do not ask to be scraped."""
        try:
            # The Downward API file is read every cycle: the kubelet updates it in place.
            downward = await asyncio.to_thread(self._read_downward)
            if downward is not None:
                annotations, pod_labels = downward
            elif time.monotonic() - self._fetched_at < self.settings.refresh_interval:
                return list(self._targets)
            else:
                annotations, pod_labels = await self._read_api()
                self._fetched_at = time.monotonic()
            self._targets = self._build(annotations, pod_labels)
            self._note(None)
        except KubernetesError as exc:
            # Retry at the next refresh, not every cycle: the API server owes us nothing.
            self._fetched_at = time.monotonic()
            self._note(str(exc))
        return list(self._targets)

    async def close(self) -> None:
        """Close the API client, when one was opened."""
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    def _note(self, problem: str | None) -> None:
        self.last_error = problem
        if problem != self._problem:
            if problem is not None:
                log.error(
                    "kubernetes discovery: %s; keeping the last good targets (%d)",
                    problem,
                    len(self._targets),
                )
            elif self._problem is not None:
                log.info("kubernetes discovery works again")
        self._problem = problem

    # --- where the pod's metadata comes from --------------------------------------------------

    @property
    def pod_name(self) -> str:
        """The pod's name: configured, ``$POD_NAME``, or the hostname (a pod's default)."""
        return self.settings.pod_name or self._environ.get("POD_NAME") or socket.gethostname()

    @property
    def namespace(self) -> str:
        """The pod's namespace: configured, ``$POD_NAMESPACE`` or the service account's."""
        name = self.settings.namespace or self._environ.get("POD_NAMESPACE")
        if name:
            return name
        path = Path(self.settings.service_account_dir) / "namespace"
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KubernetesError(
                f"the pod's namespace is unknown: set POD_NAMESPACE (Downward API "
                f"metadata.namespace) or kubernetes.namespace; {path}: {exc.strerror or exc}"
            ) from None

    def _read_downward(self) -> tuple[dict[str, str], dict[str, str]] | None:
        if not Path(self.settings.annotations_file).is_file():
            return None
        try:
            text = Path(self.settings.annotations_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise KubernetesError(
                f"cannot read {self.settings.annotations_file}: {exc.strerror or exc}"
            ) from None
        labels_path = Path(self.settings.labels_file)
        labels = {}
        if labels_path.is_file():
            try:
                labels = parse_downward_file(labels_path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise KubernetesError(f"cannot read {labels_path}: {exc.strerror or exc}") from None
        return parse_downward_file(text), labels

    def _api_url(self) -> str:
        if self.settings.api_url:
            return self.settings.api_url.rstrip("/")
        host = self._environ.get("KUBERNETES_SERVICE_HOST")
        port = self._environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubernetesError(
                f"neither the Downward API file {self.settings.annotations_file} nor the "
                "Kubernetes API (KUBERNETES_SERVICE_HOST is not set) is available: mount the "
                "pod's annotations with a downwardAPI volume, or run deucalion in a pod"
            )
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        return f"https://{host}:{port}"

    def _api_client(self) -> APIClient:
        if self._api is None:
            account = Path(self.settings.service_account_dir)
            ca_file = account / "ca.crt"
            # The service account's credentials, not the scrape options (those are the target's).
            credentials = Credentials(
                bearer_token_file=str(account / "token"),
                ca_file=str(ca_file) if ca_file.is_file() else None,
                token_file_key="the service account's token file",
                ca_file_key="the service account's CA file",
            )
            self._api = APIClient(self._api_url(), credentials, timeout=API_TIMEOUT)
        return self._api

    async def _read_api(self) -> tuple[dict[str, str], dict[str, str]]:
        api = self._api_client()
        namespace, pod = self.namespace, self.pod_name
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        try:
            pod_object: Any = await api.get_json(path)
        except HTTPError as exc:
            if exc.status in (401, 403):
                raise KubernetesError(
                    f"the Kubernetes API answered {exc.reason} to GET {api.url(path)}: the "
                    f"service account may not get pods in namespace {namespace}; grant it "
                    "`get` on `pods` with a Role and RoleBinding, or mount the pod's "
                    f"annotations at {self.settings.annotations_file} (Downward API, no "
                    "permission needed)"
                ) from None
            raise KubernetesError(f"GET {api.url(path)} failed: {exc.reason}") from None
        metadata = pod_object.get("metadata") if isinstance(pod_object, dict) else None
        if not isinstance(metadata, dict):
            raise KubernetesError(f"GET {api.url(path)} did not return a Pod object")
        self._api_ports = named_ports(pod_object.get("spec"))
        return dict(metadata.get("annotations") or {}), dict(metadata.get("labels") or {})

    def _build(self, annotations: Mapping[str, str], pod_labels: Mapping[str, str]) -> list[Target]:
        if annotations.get("prometheus.io/scrape", "").lower() != "true":
            raise KubernetesError(
                'the pod is not annotated prometheus.io/scrape: "true", so there is nothing '
                "to watch: annotate the pod (with prometheus.io/port and prometheus.io/path)"
            )
        port = annotations.get("prometheus.io/port", "").strip()
        if not port:
            raise KubernetesError(
                "the pod has no prometheus.io/port annotation: set it to the port the "
                "service's metrics are served on (a number, or the name of a container port)"
            )
        if not (port.isdecimal() and port.isascii()):
            # A named port, as Kubernetes allows: the injector passes the pod's
            # (kubernetes.ports), the API's pod object has them.
            ports = {**self._api_ports, **self.settings.ports}
            if port not in ports:
                known = f" (it has {', '.join(sorted(ports))})" if ports else ""
                raise KubernetesError(
                    f"the pod's prometheus.io/port annotation is {port!r}, which names no "
                    f"container port of the pod known to deucalion{known}: set it to the port "
                    "number the service's metrics are served on, or to the name of a port in "
                    "a container's ports (the injector passes them as DEUCALION_KUBERNETES__PORTS)"
                )
            port = str(ports[port])
        if not 0 < int(port) < 65536:
            raise KubernetesError(
                f"the pod's prometheus.io/port annotation is {port!r}, not a port (1 to "
                "65535): set it to the port the service's metrics are served on"
            )
        scheme = annotations.get("prometheus.io/scheme") or self.settings.scheme
        if scheme not in ("http", "https"):
            raise KubernetesError(f"prometheus.io/scheme {scheme!r} is neither http nor https")
        path = annotations.get("prometheus.io/path") or "/metrics"
        path = path if path.startswith("/") else "/" + path
        labels = {sanitize_label_name(k): v for k, v in pod_labels.items()}
        # The pod's own identity wins over a pod label of the same name.
        labels["pod"] = self.pod_name
        namespace = self._namespace_or_none()
        if namespace:
            labels["namespace"] = namespace
        url = f"{scheme}://localhost:{port}{path}"
        return [target_from_settings(url, labels, self.settings)]

    def _namespace_or_none(self) -> str | None:
        # With the Downward API file the namespace only labels the target: not knowing it is
        # no reason to watch nothing.
        try:
            return self.namespace
        except KubernetesError:
            return None
