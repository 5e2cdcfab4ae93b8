"""Federated collection: the samples of every target from one ``/federate`` request per cycle.

``deucalion.targets.prometheus.PrometheusTargets`` discovers the server's active targets; this
collector fetches the desired samples of all of them at once and splits them per target by its
``job`` and ``instance`` labels. The target labels Prometheus attached are dropped from every
series, so an observer sees the same ``{sample: {series: value}}`` as when scraping the target
itself; ``up``, ``scrape_duration_seconds`` and ``scrape_samples_scraped`` are Prometheus's own
for the target, and a down target's reason is the ``lastError`` discovery saw.

The server's ``external_labels`` are dropped too: they are the same on every series. Caveats:
with ``honor_labels: false`` (Prometheus's default) a label the target exports that clashes
with a target label reaches deucalion renamed ``exported_<name>``; a label the target exports
with the very name and value of an external label cannot be told from it and is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from deucalion._http import APIClient, HTTPError, redact_url
from deucalion.collection.result import ScrapeResult, ScrapeTarget
from deucalion.collection.scrape import ACCEPT, PARSE_INLINE_MAX_BYTES
from deucalion.errors import ParseError
from deucalion.exposition.grammar import escape
from deucalion.exposition.naming import FAMILY_SUFFIXES
from deucalion.exposition.parser import is_openmetrics, openmetrics_loaded, parse_exposition
from deucalion.history.labels import pairs_key, series_pairs
from deucalion.observer import SYNTHETIC_METRICS

if TYPE_CHECKING:
    from deucalion.config.loading import PrometheusSettings

__all__ = ["FederationCollector"]

log = logging.getLogger(__name__)


def _promql_string(value: str) -> str:
    # PromQL's double-quoted strings escape as the exposition formats' label values do.
    return f'"{escape(value)}"'


class FederationCollector:
    """The desired samples of a Prometheus server's targets, by federation.

    ``metrics`` are the desired names (every sample when None). Use as ``async with`` or call
    ``close()``; twice is harmless.
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        body_size_limit: int,
        metrics: Iterable[str] | None = None,
    ) -> None:
        self.settings = settings
        self.name = redact_url(settings.url)
        """The server's URL as logs and errors show it: a password in it as ``***``."""
        self.metrics = None if metrics is None else frozenset(metrics)
        self._api = APIClient(
            settings.url,
            settings.credentials(),
            timeout=settings.timeout,
            body_size_limit=body_size_limit,
        )
        self._problem: str | None = None
        self.last_error: str | None = None
        """Why the last federation failed, or None."""

    def match_selectors(self, targets: Sequence[ScrapeTarget]) -> list[str]:
        """The ``match[]`` selectors of one federate request: the desired names (with their
        family suffixes) and the synthetic ones, one selector per job of ``targets``."""
        matchers = []
        if self.metrics is not None:
            names = sorted(self.metrics | SYNTHETIC_METRICS)
            suffixes = "|".join(FAMILY_SUFFIXES)
            matchers.append(f'__name__=~"(?:{"|".join(names)})(?:{suffixes})?"')
        jobs = sorted({t.job for t in targets})
        return ["{" + ",".join([*matchers, f"job={_promql_string(job)}"]) + "}" for job in jobs]

    async def collect(self, targets: Sequence[ScrapeTarget]) -> list[ScrapeResult]:
        """Every target's desired samples, from one ``/federate`` request."""
        results = {t.url: ScrapeResult(t) for t in targets}
        if not targets:
            return []
        wanted = None if self.metrics is None else self.metrics | SYNTHETIC_METRICS
        query = [("match[]", s) for s in self.match_selectors(targets)]
        try:
            # The scrape's Accept: /federate answers in an exposition format, as a target does.
            body, content_type = await self._api.get("/federate", query, accept=ACCEPT)
            openmetrics = is_openmetrics(content_type)
            # The first OpenMetrics body imports its parser (milliseconds): in a thread too.
            if len(body) <= PARSE_INLINE_MAX_BYTES and (not openmetrics or openmetrics_loaded()):
                self._parse_and_split(body, openmetrics, wanted, targets, results)
            else:
                # One body holds every target's samples: parse and split it off the loop.
                await asyncio.to_thread(
                    self._parse_and_split, body, openmetrics, wanted, targets, results
                )
        except (HTTPError, ParseError) as exc:
            reason = exc.reason if isinstance(exc, HTTPError) else f"malformed: {exc}"
            self._note(f"federation failed: {reason}")
            for result in results.values():
                result.error = f"federation from {self.name} failed: {reason}"
            return list(results.values())
        self._note(None)
        return list(results.values())

    def forget(self, urls: Iterable[str]) -> None:
        """Nothing is kept per target."""
        return None

    def _note(self, problem: str | None) -> None:
        self.last_error = problem
        if problem != self._problem:
            if problem is not None:
                log.error("prometheus: %s", problem)
            elif self._problem is not None:
                log.info("prometheus %s federates again", self.name)
        self._problem = problem

    def _parse_and_split(
        self,
        body: bytes,
        openmetrics: bool,
        wanted: frozenset[str] | None,
        targets: Sequence[ScrapeTarget],
        results: dict[str, ScrapeResult],
    ) -> None:
        parsed = parse_exposition(body, openmetrics=openmetrics, metrics=wanted)
        self._split(parsed, targets, results)

    def _split(
        self,
        parsed: Mapping[str, Mapping[str, float]],
        targets: Sequence[ScrapeTarget],
        results: dict[str, ScrapeResult],
    ) -> None:
        by_key: dict[tuple[str, str], ScrapeTarget] = {}
        target_pairs: dict[str, set[tuple[str, str]]] = {}
        for target in targets:
            job = escape(target.labels.get("job", ""))
            instance = escape(target.labels.get("instance", ""))
            by_key.setdefault((job, instance), target)
            target_pairs[target.url] = {(k, escape(v)) for k, v in target.labels.items()}
        # The server's external labels are on every federated series (Prometheus adds them
        # to the ones that lack them). A target's up series carries nothing but its target
        # labels and those: what is left of it is the server's external labels, which are
        # then stripped from every series of the target, as its target labels are. Learnt
        # from each answer, so a changed configuration needs no extra request.
        for series in parsed.get("up", {}):
            pairs = series_pairs(series)
            labels = dict(pairs)
            owner = by_key.get((labels.get("job", ""), labels.get("instance", "")))
            if owner is not None:
                target_pairs[owner.url] = target_pairs[owner.url] | set(pairs)
        synthetic: dict[str, dict[str, float]] = {}
        for name, series_values in parsed.items():
            for series, value in series_values.items():
                pairs = series_pairs(series)
                labels = dict(pairs)
                owner = by_key.get((labels.get("job", ""), labels.get("instance", "")))
                if owner is None:
                    continue
                added = target_pairs[owner.url]
                key = pairs_key(p for p in pairs if p not in added)
                if name in SYNTHETIC_METRICS and key == "{}":
                    synthetic.setdefault(owner.url, {})[name] = value
                else:
                    results[owner.url].samples.setdefault(name, {})[key] = value
        for url, result in results.items():
            own = synthetic.get(url, {})
            result.up = own.get("up") == 1.0
            result.duration = own.get("scrape_duration_seconds", 0.0)
            result.samples_scraped = int(own.get("scrape_samples_scraped", 0.0))
            if "up" not in own:
                result.error = "Prometheus has no recent samples of this target"
            elif not result.up:
                result.error = result.target.last_error or "down according to Prometheus"
            if not result.up:
                result.samples = {}  # as a failed scrape: a down target has no data

    async def close(self) -> None:
        """Close the session to Prometheus."""
        await self._api.close()
