"""The injector's rules, table-driven: which pods get the sidecar, how, and which are skipped.

Every pod the tables inject is validated against the Kubernetes schemas of the oldest and
newest supported versions and against the "restricted" Pod Security Standard.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import jsonpatch
import pytest

from deucalion.injector.mutation import plan_injection
from deucalion.injector.policy import SKIP_REASONS, opt_in, parse_quantity
from deucalion.injector.settings import InjectorSettings
from tests.injector_reviews import app_pod
from tests.k8s_checks import NEWEST, SUPPORTED, as_pod, restricted_problems, schema_problems

IMAGE = "registry.example/deucalion:0.1.0"
Pod = dict[str, Any]


def restricted_pod(**metadata: Any) -> Pod:
    """An app pod that meets the restricted Pod Security Standard on its own."""
    pod = app_pod(**metadata)
    pod["spec"]["securityContext"] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"][
        "expirationSeconds"
    ] = 3607
    assert restricted_problems(pod) == []
    return pod


def job(pod: Pod) -> Pod:
    """The pod as a Job's: it runs to completion."""
    pod["spec"]["restartPolicy"] = "Never"
    return pod


def opted_in(pod: Pod) -> Pod:
    """The pod labelled deucalion.io/inject: "true"."""
    pod["metadata"]["labels"]["deucalion.io/inject"] = "true"
    return pod


def annotate(annotations: dict[str, str]) -> Callable[[Pod], Pod]:
    """Add annotations."""

    def change(pod: Pod) -> Pod:
        pod["metadata"]["annotations"].update(annotations)
        return pod

    return change


def label(key: str, value: str) -> Callable[[Pod], Pod]:
    """Set one label."""

    def change(pod: Pod) -> Pod:
        pod["metadata"]["labels"][key] = value
        return pod

    return change


def spec(**fields: Any) -> Callable[[Pod], Pod]:
    """Set pod spec fields."""

    def change(pod: Pod) -> Pod:
        pod["spec"].update(copy.deepcopy(fields))
        return pod

    return change


def app_port(port: int, where: str = "containers") -> Callable[[Pod], Pod]:
    """Give a container (or a new init container) the port."""

    def change(pod: Pod) -> Pod:
        if where == "containers":
            pod["spec"]["containers"][0]["ports"].append({"containerPort": port})
        else:
            pod["spec"]["initContainers"] = [
                {"name": "init", "image": "example/init:1", "ports": [{"containerPort": port}]}
            ]
        return pod

    return change


def app_requests(**requests: str) -> Callable[[Pod], Pod]:
    """Set the app container's requests."""

    def change(pod: Pod) -> Pod:
        pod["spec"]["containers"][0]["resources"] = {"requests": dict(requests)}
        return pod

    return change


def chain(*changes: Callable[[Pod], Pod]) -> Callable[[Pod], Pod]:
    """Apply changes in order."""

    def change(pod: Pod) -> Pod:
        for one in changes:
            pod = one(pod)
        return pod

    return change


@dataclass(frozen=True)
class Case:
    """One row: a change to the restricted pod, settings, and the expected outcome.

    ``outcome`` is ``"containers"`` or ``"initContainers"`` (where the sidecar goes) or a skip
    reason; ``warning`` a text one of the warnings must contain.
    """

    name: str
    change: Callable[[Pod], Pod]
    outcome: str
    settings: dict[str, Any] = field(default_factory=dict)
    version: tuple[int, int] | None = None
    warning: str | None = None
    restricted: bool = True
    versions: tuple[str, ...] = SUPPORTED


