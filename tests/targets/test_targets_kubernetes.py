"""kubernetes: the sidecar's own pod, from the Downward API file or the Kubernetes API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from deucalion.config.loading import KubernetesSettings
from deucalion.targets.kubernetes import (
    KubernetesTargets,
    parse_downward_file,
    sanitize_label_name,
)

ANNOTATIONS = """\
kubernetes.io/config.seen="2024-05-01T10:00:00.000000000Z"
prometheus.io/path="/custom/metrics"
prometheus.io/port="8080"
prometheus.io/scrape="true"
note="a \\"quoted\\" line\\nand a tab\\t\\u00e9"
"""
LABELS = 'app.kubernetes.io/name="shop"\npod-template-hash="7d9f8b"\n'


def _pod(annotations: dict[str, str]) -> dict[str, Any]:
    """A Pod as GET /api/v1/namespaces/{ns}/pods/{name} returns it (abridged, same shape)."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "shop-7d9f8b-x2x4z",
            "namespace": "prod",
            "uid": "0b7c2f6e-0000-4000-8000-000000000000",
            "resourceVersion": "123456",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "shop", "pod-template-hash": "7d9f8b"},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "shop-7d9f8b",
                    "uid": "1",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "shop",
                    "image": "shop:1",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                }
            ]
        },
        "status": {"phase": "Running", "podIP": "10.0.0.12"},
    }


def test_parse_downward_file_unquotes_go_strings() -> None:
    """Go-quoted values are decoded: escaped quotes, \\n, \\t and \\u escapes."""
    parsed = parse_downward_file(ANNOTATIONS)
    assert parsed["prometheus.io/port"] == "8080"
    assert parsed["note"] == 'a "quoted" line\nand a tab\t\u00e9'


def test_label_names_are_sanitized() -> None:
    """Kubernetes label keys become valid Prometheus label names."""
    assert sanitize_label_name("app.kubernetes.io/name") == "app_kubernetes_io_name"
    assert sanitize_label_name("pod-template-hash") == "pod_template_hash"


async def test_downward_api_file(tmp_path: Path) -> None:
    """With the annotations file mounted, the target and its pod labels come from the files."""
    (tmp_path / "annotations").write_text(ANNOTATIONS)
    (tmp_path / "labels").write_text(LABELS)
    settings = KubernetesSettings(
        annotations_file=str(tmp_path / "annotations"), labels_file=str(tmp_path / "labels")
    )
    provider = KubernetesTargets(settings, environ={"POD_NAME": "shop-1", "POD_NAMESPACE": "prod"})
    (target,) = await provider.discover()
    assert target.url == "http://localhost:8080/custom/metrics"
    assert dict(target.labels) == {
        "pod": "shop-1",
        "namespace": "prod",
        "app_kubernetes_io_name": "shop",
        "pod_template_hash": "7d9f8b",
    }
    await provider.close()


async def test_the_labels_file_is_found_beside_an_annotations_file_moved_alone(
    tmp_path: Path,
) -> None:
    """The Downward API mounts the pod's labels beside its annotations: an annotations file
    given elsewhere (DEUCALION_KUBERNETES__ANNOTATIONS_FILE, a local trial) without its labels
    file had the labels read from /etc/deucalion/podinfo/labels, and the target had none.
    A labels file given too still wins."""
    from deucalion.config.loading import load_settings

    (tmp_path / "annotations").write_text(ANNOTATIONS)
    (tmp_path / "labels").write_text(LABELS)
    environ = {"DEUCALION_KUBERNETES__ANNOTATIONS_FILE": str(tmp_path / "annotations")}
    settings = load_settings(None, environ=environ, default_file=None).kubernetes
    assert settings is not None and settings.labels_file == str(tmp_path / "labels")
    provider = KubernetesTargets(settings, environ={"POD_NAME": "shop-1", "POD_NAMESPACE": "prod"})
    (target,) = await provider.discover()
    assert dict(target.labels)["app_kubernetes_io_name"] == "shop"
    await provider.close()
    given = {**environ, "DEUCALION_KUBERNETES__LABELS_FILE": "/elsewhere/labels"}
    settings = load_settings(None, environ=given, default_file=None).kubernetes
    assert settings is not None and settings.labels_file == "/elsewhere/labels"


