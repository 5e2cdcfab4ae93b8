"""Delivering alerts to Prometheus Alertmanager (API v2): queues, batches and retries.

``AlertmanagerClient`` delivers to one Alertmanager from a bounded queue in its own task, so a
slow or down Alertmanager never slows the scrape cycle; its credentials and TLS settings come
from ``deucalion._http``. ``AlertSender`` takes the alerts an observer reports firing (labelled
by ``alerts.label_result``), asks ``lifecycle.AlertLifecycle`` what to send now and re-sends on
time, and hands that to every configured Alertmanager (an HA group: each gets every alert).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import aiohttp

from deucalion._http import (
    NO_CREDENTIALS,
    USER_AGENT,
    Credentials,
    error_text,
    redact_text,
    redact_url,
    split_credentials,
)
from deucalion._supervision import Supervised
from deucalion.alerting.lifecycle import AlertLifecycle, LabelSet, Payload
from deucalion.config.loading import AlertmanagerSettings
from deucalion.errors import CredentialsError, DeucalionError

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
        credentials: Credentials = NO_CREDENTIALS,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        batch_size: int = MAX_BATCH,
    ) -> None:
        self._written_url = url.rstrip("/")
        # A user and password in the URL are sent as the header they stand for, so no URL
        # handed to aiohttp holds them (its errors quote the URL).
        self.url, login = split_credentials(self._written_url)
        self.name = redact_url(self.url)
        """The URL as logs and metric labels show it: without credentials."""
        if login is not None:
            credentials = replace(credentials, basic_auth=login)
        self.stats = AlertmanagerStats()
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._queue_size = queue_size
        self._credentials = credentials
        # Raises CredentialsError (a ConfigError) naming a CA file that cannot be used.
        self._ssl = credentials.ssl()
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._batch_size = batch_size
        self._queue: collections.OrderedDict[LabelSet, Payload] = collections.OrderedDict()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.supervised: Supervised | None = None
        """The sending task's supervision, once started."""
        self._reachable = True
        self._drops_logged = False
        self._split = False
        self._culprit_out = False

    @property
    def queued(self) -> int:
        """Alerts waiting to be sent."""
        return len(self._queue)

    def start(self) -> None:
        """Start the sending task."""
        if self._task is None:
            # Supervised: a sending task that died of a bug would leave alerts queued forever.
            self.supervised = Supervised(
                self._run,
                name=f"the sender to Alertmanager {self.name}",
                task_name=f"deucalion-alertmanager-{self.name}",
            )
            self._task = self.supervised.task

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
            log.error(
                "alert queue of Alertmanager %s is full (%d): dropped the %d oldest "
                "alert(s); raise alertmanager.queue_size or bring it back",
                self.name,
                self._queue_size,
                dropped,
            )

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
            log.warning(
                "Alertmanager %s: %d alert(s) not sent before shutdown", self.name, len(self._queue)
            )

    async def _run(self) -> None:
        attempt = 0
        limit = self._batch_size
        while True:
            if not self._queue:
                limit = self._batch_size  # a refused batch was sorted out: full size again
                self._idle.set()
                await self._wakeup.wait()
            self._wakeup.clear()
            batch = [self._queue.popitem(last=False) for _ in range(min(limit, len(self._queue)))]
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
                if self._culprit_out:
                    # The alert at fault is out: what follows is sent in full batches again,
                    # not one request per alert.
                    self._culprit_out = False
                    limit = self._batch_size
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
        """``text`` without this Alertmanager's credentials, should an error quote the URL as
        it was written."""
        text = redact_text(text.replace(self._written_url, self.name))
        password = urlsplit(self._written_url).password
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
            headers = self._credentials.headers()
            # asyncio.timeout bounds the whole exchange, the body included, whatever the
            # transport does with aiohttp's own timeout.
            async with (
                asyncio.timeout(self._timeout.total),
                self._session.post(
                    f"{self.url}/api/v2/alerts",
                    json=batch,
                    headers=headers,
                    timeout=self._timeout,
                    ssl=self._ssl,
                    # A 301 or 302 is followed as a GET, which Alertmanager answers with 200 and
                    # the alerts lost: a redirect is an error, retried (below).
                    allow_redirects=False,
                ) as response,
            ):
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
                        log.warning(
                            "Alertmanager %s refused a batch of %d with HTTP %d: "
                            "sending it in halves",
                            self.name,
                            len(batch),
                            response.status,
                        )
                        self._split = True
                        return False
                    self.stats.rejected += len(batch)
                    self._culprit_out = True
                    log.error(
                        "Alertmanager %s refused %d alert(s) with HTTP %d: %s",
                        self.name,
                        len(batch),
                        response.status,
                        body.strip(),
                    )
                    return True
                reason = f"HTTP {response.status}: {body.strip()}"
                if 300 <= response.status < 400:
                    reason = (
                        f"HTTP {response.status}, a redirect to "
                        f"{response.headers.get('Location', '(no Location)')} that is not "
                        "followed, since it would turn the POST into a GET: put the "
                        "address it points to in alertmanager.urls"
                    )
        except CredentialsError as exc:
            self.stats.failed += len(batch)
            reason = str(exc)
        except TimeoutError:
            self.stats.failed += len(batch)
            reason = f"no answer within {self._timeout.total:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.failed += len(batch)
            # Unredacted here: _redact below replaces the whole URL, credentials and all,
            # by the Alertmanager's name (redacted first, it could no longer find it).
            reason = error_text(exc, self.url, redact=False)
        except Exception as exc:
            # A bug must not end the sending task: the alerts stay queued and are retried.
            self.stats.failed += len(batch)
            log.exception("sending alerts to Alertmanager %s failed unexpectedly", self.name)
            reason = f"{type(exc).__name__}: {exc}"
        reason = self._redact(reason)
        if self._reachable:
            self._reachable = False
            log.warning(
                "cannot send alerts to Alertmanager %s (%s): retrying; alerts wait in its queue",
                self.name,
                reason,
            )
        else:
            log.debug("Alertmanager %s still failing: %s", self.name, reason)
        return False


