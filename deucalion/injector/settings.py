"""The injector's settings: what it injects and where it listens.

One pydantic model, grouped in sections, loaded as the sidecar's settings are
(``deucalion.config.loading.validate_layers``): ``InjectorSettings.load()`` reads environment
variables (``DEUCALION_INJECTOR_<SECTION>__<FIELD>``, e.g. ``DEUCALION_INJECTOR_SIDECAR__IMAGE``),
then keyword arguments (the flags of ``deucalion injector`` / ``deucalion inject``), and a
``ConfigError`` names the key and the source of every problem. The ``alertmanager`` section is
the sidecar's own ``AlertmanagerSettings``: the injector hands its ``urls`` and ``alert_name``
to every sidecar.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deucalion._http import http_url_problems, redact_url, split_comma_list
from deucalion.config.loading import environment_layer, validate_layers
from deucalion.config.settings import AlertmanagerSettings

__all__ = [
    "ANNOTATIONS_FILE",
    "ENV_PREFIX",
    "NATIVE_SIDECAR_VERSION",
    "AlertmanagerSettings",
    "AnnotationNames",
    "ClusterSettings",
    "ImageReference",
    "InjectorSettings",
    "ResourceSettings",
    "ServerSettings",
    "SidecarSettings",
    "parse_kubernetes_version",
]

#: Where the sidecar finds the pod's annotations (a Downward API file). deucalion's Kubernetes
#: target discovery reads this path by default; the injector also sets it explicitly.
ANNOTATIONS_FILE = "/etc/deucalion/podinfo/annotations"

#: The first Kubernetes version whose API server accepts native sidecars (init containers with
#: ``restartPolicy: Always``); older ones reject the pod.
NATIVE_SIDECAR_VERSION = (1, 29)

# The grammar of an image reference (the distribution project's reference grammar):
# [domain[:port]/]path[:tag][@digest]. A first component with a dot or a port, or
# "localhost", names a registry; anything else is a Docker Hub name.
_IMAGE = re.compile(
    r"(?:(?P<domain>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)


class ImageReference:
    """A container image reference split into registry, repository path, tag and digest."""

    def __init__(self, reference: str) -> None:
        match = _IMAGE.fullmatch(reference)
        if match is None or len(reference) > 255:
            raise ValueError(
                f"{reference!r} is not an image reference ([registry/]repository[:tag][@digest])"
            )
        domain = match.group("domain")
        path = match.group("path")
        # "library/x" parses with domain None; "host.example/x" and "host:5000/x" name one.
        if domain is not None and not ("." in domain or ":" in domain or domain == "localhost"):
            path, domain = f"{domain}/{path}", None
        self.reference = reference
        self.registry = domain
        self.path = path
        self.tag: str | None = match.group("tag")
        self.digest: str | None = match.group("digest")

    @property
    def pinned(self) -> bool:
        """True with a digest, or a tag other than ``latest`` (which moves)."""
        return self.digest is not None or (self.tag is not None and self.tag != "latest")

    def problem(self) -> str | None:
        """Why a cluster could fail to pull this image as meant, or None."""
        if self.registry is None:
            return (
                f"{self.reference!r} names no registry, so nodes pull it from Docker Hub "
                f"(docker.io/{'library/' if '/' not in self.path else ''}{self.path})"
            )
        if not self.pinned:
            return (
                f"{self.reference!r} has no version: a tag other than latest or a digest "
                "keeps every node on the same image"
            )
        return None


class _Section(BaseModel):
    # Attribute docstrings become field descriptions, so `--help` and the schema explain them.
    # hide_input_in_errors: pydantic's errors would quote the input, a URL's password and all.
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, hide_input_in_errors=True
    )


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

    image: str | None = None
    """Image for pods without a deucalion.io/image annotation: with registry and version."""
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
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
    """Native sidecars (1.29+): auto for opted-in Jobs, always for all pods, or never."""
    startup_grace_seconds: int = Field(default=300, ge=0)
    """Seconds the liveness probe waits after each start, while the AD app loads its model."""

    @field_validator("image")
    @classmethod
    def _registry_qualified(cls, image: str | None) -> str | None:
        if image is None:
            return None
        problem = ImageReference(image).problem()
        if problem is not None:
            raise ValueError(
                f"{problem}; set sidecar.image (DEUCALION_INJECTOR_SIDECAR__IMAGE or --image) "
                "to a registry-qualified, versioned image such as "
                "registry.example.com/deucalion:0.1.0"
            )
        return image


class ClusterSettings(_Section):
    """What the injector knows of the cluster it serves."""

    kubernetes_version: str | None = None
    """The cluster's version (1.30); unset: the webhook asks the API server's /version."""

    @field_validator("kubernetes_version")
    @classmethod
    def _major_minor(cls, value: str | None) -> str | None:
        if value is not None and parse_kubernetes_version(value) is None:
            raise ValueError(f"{value!r} is not a Kubernetes version such as 1.30 or v1.30.2")
        return value

    @property
    def version(self) -> tuple[int, int] | None:
        """``kubernetes_version`` as (major, minor), or None when unknown."""
        if self.kubernetes_version is None:
            return None
        return parse_kubernetes_version(self.kubernetes_version)


def parse_kubernetes_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of ``1.30``, ``v1.30.2`` or ``v1.29.3-gke.1``; None when it is not one."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)\+?(?:\.\d+)?(?:[-+].*)?", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


class AnnotationNames(_Section):
    """The pod annotations the injector reads and writes."""

    inject: str = "deucalion.io/inject"
    """Label or annotation: "false" keeps a pod out, "true" also lets a Job in."""
    injected: str = "deucalion.io/injected"
    """Label written by the injector: the deucalion version that injected the pod."""
    image: str = "deucalion.io/image"
    """The AD app image to run as the sidecar (its default entrypoint runs)."""
    observer: str = "deucalion.io/observer"
    """``MODULE:CLASS`` to run with ``deucalion run`` in a generic deucalion image."""
    preset: str = "deucalion.io/preset"
    """A preset (``node-exporter``, ``http-service``) to run: no image of the pod's own needed."""
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
    metrics_port: int | None = Field(default=9090, ge=0, le=65535)
    """Plain-HTTP port of /metrics and /healthz (0 picks a free one, None serves none)."""


