"""`deucalion inject -f` and `deucalion injector certs`, through argparse as the CLI runs them."""

from __future__ import annotations

import argparse
import base64
import io
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from deucalion.injector import cli
from tests.injector_reviews import sidecars
from tests.k8s_checks import schema_problems

MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata:
      labels: {app: shop}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "8080"}
    spec:
      containers: [{name: shop, image: "example/shop:1"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "example/db:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    spec:
      initContainers: [{name: setup, image: busybox}]
      containers: [{name: agent, image: "example/agent:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    metadata: {labels: {deucalion.io/inject: "false"}}
    spec:
      restartPolicy: Never
      containers: [{name: once, image: "example/once:1"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {deucalion.io/inject: "true"}}
        spec:
          restartPolicy: OnFailure
          containers: [{name: nightly, image: "example/nightly:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: lone, annotations: {deucalion.io/image: "me/ad:2"}}
spec:
  containers: [{name: lone, image: "example/lone:1"}]
---
"""


def run(argv: list[str]) -> int:
    """Parse ``argv`` with a parser that has only add_commands, as the main CLI will have."""
    parser = argparse.ArgumentParser(prog="deucalion")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def by_kind(text: str) -> dict[str, dict[str, Any]]:
    """The objects of a multi-document YAML, keyed by kind."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text) if doc}


def test_inject_file_injects_each_workload_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every workload kind is injected at its own template path; the Service is untouched."""
    path = tmp_path / "app.yaml"
    path.write_text(MANIFEST)
    assert (
        run(
            [
                "inject",
                "-f",
                str(path),
                "--image",
                "reg.example/deucalion:3",
                "--kubernetes-version",
                "1.30",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    out = by_kind(captured.out)
    original = by_kind(MANIFEST)
    assert out["Service"] == original["Service"]
    for obj in out.values():
        assert schema_problems(obj) == [], obj["kind"]
    templates = {
        "Deployment": out["Deployment"]["spec"]["template"],
        "StatefulSet": out["StatefulSet"]["spec"]["template"],
        "DaemonSet": out["DaemonSet"]["spec"]["template"],
        "CronJob": out["CronJob"]["spec"]["jobTemplate"]["spec"]["template"],
        "Pod": out["Pod"],
    }
    for kind, template in templates.items():
        # The CronJob's pods run to completion, so theirs is a native sidecar (init container).
        where = "initContainers" if kind == "CronJob" else "containers"
        assert [c["name"] for c in template["spec"][where]].count("deucalion") == 1, kind
        assert template["metadata"]["annotations"]["deucalion.io/status"] == "injected", kind
        assert "deucalion-podinfo" in {v["name"] for v in template["spec"]["volumes"]}, kind
    assert sidecars(templates["Deployment"])[0]["image"] == "reg.example/deucalion:3"
    assert sidecars(templates["Pod"])[0]["image"] == "me/ad:2"
    assert templates["DaemonSet"]["spec"]["initContainers"] == [
        {"name": "setup", "image": "busybox"}
    ]
    assert out["Job"] == original["Job"]  # labelled deucalion.io/inject: "false"
    assert "Job once: unchanged (opted out by its label deucalion.io/inject" in captured.err
    assert "Service shop: unchanged (not a workload)" in captured.err
    assert "CronJob nightly: injected" in captured.err


def test_inject_reads_stdin_and_is_idempotent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-f -` reads stdin; injecting the output again changes nothing."""
    monkeypatch.setattr("sys.stdin", io.StringIO(MANIFEST))
    assert run(["inject", "-f", "-", "-q", "--image", "reg.example/deucalion:3"]) == 0
    first = capsys.readouterr()
    assert first.err == ""
    monkeypatch.setattr("sys.stdin", io.StringIO(first.out))
    assert run(["inject", "-f", "-", "--image", "reg.example/deucalion:3"]) == 0
    second = capsys.readouterr()
    assert list(yaml.safe_load_all(second.out)) == list(yaml.safe_load_all(first.out))
    assert "already injected" in second.err


def test_inject_list_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A `kind: List` (as `kubectl get -o yaml` prints) has its items injected."""
    items = [doc for doc in yaml.safe_load_all(MANIFEST) if doc]
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    assert (
        run(
            [
                "inject",
                "-f",
                str(path),
                "-o",
                str(tmp_path / "out.yaml"),
                "--image",
                "reg.example/deucalion:3",
            ]
        )
        == 0
    )
    out = yaml.safe_load((tmp_path / "out.yaml").read_text())
    kinds = {item["kind"]: item for item in out["items"]}
    assert len(sidecars(kinds["Deployment"]["spec"]["template"])) == 1
    assert "Deployment shop: injected" in capsys.readouterr().err


def test_inject_without_a_cluster_version_leaves_jobs_alone_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, the cluster's version is unknown: an opted-in CronJob gets no native sidecar
    (the API server before 1.29 would reject it) and the report names the flag to set."""
    path = tmp_path / "app.yaml"
    path.write_text(MANIFEST)
    assert run(["inject", "-f", str(path), "--image", "reg.example/deucalion:3"]) == 0
    captured = capsys.readouterr()
    assert by_kind(captured.out)["CronJob"] == by_kind(MANIFEST)["CronJob"]
    assert "CronJob nightly: unchanged" in captured.err
    assert "--kubernetes-version" in captured.err


@pytest.mark.parametrize("output", [None, "out.yaml"])
def test_inject_without_an_image_fails_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    output: str | None,
) -> None:
    """Without --image (or its variable) the workloads with no deucalion.io/image annotation
    cannot be injected: exit 1 naming them and what to pass, and no manifest is written (an
    unchanged one piped into kubectl apply would look like success)."""
    monkeypatch.delenv("DEUCALION_INJECTOR_SIDECAR__IMAGE", raising=False)
    path = tmp_path / "app.yaml"
    path.write_text(MANIFEST)
    argv = ["inject", "-f", str(path), "--kubernetes-version", "1.30"]
    if output:
        argv += ["-o", str(tmp_path / output)]
    assert run(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert not (tmp_path / "out.yaml").exists()
    [line] = captured.err.splitlines()
    assert f"{path}: no sidecar image for Deployment shop, StatefulSet db," in line
    assert "Pod lone" not in line  # its annotation names an image
    assert "Job once" not in line  # opted out
    assert "--image REGISTRY/deucalion:VERSION" in line
    assert "DEUCALION_INJECTOR_SIDECAR__IMAGE" in line and "deucalion.io/image" in line


def test_an_image_without_a_registry_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--image deucalion:latest would be pulled from Docker Hub: refused, saying what to set."""
    assert run(["inject", "-f", "-", "--image", "deucalion:latest"]) == 2
    err = capsys.readouterr().err
    assert "names no registry" in err and "DEUCALION_INJECTOR_SIDECAR__IMAGE" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: [unclosed\n", "not valid YAML"), ("- just\n- a list\n", "not a Kubernetes object")],
)
def test_inject_bad_manifest_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    """Broken YAML or a document that is not an object: exit 1, the file named, nothing printed."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert run(["inject", "-f", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and str(path) in captured.err


def test_inject_missing_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A manifest that does not exist is reported, not a traceback."""
    assert run(["inject", "-f", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_injector_defaults_to_serve_and_has_certs() -> None:
    """`injector` alone and `injector serve` run the server; `injector certs` makes certificates."""
    parser = argparse.ArgumentParser(prog="deucalion")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    assert parser.parse_args(["injector"]).func is cli.serve_command
    args = parser.parse_args(["injector", "--cert", "c", "serve", "--key", "k"])
    assert args.func is cli.serve_command and (args.cert, args.key) == ("c", "k")
    assert parser.parse_args(["injector", "certs"]).func is cli.certs_command
    assert parser.parse_args(["inject", "-f", "x"]).func is cli.inject_command


def test_bad_settings_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid Alertmanager URL is a usage error (2) with the reason."""
    assert run(["inject", "-f", "-", "--alertmanager-url", "not-a-url"]) == 2
    assert "not-a-url" in capsys.readouterr().err


def test_certs_writes_files_and_prints_the_ca_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """certs writes CA and serving pair for the Service's DNS names and prints the caBundle."""
    out_dir = tmp_path / "certs"
    assert run(["injector", "certs", "--namespace", "ad", "--out-dir", str(out_dir)]) == 0
    ca_bundle = capsys.readouterr().out.strip()
    assert base64.b64decode(ca_bundle) == (out_dir / "ca.crt").read_bytes()
    for key in ("ca.key", "tls.key"):
        assert stat.S_IMODE((out_dir / key).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((out_dir / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "deucalion-injector.ad.svc" in names.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate((out_dir / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)


def test_bad_settings_flag_hides_a_password(capsys: pytest.CaptureFixture[str]) -> None:
    """The reason an Alertmanager URL is refused shows its password as ***."""
    assert run(["inject", "-f", "-", "--alertmanager-url", "ftp://deucalion:s3cr3t@am:9093"]) == 2
    err = capsys.readouterr().err
    assert "'ftp://deucalion:***@am:9093' is not" in err and "s3cr3t" not in err


def test_inject_bad_manifest_is_not_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Broken YAML is reported by line, column and problem, not by its line: that may hold a
    password."""
    path = tmp_path / "bad.yaml"
    path.write_text("env: [{name: AM, value: 'http://deucalion:s3cr3t@am:9093'}\n")
    assert run(["inject", "-f", str(path)]) == 1
    err = capsys.readouterr().err
    assert "s3cr3t" not in err and "not valid YAML: " in err and "at line 2, column 1" in err


def test_injector_settings_errors_name_the_variable_that_set_them() -> None:
    """The injector's settings load as the sidecar's do: an error names the key and source."""
    from deucalion.errors import ConfigError
    from deucalion.injector.settings import InjectorSettings

    with pytest.raises(
        ConfigError,
        match=r"environment variable "
        r"DEUCALION_INJECTOR_SIDECAR__TELEMETRY_PORT: sidecar\.telemetry_port",
    ):
        InjectorSettings.load(environ={"DEUCALION_INJECTOR_SIDECAR__TELEMETRY_PORT": "0"})
    with pytest.raises(ConfigError, match=r"flags: unknown key 'sidecar.imag'; did you mean"):
        InjectorSettings.load(environ={}, sidecar={"imag": "x"})


def test_the_injector_hands_sidecars_the_sidecars_own_alertmanager_settings() -> None:
    """One AlertmanagerSettings: the injector's section is the sidecar's model, comma lists
    included; a field the sidecars would not get is refused, naming it."""
    from deucalion.config.settings import AlertmanagerSettings
    from deucalion.errors import ConfigError
    from deucalion.injector.settings import InjectorSettings

    settings = InjectorSettings.load(
        environ={"DEUCALION_INJECTOR_ALERTMANAGER__URLS": "http://a:9093, http://b:9093"}
    )
    assert type(settings.alertmanager) is AlertmanagerSettings
    assert settings.alertmanager.urls == ["http://a:9093", "http://b:9093"]
    with pytest.raises(ConfigError, match=r"alertmanager\.queue_size: the injector hands"):
        InjectorSettings.load(environ={}, alertmanager={"queue_size": 5})


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("am.monitoring.svc:9093", "has no scheme; the injector writes it into every sidecar"),
        ("ftp://am:9093", "is not an Alertmanager URL: write http(s)://host:port"),
        ("http://am:99999", "has an invalid port"),
    ],
)
def test_a_bad_alertmanager_url_is_refused_naming_the_setting_and_the_fix(
    url: str, said: str
) -> None:
    """The injector checks its Alertmanager URLs with deucalion's one URL check; a URL without
    a scheme (which it would write into every sidecar as it is) is refused too, naming the
    setting, its variable and what to write; a password is never shown."""
    from deucalion.errors import ConfigError
    from deucalion.injector.settings import InjectorSettings

    with pytest.raises(ConfigError) as info:
        InjectorSettings.load(environ={"DEUCALION_INJECTOR_ALERTMANAGER__URLS": url})
    message = str(info.value)
    assert said in message and "DEUCALION_INJECTOR_ALERTMANAGER" in message
    assert "alertmanager.urls" in message
    with pytest.raises(ConfigError) as info:
        InjectorSettings.load(environ={}, alertmanager={"urls": [f"alice:s3cr3t@{url}"]})
    assert "s3cr3t" not in str(info.value)


def test_serve_without_an_image_refuses_to_start_and_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deucalion injector serve` with no sidecar image exits 2 naming the variable to set."""
    monkeypatch.delenv("DEUCALION_INJECTOR_SIDECAR__IMAGE", raising=False)
    assert run(["injector", "serve", "--listen", "127.0.0.1:0", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert "DEUCALION_INJECTOR_SIDECAR__IMAGE" in err and "registry-qualified" in err


def test_inject_with_a_misspelt_preset_fails_names_the_pod_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pod that opted in with `deucalion.io/preset: node_exporter` was printed back unchanged
    with exit 0 and a line on stderr, so `inject -f ... | kubectl apply -f -` deployed it
    without the sidecar it asked for: exit 1, naming the pod and the preset it meant."""
    path = tmp_path / "pod.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n"
        '    deucalion.io/inject: "true"\n    deucalion.io/preset: node_exporter\n'
        "spec:\n  containers:\n  - name: web\n    image: nginx\n"
    )
    out = tmp_path / "out.yaml"
    argv = ["inject", "-f", str(path), "--image", "reg.example/deucalion:3", "-o", str(out)]
    assert run(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    [line] = captured.err.splitlines()
    assert "Pod web" in line and "deucalion.io/preset" in line
    assert "did you mean 'node-exporter'" in line and "nothing was written" in line