class AlertSender:
    """Sends the alerts observers report to every configured Alertmanager.

    ``start()`` opens the session, the clients' tasks and the re-send timer, which sends firing
    (and recently resolved) alerts again every ``resend_interval`` whether or not their
    observer's call returned; ``close(grace)`` stops the timer and flushes within ``grace``
    seconds. Without Alertmanager URLs the alerts are only logged, and listed on
    ``generator_url`` (deucalion's ``/alerts``) when there is one.
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
        self._listed_on = generator_url  # deucalion's /alerts, when its HTTP server runs
        self.lifecycle = AlertLifecycle(
            resend_interval=settings.resend_interval,
            lifetime=4 * max(scrape_interval, settings.resend_interval),
            generator_url=generator_url,
            clock=clock,
        )
        self.clients: list[AlertmanagerClient] = []
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._clock = clock
        self._resender: asyncio.Task[None] | None = None
        self._resend_supervision: Supervised | None = None

    @property
    def supervised(self) -> list[Supervised]:
        """The supervision of every long-lived task of the sender (telemetry's health)."""
        tasks = [c.supervised for c in self.clients if c.supervised is not None]
        if self._resender is not None and self._resend_supervision is not None:
            tasks.append(self._resend_supervision)
        return tasks

    async def start(self) -> None:
        """Open the session and start one sending task per Alertmanager, and the re-send
        timer."""
        if self._closed:
            raise DeucalionError("this AlertSender is closed; create a new one")
        if not self.settings.urls:
            log.warning(
                "no Alertmanager configured (alertmanager.urls): alerts are only logged %s",
                f"and listed on {self._listed_on}"
                if self._listed_on
                else "(deucalion serves no /alerts: telemetry.enabled is false)",
            )
            return
        credentials = self.settings.credentials()
        # Before the session: a bad CA file must not leave a session behind.
        credentials.ssl()
        self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        for url in self.settings.urls:
            client = AlertmanagerClient(
                url,
                self._session,
                timeout=self.settings.timeout,
                queue_size=self.settings.queue_size,
                credentials=credentials,
            )
            client.start()
            self.clients.append(client)
        self._resend_supervision = Supervised(
            self._resend_on_time, name="the alert re-send timer", task_name="deucalion-alert-resend"
        )
        self._resender = self._resend_supervision.task

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

    def update(self, group: Hashable, alerts: list[tuple[dict[str, str], dict[str, str]]]) -> None:
        """``alerts`` (labels, annotations) are what ``group`` (an observer) reports firing
        now: send the new ones and the resolved ones to every Alertmanager."""
        self.send(self.lifecycle.update(group, alerts))

    async def update_in_slices(
        self, group: Hashable, alerts: list[tuple[dict[str, str], dict[str, str]]]
    ) -> None:
        """``update`` without holding the event loop for a large result: the lifecycle gives
        the loop its turn every ``lifecycle.UPDATE_SLICE`` alerts."""
        self.send(await self.lifecycle.update_in_slices(group, alerts))

    def send(self, payloads: list[Payload]) -> None:
        """Queue ``payloads`` for every Alertmanager."""
        if payloads:
            for client in self.clients:
                client.enqueue(payloads)

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