#: The environment variables of the injector's settings start with this.
ENV_PREFIX = "DEUCALION_INJECTOR_"
#: The Alertmanager settings the injector hands to the sidecars.
SIDECAR_ALERTMANAGER_FIELDS = frozenset({"urls", "alert_name"})


class InjectorSettings(_Section):
    """Everything the injector needs, from keywords, ``DEUCALION_INJECTOR_*`` env or flags."""

    sidecar: SidecarSettings = SidecarSettings()
    """The injected container."""
    alertmanager: AlertmanagerSettings = AlertmanagerSettings(
        urls=["http://alertmanager.monitoring.svc:9093"]
    )
    """The Alertmanagers the sidecars alert (their urls and alert_name)."""
    annotations: AnnotationNames = AnnotationNames()
    """Annotation names read from and written to pods."""
    server: ServerSettings = ServerSettings()
    """The webhook server."""
    cluster: ClusterSettings = ClusterSettings()
    """The cluster's version, for native sidecars."""

    @field_validator("alertmanager", mode="before")
    @classmethod
    def _absolute_urls(cls, value: object) -> object:
        # Written into every sidecar as they are: host:port, which the sidecar itself accepts,
        # is more likely a mistake here, so a scheme is required.
        # The sidecars' own check (AlertmanagerSettings) judges everything else.
        urls = split_comma_list(value.get("urls")) if isinstance(value, Mapping) else None
        for url in urls if isinstance(urls, list) else []:
            if isinstance(url, str) and "schemeless" in http_url_problems(url):
                raise ValueError(
                    f"{redact_url(url)!r} in alertmanager.urls has no scheme; the injector "
                    "writes it into every sidecar as it is, so write http://host:port or "
                    "https://host:port (DEUCALION_INJECTOR_ALERTMANAGER__URLS or "
                    "--alertmanager-url)"
                )
        return value

    @model_validator(mode="after")
    def _only_what_sidecars_get(self) -> InjectorSettings:
        ignored = sorted(self.alertmanager.model_fields_set - SIDECAR_ALERTMANAGER_FIELDS)
        if ignored:
            raise ValueError(
                f"alertmanager.{ignored[0]}: the injector hands the sidecars only "
                "alertmanager.urls and alertmanager.alert_name; set the others in the "
                "sidecar's own configuration (the deucalion.io/config ConfigMap)"
            )
        return self

    @classmethod
    def load(
        cls, *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> InjectorSettings:
        """The settings from ``DEUCALION_INJECTOR_*`` variables, then ``overrides`` (flags),
        later winning; a ``ConfigError`` names the key and source of every problem."""
        environ = os.environ if environ is None else environ
        layers = [("environment", environment_layer(environ, ENV_PREFIX))]
        if overrides:
            layers.append(("flags", dict(overrides)))
        return validate_layers(cls, layers, env_prefix=ENV_PREFIX)
