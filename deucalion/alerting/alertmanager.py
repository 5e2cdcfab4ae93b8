"""Delivering alerts to Prometheus Alertmanager (API v2): queues, retries, auth and TLS.

``AlertmanagerClient`` delivers to one Alertmanager from a bounded queue in its own task, so a
slow or down Alertmanager never slows the scrape cycle. ``AlertSender`` turns observers'
results into alerts, asks ``lifecycle.AlertLifecycle`` what to send now, and hands
that to every configured Alertmanager (an HA group: each gets every alert).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from deucalion._version import __version__
from deucalion.alerting.alerts import (
    Interpretation,
    SeriesScore,
    TargetLike,
    alert_labels,
    interpret_result,
    label_problems,
)
from deucalion.alerting.lifecycle import AlertLifecycle, LabelSet, Payload
from deucalion.config.loading import AlertmanagerSettings
from deucalion.errors import ConfigError, DeucalionError

__all__ = ["AlertSender", "AlertmanagerClient", "AlertmanagerStats"]

log = logging.getLogger(__name__)

#: Most alerts in one request.
MAX_BATCH = 256
#: Refusals of a whole batch that one bad alert, or its size, can cause: split, not dropped.
SPLIT_ON = frozenset({400, 413, 422})
#: Most bytes of an Alertmanager's error response quoted in the log.
MAX_ERROR_BODY = 1024
#: The shortest wait of the re-send timer (seconds): it never spins, whatever the clock does.
MIN_RESEND_WAIT = 0.05


def redact_url(url: str) -> str:
    """``url`` without the user name and password it may hold, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    # The host and port as written: hostname would lose an IPv6 address's brackets.
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass
class AlertmanagerStats:
    """Counters of one Alertmanager, read by telemetry (alerts, not requests)."""

    sent: int = 0
    """Alerts Alertmanager accepted."""
    failed: int = 0
    """Alerts in requests that failed (connection error, timeout, 5xx: retried; 4xx: not)."""
    rejected: int = 0
    """Alerts Alertmanager refused with a 4xx answer; these are not retried."""
    dropped: int = 0
    """Alerts dropped, oldest first, because the queue was full."""


