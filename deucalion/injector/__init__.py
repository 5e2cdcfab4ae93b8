"""The deucalion sidecar injector: a Kubernetes mutating admission webhook and its offline twin.

``plan_injection`` decides what to add to a pod (by the rules in ``deucalion.injector.policy``),
``start_injector`` serves it as a webhook with its own ``/metrics``
(``deucalion.injector.metrics``), ``inject_manifest`` applies it to a YAML manifest
(``deucalion inject -f``), and ``deucalion.injector.certs`` makes the webhook's certificates
(needs ``cryptography``).
"""

from deucalion.injector.manifest import ManifestError, inject_manifest
from deucalion.injector.mutation import Injection, plan_injection, pod_patch
from deucalion.injector.review import ReviewError
from deucalion.injector.settings import ANNOTATIONS_FILE, InjectorSettings
from deucalion.injector.webhook import InjectorServer, start_injector

__all__ = [
    "ANNOTATIONS_FILE",
    "Injection",
    "InjectorServer",
    "InjectorSettings",
    "ManifestError",
    "ReviewError",
    "inject_manifest",
    "plan_injection",
    "pod_patch",
    "start_injector",
]
