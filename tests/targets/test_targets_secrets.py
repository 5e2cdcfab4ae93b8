"""A secret in a target URL's query (``?token=``) never shows: not in deucalion's /metrics
labels, not in ``deucalion targets``, not in a recording, not in the logs."""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

import deucalion as dc
from deucalion.cli import main
from deucalion.provisioner import MetricsProvisioner
from tests.helpers import wait_for

SECRET = "s3cr3t-value"


class ScoreObserver(dc.MetricsObserver):
    """Scores every target 0.5 (an anomaly score per target URL)."""

    def __init__(self) -> None:
        super().__init__({"score"})

    def new_data(self, targets_data_dict: dict[str, Any]) -> Any:
        return {url: 0.5 for url in targets_data_dict}


class _Exporter(BaseHTTPRequestHandler):
    """Serves ``score 1`` to a request whose query holds the token, 403 to others."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        body = b"score 1\n" if query.get("token") == [SECRET] else b""
        self.send_response(200 if body else 403)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def exporter() -> Iterator[str]:
    """A loopback exporter that wants a token in the query, in a thread of its own (so that
    the commands, which run their own event loop, can be run as they are); yields its URL,
    token included."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics?token={SECRET}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_metrics_labels_show_the_url_without_its_secret(exporter: str) -> None:
    """deucalion_target_up and deucalion_anomaly_score label the target with token=***."""
    provisioner = MetricsProvisioner(
        scrape_interval=0.2, targets=[exporter], telemetry={"listen": "127.0.0.1:0"}
    )
    provisioner.register(ScoreObserver())
    async with aiohttp.ClientSession() as session, provisioner:
        server = provisioner.telemetry.server
        assert server is not None

        async def page() -> str:
            async with session.get(server.url + "/metrics") as response:
                return await response.text()

        async def scored() -> bool:
            return "deucalion_anomaly_score{" in await page()

        for _ in range(150):
            if await scored():
                break
            await asyncio.sleep(0.1)
        text = await page()
    assert "deucalion_target_up{" in text and "token=***" in text
    assert "deucalion_anomaly_score{" in text
    assert SECRET not in text


def test_targets_command_shows_the_url_without_its_secret(
    exporter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deucalion targets` lists the target (up: the token was sent) as token=***."""
    config = tmp_path / "c.yaml"
    config.write_text(f"targets: ['{exporter}']\n")
    assert main(["targets", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "token=***" in out and " up " in out
    assert SECRET not in out


def test_a_recording_holds_the_url_without_its_secret(exporter: str, tmp_path: Path) -> None:
    """`deucalion record` writes each sample's deucalion_target as token=***; the target's
    labels are recorded, its credentials (a basic_auth password) never."""
    config = tmp_path / "c.yaml"
    password = "pa55-" + SECRET
    config.write_text(
        f"scrape_interval: 200ms\ntargets: [{{targets: ['{exporter}'], labels: {{job: svc}}, "
        f"basic_auth: {{username: who, password: {password}}}}}]\n"
    )
    path = tmp_path / "r.om.gz"
    assert main(["record", "-c", str(config), "-o", str(path), "--all", "--duration", "0.5"]) == 0
    text = gzip.decompress(path.read_bytes()).decode()
    assert 'score{deucalion_target="http://127.0.0.1:' in text and "token=***" in text
    assert 'job="svc"' in text
    assert SECRET not in text and password not in text and "who" not in text


async def test_logs_of_a_down_target_hide_its_secret(caplog: pytest.LogCaptureFixture) -> None:
    """A target that is down is logged as jwt=***, and so is why."""
    url = f"http://127.0.0.1:1/metrics?jwt={SECRET}&passphrase={SECRET}"
    provisioner = MetricsProvisioner(
        scrape_interval=0.2, targets=[url], telemetry={"enabled": False}
    )
    provisioner.register(ScoreObserver())
    with caplog.at_level(logging.INFO, logger="deucalion"):
        async with provisioner:
            await wait_for(lambda: provisioner.stats.cycles >= 1, within=30)
    down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert down and "jwt=***&passphrase=***" in down[0]
    assert all(SECRET not in r.getMessage() for r in caplog.records)
