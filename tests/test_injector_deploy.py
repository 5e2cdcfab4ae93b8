"""The files in deploy/: valid YAML, a safe webhook configuration, consistent names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deucalion.injector.settings import InjectorSettings, ServerSettings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def load(path: Path) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects(kind: str) -> list[dict[str, Any]]:
    """Every object of ``kind`` in the base manifests."""
    return [
        doc
        for path in (DEPLOY / "base").glob("*.yaml")
        for doc in load(path)
        if doc.get("kind") == kind
    ]


def test_every_manifest_parses_and_names_its_kind() -> None:
    """All YAML under deploy/ parses, and every document has apiVersion and kind."""
    paths = sorted(DEPLOY.rglob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        for doc in load(path):
            assert {"apiVersion", "kind"} <= set(doc), path


def test_kustomizations_list_files_that_exist() -> None:
    """Every resource, component and patch a kustomization names is there."""
    for path in DEPLOY.rglob("kustomization.yaml"):
        [spec] = load(path)
        entries = spec.get("resources", []) + spec.get("components", [])
        entries += [patch["path"] for patch in spec.get("patches", []) if "path" in patch]
        for entry in entries:
            assert (path.parent / entry).exists(), f"{path}: {entry}"


def test_dockerfiles_copy_files_that_exist() -> None:
    """Every file a Dockerfile copies from the repository is there (the build context is the
    repository root)."""
    root = DEPLOY.parent
    copied = 0
    for dockerfile in (DEPLOY / "docker").glob("*Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
                continue
            for source in [w for w in words[1:-1] if not w.startswith("--")]:
                assert (root / source).exists(), f"{dockerfile.name} copies missing {source}"
                copied += 1
    assert copied >= 3


def test_the_example_app_imports_with_only_what_its_image_copies(tmp_path: Path) -> None:
    """The example app image's files alone (beside the package) import without error."""
    import runpy
    import sys

    dockerfile = (DEPLOY / "docker" / "example-app.Dockerfile").read_text()
    app = tmp_path / "app"
    app.mkdir()
    for line in dockerfile.splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            source, target = words[-2], words[-1]
            (app / Path(target).name).write_bytes((DEPLOY.parent / source).read_bytes())
    sys.path.insert(0, str(app))
    try:
        # Imported as a module, not run as __main__: its imports are what the image needs.
        runpy.run_path(str(app / "ad_app.py"), run_name="ad_app")
    finally:
        sys.path.remove(str(app))
        sys.modules.pop("stand_in_model", None)


def test_webhook_fails_open_and_selects_opted_in_namespaces() -> None:
    """The webhook: failurePolicy Ignore, sideEffects None, v1 reviews, a timeout, the selector."""
    [config] = objects("MutatingWebhookConfiguration")
    [hook] = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert 1 <= hook["timeoutSeconds"] <= 10
    assert hook["namespaceSelector"]["matchLabels"] == {"deucalion-injection": "enabled"}
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"


def test_service_deployment_and_certificates_agree() -> None:
    """Webhook -> Service -> Deployment port and TLS secret line up, and the cert covers the DNS."""
    [config] = objects("MutatingWebhookConfiguration")
    target = config["webhooks"][0]["clientConfig"]["service"]
    [service] = objects("Service")
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (
        target["name"],
        target["namespace"],
    )
    assert service["spec"]["ports"][0]["port"] == target["port"]
    [deployment] = objects("Deployment")
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert container["ports"][0]["name"] == service["spec"]["ports"][0]["targetPort"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    defaults = ServerSettings()
    assert f"--cert={defaults.cert_file}" in container["args"]
    assert f"--key={defaults.key_file}" in container["args"]
    secret = pod["spec"]["volumes"][0]["secret"]["secretName"]
    cert_manager = DEPLOY / "components" / "cert-manager" / "certificate.yaml"
    [certificate] = [d for d in load(cert_manager) if d["kind"] == "Certificate"]
    assert certificate["spec"]["secretName"] == secret
    assert f"{target['name']}.{target['namespace']}.svc" in certificate["spec"]["dnsNames"]


def test_rbac_grants_nothing() -> None:
    """Least privilege: the injector's ServiceAccount has no token and no Role bindings."""
    [account] = objects("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert not objects("RoleBinding") and not objects("ClusterRoleBinding")


def test_example_app_is_opted_in_with_its_annotations() -> None:
    """The example namespace is labelled for injection and its pods carry the annotations."""
    docs = {d["kind"]: d for d in load(DEPLOY / "examples" / "example-app.yaml")}
    assert docs["Namespace"]["metadata"]["labels"]["deucalion-injection"] == "enabled"
    annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["deucalion.io/config"] == docs["ConfigMap"]["metadata"]["name"]
    alertmanager = {d["kind"]: d for d in load(DEPLOY / "examples" / "alertmanager.yaml")}
    service = alertmanager["Service"]["metadata"]
    url = f"http://{service['name']}.{service['namespace']}.svc:9093"
    assert InjectorSettings().alertmanager.urls == [url]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for kustomize) not installed")
@pytest.mark.parametrize("directory", ["", "overlays/cert-manager"])
def test_kustomize_builds(directory: str) -> None:
    """`kubectl kustomize` builds the base and the cert-manager overlay (offline, no cluster)."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(built) if doc}
    assert {"Namespace", "Deployment", "Service", "MutatingWebhookConfiguration"} <= kinds
    if directory:
        assert {"Certificate", "Issuer"} <= kinds
        assert "cert-manager.io/inject-ca-from: deucalion-system/deucalion-injector" in built
