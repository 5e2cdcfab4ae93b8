"""A source of metrics for another monitoring system: a JSON HTTP API, live and historical.

The API (any system that answers JSON will do; ``tests/replay/test_replay_sources.py`` serves one):

- ``GET /hosts`` -> ``["web-1", "web-2"]``
- ``GET /metrics`` -> ``{"web-1": {"cpu": 0.31, "memory": 0.52}, ...}`` (now)
- ``GET /history?from=T&to=T`` -> ``[{"time": T, "hosts": {"web-1": {"cpu": ...}}}, ...]``

``JsonApiSource`` is both:

- a ``CollectingProvider`` for live runs: ``discover()`` lists the targets and ``collect()``
  returns their samples, so ``MetricsProvisioner(targets_provider=JsonApiSource(url))`` runs
  observers on it unchanged, with alerts, scores and ``up`` as for Prometheus targets;
- a ``HistorySource`` for backtests: ``cycles()`` yields the history as ``Cycle``s, so
  ``deucalion.replay.backtest(observer, JsonApiSource(url), start=..., end=...)`` replays it.

Each host becomes a target ``<api>/hosts/<name>`` labelled ``instance=<name>``,
``job=json-api``; each field a sample of that name with no labels.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import aiohttp

from deucalion.collection import ScrapeResult
from deucalion.exposition.naming import family_selects
from deucalion.replay import Cycle, HistoryError, SourceStats
from deucalion.targets import Target


class JsonApiSource:
    """Targets, samples and history from the JSON API at ``url``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.stats = SourceStats()
        self._session: aiohttp.ClientSession | None = None

    async def _get(self, path: str, **params: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        async with self._session.get(f"{self.url}{path}", params=params) as response:
            response.raise_for_status()
            return await response.json()

    def _target(self, host: str) -> Target:
        return Target(f"{self.url}/hosts/{host}", {"instance": host, "job": "json-api"})

    # --- live: a CollectingProvider --------------------------------------------------------

    async def discover(self) -> Sequence[Target]:
        """The hosts the API knows now."""
        return [self._target(host) for host in await self._get("/hosts")]

    async def collect(
        self, targets: Sequence[Target], metrics: Iterable[str] | None
    ) -> list[ScrapeResult]:
        """Every target's samples now, from one request; a host missing from it is down."""
        started = time.time()
        try:
            answer: dict[str, dict[str, float]] = await self._get("/metrics")
            problem = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            answer, problem = {}, f"the API failed: {exc!r}"
        wanted = None if metrics is None else frozenset(metrics)
        results = []
        for target in targets:
            fields = answer.get(target.labels["instance"])
            result = ScrapeResult(target, duration=time.time() - started)
            if fields is None:
                result.error = problem or "the API has no data for this host"
            else:
                result.up = True
                result.samples = {
                    name: {"{}": float(value)}
                    for name, value in fields.items()
                    if wanted is None or family_selects(wanted, name)
                }
            results.append(result)
        return results

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- history: a HistorySource ----------------------------------------------------------

    async def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        """The API's history between ``start`` and ``end``, one cycle per point it has."""
        if start is None or end is None:
            raise HistoryError(f"{self.url}: give the range to read (start and end)")
        try:
            points = await self._get("/history", **{"from": str(start), "to": str(end)})
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HistoryError(f"{self.url}/history: {exc!r}") from None
        finally:
            await self.close()
        for point in sorted(points, key=lambda p: p["time"]):
            when = float(point["time"])
            samples = {
                self._target(host).url: {
                    "up": {"{}": 1.0},
                    **{name: {"{}": float(v)} for name, v in fields.items()},
                }
                for host, fields in point["hosts"].items()
            }
            labels = {self._target(host).url: self._target(host).labels for host in point["hosts"]}
            yield Cycle(when, dict.fromkeys(samples, when), samples, labels)
