"""AdmissionReview (``admission.k8s.io/v1``) requests and responses, typed.

The API server posts an ``AdmissionReview`` with a ``request``; the webhook answers with an
``AdmissionReview`` carrying a ``response`` that echoes the request's ``uid``. ``parse_review``
turns a body into the typed request or a ``ReviewError`` whose reason goes back as HTTP 400.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from deucalion.errors import ReviewError

__all__ = [
    "API_VERSION",
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionReview",
    "GroupVersionKind",
    "GroupVersionResource",
    "ReviewError",
    "UserInfo",
    "parse_review",
    "review_response",
]

API_VERSION = "admission.k8s.io/v1"


class _Struct(BaseModel):
    # Kubernetes spells fields in camelCase; unknown fields are kept out of the way rather than
    # rejected, because newer API servers add fields.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class GroupVersionKind(_Struct):
    """The kind of an object, e.g. ``{"group": "", "version": "v1", "kind": "Pod"}``."""

    group: str = ""
    version: str
    kind: str


class GroupVersionResource(_Struct):
    """The resource of a request, e.g. ``{"group": "", "version": "v1", "resource": "pods"}``."""

    group: str = ""
    version: str
    resource: str


class UserInfo(_Struct):
    """Who made the request."""

    username: str = ""
    uid: str = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}


class AdmissionRequest(_Struct):
    """The ``request`` of an AdmissionReview: one operation on one object."""

    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str | None = None
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    user_info: UserInfo = UserInfo()
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool | None = None
    options: dict[str, Any] | None = None

    @property
    def pod_label(self) -> str:
        """``namespace/name`` for logs; on CREATE the name is often only a ``generateName``."""
        metadata = (self.object or {}).get("metadata") or {}
        name = self.name or metadata.get("name") or f"{metadata.get('generateName', '')}*"
        namespace = self.namespace or metadata.get("namespace") or "?"
        return f"{namespace}/{name}"


class AdmissionReview(_Struct):
    """An AdmissionReview as the API server sends it to a webhook."""

    api_version: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class AdmissionResponse(_Struct):
    """The ``response`` of an AdmissionReview."""

    uid: str
    allowed: bool
    patch_type: Literal["JSONPatch"] | None = None
    patch: str | None = None
    """The JSONPatch as base64 of its JSON."""
    status: dict[str, Any] | None = None
    warnings: list[str] | None = None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_review(body: bytes | str) -> AdmissionReview:
    """Parse an HTTP body into an ``AdmissionReview``; raise ``ReviewError`` saying why not."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReviewError(f"the body is not JSON ({exc})") from None
    except RecursionError:
        # Python's decoder recurses once per level: a body nested past the interpreter's
        # recursion limit (about 1,000 levels; no Kubernetes object comes near) is refused
        # as what it is, not answered with a 500 and a traceback.
        raise ReviewError(
            "the body is JSON nested too deeply for an AdmissionReview "
            f"(more than about {sys.getrecursionlimit()} levels)"
        ) from None
    if not isinstance(data, dict):
        raise ReviewError(f"the body is a JSON {type(data).__name__}, not an object")
    try:
        return AdmissionReview.model_validate(data)
    except ValidationError as exc:
        raise ReviewError(_describe(exc)) from None


def review_response(
    request: AdmissionRequest,
    patch: Sequence[dict[str, Any]] = (),
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The AdmissionReview JSON answering ``request``: allowed, with ``patch`` when not empty."""
    response = AdmissionResponse(uid=request.uid, allowed=True, warnings=list(warnings) or None)
    if patch:
        encoded = base64.b64encode(json.dumps(list(patch)).encode()).decode("ascii")
        response = response.model_copy(update={"patch_type": "JSONPatch", "patch": encoded})
    return {
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "response": response.model_dump(by_alias=True, exclude_none=True),
    }
