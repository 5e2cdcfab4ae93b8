"""The injector's mutation: plan_injection's patch, applied with the jsonpatch library."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from pydantic import ValidationError

from deucalion.injector.manifest import apply_patch
from deucalion.injector.mutation import escape_pointer_token, plan_injection, pod_patch
from deucalion.injector.settings import ANNOTATIONS_FILE, ClusterSettings, InjectorSettings
from tests.injector_reviews import app_pod, env_of, sidecars
from tests.k8s_checks import as_pod, schema_problems

SETTINGS = InjectorSettings(
    sidecar={"image": "registry.example/deucalion:0.1"},
    alertmanager={"urls": ["http://am.monitoring.svc:9093", "http://am2:9093"]},
)
NEW_CLUSTER = SETTINGS.model_copy(update={"cluster": ClusterSettings(kubernetes_version="1.29")})


def injected(pod: dict[str, Any], settings: InjectorSettings = SETTINGS) -> dict[str, Any]:
    """Apply the pod's patch the way the API server would."""
    patch = pod_patch(pod, settings)
    assert patch, plan_injection(pod, settings).skipped
    result: dict[str, Any] = jsonpatch.apply_patch(pod, patch)
    # Every patched pod must be one the API server accepts, on the oldest and newest versions.
    assert schema_problems(as_pod(result["spec"], result.get("metadata"))) == []
    return result


def test_opted_in_pod_gets_one_complete_sidecar() -> None:
    """A plain app pod gets exactly one sidecar with image, env, probes, resources, non-root."""
    pod = app_pod()
    out = injected(pod)
    assert out["spec"]["containers"][0] == pod["spec"]["containers"][0]
    [sidecar] = sidecars(out)
    assert sidecar["image"] == "registry.example/deucalion:0.1"
    assert "command" not in sidecar  # the AD app image's own entrypoint runs
    assert sidecar["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": 9464,
        "scheme": "HTTP",
    }
    # A sidecar's readiness would gate the watched service's own readiness: it has none.
    assert "readinessProbe" not in sidecar
    # Nor a startup probe: the container would count as not ready until it passed.
    assert "startupProbe" not in sidecar
    assert sidecar["livenessProbe"]["initialDelaySeconds"] == 300
    assert set(sidecar["resources"]) == {"requests", "limits"}
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    env = env_of(sidecar)
    assert (
        env["DEUCALION_ALERTMANAGER__URLS"] == '["http://am.monitoring.svc:9093","http://am2:9093"]'
    )
    assert env["DEUCALION_ALERT_NAME"] == "DeucalionAnomaly"
    assert env["DEUCALION_ALERT_MANAGER_HOST"] == "am.monitoring.svc"
    assert env["DEUCALION_ALERT_MANAGER_PORT"] == "9093"
    assert env["DEUCALION_TELEMETRY__LISTEN"] == "0.0.0.0:9464"
    assert env["DEUCALION_KUBERNETES__ANNOTATIONS_FILE"] == ANNOTATIONS_FILE
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "DEUCALION_CONFIG" not in env
    assert out["metadata"]["annotations"]["deucalion.io/status"] == "injected"
    assert out["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert out["metadata"]["labels"] == {
        **pod["metadata"]["labels"],
        "deucalion.io/injected": "0.1.0",
    }


def test_downward_api_volume_exposes_annotations_at_the_discovery_path() -> None:
    """The pod's annotations are a Downward API file exactly where target discovery reads them."""
    out = injected(app_pod())
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    assert "kube-api-access-x7k2p" in volumes
    items = volumes["deucalion-podinfo"]["downwardAPI"]["items"]
    assert {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}} in items
    [sidecar] = sidecars(out)
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    directory, file_name = ANNOTATIONS_FILE.rsplit("/", 1)
    assert mounts["deucalion-podinfo"] == {
        "name": "deucalion-podinfo",
        "mountPath": directory,
        "readOnly": True,
    }
    assert file_name == "annotations"
    # Every mount of the sidecar names a volume of the pod.
    assert set(mounts) <= set(volumes)


def test_image_and_observer_annotations_choose_what_runs() -> None:
    """deucalion.io/image picks the image; deucalion.io/observer runs `deucalion run MOD:CLS`."""
    pod = app_pod(
        annotations={"deucalion.io/image": "me/ad:7", "deucalion.io/observer": "ad.app:Observer"}
    )
    [sidecar] = sidecars(injected(pod))
    assert sidecar["image"] == "me/ad:7"
    assert sidecar["command"] == ["deucalion", "run", "ad.app:Observer"]