async def test_not_annotated_pod_gives_no_target_and_says_why(tmp_path: Path) -> None:
    """A pod without prometheus.io/scrape="true" has no target; last_error explains."""
    (tmp_path / "annotations").write_text('prometheus.io/port="8080"\n')
    provider = KubernetesTargets(
        KubernetesSettings(annotations_file=str(tmp_path / "annotations")),
        environ={"POD_NAME": "p", "POD_NAMESPACE": "n"},
    )
    assert await provider.discover() == []
    assert provider.last_error is not None and "prometheus.io/scrape" in provider.last_error


async def _discover_with(
    tmp_path: Path, annotations: str, **settings: Any
) -> tuple[list[str], str | None]:
    (tmp_path / "annotations").write_text(annotations)
    provider = KubernetesTargets(
        KubernetesSettings(annotations_file=str(tmp_path / "annotations"), **settings),
        environ={"POD_NAME": "p", "POD_NAMESPACE": "n"},
    )
    targets = [t.url for t in await provider.discover()]
    await provider.close()
    return targets, provider.last_error


async def test_a_named_port_is_resolved_from_the_pods_container_ports(tmp_path: Path) -> None:
    """prometheus.io/port: "http" (Kubernetes allows a container port's name) is the number
    the injector passes in kubernetes.ports; it found no target."""
    annotations = 'prometheus.io/scrape="true"\nprometheus.io/port="http"\n'
    targets, error = await _discover_with(tmp_path, annotations, ports={"http": 8080})
    assert targets == ["http://localhost:8080/metrics"] and error is None


@pytest.mark.parametrize(
    ("port", "ports", "expected"),
    [
        (
            None,
            {},
            "the pod has no prometheus.io/port annotation: set it to the port the service's "
            "metrics are served on (a number, or the name of a container port)",
        ),
        (
            "http",
            {"metrics": 9090},
            "the pod's prometheus.io/port annotation is 'http', which names no container port "
            "of the pod known to deucalion (it has metrics): set it to the port number",
        ),
        ("99999", {}, "the pod's prometheus.io/port annotation is '99999', not a port"),
    ],
)
async def test_an_unusable_port_annotation_says_what_it_is(
    tmp_path: Path, port: str | None, ports: dict[str, int], expected: str
) -> None:
    """No annotation is not "the annotation is 'missing'" (as if that were its value)."""
    annotations = 'prometheus.io/scrape="true"\n'
    if port is not None:
        annotations += f'prometheus.io/port="{port}"\n'
    targets, error = await _discover_with(tmp_path, annotations, ports=ports)
    assert targets == [] and error is not None and expected in error
    assert "'missing'" not in error


@pytest.fixture
async def api_server() -> AsyncIterator[Callable[[web.Response], Any]]:
    """Starts a loopback aiohttp server standing in for the API server; yields a starter."""
    runners: list[web.AppRunner] = []
    seen: list[web.Request] = []

    async def start(answer: web.Response | dict[str, Any]) -> tuple[str, list[web.Request]]:
        async def pod(request: web.Request) -> web.StreamResponse:
            seen.append(request)
            if isinstance(answer, dict):
                return web.json_response(answer)
            return answer

        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}", pod)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}", seen

    yield start  # type: ignore[misc]
    for runner in runners:
        await runner.cleanup()


def _account(tmp_path: Path) -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token-value\n")
    (account / "namespace").write_text("prod")
    return account


