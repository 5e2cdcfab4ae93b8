"""Per-target credentials and TLS in the scraper, seen by loopback servers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from deucalion._http import Credentials
from deucalion.collection.scrape import Scraper
from deucalion.targets import Target

BODY = '# TYPE demo_total counter\ndemo_total{kind="a"} 3\n'


async def _serve(
    seen: list[str | None], ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    async def metrics(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(text=BODY, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


@pytest.fixture
async def plain() -> AsyncIterator[tuple[int, list[str | None]]]:
    """An HTTP target that records the Authorization header of each request."""
    seen: list[str | None] = []
    runner, port = await _serve(seen)
    yield port, seen
    await runner.cleanup()


async def test_basic_auth_header(plain: tuple[int, list[str | None]]) -> None:
    """A target's basic_auth is sent as the Authorization header."""
    port, seen = plain
    async with Scraper(timeout=5, body_size_limit=10**6) as scraper:
        result = await scraper.scrape(
            Target(
                f"http://127.0.0.1:{port}/metrics",
                credentials=Credentials(basic_auth=("alice", "wonder")),
            )
        )
    assert result.up and seen == ["Basic YWxpY2U6d29uZGVy"]


async def test_bearer_token_inline_and_file(
    plain: tuple[int, list[str | None]], tmp_path: Path
) -> None:
    """Inline bearer tokens are sent as is; a token file is re-read on every scrape."""
    port, seen = plain
    token_file = tmp_path / "token"
    token_file.write_text("one\n")
    url = f"http://127.0.0.1:{port}/metrics"
    async with Scraper(timeout=5, body_size_limit=10**6) as scraper:
        from_file = Credentials(bearer_token_file=str(token_file))
        await scraper.scrape(Target(url, credentials=Credentials(bearer_token="inline")))
        await scraper.scrape(Target(url, credentials=from_file))
        token_file.write_text("two")
        await scraper.scrape(Target(url, credentials=from_file))
        gone = Credentials(bearer_token_file=str(tmp_path / "gone"))
        missing = await scraper.scrape(Target(url, credentials=gone))
    assert seen == ["Bearer inline", "Bearer one", "Bearer two"]
    assert not missing.up and "cannot read bearer_token_file" in (missing.error or "")


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    """A throwaway CA."""
    return trustme.CA()


@pytest.fixture
async def tls_target(
    certificate_authority: trustme.CA,
) -> AsyncIterator[tuple[int, list[str | None]]]:
    """An HTTPS target with a certificate for 127.0.0.1 signed by the throwaway CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(context)
    seen: list[str | None] = []
    runner, port = await _serve(seen, context)
    yield port, seen
    await runner.cleanup()


async def test_tls_with_ca_file(
    tls_target: tuple[int, list[str | None]], certificate_authority: trustme.CA, tmp_path: Path
) -> None:
    """With the CA as ca_file the scrape succeeds; with the system CAs it fails verification."""
    port, _ = tls_target
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    url = f"https://127.0.0.1:{port}/metrics"
    async with Scraper(timeout=5, body_size_limit=10**6) as scraper:
        trusted = await scraper.scrape(Target(url, credentials=Credentials(ca_file=str(ca_file))))
        untrusted = await scraper.scrape(Target(url))
        skipped = await scraper.scrape(
            Target(url, credentials=Credentials(insecure_skip_verify=True))
        )
    assert trusted.up and trusted.samples == {"demo_total": {'{kind="a"}': 3.0}}
    assert not untrusted.up and "certificate" in (untrusted.error or "").lower()
    assert skipped.up


async def test_per_target_timeout_is_used() -> None:
    """A target's own timeout is announced to it instead of the scraper's."""
    headers: list[str] = []

    async def record(request: web.Request) -> web.Response:
        headers.append(request.headers["X-Prometheus-Scrape-Timeout-Seconds"])
        return web.Response(text=BODY)

    app = web.Application()
    app.router.add_get("/metrics", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    other = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with Scraper(timeout=5, body_size_limit=10**6) as scraper:
            await scraper.scrape(Target(f"http://127.0.0.1:{other}/metrics", timeout=1.5))
    finally:
        await runner.cleanup()
    assert headers == ["1.5"]