def test_config_annotation_mounts_the_configmap() -> None:
    """deucalion.io/config mounts that ConfigMap and points DEUCALION_CONFIG at its key."""
    pod = app_pod(
        annotations={"deucalion.io/config": "shop-deucalion", "deucalion.io/config-key": "ad.yaml"}
    )
    out = injected(pod)
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    # Optional: a missing ConfigMap must not keep the application's pod from starting.
    assert volumes["deucalion-config"]["configMap"] == {"name": "shop-deucalion", "optional": True}
    [sidecar] = sidecars(out)
    env = env_of(sidecar)
    assert env["DEUCALION_CONFIG"] == "/etc/deucalion/config/ad.yaml"
    # Environment variables would override the pod's file: the injector's defaults stay out.
    assert not {k for k in env if k.startswith(("DEUCALION_ALERT", "DEUCALION_ALERTMANAGER"))}
    assert {"name": "deucalion-config", "mountPath": "/etc/deucalion/config", "readOnly": True} in (
        sidecar["volumeMounts"]
    )


def test_pod_without_volumes_or_annotations_is_injected() -> None:
    """A pod with no volumes and no annotations at all gets both lists created."""
    pod = app_pod()
    del pod["spec"]["volumes"]
    del pod["metadata"]["annotations"]
    plan = plan_injection(pod, SETTINGS)
    assert any("prometheus.io/scrape" in w for w in plan.warnings)
    out = injected(pod)
    assert [v["name"] for v in out["spec"]["volumes"]] == ["deucalion-podinfo", "deucalion-tmp"]
    assert out["metadata"]["annotations"] == {"deucalion.io/status": "injected"}
    assert len(sidecars(out)) == 1


def test_null_annotations_and_missing_metadata_are_handled() -> None:
    """`annotations: null` and a template with no metadata at all still get the status."""
    pod = app_pod()
    pod["metadata"]["annotations"] = None
    assert injected(pod)["metadata"]["annotations"] == {"deucalion.io/status": "injected"}
    bare = {"spec": {"containers": [{"name": "app", "image": "a"}]}}
    assert injected(bare)["metadata"] == {
        "annotations": {"deucalion.io/status": "injected"},
        "labels": {"deucalion.io/injected": "0.1.0"},
    }


def test_init_containers_are_left_in_place() -> None:
    """A pod with an init container keeps it first and unchanged; the sidecar is a container."""
    pod = app_pod()
    init = {"name": "migrate", "image": "example/migrate:1", "command": ["migrate"]}
    pod["spec"]["initContainers"] = [init]
    out = injected(pod)
    assert out["spec"]["initContainers"] == [init]
    assert [c["name"] for c in out["spec"]["containers"]] == ["shop", "deucalion"]


@pytest.mark.parametrize("value", ["false", "False", "no", "0"])
def test_pod_annotated_inject_false_is_untouched(value: str) -> None:
    """A pod annotated deucalion.io/inject: "false" (or alike) gets no patch."""
    plan = plan_injection(app_pod(annotations={"deucalion.io/inject": value}), SETTINGS)
    assert plan.patch == [] and "deucalion.io/inject" in (plan.skipped or "")


def test_injected_pod_is_never_injected_again() -> None:
    """The patched pod yields no patch; nor does one that already has a `deucalion` container."""
    once = injected(app_pod())
    assert plan_injection(once, SETTINGS).patch == []
    del once["metadata"]["annotations"]["deucalion.io/status"]
    plan = plan_injection(once, SETTINGS)
    assert plan.patch == [] and "already has a container" in (plan.skipped or "")


def test_bad_annotations_skip_with_a_reason() -> None:
    """An unusable annotation value leaves the pod alone and says which annotation is wrong."""
    cases = {
        "deucalion.io/config": "Not_A_Name",
        "deucalion.io/observer": "no-colon",
        "deucalion.io/image": "has space:1",
    }
    for key, value in cases.items():
        plan = plan_injection(app_pod(annotations={key: value}), SETTINGS)
        assert plan.patch == [] and key in (plan.skipped or ""), key


def test_non_pod_objects_are_skipped() -> None:
    """Something without spec.containers is left alone."""
    assert plan_injection({"kind": "Service", "spec": {"ports": []}}, SETTINGS).patch == []


def test_paths_escape_slash_and_tilde_per_rfc6901() -> None:
    """Annotation keys with `/` and `~` become `~1` and `~0`; other annotations stay intact."""
    assert escape_pointer_token("a/b~c~1") == "a~1b~0c~01"
    settings = SETTINGS.model_copy(
        update={
            "annotations": InjectorSettings().annotations.model_copy(
                update={"status": "deucalion.io/st~tus/x"}
            )
        }
    )
    pod = app_pod(annotations={"odd/key~0": "1", "~/~": "2", "prometheus.io/scrape": "true"})
    patch = pod_patch(pod, settings)
    assert {
        "op": "add",
        "path": "/metadata/annotations/deucalion.io~1st~0tus~1x",
        "value": "injected",
    } in patch
    out = jsonpatch.apply_patch(pod, patch)
    annotations = out["metadata"]["annotations"]
    assert annotations["deucalion.io/st~tus/x"] == "injected"
    assert annotations["odd/key~0"] == "1" and annotations["~/~"] == "2"
    assert plan_injection(out, settings).patch == []