CASES = [
    Case("plain pod", lambda p: p, "containers"),
    Case("label false", label("deucalion.io/inject", "false"), "opted-out"),
    Case("annotation no", annotate({"deucalion.io/inject": "no"}), "opted-out"),
    Case(
        "label true, annotation false",
        chain(label("deucalion.io/inject", "true"), annotate({"deucalion.io/inject": "false"})),
        "opted-out",
    ),
    Case(
        "label neither",
        label("deucalion.io/inject", "maybe"),
        "invalid-annotation",
        warning="neither true nor false",
    ),
    Case("annotation true", annotate({"deucalion.io/inject": "true"}), "containers"),
    Case("already injected", annotate({"deucalion.io/status": "injected"}), "already-injected"),
    Case("windows", spec(os={"name": "windows"}), "windows", warning="Windows"),
    Case("windows nodes", spec(nodeSelector={"kubernetes.io/os": "windows"}), "windows"),
    Case(
        "linux os",
        spec(os={"name": "linux"}, nodeSelector={"kubernetes.io/os": "linux"}),
        "containers",
    ),
    Case(
        "hostNetwork, port taken",
        chain(spec(hostNetwork=True), app_port(9464)),
        "port-taken",
        warning="hostNetwork",
    ),
    Case("hostNetwork, port free", spec(hostNetwork=True), "containers", restricted=False),
    Case("app on the port", app_port(9464), "port-taken", warning="telemetry_port"),
    Case("init container on the port", app_port(9464, "initContainers"), "port-taken"),
    Case(
        "other port setting",
        app_port(9464),
        "containers",
        settings={"sidecar": {"telemetry_port": 9465}},
    ),
    Case(
        "our volume name taken",
        spec(volumes=[{"name": "deucalion-tmp", "emptyDir": {}}]),
        "volume-taken",
    ),
    Case(
        "pod requests too small",
        chain(app_requests(cpu="100m"), spec(resources={"requests": {"cpu": "100m"}})),
        "pod-resources",
        warning="cpu request",
    ),
    Case(
        "pod limits below the sidecar's",
        spec(resources={"limits": {"memory": "256Mi"}}),
        "pod-resources",
        warning="memory limit",
    ),
    Case(
        "pod limit as request",
        chain(app_requests(memory="1Gi"), spec(resources={"limits": {"memory": "1Gi"}})),
        "pod-resources",
    ),
    Case(
        "pod resources enough",
        chain(
            app_requests(cpu="100m", memory="128Mi"),
            spec(
                resources={
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {"cpu": "2", "memory": "2Gi"},
                }
            ),
        ),
        "containers",
        versions=(NEWEST,),
    ),
    Case(
        "job not opted in",
        job,
        "runs-to-completion",
        version=(1, 31),
        warning='deucalion.io/inject: "true"',
    ),
    Case("job opted in, 1.29", chain(job, opted_in), "initContainers", version=(1, 29)),
    Case("job opted in, 1.28", chain(job, opted_in), "kubernetes-version", version=(1, 28)),
    Case(
        "job opted in, version unknown",
        chain(job, opted_in),
        "kubernetes-version",
        warning="unknown",
    ),
    Case(
        "job opted in, native never",
        chain(job, opted_in),
        "runs-to-completion",
        version=(1, 31),
        settings={"sidecar": {"native_sidecar": "never"}},
    ),
    Case(
        "native always, 1.30",
        lambda p: p,
        "initContainers",
        version=(1, 30),
        settings={"sidecar": {"native_sidecar": "always"}},
    ),
    Case(
        "native always, 1.28",
        lambda p: p,
        "kubernetes-version",
        version=(1, 28),
        settings={"sidecar": {"native_sidecar": "always"}},
    ),
    Case(
        "native always, version unknown",
        lambda p: p,
        "initContainers",
        settings={"sidecar": {"native_sidecar": "always"}},
    ),
    Case("observer", annotate({"deucalion.io/observer": "shop_ad.models:Detector"}), "containers"),
    Case(
        "observer not MODULE:CLASS",
        annotate({"deucalion.io/observer": "shop_ad"}),
        "invalid-annotation",
        warning="deucalion.io/observer",
    ),
    Case(
        "observer with a newline",
        annotate({"deucalion.io/observer": "a:B\n"}),
        "invalid-annotation",
    ),
    Case("config map", annotate({"deucalion.io/config": "shop-ad"}), "containers"),
    Case(
        "config map with a newline",
        annotate({"deucalion.io/config": "shop-ad\n"}),
        "invalid-annotation",
        warning="deucalion.io/config",
    ),
    Case(
        "config key with a slash",
        annotate({"deucalion.io/config": "c", "deucalion.io/config-key": "a/b"}),
        "invalid-annotation",
        warning="deucalion.io/config-key",
    ),
    Case(
        "config key alone",
        annotate({"deucalion.io/config-key": "x.yaml"}),
        "containers",
        warning="no effect without",
    ),
    Case("image annotation", annotate({"deucalion.io/image": "ghcr.io/shop/ad:2"}), "containers"),
    Case(
        "image from Docker Hub",
        annotate({"deucalion.io/image": "shop/ad:2"}),
        "containers",
        warning="names no registry",
    ),
    Case(
        "image not a reference",
        annotate({"deucalion.io/image": "shop ad"}),
        "invalid-annotation",
        warning="deucalion.io/image",
    ),
    Case(
        "unknown deucalion annotation",
        annotate({"deucalion.io/obsrver": "a:B"}),
        "containers",
        warning="deucalion.io/obsrver is not one deucalion reads",
    ),
    Case("no image anywhere", lambda p: p, "no-image", settings={"sidecar": {"image": None}}),
]


def _settings(case: Case) -> InjectorSettings:
    sidecar = {"image": IMAGE, **case.settings.get("sidecar", {})}
    return InjectorSettings(**{**case.settings, "sidecar": sidecar})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rules(case: Case) -> None:
    """Each row's pod is injected where the row says, or skipped for the row's reason."""
    pod = case.change(restricted_pod())
    before = copy.deepcopy(pod)
    plan = plan_injection(pod, _settings(case), kubernetes_version=case.version)
    assert pod == before  # a pure function: the pod is not modified
    if case.warning is not None:
        assert any(case.warning in w for w in plan.warnings), plan.warnings
    if case.outcome in SKIP_REASONS:
        assert (plan.patch, plan.reason) == ([], case.outcome), plan.skipped
        assert plan.skipped
        return
    assert plan.reason is None and plan.skipped is None
    out = jsonpatch.apply_patch(pod, plan.patch)
    where = out["spec"][case.outcome]
    assert [c["name"] for c in where].count("deucalion") == 1
    sidecar = next(c for c in where if c["name"] == "deucalion")
    assert ("restartPolicy" in sidecar) == (case.outcome == "initContainers")
    assert out["metadata"]["labels"]["deucalion.io/injected"] == "0.1.0"
    assert schema_problems(as_pod(out["spec"], out["metadata"]), case.versions) == []
    if case.restricted:
        assert restricted_problems(out) == []


