"""The injector's settings: what it injects and where it listens.

One pydantic settings model, grouped in sections. Every field can come from a keyword argument,
an environment variable (``DEUCALION_INJECTOR_<SECTION>__<FIELD>``, e.g.
``DEUCALION_INJECTOR_SIDECAR__IMAGE``) or a flag of ``deucalion injector`` / ``deucalion inject``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deucalion._http import redact_url

__all__ = [
    "ANNOTATIONS_FILE",
    "AlertmanagerSettings",
    "AnnotationNames",
    "InjectorSettings",
    "ResourceSettings",
    "ServerSettings",
    "SidecarSettings",
]

#: Where the sidecar finds the pod's annotations (a Downward API file). deucalion's Kubernetes
#: target discovery reads this path by default; the injector also sets it explicitly.
ANNOTATIONS_FILE = "/etc/deucalion/podinfo/annotations"


class _Section(BaseModel):
    # Attribute docstrings become field descriptions, so `--help` and the schema explain them.
    # hide_input_in_errors: pydantic's errors would quote the input, a URL's password and all.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              hide_input_in_errors=True)


class ResourceSettings(_Section):
    """CPU and memory requests and limits of the sidecar container."""

    cpu_request: str = "50m"
    """CPU the scheduler reserves for the sidecar."""
    memory_request: str = "64Mi"
    """Memory the scheduler reserves for the sidecar."""
    cpu_limit: str = "500m"
    """CPU the sidecar may use at most (observers run in their own processes)."""
    memory_limit: str = "512Mi"
    """Memory the sidecar may use before it is OOM-killed."""

    def as_kubernetes(self) -> dict[str, dict[str, str]]:
        """The ``resources`` stanza of a container."""
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


class SidecarSettings(_Section):
    """The container the injector adds to a pod."""

    image: str = "deucalion:latest"
    """Image used when the pod has no ``deucalion.io/image`` annotation."""
    image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy of the sidecar container."""
    container_name: str = "deucalion"
    """Name of the sidecar container; a pod that has it is never injected again."""
    telemetry_port: int = Field(default=9464, ge=1, le=65535)
    """Port of deucalion's /healthz, /readyz and /metrics inside the pod."""
    run_as_user: int = Field(default=10001, ge=1)
    """Non-root user id the sidecar runs as (the base image's ``deucalion`` user)."""
    resources: ResourceSettings = ResourceSettings()
    """Requests and limits of the sidecar."""
    extra_env: dict[str, str] = {}
    """More environment variables for every sidecar (e.g. ``DEUCALION_LOG_LEVEL``)."""
    native_sidecar: Literal["auto", "always", "never"] = "auto"
    """Inject as a native sidecar (Kubernetes 1.29+); auto: for pods that run to completion."""


class AlertmanagerSettings(_Section):
    """Where the sidecars send their alerts."""

    urls: list[str] = ["http://alertmanager.monitoring.svc:9093"]
    """Alertmanager base URLs, each receives every alert (a password in one is shown as ***)."""
    alert_name: str = "DeucalionAnomaly"
    """Value of ``DEUCALION_ALERT_NAME``: the alertname of the alerts the sidecars send."""

    @field_validator("urls")
    @classmethod
    def _absolute_http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{redact_url(url)!r} is not an http(s) URL with a host")
        return urls

    @field_serializer("urls", when_used="json")
    def _dump_urls(self, urls: list[str]) -> list[str]:
        # JSON is for showing; the sidecars' environment is written from the field itself,
        # password included, so that they can log in.
        return [redact_url(url) for url in urls]

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr and str end up in logs: the password shows as ***.
        for name, value in super().__repr_args__():
            yield name, [redact_url(url) for url in value] if name == "urls" else value

    @property
    def first_host_port(self) -> tuple[str, int] | None:
        """Host and port of the first URL, for the original framework's two variables."""
        if not self.urls:
            return None
        parts = urlsplit(self.urls[0])
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname or "", port


class AnnotationNames(_Section):
    """The pod annotations the injector reads and writes."""

    inject: str = "deucalion.io/inject"
    """Set to ``"false"`` on a pod to keep the injector away from it."""
    image: str = "deucalion.io/image"
    """The AD app image to run as the sidecar (its default entrypoint runs)."""
    observer: str = "deucalion.io/observer"
    """``MODULE:CLASS`` to run with ``deucalion run`` in a generic deucalion image."""
    config: str = "deucalion.io/config"
    """Name of a ConfigMap in the pod's namespace, mounted as deucalion's YAML config."""
    config_key: str = "deucalion.io/config-key"
    """Key of that ConfigMap holding the YAML (default ``deucalion.yaml``)."""
    status: str = "deucalion.io/status"
    """Written by the injector (``injected``) so it never injects twice."""


class ServerSettings(_Section):
    """Where ``deucalion injector serve`` listens."""

    host: str = "0.0.0.0"
    """Address to bind."""
    port: int = Field(default=8443, ge=0, le=65535)
    """Port to bind (0 picks a free one)."""
    cert_file: str = "/etc/deucalion-injector/tls/tls.crt"
    """PEM serving certificate (with its chain)."""
    key_file: str = "/etc/deucalion-injector/tls/tls.key"
    """PEM private key of the serving certificate."""


class InjectorSettings(BaseSettings):
    """Everything the injector needs, from keywords, ``DEUCALION_INJECTOR_*`` env or flags."""

    model_config = SettingsConfigDict(
        env_prefix="DEUCALION_INJECTOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        hide_input_in_errors=True,
    )

    sidecar: SidecarSettings = SidecarSettings()
    """The injected container."""
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    """The Alertmanagers the sidecars alert."""
    annotations: AnnotationNames = AnnotationNames()
    """Annotation names read from and written to pods."""
    server: ServerSettings = ServerSettings()
    """The webhook server."""
