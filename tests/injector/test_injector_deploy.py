"""The files in deploy/: valid YAML, a safe webhook configuration, consistent names, and every
overlay rendered (kustomize) and validated against the Kubernetes schemas and Pod Security."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deucalion._version import __version__
from deucalion.injector.settings import ImageReference, InjectorSettings, ServerSettings
from tests.k8s_checks import pod_templates, restricted_problems, schema_problems
from tests.kustomize_subset import build, by_key

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


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
    """All YAML under deploy/ parses, and every document has apiVersion and kind (but the
    Prometheus rule files of deploy/prometheus/, which are not Kubernetes objects)."""
    paths = sorted(DEPLOY.rglob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        docs = load(path)
        if path.parent == DEPLOY / "prometheus":
            assert all("groups" in d or "tests" in d for d in docs), path
            continue
        for doc in docs:
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
    [certificate] = [
        d for d in load(cert_manager) if d["kind"] == "Certificate" and not d["spec"].get("isCA")
    ]
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


#: Every directory `kubectl apply -k` is meant for.
OVERLAYS = ["", "overlays/cert-manager", "overlays/monitoring", "overlays/sharded"]
#: Namespaces deploy/ creates with Pod Security "restricted" enforced.
RESTRICTED = {"deucalion-system", "deucalion-central"}


def rendered(directory: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The overlay's objects, as kustomize builds them, keyed by (kind, namespace, name)."""
    return by_key(build(DEPLOY / directory))


def _kubectl_kustomize(directory: str) -> list[dict[str, Any]]:
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(built) if doc]


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl not installed (Debian has no package; the subset renders)",
)
@pytest.mark.parametrize("directory", OVERLAYS)
def test_kubectl_kustomize_renders_what_the_tests_validate(directory: str) -> None:
    """`kubectl kustomize` of every overlay gives exactly the objects the offline renderer
    gives, so the checks below hold for what `kubectl apply -k` sends."""
    assert by_key(_kubectl_kustomize(directory)) == rendered(directory)


@pytest.mark.parametrize("directory", OVERLAYS)
def test_every_rendered_object_validates(directory: str) -> None:
    """Every object of every overlay passes the strict schemas of Kubernetes 1.29 and the
    newest; custom resources are of the kinds whose fields the tests below check."""
    objects = rendered(directory)
    assert objects
    for obj in objects.values():
        # A kind without a shipped schema raises SchemaNotFoundError: only the custom
        # resources listed in CUSTOM_KINDS are let through, and checked by the tests below.
        assert schema_problems(obj) == [], obj