def test_warnings_are_short_single_lines() -> None:
    """Every warning fits the API server's 256 characters on one line, even when it quotes a
    long or multi-line annotation value."""
    long_values = [
        annotate({"deucalion.io/observer": "x\n" * 500}),
        label("deucalion.io/inject", "y" * 63),
        annotate({"deucalion.io/config": "Z" * 300}),
    ]
    rows = [(c.change, _settings(c), c.version) for c in CASES]
    rows += [(change, InjectorSettings(sidecar={"image": IMAGE}), None) for change in long_values]
    for change, settings, version in rows:
        plan = plan_injection(change(restricted_pod()), settings, kubernetes_version=version)
        for warning in plan.warnings:
            assert len(warning) <= 256 and warning.isprintable(), warning


def test_every_skip_reason_has_a_row() -> None:
    """The table covers every reason the injector can give."""
    assert {c.outcome for c in CASES} >= set(SKIP_REASONS) - {"not-a-pod"}


def test_skips_that_matter_warn_and_ordinary_ones_do_not() -> None:
    """An opt-out or an already-injected pod gets no warning; a Windows pod does."""
    settings = InjectorSettings(sidecar={"image": IMAGE})
    quiet = restricted_pod(labels={"deucalion.io/inject": "false"})
    assert plan_injection(quiet, settings).warnings == []
    windows = spec(os={"name": "windows"})(restricted_pod())
    [warning] = plan_injection(windows, settings).warnings
    assert warning.startswith("deucalion sidecar not injected: it is a Windows pod")


@pytest.mark.parametrize(
    ("labels", "annotations", "choice", "reason"),
    [
        ({}, {}, "default", None),
        ({"deucalion.io/inject": "true"}, {}, "in", None),
        ({}, {"deucalion.io/inject": "Enabled"}, "in", None),
        ({"deucalion.io/inject": "false"}, {}, "out", "opted-out"),
        ({}, {"deucalion.io/inject": " OFF "}, "out", "opted-out"),
        ({"deucalion.io/inject": "true"}, {"deucalion.io/inject": "0"}, "out", "opted-out"),
        ({"deucalion.io/inject": "sometimes"}, {}, "default", "invalid-annotation"),
    ],
)
def test_one_opt_in_rule_for_labels_and_annotations(
    labels: dict[str, str], annotations: dict[str, str], choice: str, reason: str | None
) -> None:
    """A label or an annotation may opt in or out; false anywhere wins; a typo is refused."""
    pod = {"metadata": {"labels": labels, "annotations": annotations}}
    found, skip = opt_in(pod, "deucalion.io/inject")
    assert found == choice
    assert (skip.reason if skip else None) == reason


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50m", Fraction(1, 20)),
        ("2", Fraction(2)),
        ("1.5", Fraction(3, 2)),
        ("64Mi", Fraction(64 * 2**20)),
        ("1G", Fraction(10**9)),
        ("1e3", Fraction(1000)),
        ("100k", Fraction(100_000)),
        (".5", Fraction(1, 2)),
    ],
)
def test_quantities_are_read_exactly(text: str, value: Fraction) -> None:
    """Kubernetes quantities with SI, binary and exponent suffixes parse to exact numbers."""
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1.2.3", "5 Mi", "10Q", "1Mi\n"])
def test_bad_quantities_are_refused(text: str) -> None:
    """Anything else is a ValueError naming it."""
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)


def test_the_sidecar_alone_meets_restricted_and_both_schemas() -> None:
    """A pod of only the sidecar (every option on) is valid and restricted-compliant."""
    settings = InjectorSettings(sidecar={"image": IMAGE, "extra_env": {"A": "1"}})
    pod = restricted_pod(
        annotations={
            "deucalion.io/config": "c",
            "deucalion.io/observer": "m:C",
            "prometheus.io/scrape": "true",
        }
    )
    out = jsonpatch.apply_patch(pod, plan_injection(pod, settings).patch)
    sidecar = out["spec"]["containers"][-1]
    alone = as_pod({"containers": [sidecar], "volumes": out["spec"]["volumes"][1:]})
    assert schema_problems(alone) == []
    assert restricted_problems(alone) == []


def test_deploy_readme_lists_every_skip_reason() -> None:
    """deploy/README's table of pods left alone has a row for each reason the metric
    deucalion_injector_skipped_pods_total counts (not-a-pod was missing)."""
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "deploy" / "README.md"
    rows = re.findall(r"^\| `([a-z-]+)` \|", readme.read_text(encoding="utf-8"), re.MULTILINE)
    assert set(SKIP_REASONS) <= set(rows), sorted(set(SKIP_REASONS) - set(rows))
