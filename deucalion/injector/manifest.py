"""``deucalion inject -f``: the webhook's mutation applied offline to a YAML manifest.

Like ``istioctl kube-inject``: Pods and the pod templates of workloads get exactly the patch the
webhook would send, applied here instead of by the API server; other objects pass unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from deucalion.config.loading import yaml_problem
from deucalion.errors import ManifestError
from deucalion.injector.mutation import JsonPatchOp, plan_injection
from deucalion.injector.settings import InjectorSettings

__all__ = ["TEMPLATE_PATHS", "ManifestError", "ManifestResult", "apply_patch", "inject_manifest"]


def _unescape_pointer_token(token: str) -> str:
    # The reverse order of escaping, so "~01" becomes "~1" and not "/".
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(document: Mapping[str, Any], patch: Sequence[JsonPatchOp]) -> dict[str, Any]:
    """Apply the ``add`` operations ``plan_injection`` makes to a copy of ``document``.

    Only ``add`` is supported: it is all the injector emits, and the webhook leaves applying
    to the API server. Raises ``ValueError`` for anything else or a path that does not exist.
    """
    result = copy.deepcopy(dict(document))
    for op in patch:
        if op.get("op") != "add":
            raise ValueError(f"only 'add' operations are supported, not {op.get('op')!r}")
        tokens = [_unescape_pointer_token(t) for t in str(op["path"]).split("/")[1:]]
        if not tokens:
            raise ValueError("cannot replace the whole document")
        parent: Any = result
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last, value = tokens[-1], copy.deepcopy(op["value"])
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), value)
        elif isinstance(parent, dict):
            parent[last] = value
        else:
            raise ValueError(f"{op['path']!r} does not point into an object or array")
    return result


# Where each workload kind keeps the template of the pods it creates.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class ManifestResult:
    """The injected manifest and one line per object saying what happened to it."""

    text: str
    messages: list[str]
    without_image: list[str] = field(default_factory=list)
    """The objects left alone only because no image was named for the sidecar: neither the
    settings' ``sidecar.image`` nor their ``deucalion.io/image`` annotation."""
    invalid: list[str] = field(default_factory=list)
    """The objects that opted in but were left alone for a ``deucalion.io/*`` annotation that
    is not usable (a preset misspelt, say), each with what is wrong."""


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    name = metadata.get("name") or f"{metadata.get('generateName', '')}*"
    namespace = metadata.get("namespace")
    return f"{obj.get('kind', '?')} {namespace + '/' if namespace else ''}{name}"


def _inject_object(
    obj: dict[str, Any],
    settings: InjectorSettings,
    without_image: list[str],
    invalid: list[str],
) -> Iterator[str]:
    kind = obj.get("kind")
    if kind == "List" and isinstance(obj.get("items"), list):
        items = obj["items"]
        for i, item in enumerate(items):
            if isinstance(item, dict):
                items[i] = item = dict(item)
                yield from _inject_object(item, settings, without_image, invalid)
        return
    path = TEMPLATE_PATHS.get(str(kind))
    if path is None:
        yield f"{_describe(obj)}: unchanged (not a workload)"
        return
    parent: Any = None
    template: Any = obj
    for key in path:
        parent, template = template, template.get(key) if isinstance(template, dict) else None
    if not isinstance(template, dict):
        yield f"{_describe(obj)}: unchanged (no {'.'.join(path)})"
        return
    injection = plan_injection(template, settings)
    if not injection.injected:
        if injection.reason == "no-image":
            without_image.append(_describe(obj))
        elif injection.reason == "invalid-annotation":
            invalid.append(f"{_describe(obj)}: {injection.skipped}")
        yield f"{_describe(obj)}: unchanged ({injection.skipped})"
        for warning in injection.warnings:
            if not warning.endswith(str(injection.skipped)):  # the skip itself, said above
                yield f"{_describe(obj)}: warning: {warning}"
        return
    injected = apply_patch(template, injection.patch)
    if parent is None:
        obj.clear()
        obj.update(injected)
    else:
        parent[path[-1]] = injected
    yield f"{_describe(obj)}: injected"
    for warning in injection.warnings:
        yield f"{_describe(obj)}: warning: {warning}"


def inject_manifest(text: str, settings: InjectorSettings) -> ManifestResult:
    """Inject the sidecar into the Pods and workload templates of a multi-document YAML.

    Pods and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and
    CronJobs (also inside a ``List``) get the same mutation the webhook makes; every other
    object is printed back unchanged. Comments are not kept. Raises ``ManifestError`` when the
    text is not YAML or a document is not a mapping.
    """
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        # Not chained: the YAMLError quotes the line, which may hold a password.
        raise ManifestError(f"the manifest is not valid YAML: {yaml_problem(exc)}") from None
    objects: list[dict[str, Any]] = []
    messages: list[str] = []
    without_image: list[str] = []
    invalid: list[str] = []
    for number, document in enumerate(documents, start=1):
        if document is None:  # an empty document, e.g. a trailing '---'
            continue
        if not isinstance(document, dict):
            raise ManifestError(
                f"document {number} of the manifest is a {type(document).__name__}, "
                "not a Kubernetes object"
            )
        messages.extend(_inject_object(document, settings, without_image, invalid))
        objects.append(document)
    out = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)
    return ManifestResult(
        text=out if objects else "",
        messages=messages,
        without_image=without_image,
        invalid=invalid,
    )