def test_own_patch_applier_agrees_with_jsonpatch() -> None:
    """apply_patch (used offline) gives what the jsonpatch library gives, without mutating."""
    for pod in (
        app_pod(),
        app_pod(annotations={"deucalion.io/config": "c"}),
        {"spec": {"containers": [{"name": "a", "image": "a"}]}},
    ):
        before = copy.deepcopy(pod)
        patch = pod_patch(pod, SETTINGS)
        assert apply_patch(pod, patch) == jsonpatch.apply_patch(pod, patch)
        assert pod == before


def test_settings_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """DEUCALION_INJECTOR_* variables set the default image and Alertmanager."""
    monkeypatch.setenv("DEUCALION_INJECTOR_SIDECAR__IMAGE", "registry.env/deucalion:9")
    monkeypatch.setenv("DEUCALION_INJECTOR_ALERTMANAGER__URLS", '["https://am.example:8443"]')
    [sidecar] = sidecars(injected(app_pod(), InjectorSettings.load()))
    assert sidecar["image"] == "registry.env/deucalion:9"
    env = env_of(sidecar)
    assert (env["DEUCALION_ALERT_MANAGER_HOST"], env["DEUCALION_ALERT_MANAGER_PORT"]) == (
        "am.example",
        "8443",
    )


@pytest.mark.parametrize("restart_policy", ["Never", "OnFailure"])
def test_run_to_completion_pods_get_a_native_sidecar(restart_policy: str) -> None:
    """An opted-in Job's pod on 1.29+ gets the sidecar as an init container with restartPolicy
    Always, so it ends."""
    pod = app_pod(labels={"deucalion.io/inject": "true"})
    pod["spec"]["restartPolicy"] = restart_policy
    out = injected(pod, NEW_CLUSTER)
    assert [c["name"] for c in out["spec"]["containers"]] == ["shop"]
    [sidecar] = out["spec"]["initContainers"]
    assert sidecar["name"] == "deucalion" and sidecar["restartPolicy"] == "Always"
    assert plan_injection(out, SETTINGS).patch == []
    pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
    names = [c["name"] for c in injected(pod, NEW_CLUSTER)["spec"]["initContainers"]]
    assert names == ["setup", "deucalion"]


def test_native_sidecar_can_be_forced_or_refused() -> None:
    """native_sidecar=always puts it in initContainers for any pod; never skips a Job's pod,
    which a plain sidecar would keep running forever."""
    image = {"image": "registry.example/deucalion:0.1"}
    always = InjectorSettings(sidecar={**image, "native_sidecar": "always"})
    assert injected(app_pod(), always)["spec"]["initContainers"][0]["name"] == "deucalion"
    job_pod = app_pod(labels={"deucalion.io/inject": "true"})
    job_pod["spec"]["restartPolicy"] = "Never"
    never = InjectorSettings(
        sidecar={**image, "native_sidecar": "never"}, cluster={"kubernetes_version": "1.31"}
    )
    assert plan_injection(job_pod, never).reason == "runs-to-completion"


def test_port_clash_skips_with_a_warning() -> None:
    """An app container already on deucalion's port 9464: no sidecar (it could not listen), and
    a warning saying so."""
    pod = app_pod()
    pod["spec"]["containers"][0]["ports"].append({"containerPort": 9464})
    plan = plan_injection(pod, SETTINGS)
    assert plan.reason == "port-taken" and any("9464" in w for w in plan.warnings)


def test_the_sidecars_environment_is_valid_deucalion_settings() -> None:
    """The env the injector writes is read by deucalion's settings without error, as meant."""
    from deucalion.config.loading import load_settings

    [sidecar] = sidecars(injected(app_pod()))
    environ = {k: v for k, v in env_of(sidecar).items() if isinstance(v, str)}
    settings = load_settings(environ=environ, default_file=None)
    assert settings.kubernetes is not None
    assert settings.kubernetes.annotations_file == ANNOTATIONS_FILE
    assert settings.alertmanager.urls == ["http://am.monitoring.svc:9093", "http://am2:9093"]
    assert settings.telemetry.listen == "0.0.0.0:9464"


