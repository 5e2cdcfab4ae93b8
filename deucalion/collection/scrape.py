"""Scraping targets: one shared aiohttp session, every target at once, each bounded.

A target that is down, slow, too large, answers non-2xx or serves a malformed body costs only
its own data for that cycle: its result says ``up = 0`` and why, and a log line is written when
its state changes (not every cycle).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from deucalion._http import USER_AGENT, error_text
from deucalion.collection.result import ScrapeResult, ScrapeTarget
from deucalion.errors import (
    ConfigError,
    CredentialsError,
    DeucalionError,
    ParseError,
    ScrapeError,
)
from deucalion.exposition.parser import ExpositionParser, is_openmetrics, openmetrics_loaded

__all__ = ["ACCEPT", "PARSE_INLINE_MAX_BYTES", "ScrapeResult", "Scraper", "is_loopback"]

log = logging.getLogger(__name__)

# Prefer OpenMetrics, then the classic text format, as Prometheus does.
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# Bodies above this size are parsed in a thread so the event loop keeps serving other targets;
# smaller ones parse in well under a millisecond, less than a thread hand-off costs.
PARSE_INLINE_MAX_BYTES = 256 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (a sidecar's own pod)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Scraper:
    """Scrapes targets over one aiohttp session kept for the scraper's life.

    Use as ``async with Scraper(...) as scraper:``; ``close()`` twice is harmless and a closed
    scraper cannot be reopened. ``metrics`` limits the samples kept (all when None): metric
    names and regular expressions, as :class:`~deucalion.exposition.naming.Selector` reads
    them. ``count_samples`` counts every sample of a body for ``ScrapeResult.samples_scraped``.
    The scraper's :class:`~deucalion.exposition.parser.ExpositionParser` is its own: what it
    learns from one cycle's bodies speeds up the next.
    """

    def __init__(
        self,
        *,
        timeout: float,
        body_size_limit: int,
        metrics: Iterable[str] | None = None,
        compression: Literal["auto", "gzip", "none"] = "auto",
        count_samples: bool = True,
    ) -> None:
        self.timeout = timeout
        self.body_size_limit = body_size_limit
        self.compression = compression
        # Counting every line of a body costs about as much as a filtered parse of it, so it is
        # done only when someone reads the count.
        self.count_samples = count_samples
        self._encodings: dict[str, str] = {}
        self.metrics = None if metrics is None else frozenset(metrics)
        try:
            self.parser = ExpositionParser(self.metrics)
        except ValueError as exc:
            raise ConfigError(f"desired metrics: {exc}") from None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._up: dict[str, bool] = {}

    async def __aenter__(self) -> Scraper:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def open(self) -> None:
        """Create the session (needs a running event loop)."""
        if self._closed:
            raise DeucalionError("this Scraper is closed; create a new one")
        if self._session is None:
            # No connection limit: every target is scraped at once, each bounded by its timeout.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
                auto_decompress=True,
                # Scrapes keep no cookies, as Prometheus's do not; and filtering a jar for
                # every request is work the hot path can skip.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        """Close the session."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def forget(self, urls: Iterable[str]) -> None:
        """Drop per-target state of targets that are gone."""
        for url in urls:
            self._up.pop(url, None)
            self._encodings.pop(url, None)

    async def scrape_all(
        self, targets: Sequence[ScrapeTarget], *, deadline: float | None = None
    ) -> list[ScrapeResult]:
        """Scrape every target concurrently; never raises for a target's fault.

        With a ``deadline`` (seconds), return when every target has answered or at the
        deadline, whichever comes first: a target still being scraped then is cancelled and
        counts as down, so one slow target delays the others' data by no more than that.
        """
        if deadline is None:
            return list(await asyncio.gather(*(self.scrape(t) for t in targets)))
        tasks = [asyncio.ensure_future(self.scrape(t)) for t in targets]
        if not tasks:
            return []
        try:
            _, late = await asyncio.wait(tasks, timeout=deadline)
        finally:
            for task in tasks:
                task.cancel()  # no-op for the finished ones; the caller's cancel ends all
        if late:
            await asyncio.wait(late)  # let the cancelled scrapes close their connections
        results = []
        for target, task in zip(targets, tasks, strict=True):
            if task.cancelled():
                result = ScrapeResult(
                    target,
                    duration=deadline,
                    samples_scraped=0 if self.count_samples else None,
                    error=f"no answer by the cycle's hand-off deadline ({deadline:g}s)",
                )
                self._note_state(result)
            else:
                result = task.result()
            results.append(result)
        return results

    async def scrape(self, target: ScrapeTarget) -> ScrapeResult:
        """Scrape one target; a failure is reported in the result, not raised."""
        # A failed scrape counts 0 samples, as in Prometheus.
        result = ScrapeResult(
            target, samples_scraped=0 if self.count_samples else None, scraped_at=time.time()
        )
        started = time.perf_counter()
        try:
            chunks, size, content_type = await self._receive(target)
            openmetrics = is_openmetrics(content_type)
            # The first OpenMetrics body imports its parser (milliseconds): in a thread too.
            if size <= PARSE_INLINE_MAX_BYTES and (not openmetrics or openmetrics_loaded()):
                samples, counted = self._read(chunks, openmetrics)
            else:
                samples, counted = await asyncio.to_thread(self._read, chunks, openmetrics)
            result.samples = samples
            if counted is not None:
                result.samples_scraped = counted
            result.up = True
        except ScrapeError as exc:
            result.error = exc.reason
        except ParseError as exc:
            result.error = f"malformed exposition: {exc}"
        except Exception as exc:
            # Whatever goes wrong with one target costs only that target's data.
            log.exception("scraping %s failed unexpectedly", target.shown)
            result.error = f"{type(exc).__name__}: {exc}"
        result.duration = time.perf_counter() - started
        self._note_state(result)
        return result

    def _read(
        self, chunks: list[bytes], openmetrics: bool
    ) -> tuple[dict[str, dict[str, float]], int | None]:
        """The desired samples of a body and its sample count, if counted (run in a thread
        when large). The chunks are consumed: the body is never held twice."""
        return self.parser.read(chunks, openmetrics=openmetrics, count=self.count_samples)

    async def _receive(self, target: ScrapeTarget) -> tuple[list[bytes], int, str]:
        """The body at ``target.url`` as the chunks it arrived in, its size and Content-Type,
        with this scraper's timeout, size limit, and the target's credentials and TLS settings;
        raises ``ScrapeError`` saying why not.

        The chunks are kept as they are rather than joined: joining would hold the body twice.
        """
        if self._session is None:
            self.open()
        assert self._session is not None
        timeout = self.timeout if target.timeout is None else target.timeout
        try:
            headers = {
                "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}",
                "Accept-Encoding": self._encoding(target.url),
                **target.credentials.headers(),
            }
            ssl_option = target.credentials.ssl()
        except CredentialsError as exc:
            raise ScrapeError(target.shown, str(exc)) from None
        try:
            async with asyncio.timeout(timeout):
                async with self._session.get(
                    target.url, headers=headers, ssl=ssl_option, allow_redirects=True
                ) as response:
                    if not 200 <= response.status < 300:
                        raise ScrapeError(target.shown, f"HTTP {response.status} {response.reason}")
                    if (
                        response.content_length or 0
                    ) > self.body_size_limit and not response.headers.get("Content-Encoding"):
                        raise ScrapeError(target.shown, self._too_large())
                    chunks: list[bytes] = []
                    size = 0
                    # The limit applies to the decompressed body, so a small gzip bomb stops
                    # as soon as it expands past it.
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > self.body_size_limit:
                            raise ScrapeError(target.shown, self._too_large())
                        chunks.append(chunk)
                    return chunks, size, response.headers.get("Content-Type", "")
        except TimeoutError:
            raise ScrapeError(target.shown, f"timed out after {timeout:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # ValueError: aiohttp refusing what it was given (a header with a newline, say).
            raise ScrapeError(target.shown, error_text(exc, target.url)) from None

    def _encoding(self, url: str) -> str:
        """The Accept-Encoding for ``url``, decided once per target."""
        encoding = self._encodings.get(url)
        if encoding is None:
            gzip = self.compression == "gzip" or (
                self.compression == "auto" and not is_loopback(urlsplit(url).hostname or "")
            )
            encoding = self._encodings[url] = "gzip" if gzip else "identity"
        return encoding

    def _too_large(self) -> str:
        return (
            f"body larger than body_size_limit ({self.body_size_limit} bytes); raise "
            "body_size_limit or desire fewer metrics"
        )

    def _note_state(self, result: ScrapeResult) -> None:
        url = result.target.url
        previous = self._up.get(url)
        self._up[url] = result.up
        if result.up and previous is False:
            log.info("target %s is up again", result.target.shown)
        elif not result.up and previous is not False:
            log.warning("target %s is down: %s", result.target.shown, result.error)