async def test_kubernetes_api(tmp_path: Path, api_server: Any) -> None:
    """Without the file, the pod is read from the API with the service account's token."""
    url, seen = await api_server(
        _pod(
            {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9102",
                "prometheus.io/scheme": "https",
            }
        )
    )
    settings = KubernetesSettings(
        annotations_file=str(tmp_path / "absent"),
        api_url=url,
        service_account_dir=str(_account(tmp_path)),
    )
    provider = KubernetesTargets(settings, environ={"POD_NAME": "shop-7d9f8b-x2x4z"})
    (target,) = await provider.discover()
    assert target.url == "https://localhost:9102/metrics"
    assert dict(target.labels) == {
        "pod": "shop-7d9f8b-x2x4z",
        "namespace": "prod",
        "app_kubernetes_io_name": "shop",
        "pod_template_hash": "7d9f8b",
    }
    assert seen[0].path == "/api/v1/namespaces/prod/pods/shop-7d9f8b-x2x4z"
    assert seen[0].headers["Authorization"] == "Bearer sa-token-value"
    assert seen[0].headers["Accept"] == "application/json"
    assert "X-Prometheus-Scrape-Timeout-Seconds" not in seen[0].headers
    await provider.close()


async def test_a_named_port_is_resolved_from_the_pod_the_api_returns(
    tmp_path: Path, api_server: Any
) -> None:
    """Read from the API, the pod object has its container ports: a named port resolves."""
    pod = _pod({"prometheus.io/scrape": "true", "prometheus.io/port": "metrics"})
    pod["spec"]["containers"][0]["ports"].append({"name": "metrics", "containerPort": 9102})
    url, _ = await api_server(pod)
    settings = KubernetesSettings(
        annotations_file=str(tmp_path / "absent"),
        api_url=url,
        service_account_dir=str(_account(tmp_path)),
    )
    provider = KubernetesTargets(settings, environ={"POD_NAME": "shop-7d9f8b-x2x4z"})
    (target,) = await provider.discover()
    assert target.url == "http://localhost:9102/metrics"
    await provider.close()


async def test_kubernetes_api_forbidden_is_explained(
    tmp_path: Path, api_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 from the API gives no target and an error saying which permission is missing."""
    forbidden = web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Forbidden",
            "message": 'pods "p" is forbidden: User "system:serviceaccount:prod:default" cannot '
            'get resource "pods"',
            "code": 403,
        },
        status=403,
    )
    url, _ = await api_server(forbidden)
    settings = KubernetesSettings(
        annotations_file=str(tmp_path / "absent"),
        api_url=url,
        service_account_dir=str(_account(tmp_path)),
    )
    provider = KubernetesTargets(settings, environ={"POD_NAME": "p"})
    with caplog.at_level(logging.ERROR):
        assert await provider.discover() == []
    assert provider.last_error is not None
    assert "HTTP 403" in provider.last_error and "`get` on `pods`" in provider.last_error
    assert "namespace prod" in caplog.text
    assert "sa-token-value" not in caplog.text
    await provider.close()


async def test_an_unreadable_service_account_token_is_reported_as_such(
    tmp_path: Path, api_server: Any
) -> None:
    """Without the token file the API is not asked: last_error names the file."""
    url, seen = await api_server(_pod({}))
    account = _account(tmp_path)
    (account / "token").unlink()
    settings = KubernetesSettings(
        annotations_file=str(tmp_path / "absent"), api_url=url, service_account_dir=str(account)
    )
    provider = KubernetesTargets(settings, environ={"POD_NAME": "p"})
    assert await provider.discover() == [] and seen == []
    assert provider.last_error is not None and str(account / "token") in provider.last_error
    await provider.close()


async def test_outside_a_cluster_says_what_to_mount(tmp_path: Path) -> None:
    """Neither the file nor KUBERNETES_SERVICE_HOST: the error names both ways to fix it."""
    settings = KubernetesSettings(
        annotations_file=str(tmp_path / "absent"), service_account_dir=str(_account(tmp_path))
    )
    provider = KubernetesTargets(settings, environ={})
    assert await provider.discover() == []
    assert provider.last_error is not None and "downwardAPI" in provider.last_error
