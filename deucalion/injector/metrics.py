"""The injector's own metrics, served on ``/metrics`` with prometheus_client.

Admission requests by result, pods skipped by reason, how long planning a patch takes, and
when the serving certificate expires: what an operator alerts on before pods start without
their sidecar. Each ``InjectorMetrics`` has its own registry (nothing process-wide).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from deucalion._version import __version__
from deucalion.injector.policy import SKIP_REASONS

__all__ = ["RESULTS", "InjectorMetrics", "certificate_not_after"]

#: The ``result`` label of ``deucalion_injector_admission_requests_total``.
RESULTS = ("injected", "skipped", "ignored", "error", "invalid")


def certificate_not_after(cert_file: str | Path) -> float:
    """The expiry (Unix seconds) of the first certificate in a PEM file.

    Needs ``cryptography`` (``pip install 'deucalion[injector]'``, in the injector image);
    raises ``ImportError`` without it, ``OSError`` or ``ValueError`` for a bad file.
    """
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    not_after: datetime.datetime = certificate.not_valid_after_utc
    return not_after.timestamp()


class InjectorMetrics:
    """The injector's counters, histogram and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "deucalion_injector_admission_requests",
            "AdmissionReviews answered, by result: "
            "injected, skipped (pod left alone), ignored (not a pod creation), error (the "
            "injector failed; the pod passed unchanged), invalid (not an AdmissionReview)",
            ["result"],
            registry=self.registry,
        )
        self.skips = Counter(
            "deucalion_injector_skipped_pods",
            "Pods left without the sidecar, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.patch_seconds = Histogram(
            "deucalion_injector_patch_seconds",
            "Time to decide and build one pod's patch",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "deucalion_injector_certificate_expiry_timestamp_seconds",
            "When the serving certificate expires (Unix time); alert well before it",
            registry=self.registry,
        )
        self.kubernetes_version = Gauge(
            "deucalion_injector_kubernetes_version_info",
            "The cluster's Kubernetes version as the injector knows it (unknown: not yet)",
            ["version"],
            registry=self.registry,
        )
        info = Gauge(
            "deucalion_injector_build_info",
            "The injector's deucalion version",
            ["version"],
            registry=self.registry,
        )
        info.labels(version=__version__).set(1)
        # Every label value from the start: a rate() over a series that appears late misses
        # its first increase.
        for result in RESULTS:
            self.requests.labels(result=result)
        for reason in SKIP_REASONS:
            self.skips.labels(reason=reason)

    def set_kubernetes_version(self, version: tuple[int, int] | None) -> None:
        """Show ``version`` (None: unknown) as the only series of the version gauge."""
        self.kubernetes_version.clear()
        shown = "unknown" if version is None else f"{version[0]}.{version[1]}"
        self.kubernetes_version.labels(version=shown).set(1)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