def test_a_missing_configmap_is_a_warning_in_the_sidecar_not_a_crash(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """deploy/README: the deucalion.io/config ConfigMap is optional, a missing one does not
    block the pod. The sidecar's environment then names a file that is not there: the sidecar
    warns, naming DEUCALION_CONFIG, the annotation and what to do, and runs (a sidecar that
    exits crash-loops and takes the pod out of its Service)."""
    from deucalion.config.loading import load_settings

    pod = app_pod(annotations={"deucalion.io/config": "shop-deucalion"})
    [sidecar] = sidecars(injected(pod))
    environ = {k: v for k, v in env_of(sidecar).items() if isinstance(v, str)}
    assert environ["DEUCALION_CONFIG"] == "/etc/deucalion/config/deucalion.yaml"
    # The ConfigMap's mount, empty: the ConfigMap is missing.
    environ["DEUCALION_CONFIG"] = str(tmp_path / "deucalion.yaml")
    settings = load_settings(environ=environ, default_file=None)
    assert settings.kubernetes is not None
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(tmp_path / "deucalion.yaml") in warning and "DEUCALION_CONFIG" in warning
    assert "deucalion.io/config" in warning and "kubectl create configmap" in warning


async def test_a_named_metrics_port_reaches_the_sidecar_resolved(tmp_path: Any) -> None:
    """prometheus.io/port: "http" names a container port, as Kubernetes allows: the sidecar,
    which sees only the annotations, is given the pod's named ports and scrapes 8080 (it found
    no target). No warning."""
    from deucalion.config.loading import load_settings
    from deucalion.targets.kubernetes import KubernetesTargets

    pod = app_pod()
    pod["metadata"]["annotations"]["prometheus.io/port"] = "http"
    plan = plan_injection(pod, SETTINGS)
    assert plan.warnings == []
    [sidecar] = sidecars(injected(pod))
    environ = {k: v for k, v in env_of(sidecar).items() if isinstance(v, str)}
    assert environ["DEUCALION_KUBERNETES__PORTS"] == '{"http":8080}'
    settings = load_settings(environ=environ, default_file=None)
    assert settings.kubernetes is not None
    annotations = tmp_path / "annotations"
    annotations.write_text('prometheus.io/scrape="true"\nprometheus.io/port="http"\n')
    kubernetes = settings.kubernetes.model_copy(update={"annotations_file": str(annotations)})
    provider = KubernetesTargets(kubernetes, environ={"POD_NAME": "p", "POD_NAMESPACE": "n"})
    assert [t.url for t in await provider.discover()] == ["http://localhost:8080/metrics"]
    await provider.close()


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (
            "web",
            "annotation prometheus.io/port is 'web', which names no container port of the "
            "pod (its ports are named http): it will find no target to watch",
        ),
        (None, "the pod has no annotation prometheus.io/port: it will find no target to watch"),
        ("70000", "annotation prometheus.io/port is '70000', not a port (1 to 65535)"),
        # A superscript two is a digit to str.isdigit, not to int(): the planning crashed.
        ("\u00b2", "which names no container port of the pod"),
    ],
)
def test_a_port_annotation_the_sidecar_cannot_use_is_injected_with_a_warning(
    port: str | None, expected: str
) -> None:
    """The pod runs (the annotation can be fixed in place: the sidecar reads it every cycle),
    and whoever applied it is told why its sidecar will watch nothing."""
    pod = app_pod()
    if port is None:
        del pod["metadata"]["annotations"]["prometheus.io/port"]
    else:
        pod["metadata"]["annotations"]["prometheus.io/port"] = port
    plan = plan_injection(pod, SETTINGS)
    assert plan.patch and plan.reason is None
    assert [w for w in plan.warnings if expected in w], plan.warnings
    [sidecar] = sidecars(injected(pod))
    assert "DEUCALION_KUBERNETES__PORTS" not in env_of(sidecar)


def test_a_password_in_an_alertmanager_url_reaches_the_sidecar_but_is_never_shown() -> None:
    """The sidecar's environment carries the URL whole, so it can log in; repr, str and JSON of
    the injector's settings, and their errors, show user:***@."""
    url = "http://deucalion:s3cr3t@am.monitoring.svc:9093"
    settings = InjectorSettings(alertmanager={"urls": [url]}, sidecar=SETTINGS.sidecar)
    [sidecar] = sidecars(injected(app_pod(), settings))
    assert env_of(sidecar)["DEUCALION_ALERTMANAGER__URLS"] == f'["{url}"]'
    shown = "http://deucalion:***@am.monitoring.svc:9093"
    for text in (
        repr(settings),
        str(settings),
        repr(settings.alertmanager),
        str(settings.alertmanager),
        settings.model_dump_json(),
    ):
        assert "s3cr3t" not in text and shown in text
    with pytest.raises(ValidationError) as info:
        InjectorSettings(alertmanager={"urls": ["ftp://deucalion:s3cr3t@am:9093"]})
    assert "s3cr3t" not in str(info.value) and "'ftp://deucalion:***@am:9093'" in str(info.value)
