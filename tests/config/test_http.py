"""The shared HTTP plumbing: one rule for credentials, TLS and redaction, whoever uses it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from deucalion._http import (
    APIClient,
    Credentials,
    HTTPError,
    http_url_problems,
    redact_url,
    split_comma_list,
    split_credentials,
)
from deucalion.config.loading import (
    AlertmanagerSettings,
    KubernetesSettings,
    PrometheusSettings,
    load_settings,
)
from deucalion.errors import ConfigError, CredentialsError
from deucalion.targets.prometheus import PrometheusTargets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:s3cr3t@h:9093/x", "http://u:***@h:9093/x"),
        ("u:s3cr3t@h:9093", "u:***@h:9093"),
        ("http://h/api?token=s3cr3t&limit=5", "http://h/api?token=***&limit=5"),
        ("http://h/?access_token=s3cr3t#top", "http://h/?access_token=***#top"),
        ("http://h/?api_key=s3cr3t;x=1", "http://h/?api_key=***;x=1"),
        ("http://h/?X-Amz-Signature=s3cr3t", "http://h/?X-Amz-Signature=***"),
        ("http://h/?passphrase=s3cr3t&jwt=s3cr3t", "http://h/?passphrase=***&jwt=***"),
        ("http://h/?authorization=Bearer%20s3cr3t", "http://h/?authorization=***"),
        ("http://h/?design=ok&monkey=ok", "http://h/?design=ok&monkey=ok"),
        ("http://[::1:9093", "http://[::1:9093"),
    ],
)
def test_redact_url_hides_passwords_and_secret_parameters(url: str, shown: str) -> None:
    """A password and secret query parameters show as ***; other parameters stay readable."""
    assert redact_url(url) == shown


def test_redact_text_hides_the_passwords_of_the_urls_it_quotes() -> None:
    """A series key quoted in a log names its target's URL: its password shows as *** as its
    secret parameters do (the detectors' warning of a late value showed it); an e-mail address
    and a URL without a password stay as they are."""
    from deucalion._redact import redact_text

    key = "('https://user:hunter2@host:9100/metrics?token=S', 'cpu', '{}')"
    assert redact_text(key) == "('https://user:***@host:9100/metrics?token=***', 'cpu', '{}')"
    assert redact_text("ops@example.com at ftp://x@y/") == "ops@example.com at ftp://x@y/"
    assert redact_text("http://u:p@ss@h/x") == "http://u:***@h/x"  # a raw @ in the password


@pytest.mark.parametrize(
    ("url", "problems"),
    [
        ("http://am:9093", set()),
        ("https://u:p@am:9093/x", {"credentials"}),
        ("am:9093", {"schemeless", "scheme"}),
        ("//am:9093", {"schemeless", "scheme"}),
        ("ftp://am:9093", {"scheme"}),
        ("http://am:99999", {"port"}),
    ],
)
def test_http_url_problems_tells_a_missing_scheme_from_a_wrong_one(
    url: str, problems: set[str]
) -> None:
    """The one URL check names each problem, a URL with no scheme:// apart from a wrong one."""
    assert http_url_problems(url) == problems


def test_split_credentials_decodes_and_keeps_the_host_as_written() -> None:
    """user:pass@ comes out percent-decoded; an IPv6 host keeps its brackets."""
    assert split_credentials("http://u:p%40ss@[::1]:9/p") == ("http://[::1]:9/p", ("u", "p@ss"))
    assert split_credentials("http://h:9/p") == ("http://h:9/p", None)


def test_split_comma_list() -> None:
    """A comma-separated string is its stripped, non-empty items; a list passes unchanged."""
    assert split_comma_list(" a, b,,c ") == ["a", "b", "c"]
    assert split_comma_list(["a,b"]) == ["a,b"]


def test_an_unreadable_token_file_is_one_error_for_every_client(tmp_path: Path) -> None:
    """Targets, Prometheus and Alertmanager raise the same CredentialsError, naming the key."""
    gone = tmp_path / "gone"
    options = [
        load_settings(
            {"targets": [{"url": "a:1", "bearer_token_file": str(gone)}]},
            environ={},
            default_file=None,
        ).targets[0],
        PrometheusSettings(url="http://p:9090", bearer_token_file=str(gone)),
        KubernetesSettings(bearer_token_file=str(gone)),
        AlertmanagerSettings(bearer_token_file=gone),
    ]
    keys = []
    for option in options:
        with pytest.raises(CredentialsError) as error:
            option.credentials().headers()
        assert str(gone) in str(error.value) and isinstance(error.value, ConfigError)
        keys.append(str(error.value).split(" ")[2])
    assert keys == ["bearer_token_file"] * 3 + ["alertmanager.bearer_token_file"]


def test_insecure_means_tls_without_verification_everywhere() -> None:
    """insecure_skip_verify is one context, certificates unchecked, for targets and Alertmanager."""
    target = PrometheusSettings(url="https://p", tls_config={"insecure_skip_verify": True})
    alerts = AlertmanagerSettings(tls_insecure_skip_verify=True)
    for credentials in (target.credentials(), alerts.credentials()):
        context = credentials.ssl()
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert Credentials().ssl() is True


def test_an_unusable_ca_file_names_the_setting(tmp_path: Path) -> None:
    """A CA file that cannot be loaded is a CredentialsError naming the setting and the file."""
    with pytest.raises(CredentialsError, match=r"tls_config\.ca_file .*missing\.pem"):
        Credentials(ca_file=str(tmp_path / "missing.pem")).ssl()


def test_secrets_stay_out_of_the_repr() -> None:
    """Passwords and tokens are not in a Credentials' repr."""
    text = repr(Credentials(basic_auth=("u", "s3cr3t")))
    assert "s3cr3t" not in text and "s3cr3t" not in repr(Credentials(bearer_token="s3cr3t"))


def test_alertmanager_credentials_given_twice_are_refused() -> None:
    """user:pass@ in an Alertmanager URL and a bearer token too: refused, without the secrets."""
    with pytest.raises(ConfigError, match="give the credentials one way") as error:
        load_settings(
            environ={},
            default_file=None,
            alertmanager={"urls": ["http://u:s3cr3t@am:9093"], "bearer_token": SecretStr("t0ken")},
        )
    assert "s3cr3t" not in str(error.value) and "t0ken" not in str(error.value)


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A loopback JSON API that records every request."""
    seen: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        if request.path == "/big":
            return web.Response(body=b"x" * 2000)
        if request.path == "/denied":
            return web.Response(status=403)
        return web.json_response({"status": "success", "data": {"activeTargets": []}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_api_client_sends_credentials_and_reports_status(
    api: tuple[str, list[web.Request]],
) -> None:
    """The URL's login goes as basic auth; a 403 and too large a body are HTTPErrors."""
    url, seen = api
    login_url = url.replace("http://", "http://fed:s3cr3t@")
    async with APIClient(login_url, timeout=5, body_size_limit=1000) as client:
        assert "s3cr3t" not in client.name and "s3cr3t" not in client.base_url
        assert (await client.get_json("/ok"))["status"] == "success"
        with pytest.raises(HTTPError) as denied:
            await client.get_json("/denied")
        with pytest.raises(HTTPError, match="body_size_limit"):
            await client.get("/big")
    assert denied.value.status == 403
    assert seen[0].headers["Authorization"] == "Basic ZmVkOnMzY3IzdA=="
    assert seen[0].headers["Accept"] == "application/json"


async def test_target_listing_is_a_json_request_not_a_scrape(
    api: tuple[str, list[web.Request]],
) -> None:
    """/api/v1/targets is asked for JSON, with no OpenMetrics Accept or scrape timeout header."""
    url, seen = api
    provider = PrometheusTargets(PrometheusSettings(url=url), body_size_limit=10**6)
    try:
        assert await provider.discover() == [] and provider.last_error is None
    finally:
        await provider.close()
    (request,) = seen
    assert request.path == "/api/v1/targets"
    assert request.headers["Accept"] == "application/json"
    assert "X-Prometheus-Scrape-Timeout-Seconds" not in request.headers


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_refused_connection_is_said_in_the_systems_words(scheme: str) -> None:
    """aiohttp's text, "Cannot connect to host h:p ssl:default [Connect call failed ('h',
    p)]", named TLS on a plain http:// URL, where none was tried; "Connection refused" is the
    words a user knows. Every client (scrapes, Alertmanager, Prometheus) words it so."""
    import socket

    import aiohttp

    from deucalion._http import error_text

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"{scheme}://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(url)
    tls = " ssl:default" if scheme == "https" else ""
    assert error_text(caught.value, url) == (
        f"ClientConnectorError: Cannot connect to host 127.0.0.1:{port}{tls} [Connection refused]"
    )
    client = APIClient(f"{scheme}://127.0.0.1:{port}", timeout=5)
    try:
        with pytest.raises(HTTPError, match=r"\[Connection refused\]$"):
            await client.get("/api/v1/targets")
    finally:
        await client.close()


async def test_https_to_a_plain_http_port_keeps_tls_s_own_words() -> None:
    """https:// to a server speaking plain http fails in TLS: its words ("wrong version
    number") say so; rewritten as a refused connection's, its errno read "[Operation not
    permitted]", which sends a user chasing permissions."""
    import asyncio

    import aiohttp

    from deucalion._http import error_text

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await session.get(url)
    finally:
        server.close()
        await server.wait_closed()
    text = error_text(caught.value, url)
    assert "Operation not permitted" not in text, text
    assert "SSL" in text or "ssl" in text, text