class AlertmanagerClient:
    """One Alertmanager: a bounded queue and a task that posts it in batches, retrying.

    A newer version of an alert already queued replaces it (only the latest state matters),
    so an outage fills the queue with distinct alerts, not with re-sends.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 10.0,
        queue_size: int = 10_000,
        headers: Callable[[], Mapping[str, str]] | None = None,
        ssl_context: ssl.SSLContext | bool = True,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = redact_url(self.url)
        self.stats = AlertmanagerStats()
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._queue_size = queue_size
        self._headers = headers
        self._ssl = ssl_context
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._batch_size = batch_size
        self._queue: collections.OrderedDict[LabelSet, Payload] = collections.OrderedDict()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._reachable = True
        self._drops_logged = False
        self._split = False

    @property
    def queued(self) -> int:
        """Alerts waiting to be sent."""
        return len(self._queue)

    def start(self) -> None:
        """Start the sending task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(),
                                             name=f"deucalion-alertmanager-{self.name}")

    def enqueue(self, payloads: Iterable[Payload]) -> None:
        """Queue alerts to send; never blocks. Past ``queue_size`` the oldest are dropped."""
        added = False
        for payload in payloads:
            key = frozenset(payload["labels"].items())
            self._queue.pop(key, None)
            self._queue[key] = payload
            added = True
        self._trim()
        if added:
            self._idle.clear()
            self._wakeup.set()

    def _trim(self) -> None:
        dropped = 0
        while len(self._queue) > self._queue_size:
            self._queue.popitem(last=False)
            dropped += 1
        if dropped:
            self.stats.dropped += dropped
            if self._drops_logged:
                return
            # Once per outage: the counter tells the rest, the log must not flood.
            self._drops_logged = True
            log.error("alert queue of Alertmanager %s is full (%d): dropped the %d oldest "
                      "alert(s); raise alertmanager.queue_size or bring it back",
                      self.name, self._queue_size, dropped)

    async def flush(self) -> None:
        """Return once nothing is queued or in flight; bound it with ``asyncio.timeout``."""
        if self._task is not None:
            await self._idle.wait()

    async def close(self, grace: float = 0.0) -> None:
        """Send what is queued within ``grace`` seconds, then stop. Twice is harmless."""
        if self._task is None:
            return
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.flush()
        task, self._task = self._task, None
        task.cancel()
        # asyncio.wait, not a suppressed await: a cancellation of close() itself propagates.
        await asyncio.wait({task})
        # Counted after the task ended: a request it was making is put back in the queue.
        if self._queue:
            log.warning("Alertmanager %s: %d alert(s) not sent before shutdown", self.name,
                        len(self._queue))

    async def _run(self) -> None:
        attempt = 0
        limit = self._batch_size
        while True:
            if not self._queue:
                limit = self._batch_size  # a refused batch was sorted out: full size again
                self._idle.set()
                await self._wakeup.wait()
            self._wakeup.clear()
            batch = [self._queue.popitem(last=False) for _ in
                     range(min(limit, len(self._queue)))]
            if not batch:
                continue
            try:
                done = await self._post([payload for _, payload in batch])
            except asyncio.CancelledError:
                # Stopped mid-request: the batch counts as not sent, in close()'s warning too.
                self._requeue(batch)
                raise
            if done:
                attempt = 0
                continue
            self._requeue(batch)
            if self._split:
                self._split = False
                limit = max(1, len(batch) // 2)
                continue
            delay = min(self._backoff_max, self._backoff_base * 2**attempt)
            attempt += 1
            # Jitter keeps an HA group's senders (and many sidecars) from retrying in step.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    def _redact(self, text: str) -> str:
        """``text`` without this Alertmanager's credentials: errors may quote the URL."""
        text = text.replace(self.url, self.name)
        password = urlsplit(self.url).password
        return text.replace(password, "***") if password else text

    def _requeue(self, batch: list[tuple[LabelSet, Payload]]) -> None:
        """Put ``batch`` back in front, unless a newer version of an alert came meanwhile."""
        for key, payload in reversed(batch):
            if key not in self._queue:
                self._queue[key] = payload
                self._queue.move_to_end(key, last=False)
        self._trim()

    async def _post(self, batch: list[Payload]) -> bool:
        """Send one batch; whether it is done with (sent, or refused for good)."""
        try:
            # Inside the try: credentials that cannot be read now (a token file being rotated)
            # make the batch wait and retry, not go out without them and be refused for good.
            headers = dict(self._headers()) if self._headers is not None else {}
            # asyncio.timeout bounds the whole exchange, the body included, whatever the
            # transport does with aiohttp's own timeout.
            async with asyncio.timeout(self._timeout.total), self._session.post(
                f"{self.url}/api/v2/alerts", json=batch, headers=headers,
                timeout=self._timeout, ssl=self._ssl,
            ) as response:
                if 200 <= response.status < 300:
                    self.stats.sent += len(batch)
                    self._drops_logged = False
                    if not self._reachable:
                        self._reachable = True
                        log.info("Alertmanager %s is reachable again", self.name)
                    return True
                body = (await response.content.read(MAX_ERROR_BODY)).decode("utf-8", "replace")
                self.stats.failed += len(batch)
                if 400 <= response.status < 500 and response.status != 429:
                    if len(batch) > 1 and response.status in SPLIT_ON:
                        # One bad alert (or too large a body) refuses the whole batch: send it
                        # in halves so that only the culprit is lost.
                        log.warning("Alertmanager %s refused a batch of %d with HTTP %d: "
                                    "sending it in halves", self.name, len(batch),
                                    response.status)
                        self._split = True
                        return False
                    self.stats.rejected += len(batch)
                    log.error("Alertmanager %s refused %d alert(s) with HTTP %d: %s",
                              self.name, len(batch), response.status, body.strip())
                    return True
                reason = f"HTTP {response.status}: {body.strip()}"
        except TimeoutError:
            self.stats.failed += len(batch)
            reason = f"no answer within {self._timeout.total:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.failed += len(batch)
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            # A bug must not end the sending task: the alerts stay queued and are retried.
            self.stats.failed += len(batch)
            log.exception("sending alerts to Alertmanager %s failed unexpectedly", self.name)
            reason = f"{type(exc).__name__}: {exc}"
        reason = self._redact(reason)
        if self._reachable:
            self._reachable = False
            log.warning("cannot send alerts to Alertmanager %s (%s): retrying; alerts wait in "
                        "its queue", self.name, reason)
        else:
            log.debug("Alertmanager %s still failing: %s", self.name, reason)
        return False


class AlertSender:
    """Turns observers' results into alerts and sends them to every configured Alertmanager.

    ``start()`` opens the session, the clients' tasks and the re-send timer, which sends firing
    (and recently resolved) alerts again every ``resend_interval`` whether or not their
    observer's call returned; ``close(grace)`` stops the timer and flushes within ``grace``
    seconds. Without Alertmanager URLs the alerts are only logged and listed.
    """

    def __init__(
        self,
        settings: AlertmanagerSettings,
        *,
        scrape_interval: float,
        generator_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.lifecycle = AlertLifecycle(
            resend_interval=settings.resend_interval,
            lifetime=4 * max(scrape_interval, settings.resend_interval),
            generator_url=generator_url,
            clock=clock,
        )
        self.clients: list[AlertmanagerClient] = []
        self.scores: dict[str, dict[str | None, float]] = {}
        """The latest anomaly score per observer name and target URL."""
        self.series_scores: dict[str, list[SeriesScore]] = {}
        """The latest per-series scores (from a ``Scores`` result) per observer name."""
        self._merges_logged: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._clock = clock
        self._resender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the session and start one sending task per Alertmanager, and the re-send
        timer."""
        if self._closed:
            raise DeucalionError("this AlertSender is closed; create a new one")
        if not self.settings.urls:
            log.warning("no Alertmanager configured (alertmanager.urls): alerts are only logged "
                        "and listed on /alerts")
            return
        # Before the session: a bad CA file must not leave a session behind.
        context = self._ssl_context()
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"deucalion/{__version__}"})
        for url in self.settings.urls:
            client = AlertmanagerClient(
                url, self._session, timeout=self.settings.timeout,
                queue_size=self.settings.queue_size, headers=self._auth_headers,
                ssl_context=context,
            )
            client.start()
            self.clients.append(client)
        self._resender = asyncio.create_task(self._resend_on_time(),
                                             name="deucalion-alert-resend")

    async def _resend_on_time(self) -> None:
        # A timer of its own, as Prometheus re-sends at every evaluation: an observer whose
        # call hangs, or whose worker is being replaced, has not said its alerts ended, and
        # they must not expire in Alertmanager meanwhile.
        while True:
            due = self.lifecycle.next_resend()
            interval = self.settings.resend_interval
            wait = interval if due is None else due - self._clock()
            # At most one interval: a wall clock stepped back must not hold re-sends back.
            await asyncio.sleep(min(max(wait, MIN_RESEND_WAIT), interval))
            try:
                self.send(self.lifecycle.resend_due())
            except Exception:
                # A bug must not end the re-sends for good: the next turn tries again.
                log.exception("re-sending the firing alerts failed")

    async def stop_resending(self) -> None:
        """Stop the re-send timer; alerts are still sent as results come. Twice is harmless."""
        task, self._resender = self._resender, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not a suppressed await: a cancellation of the caller propagates.
            await asyncio.wait({task})

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if self.settings.tls_insecure_skip_verify:
            return False
        if self.settings.tls_ca_file is not None:
            try:
                return ssl.create_default_context(cafile=str(self.settings.tls_ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"alertmanager.tls_ca_file {self.settings.tls_ca_file} cannot be used: "
                    f"{getattr(exc, 'strerror', None) or exc}; give a PEM file of CA "
                    "certificates"
                ) from None
        return True

    def _auth_headers(self) -> dict[str, str]:
        s = self.settings
        if s.basic_auth_username is not None:
            password = s.basic_auth_password.get_secret_value() if s.basic_auth_password else ""
            # Encoded here: aiohttp.BasicAuth is deprecated and its replacement is new (3.14).
            credentials = f"{s.basic_auth_username}:{password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}
        token = s.bearer_token.get_secret_value() if s.bearer_token is not None else None
        if s.bearer_token_file is not None:
            # Read per request so a rotated token is picked up; the file is tiny.
            try:
                token = s.bearer_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise OSError(f"cannot read alertmanager.bearer_token_file "
                              f"{s.bearer_token_file}: {exc.strerror or exc}") from None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def observe(
        self,
        observer: str,
        result: object,
        data: Mapping[str, Any],
        targets: Mapping[str, TargetLike],
        *,
        group: Hashable | None = None,
    ) -> Interpretation:
        """Handle one successful ``new_data`` result of ``observer`` (its class name).

        ``targets`` maps the URLs in ``data`` to their targets as they were when ``data`` was
        handed to the observer: their labels label the alerts about them.
        """
        outcome = interpret_result(result, data)
        for problem in outcome.problems:
            log.error("observer %s returned something deucalion cannot send: %s", observer,
                      problem)
        alerts: list[tuple[dict[str, str], dict[str, str]]] = []
        for alert in outcome.alerts:
            target = targets.get(alert.target) if alert.target is not None else None
            if alert.target is not None and target is None:
                log.warning("observer %s: alert about unknown target %r is sent without target "
                            "labels", observer, alert.target)
            labels = alert_labels(alert, alert_name=self.settings.alert_name, observer=observer,
                                  external_labels=self.settings.external_labels, target=target)
            annotations = dict(alert.annotations)
            problems = label_problems(labels) + label_problems(annotations, "annotation")
            if problems:
                log.error("observer %s: alert dropped: %s", observer, "; ".join(problems))
                continue
            alerts.append((labels, annotations))
        self._log_merges(observer, alerts)
        self.scores[observer] = outcome.scores
        self.series_scores[observer] = outcome.series_scores
        self.send(self.lifecycle.update(group if group is not None else observer, alerts))
        return outcome

    def _log_merges(self, observer: str,
                    alerts: list[tuple[dict[str, str], dict[str, str]]]) -> None:
        """Say, once per observer, that alerts with one label set were merged into one."""
        if observer in self._merges_logged:
            return
        label_sets = {frozenset(labels.items()) for labels, _ in alerts}
        if len(label_sets) < len(alerts):
            self._merges_logged.add(observer)
            log.warning("observer %s returned %d alerts with the same labels as another in one "
                        "result: each label set is one alert in Alertmanager, so they were "
                        "merged (the last one wins). Give them labels that tell them apart "
                        "(this is logged once)", observer, len(alerts) - len(label_sets))

    def send(self, payloads: list[Payload]) -> None:
        """Queue ``payloads`` for every Alertmanager."""
        if payloads:
            for client in self.clients:
                client.enqueue(payloads)

    def forget_targets(self, urls: Iterable[str]) -> None:
        """Drop the scores of targets that are gone."""
        gone = set(urls)
        for scores in self.scores.values():
            for url in gone & scores.keys():
                del scores[url]
        for observer, series in self.series_scores.items():
            if any(s.target in gone for s in series):
                self.series_scores[observer] = [s for s in series if s.target not in gone]

    def firing(self) -> list[Payload]:
        """Every alert firing now."""
        return self.lifecycle.firing()

    async def flush(self) -> None:
        """Return once every Alertmanager's queue is sent; bound it with ``asyncio.timeout``."""
        await asyncio.gather(*(c.flush() for c in self.clients))

    async def close(self, grace: float = 0.0) -> None:
        """Stop re-sending, flush the queues within ``grace`` seconds and close the session.
        Twice is harmless."""
        self._closed = True
        await self.stop_resending()
        await asyncio.gather(*(c.close(grace) for c in self.clients))
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