@pytest.mark.parametrize("directory", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard(directory: str) -> None:
    """The pods deploy/ creates run in namespaces enforcing "restricted", and meet it."""
    objects = rendered(directory)
    enforced = {
        key[2]
        for key, obj in objects.items()
        if key[0] == "Namespace"
        and obj["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"
    }
    templates = 0
    for (_kind, namespace, _name), obj in objects.items():
        for template in pod_templates(obj):
            assert namespace in enforced & RESTRICTED
            assert restricted_problems(template) == [], obj["metadata"]["name"]
            templates += 1
    assert templates >= 1


def test_the_sidecar_image_is_the_injectors_own_pinned_to_this_version() -> None:
    """The injector's DEUCALION_INJECTOR_SIDECAR__IMAGE is its own image, at deucalion's version."""
    for directory in OVERLAYS[:3]:
        deployment = rendered(directory)[("Deployment", "deucalion-system", "deucalion-injector")]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DEUCALION_INJECTOR_SIDECAR__IMAGE"] == container["image"]
        assert ImageReference(container["image"]).tag == __version__


def test_a_registry_set_in_one_place_reaches_the_sidecars(tmp_path: Path) -> None:
    """Setting the registry in base/kustomization.yaml's images entry changes the injector's
    image and its sidecars' alike, and the injector accepts the result."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    path = copy / "base" / "kustomization.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["images"][0]["newName"] = "registry.example.com/deucalion"
    path.write_text(yaml.safe_dump(spec))
    objects = by_key(build(copy / "overlays" / "cert-manager"))
    deployment = objects[("Deployment", "deucalion-system", "deucalion-injector")]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == f"registry.example.com/deucalion:{__version__}"
    assert env["DEUCALION_INJECTOR_SIDECAR__IMAGE"] == container["image"]
    InjectorSettings(sidecar={"image": env["DEUCALION_INJECTOR_SIDECAR__IMAGE"]})


def test_injector_availability_two_replicas_a_budget_and_a_network_policy() -> None:
    """Two replicas, a PodDisruptionBudget keeping one, a NetworkPolicy admitting only the
    webhook port (from anywhere) and the metrics port (from the monitoring namespace)."""
    objects = rendered("")
    deployment = objects[("Deployment", "deucalion-system", "deucalion-injector")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    budget = objects[("PodDisruptionBudget", "deucalion-system", "deucalion-injector")]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    policy = objects[("NetworkPolicy", "deucalion-system", "deucalion-injector")]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    webhook, metrics = policy["spec"]["ingress"]
    assert [p["port"] for p in webhook["ports"]] == [ports["https"]]
    assert [p["port"] for p in metrics["ports"]] == [ports["metrics"]]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert f"--metrics-port={ports['metrics']}" in container["args"]


def test_cert_manager_issues_from_a_ca_and_injects_the_ca() -> None:
    """Self-signed issuer -> CA certificate -> CA issuer -> serving certificate; the webhook's
    caBundle comes from the CA certificate, so renewing the leaf changes nothing there."""
    objects = rendered("overlays/cert-manager")
    certificates = {k[2]: o for k, o in objects.items() if k[0] == "Certificate"}
    issuers = {k[2]: o for k, o in objects.items() if k[0] == "Issuer"}
    serving = certificates["deucalion-injector"]
    ca_issuer = issuers[serving["spec"]["issuerRef"]["name"]]
    [ca] = [
        c
        for c in certificates.values()
        if c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]
    ]
    assert ca["spec"]["isCA"] is True
    assert "selfSigned" in issuers[ca["spec"]["issuerRef"]["name"]]["spec"]
    webhook = objects[("MutatingWebhookConfiguration", "", "deucalion-injector")]
    annotation = webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"deucalion-system/{ca['metadata']['name']}"


def test_monitors_select_what_the_injector_labels_and_serves() -> None:
    """The PodMonitor selects the injected label on the sidecar's port; the ServiceMonitor the
    injector's Service and its metrics port."""
    objects = rendered("overlays/monitoring")
    settings = InjectorSettings()
    pod_monitor = objects[("PodMonitor", "deucalion-system", "deucalion-sidecars")]
    [selector] = pod_monitor["spec"]["selector"]["matchExpressions"]
    assert selector == {"key": settings.annotations.injected, "operator": "Exists"}
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "deucalion-http"  # the sidecar's port name (mutation.py)
    service = objects[("Service", "deucalion-system", "deucalion-injector")]
    monitor = objects[("ServiceMonitor", "deucalion-system", "deucalion-injector")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}


def test_the_sharded_statefulset_counts_its_replicas() -> None:
    """The sharded overlay: DEUCALION_SHARD__COUNT equals the replicas, the index comes from
    the hostname, the config deucalion reads is valid, and no sidecar is injected into it."""
    from deucalion.config.loading import load_settings

    objects = rendered("overlays/sharded")
    statefulset = objects[("StatefulSet", "deucalion-central", "deucalion-sharded")]
    template = statefulset["spec"]["template"]
    [container] = template["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["DEUCALION_SHARD__COUNT"]) == statefulset["spec"]["replicas"]
    assert "DEUCALION_SHARD__INDEX" not in env
    assert template["metadata"]["annotations"]["deucalion.io/inject"] == "false"
    config = objects[("ConfigMap", "deucalion-central", "deucalion-sharded")]["data"]
    settings = load_settings(
        yaml.safe_load(config["deucalion.yaml"]),
        environ={"DEUCALION_SHARD__COUNT": env["DEUCALION_SHARD__COUNT"]},
        default_file=None,
    )
    assert settings.shard is not None and settings.shard.count == 3
    assert settings.file_sd is not None
    assert statefulset["spec"]["serviceName"] in {k[2] for k in objects if k[0] == "Service"}


def test_the_image_pins_its_base_by_digest_and_its_packages_by_constraints() -> None:
    """Every FROM of the deucalion image names a digest; pip installs with the constraints
    file, which pins every runtime dependency of pyproject.toml (core and injector extra)."""
    import re
    import tomllib

    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    [base] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base)
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2
    # NumPy too: a pod annotated deucalion.io/preset runs this image's `deucalion run --preset`.
    assert "--constraint constraints.txt '.[injector]' numpy" in dockerfile
    pins = {}
    for line in (DEPLOY / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, line
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]
    for requirement in [
        *project["dependencies"],
        *project["optional-dependencies"]["injector"],
        "numpy",
    ]:
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, requirement


def test_the_examples_validate_and_stay_restricted_once_injected() -> None:
    """The example manifests pass the schemas; the example app, injected as the webhook would,
    still meets the restricted Pod Security Standard."""
    from deucalion.injector.manifest import inject_manifest

    for path in (DEPLOY / "examples").glob("*.yaml"):
        for obj in load(path):
            assert schema_problems(obj) == [], (path.name, obj["kind"])
    settings = InjectorSettings(sidecar={"image": f"registry.example.com/deucalion:{__version__}"})
    result = inject_manifest((DEPLOY / "examples" / "example-app.yaml").read_text(), settings)
    assert "Deployment deucalion-demo/example-app: injected" in result.messages
    assert not [m for m in result.messages if "warning" in m]
    for obj in yaml.safe_load_all(result.text):
        assert schema_problems(obj) == []
        for template in pod_templates(obj):
            assert restricted_problems(template) == []
