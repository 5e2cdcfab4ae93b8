"""Delivering alerts to Alertmanager: queue, batches, retries, auth (alerting.alertmanager)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from pydantic import SecretStr
from yarl import URL

from deucalion.alerting.alertmanager import AlertmanagerClient, AlertSender
from deucalion.alerting.alerts import Alert, label_result
from deucalion.alerting.lifecycle import rfc3339
from deucalion.config.loading import AlertmanagerSettings, load_settings
from deucalion.errors import ConfigError, DeucalionError
from deucalion.targets import Target
from tests.helpers import wait_for

AM = "http://am.example:9093"
POST = ("POST", URL(f"{AM}/api/v2/alerts"))


def payload(n: int) -> dict[str, Any]:
    return {
        "labels": {"alertname": "A", "n": str(n)},
        "annotations": {},
        "startsAt": rfc3339(0),
        "endsAt": rfc3339(60),
    }


def sent(m: aioresponses) -> list[list[dict[str, Any]]]:
    return [call.kwargs["json"] for call in m.requests.get(POST, [])]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session closed after the test."""
    async with aiohttp.ClientSession() as s:
        yield s


def client(session: aiohttp.ClientSession, **kwargs: Any) -> AlertmanagerClient:
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("backoff_max", 0.01)
    return AlertmanagerClient(AM, session, **kwargs)


# --- delivery --------------------------------------------------------------------------------


async def test_alerts_are_batched_at_most_256_a_request(session: aiohttp.ClientSession) -> None:
    """600 queued alerts go out in requests of at most 256."""
    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", status=200, repeat=True)
        c = client(session)
        c.enqueue(payload(i) for i in range(600))
        c.start()
        await c.close(grace=10)
        sizes = [len(batch) for batch in sent(m)]
    assert sizes == [256, 256, 88]
    assert c.stats.sent == 600 and c.queued == 0


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "body": "overloaded"},
        {"exception": aiohttp.ClientConnectionError("refused")},
        {"timeout": True},
    ],
    ids=["5xx", "connection-error", "timeout"],
)
async def test_failures_are_retried_until_they_succeed(
    session: aiohttp.ClientSession, failure: dict[str, Any]
) -> None:
    """5xx, connection errors and timeouts are retried with backoff until accepted."""
    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", **failure)
        m.post(f"{AM}/api/v2/alerts", **failure)
        m.post(f"{AM}/api/v2/alerts", status=200)
        c = client(session)
        c.start()
        c.enqueue([payload(1)])
        await c.close(grace=10)
        assert len(sent(m)) == 3
    assert c.stats.sent == 1 and c.stats.failed == 2


async def test_a_hanging_alertmanager_is_cut_off_and_retried(
    session: aiohttp.ClientSession,
) -> None:
    """A response that never comes ends at the timeout and is retried."""
    calls = 0

    async def hang_once(url: URL, **kwargs: Any) -> CallbackResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(3600)
        return CallbackResult(status=200)

    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", callback=hang_once, repeat=True)
        c = client(session, timeout=0.05)
        c.start()
        c.enqueue([payload(1)])
        await c.close(grace=10)
    assert calls == 2 and c.stats.sent == 1 and c.stats.failed == 1


