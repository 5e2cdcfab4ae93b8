"""The webhook over real TLS: AdmissionReviews in, AdmissionReviews with a JSONPatch out."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
from aiohttp import web

from deucalion.errors import ConfigError
from deucalion.injector import webhook
from deucalion.injector.certs import make_certificates, write_certificates
from deucalion.injector.metrics import certificate_not_after
from deucalion.injector.settings import InjectorSettings
from deucalion.injector.webhook import InjectorServer, start_injector
from tests.injector_reviews import admission_review, app_pod, env_of, sidecars
from tests.k8s_checks import as_pod, schema_problems

SIDECAR = {"image": "registry.example/deucalion:0.1.0"}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA made by deucalion's certs module and a certificate for localhost/127.0.0.1."""
    bundle = make_certificates(["localhost"], ip_addresses=["127.0.0.1"])
    return write_certificates(bundle, tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def server(tls_files: dict[str, Path]) -> AsyncIterator[InjectorServer]:
    """The injector on a free loopback port, serving the test certificate from its files."""
    settings = InjectorSettings(
        sidecar=SIDECAR,
        server={"cert_file": str(tls_files["tls.crt"]), "key_file": str(tls_files["tls.key"])},
        alertmanager={"urls": ["http://alertmanager.monitoring.svc:9093"]},
        cluster={"kubernetes_version": "1.31"},
    )
    async with await start_injector(settings, host="127.0.0.1", port=0, metrics_port=0) as running:
        yield running


@pytest.fixture
async def client(tls_files: dict[str, Path]) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTPS client that trusts only the test CA (and verifies the server's name)."""
    context = ssl.create_default_context(cafile=str(tls_files["ca.crt"]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield session


async def post_review(
    client: aiohttp.ClientSession, server: InjectorServer, review: Any
) -> dict[str, Any]:
    """POST a review to /mutate, expect 200, return the AdmissionReview answer."""
    async with client.post(server.url + "/mutate", json=review) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        answer: dict[str, Any] = await response.json()
    return answer


def patched(pod: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The pod with the answer's patch applied, checked against the oldest and newest schemas."""
    out: dict[str, Any] = jsonpatch.apply_patch(pod, decoded_patch(answer))
    assert schema_problems(as_pod(out["spec"], out.get("metadata"))) == []
    return out


def decoded_patch(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSONPatch of an answer, checking the envelope the API server requires."""
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch


async def test_create_pod_review_gets_a_patch_that_injects(
    server: InjectorServer, client: aiohttp.ClientSession
) -> None:
    """A CREATE review of an opted-in pod, over verified HTTPS, gets a patch adding the sidecar."""
    pod = app_pod()
    review = admission_review(pod, uid="b1e7c2a4-1111-4c7e-9a55-3f1d2c9e0a01")
    answer = await post_review(client, server, review)
    assert answer["response"]["uid"] == "b1e7c2a4-1111-4c7e-9a55-3f1d2c9e0a01"
    out = patched(pod, answer)
    [sidecar] = sidecars(out)
    assert env_of(sidecar)["DEUCALION_ALERT_MANAGER_HOST"] == "alertmanager.monitoring.svc"
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert "readinessProbe" not in sidecar
    assert "deucalion-podinfo" in {v["name"] for v in out["spec"]["volumes"]}


async def test_patched_pod_sent_again_is_allowed_without_patch(
    server: InjectorServer, client: aiohttp.ClientSession
) -> None:
    """Idempotence through the webhook: the injected pod gets allowed and no patch."""
    pod = app_pod()
    first = await post_review(client, server, admission_review(pod))
    out = patched(pod, first)
    again = await post_review(client, server, admission_review(out, uid="again"))
    assert again["response"] == {"uid": "again", "allowed": True}


async def test_opted_out_pod_and_other_requests_pass_untouched(
    server: InjectorServer, client: aiohttp.ClientSession
) -> None:
    """inject=false, UPDATE, DELETE (no object) and non-pod kinds: allowed, no patch."""
    reviews = [
        admission_review(app_pod(annotations={"deucalion.io/inject": "false"}), uid="u1"),
        admission_review(app_pod(), operation="UPDATE", uid="u2"),
        admission_review(None, operation="DELETE", uid="u3"),
        admission_review(
            {"kind": "Service", "spec": {}}, kind="Service", resource="services", uid="u4"
        ),
    ]
    for review in reviews:
        answer = await post_review(client, server, review)
        uid = review["request"]["uid"]
        assert answer["response"] == {"uid": uid, "allowed": True}, uid


async def test_pod_without_volumes_annotations_with_init_container(
    server: InjectorServer, client: aiohttp.ClientSession
) -> None:
    """A bare pod with an init container is injected; kubectl is warned there is no target."""
    pod = app_pod()
    del pod["metadata"]["annotations"], pod["spec"]["volumes"]
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    answer = await post_review(client, server, admission_review(pod))
    assert any("prometheus.io/scrape" in w for w in answer["response"]["warnings"])
    out = patched(pod, answer)
    assert [c["name"] for c in out["spec"]["containers"]] == ["shop", "deucalion"]
    assert out["spec"]["initContainers"] == [{"name": "init", "image": "busybox"}]


VALID = admission_review(app_pod(), uid="x")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (json.dumps({**VALID, "kind": "Pod"}).encode(), "kind"),
        (json.dumps({**VALID, "apiVersion": "admission.k8s.io/v1beta1"}).encode(), "apiVersion"),
        (json.dumps({k: v for k, v in VALID.items() if k != "request"}).encode(), "request"),
        (
            json.dumps(
                {**VALID, "request": {k: v for k, v in VALID["request"].items() if k != "uid"}}
            ).encode(),
            "request.uid",
        ),
        (
            json.dumps({**VALID, "request": {**VALID["request"], "operation": "EXPLODE"}}).encode(),
            "request.operation",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            json.dumps({**VALID, "request": {**VALID["request"], "object": "NESTED"}})
            .replace('"NESTED"', '{"a": ' * 5_000 + "1" + "}" * 5_000)
            .encode(),
            "nested too deeply",
        ),
    ],
    ids=[
        "not-json",
        "array",
        "wrong-kind",
        "v1beta1",
        "no-request",
        "no-uid",
        "bad-operation",
        "nested-array",
        "nested-pod",
    ],
)
async def test_malformed_bodies_get_400_with_the_reason(
    server: InjectorServer, client: aiohttp.ClientSession, body: bytes, reason: str
) -> None:
    """A body that is not a valid v1 AdmissionReview gets 400 naming what is wrong."""
    async with client.post(
        server.url + "/mutate", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        assert reason in await response.text()
    # ...and the server goes on serving.
    async with client.get(server.url + "/healthz") as response:
        assert response.status == 200


async def test_a_bug_in_planning_lets_the_pod_pass(
    server: InjectorServer, client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while planning is answered allowed, no patch, with a warning."""

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(webhook, "plan_injection", broken)
    answer = await post_review(client, server, admission_review(app_pod(), uid="bug"))
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    assert answer["response"]["warnings"]


async def test_healthz_and_tls_is_real(
    server: InjectorServer, client: aiohttp.ClientSession
) -> None:
    """/healthz answers over HTTPS; a client that does not trust the test CA is refused."""
    assert server.url.startswith("https://127.0.0.1:")
    async with client.get(server.url + "/healthz") as response:
        assert response.status == 200 and (await response.text()).strip() == "ok"
    async with aiohttp.ClientSession() as untrusting:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await untrusting.get(server.url + "/healthz")


async def test_close_is_idempotent_and_releases_the_port(tls_files: dict[str, Path]) -> None:
    """close() twice is harmless, and after it the port no longer accepts connections."""
    settings = InjectorSettings(
        sidecar=SIDECAR,
        server={"cert_file": str(tls_files["tls.crt"]), "key_file": str(tls_files["tls.key"])},
    )
    server = await start_injector(settings, host="127.0.0.1", port=0, metrics_port=0)
    await server.close()
    await server.close()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(server.url.replace("https", "http") + "/healthz")


async def test_missing_certificate_fails_to_start(tmp_path: Path) -> None:
    """Starting without the certificate files raises OSError instead of serving plain HTTP."""
    settings = InjectorSettings(
        sidecar=SIDECAR,
        server={"cert_file": str(tmp_path / "no.crt"), "key_file": str(tmp_path / "no.key")},
    )
    with pytest.raises(OSError):
        await start_injector(settings, host="127.0.0.1", port=0, metrics_port=0)


async def test_renewed_certificate_is_served_without_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the certificate files change (cert-manager renewal), new connections get the new one."""
    monkeypatch.setattr(webhook, "CERT_RELOAD_SECONDS", 0.05)
    old = write_certificates(make_certificates(["localhost"]), tmp_path / "live")
    new = write_certificates(make_certificates(["localhost"]), tmp_path / "renewed")
    settings = InjectorSettings(
        sidecar=SIDECAR, server={"cert_file": str(old["tls.crt"]), "key_file": str(old["tls.key"])}
    )
    trusts_new = ssl.create_default_context(cafile=str(new["ca.crt"]))
    async with await start_injector(settings, host="127.0.0.1", port=0, metrics_port=0) as server:
        url = server.url.replace("127.0.0.1", "localhost") + "/healthz"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusts_new)) as s:
            for _ in range(20):
                try:
                    await s.get(url)
                except aiohttp.ClientConnectorCertificateError:
                    break  # the old certificate, which the client does not trust
                except aiohttp.ClientConnectorError:
                    # A handshake cut short on a loaded machine (a CI run saw the server's
                    # reset): not what this test is about; try again.
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the old certificate was never refused")
            old["tls.crt"].write_bytes(new["tls.crt"].read_bytes())
            old["tls.key"].write_bytes(new["tls.key"].read_bytes())
            for _ in range(200):  # the reload happens within a few polls; bounded, not timed
                try:
                    async with s.get(url, headers={"Connection": "close"}) as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectorError:  # the old one still, or a reset
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the renewed certificate was never served")
        # The expiry metric follows the certificate being served.
        for _ in range(200):
            expiry = server.metrics.certificate_expiry._value.get()
            if expiry == certificate_not_after(new["tls.crt"]):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the expiry metric still shows the old certificate")


async def _metrics_text(server: InjectorServer) -> str:
    assert server.metrics_url is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.metrics_url + "/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def test_metrics_show_a_skipped_windows_pod(
    client: aiohttp.ClientSession, server: InjectorServer
) -> None:
    """A Windows pod is allowed unchanged with a warning, and /metrics counts it by reason."""
    pod = app_pod()
    pod["spec"]["os"] = {"name": "windows"}
    answer = await post_review(client, server, admission_review(pod))
    response = answer["response"]
    assert response["allowed"] is True and "patch" not in response
    assert any("Windows" in w for w in response["warnings"])
    await post_review(client, server, admission_review(app_pod()))
    text = await _metrics_text(server)
    assert _sample(text, "deucalion_injector_skipped_pods_total", reason="windows") == 1
    assert _sample(text, "deucalion_injector_admission_requests_total", result="skipped") == 1
    assert _sample(text, "deucalion_injector_admission_requests_total", result="injected") == 1
    assert _sample(text, "deucalion_injector_patch_seconds_count") == 2
    assert _sample(text, "deucalion_injector_certificate_expiry_timestamp_seconds") > 0


async def test_a_skip_is_logged_with_its_reason(
    client: aiohttp.ClientSession, server: InjectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every skip but an opt-out leaves an INFO line naming the pod and the reason."""
    pod = app_pod(annotations={"deucalion.io/observer": "not an observer"})
    with caplog.at_level("INFO", logger="deucalion.injector"):
        answer = await post_review(client, server, admission_review(pod))
    assert any("deucalion.io/observer" in w for w in answer["response"]["warnings"])
    assert "[invalid-annotation]" in caplog.text and "shop/shop-7d9c5b6f4-*" in caplog.text


async def test_without_an_image_the_injector_refuses_to_start(tls_files: dict[str, Path]) -> None:
    """No sidecar.image: start_injector raises ConfigError naming the variable to set."""
    settings = InjectorSettings(
        server={"cert_file": str(tls_files["tls.crt"]), "key_file": str(tls_files["tls.key"])}
    )
    with pytest.raises(ConfigError, match="DEUCALION_INJECTOR_SIDECAR__IMAGE"):
        await start_injector(settings, host="127.0.0.1", port=0, metrics_port=0)


async def test_the_cluster_version_is_learned_from_the_api_server(
    tls_files: dict[str, Path], client: aiohttp.ClientSession
) -> None:
    """Unset, the version comes from the API server's /version; until then an opted-in Job is
    skipped, after it gets a native sidecar."""
    api = web.Application()
    served = asyncio.Event()

    async def version(request: web.Request) -> web.Response:
        await served.wait()
        return web.json_response({"major": "1", "minor": "30+", "gitVersion": "v1.30.4-gke.1"})

    api.router.add_get("/version", version)
    runner = web.AppRunner(api)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    settings = InjectorSettings(
        sidecar=SIDECAR,
        server={"cert_file": str(tls_files["tls.crt"]), "key_file": str(tls_files["tls.key"])},
    )
    job = app_pod(labels={"deucalion.io/inject": "true"})
    job["spec"]["restartPolicy"] = "Never"
    try:
        async with await start_injector(
            settings, host="127.0.0.1", port=0, metrics_port=0, kubernetes_api_url=api_url
        ) as server:
            before = await post_review(client, server, admission_review(job))
            assert "patch" not in before["response"]
            assert any("version is unknown" in w for w in before["response"]["warnings"])
            served.set()
            for _ in range(200):  # bounded polling, not a timing assertion
                if server.cluster.kubernetes_version is not None:
                    break
                await asyncio.sleep(0.02)
            assert server.cluster.kubernetes_version == (1, 30)
            after = await post_review(client, server, admission_review(job))
            out = patched(job, after)
            assert out["spec"]["initContainers"][0]["restartPolicy"] == "Always"
            text = await _metrics_text(server)
            assert _sample(text, "deucalion_injector_kubernetes_version_info", version="1.30") == 1
    finally:
        await runner.cleanup()