async def test_4xx_is_logged_with_the_body_and_not_retried(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A 4xx answer is logged with Alertmanager's message and the batch is not sent again."""
    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", status=400, body="invalid label set", repeat=True)
        c = client(session)
        c.start()
        c.enqueue([payload(1)])
        await c.close(grace=10)
        assert len(sent(m)) == 1
    assert c.stats.rejected == 1 and c.queued == 0
    assert "invalid label set" in caplog.text


async def test_a_batch_refused_for_one_bad_alert_is_split_to_lose_only_that_one(
    session: aiohttp.ClientSession,
) -> None:
    """HTTP 400 for a batch: its halves are sent again until the bad alert stands alone."""

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        bad = any(p["labels"]["n"] == "5" for p in kwargs["json"])
        return CallbackResult(status=400 if bad else 200, body="bad alert" if bad else "")

    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", callback=answer, repeat=True)
        c = client(session)
        c.enqueue(payload(i) for i in range(8))
        c.start()
        await c.close(grace=10)
    assert c.stats.sent == 7 and c.stats.rejected == 1 and c.queued == 0


async def test_full_queue_drops_the_oldest_and_counts(session: aiohttp.ClientSession) -> None:
    """Past queue_size the oldest alerts are dropped and counted; a re-send replaces in place."""
    c = client(session, queue_size=3)
    c.enqueue(payload(i) for i in range(3))
    c.enqueue([payload(1)])  # a newer version of a queued alert takes no more room
    assert c.stats.dropped == 0
    c.enqueue([payload(7), payload(8)])
    assert c.stats.dropped == 2 and c.queued == 3
    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", status=200)
        c.start()
        await c.close(grace=10)
        (batch,) = sent(m)
    assert [p["labels"]["n"] for p in batch] == ["1", "7", "8"]


async def test_close_gives_up_after_the_grace_period(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """With Alertmanager down, close() returns after its grace period, saying what was lost."""
    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", status=503, repeat=True)
        c = client(session)
        c.start()
        c.enqueue([payload(1)])
        await c.close(grace=0.05)
        await c.close(grace=0.05)  # twice is harmless
    assert "1 alert(s) not sent before shutdown" in caplog.text


# --- the sender ------------------------------------------------------------------------------

TARGET = Target("http://node:9100/metrics", {"team": "db"})


def observe(
    sender: AlertSender,
    observer: str,
    result: object,
    data: dict[str, Any],
    targets: dict[str, Target],
) -> list[str]:
    """What the provisioner does with a result: label it, then update the sender; the errors."""
    labelled = label_result(
        result,
        data,
        targets,
        observer=observer,
        alert_name=sender.settings.alert_name,
        external_labels=sender.settings.external_labels,
    )
    sender.update(observer, labelled.alerts)
    return labelled.errors


async def test_sender_labels_alerts_and_sends_to_every_alertmanager() -> None:
    """One observed result reaches each Alertmanager of the group, fully labelled."""
    settings = AlertmanagerSettings(urls=[AM, "http://am2:9093"], external_labels={"env": "x"})
    sender = AlertSender(settings, scrape_interval=15)
    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", status=200)
        m.post("http://am2:9093/api/v2/alerts", status=200)
        await sender.start()
        observe(sender, "Obs", {TARGET.url: "high"}, {TARGET.url: {}}, {TARGET.url: TARGET})
        await sender.close(grace=10)
        first = m.requests[POST][0].kwargs["json"]
        second = m.requests[("POST", URL("http://am2:9093/api/v2/alerts"))][0].kwargs["json"]
    assert first == second
    assert first[0]["labels"] == {
        "env": "x",
        "team": "db",
        "instance": "node:9100",
        "job": "deucalion",
        "alertname": "DeucalionAnomaly",
        "observer": "Obs",
    }
    assert first[0]["annotations"] == {"description": "high"}


def test_invalid_alert_is_dropped_with_an_error_naming_the_observer() -> None:
    """An alert with an invalid label is an error naming the observer; the valid ones still go."""
    sender = AlertSender(AlertmanagerSettings(), scrape_interval=15)
    errors = observe(sender, "BadObserver", [Alert({"bad-name": "v"}), Alert({"ok": "v"})], {}, {})
    assert len(errors) == 1 and "BadObserver" in errors[0] and "bad-name" in errors[0]
    assert [a["labels"]["ok"] for a in sender.firing()] == ["v"]


async def test_sender_sends_auth_headers() -> None:
    """Basic auth and bearer tokens (inline or from a file) are sent as Authorization."""
    settings = AlertmanagerSettings(basic_auth_username="u", basic_auth_password=SecretStr("p"))
    assert settings.credentials().headers() == {"Authorization": "Basic dTpw"}
    inline = AlertmanagerSettings(bearer_token=SecretStr("tok"))
    assert inline.credentials().headers() == {"Authorization": "Bearer tok"}


def test_bearer_token_file_is_read_per_request(tmp_path: Path) -> None:
    """A rotated token file is picked up."""
    token = tmp_path / "token"
    token.write_text("one\n")
    credentials = AlertmanagerSettings(bearer_token_file=token).credentials()
    assert credentials.headers() == {"Authorization": "Bearer one"}
    token.write_text("two")
    assert credentials.headers() == {"Authorization": "Bearer two"}


async def test_an_unreadable_token_file_keeps_the_alerts_queued(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """While the token file cannot be read nothing is sent without it; then it goes, with it."""
    token = tmp_path / "token"
    credentials = AlertmanagerSettings(bearer_token_file=token).credentials()
    with aioresponses() as m:
        m.post(f"{AM}/api/v2/alerts", status=200, repeat=True)
        c = client(session, credentials=credentials)
        c.enqueue([payload(1)])
        c.start()
        await asyncio.sleep(0.1)
        assert not sent(m) and c.queued == 1 and c.stats.failed >= 1
        token.write_text("rotated\n")
        await c.close(grace=10)
        calls = m.requests[POST]
    assert c.stats.sent == 1
    assert calls[-1].kwargs["headers"]["Authorization"] == "Bearer rotated"


def test_secrets_never_show_in_reprs_or_dumps() -> None:
    """Passwords and tokens are SecretStr: hidden in repr, str and JSON dumps."""
    settings = AlertmanagerSettings(
        basic_auth_username="u", basic_auth_password=SecretStr("hunter2")
    )
    token = AlertmanagerSettings(bearer_token=SecretStr("s3cr3t"))
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(token),
        token.model_dump_json(),
    ):
        assert "hunter2" not in text and "s3cr3t" not in text
    with pytest.raises(ConfigError) as error:
        load_settings(
            default_file=None,
            environ={},
            alertmanager={
                "basic_auth_username": "u",
                "bearer_token": "s3cr3t",
                "basic_auth_password": 3j,
            },
        )
    assert "s3cr3t" not in str(error.value)


def test_original_injector_environment_variables_still_work() -> None:
    """DEUCALION_ALERT_NAME/_ALERT_MANAGER_HOST/_PORT configure alert name and URL."""
    settings = load_settings(
        default_file=None,
        environ={
            "DEUCALION_ALERT_NAME": "LegacyAnomaly",
            "DEUCALION_ALERT_MANAGER_HOST": "alertmanager.monitoring",
            "DEUCALION_ALERT_MANAGER_PORT": "9094",
        },
    )
    assert settings.alertmanager.alert_name == "LegacyAnomaly"
    assert settings.alertmanager.urls == ["http://alertmanager.monitoring:9094"]


async def test_credentials_in_the_url_stay_out_of_logs_and_metrics_labels(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """user:password@ in an Alertmanager URL is redacted in its name and in quoted errors."""
    url = "http://deucalion:s3cr3t@am.example:9093"
    with (
        aioresponses() as m,
        caplog.at_level(logging.DEBUG, logger="deucalion.alerting.alertmanager"),
    ):
        # An error that quotes the URL, credentials and all, as some of aiohttp's do.
        m.post(
            re.compile(r".*/api/v2/alerts"),
            repeat=True,
            exception=aiohttp.ClientConnectionError(f"cannot reach {url}/api/v2/alerts"),
        )
        c = AlertmanagerClient(url, session, backoff_base=0.001, backoff_max=0.01)
        c.start()
        c.enqueue([payload(1)])
        await wait_for(lambda: c.stats.failed >= 2)
        await c.close()
    assert c.name == "http://am.example:9093"
    assert "cannot reach http://am.example:9093/api/v2/alerts" in caplog.text
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://deucalion:s3cr3t@am.example:9093", "http://am.example:9093"),
        ("http://deucalion:s3cr3t@[::1]:9093/prefix", "http://[::1]:9093/prefix"),
        ("https://deucalion@am.example", "https://am.example"),
        ("http://[::1]:9093", "http://[::1]:9093"),
    ],
)
async def test_an_alertmanagers_name_is_its_url_without_credentials(
    session: aiohttp.ClientSession, url: str, name: str
) -> None:
    """The name (logs, metric labels) keeps host, brackets, port and path; drops user:pass@."""
    assert AlertmanagerClient(url, session).name == name


async def test_an_unusable_ca_file_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    """A missing tls_ca_file fails start() with a ConfigError, leaving no session open."""
    settings = AlertmanagerSettings(urls=[AM], tls_ca_file=tmp_path / "missing.pem")
    sender = AlertSender(settings, scrape_interval=1)
    with pytest.raises(ConfigError, match=r"alertmanager\.tls_ca_file"):
        await sender.start()
    assert sender._session is None
    await sender.close()


async def test_a_closed_sender_closes_twice_but_does_not_reopen() -> None:
    """close() twice is harmless and ends the re-send timer; start() after close() is refused."""
    sender = AlertSender(AlertmanagerSettings(urls=[AM]), scrape_interval=1)
    await sender.start()
    assert "deucalion-alert-resend" in {t.get_name() for t in asyncio.all_tasks()}
    await sender.close()
    assert "deucalion-alert-resend" not in {t.get_name() for t in asyncio.all_tasks()}
    await sender.close()
    with pytest.raises(DeucalionError, match="closed"):
        await sender.start()


def test_a_gone_targets_alert_still_resolves_labelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a target disappears its alert is sent resolved, with the labels it fired with."""
    sender = AlertSender(AlertmanagerSettings(), scrape_interval=15)
    sent_payloads: list[dict[str, Any]] = []
    monkeypatch.setattr(sender, "send", sent_payloads.extend)
    other = Target("http://other:9100/metrics")
    both = {TARGET.url: TARGET, other.url: other}
    observe(sender, "Obs", {TARGET.url: 0.9, other.url: 0.0}, {url: {} for url in both}, both)
    (fired,) = sent_payloads
    observe(sender, "Obs", {other.url: 0.0}, {other.url: {}}, {other.url: other})
    (resolved,) = sent_payloads[1:]
    assert resolved["labels"] == fired["labels"] and resolved["labels"]["instance"] == "node:9100"
    assert resolved["endsAt"] <= rfc3339(time.time())
    assert sender.firing() == []


@pytest.mark.parametrize(
    ("generator_url", "said"),
    [
        ("http://127.0.0.1:9108/alerts", "only logged and listed on http://127.0.0.1:9108/alerts"),
        ("", "only logged (deucalion serves no /alerts: telemetry.enabled is false)"),
    ],
)
async def test_without_alertmanager_the_warning_says_where_alerts_are_listed(
    caplog: pytest.LogCaptureFixture, generator_url: str, said: str
) -> None:
    """With telemetry disabled there is no /alerts: the warning said they were listed there."""
    sender = AlertSender(AlertmanagerSettings(), scrape_interval=15, generator_url=generator_url)
    with caplog.at_level(logging.WARNING, logger="deucalion.alerting.alertmanager"):
        await sender.start()
    await sender.close(0)
    assert f"no Alertmanager configured (alertmanager.urls): alerts are {said}" in caplog.text
    assert ("listed on" in caplog.text) == bool(generator_url)
