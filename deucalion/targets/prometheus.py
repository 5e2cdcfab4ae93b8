"""Federated mode: targets and their samples come from a Prometheus server.

``discover`` lists the server's active targets (``/api/v1/targets``), each identified by its
``scrapeUrl``; ``collect`` fetches the desired samples of all of them in one ``/federate``
request per cycle and splits them per target by its ``job`` and ``instance`` labels. The
target labels Prometheus attached are dropped from every series, so an observer sees the same
``{sample: {series: value}}`` as when scraping the target itself; ``up``,
``scrape_duration_seconds`` and ``scrape_samples_scraped`` are Prometheus's own for the target.

The server's ``external_labels`` are dropped too: they are the same on every series. Caveats:
with ``honor_labels: false`` (Prometheus's default) a label the target exports that clashes
with a target label reaches deucalion renamed ``exported_<name>``; a label the target exports
with the very name and value of an external label cannot be told from it and is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deucalion._http import APIClient, HTTPError, redact_url
from deucalion.errors import ParseError
from deucalion.exposition.grammar import escape
from deucalion.exposition.naming import FAMILY_SUFFIXES
from deucalion.exposition.parser import is_openmetrics, parse_exposition
from deucalion.observer import SYNTHETIC_METRICS
from deucalion.scrape import ACCEPT, PARSE_INLINE_MAX_BYTES, ScrapeResult
from deucalion.targets.target import Target

if TYPE_CHECKING:
    from deucalion.config.loading import PrometheusSettings

__all__ = ["PrometheusTargets", "parse_series", "render_series"]

log = logging.getLogger(__name__)

_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_series(series: str) -> list[tuple[str, str]]:
    """``[(name, escaped_value), ...]`` of a series key such as ``{a="1",b="x\\"y"}``.

    Values stay escaped, so ``render_series(parse_series(s)) == s`` for any sorted key.
    """
    return _PAIR.findall(series)


def render_series(pairs: Iterable[tuple[str, str]]) -> str:
    """The series key of ``(name, escaped_value)`` pairs: sorted by name, ``{}`` for none."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs)) + "}"


def _promql_string(value: str) -> str:
    # PromQL's double-quoted strings escape as the exposition formats' label values do.
    return f'"{escape(value)}"'


class PrometheusTargets:
    """The active targets of a Prometheus server, and their samples by federation."""

    def __init__(self, settings: PrometheusSettings, *, body_size_limit: int) -> None:
        self.settings = settings
        self.name = redact_url(settings.url)
        """The server's URL as logs and errors show it: a password in it as ``***``."""
        # An API client, not a Scraper: /api/v1/targets is JSON, asked for as such. A user and
        # password in the URL are sent as the header they stand for and never shown.
        self._api = APIClient(
            settings.url,
            settings.credentials(),
            timeout=settings.timeout,
            body_size_limit=body_size_limit,
        )
        self._targets: list[Target] = []
        self._last_errors: dict[str, str] = {}
        self._problem: str | None = None
        self.last_error: str | None = None
        """Why the last request to Prometheus failed, or None."""

    async def discover(self) -> Sequence[Target]:
        """The server's active targets that match ``jobs`` and ``match_labels``."""
        try:
            answer = await self._api.get_json("/api/v1/targets", [("state", "active")])
            self._targets = self._select(answer)
            self._note(None)
        except HTTPError as exc:
            self._note(f"cannot list targets at {self.name}: {exc.reason}")
        except (KeyError, TypeError, AttributeError) as exc:
            self._note(
                f"{self.name}/api/v1/targets did not answer as Prometheus does: "
                f"{type(exc).__name__}: {exc}"
            )
        return list(self._targets)

    def _select(self, answer: Any) -> list[Target]:
        active = answer["data"]["activeTargets"]
        selected: dict[str, Target] = {}
        self._last_errors = {}
        for entry in active:
            labels: dict[str, str] = dict(entry["labels"])
            if self.settings.jobs and labels.get("job") not in self.settings.jobs:
                continue
            if any(labels.get(k) != v for k, v in self.settings.match_labels.items()):
                continue
            url = str(entry["scrapeUrl"])
            # One URL scraped by two jobs is one target to deucalion: the first one wins.
            selected.setdefault(url, Target(url, labels))
            if entry.get("lastError"):
                self._last_errors[url] = str(entry["lastError"])
        return list(selected.values())

    def _note(self, problem: str | None) -> None:
        self.last_error = problem
        if problem != self._problem:
            if problem is not None:
                log.error(
                    "prometheus: %s; keeping the last good targets (%d)",
                    problem,
                    len(self._targets),
                )
            elif self._problem is not None:
                log.info("prometheus %s answers again", self.name)
        self._problem = problem

    def match_selectors(
        self, targets: Sequence[Target], metrics: Iterable[str] | None
    ) -> list[str]:
        """The ``match[]`` selectors of one federate request: the desired names (with their
        family suffixes) and the synthetic ones, one selector per job of ``targets``."""
        matchers = []
        if metrics is not None:
            names = sorted(set(metrics) | SYNTHETIC_METRICS)
            suffixes = "|".join(FAMILY_SUFFIXES)
            matchers.append(f'__name__=~"(?:{"|".join(names)})(?:{suffixes})?"')
        jobs = sorted({t.job for t in targets})
        return ["{" + ",".join([*matchers, f"job={_promql_string(job)}"]) + "}" for job in jobs]

    async def collect(
        self, targets: Sequence[Target], metrics: Iterable[str] | None
    ) -> list[ScrapeResult]:
        """Every target's desired samples, from one ``/federate`` request."""
        results = {t.url: ScrapeResult(t) for t in targets}
        if not targets:
            return []
        wanted = None if metrics is None else frozenset(metrics) | SYNTHETIC_METRICS
        query = [("match[]", s) for s in self.match_selectors(targets, metrics)]
        try:
            # The scrape's Accept: /federate answers in an exposition format, as a target does.
            body, content_type = await self._api.get("/federate", query, accept=ACCEPT)
            openmetrics = is_openmetrics(content_type)
            if len(body) <= PARSE_INLINE_MAX_BYTES:
                parsed = parse_exposition(body, openmetrics=openmetrics, metrics=wanted)
                self._split(parsed, targets, results)
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

    def _parse_and_split(
        self,
        body: bytes,
        openmetrics: bool,
        wanted: frozenset[str] | None,
        targets: Sequence[Target],
        results: dict[str, ScrapeResult],
    ) -> None:
        parsed = parse_exposition(body, openmetrics=openmetrics, metrics=wanted)
        self._split(parsed, targets, results)

    def _split(
        self,
        parsed: Mapping[str, Mapping[str, float]],
        targets: Sequence[Target],
        results: dict[str, ScrapeResult],
    ) -> None:
        by_key: dict[tuple[str, str], Target] = {}
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
            pairs = parse_series(series)
            labels = dict(pairs)
            owner = by_key.get((labels.get("job", ""), labels.get("instance", "")))
            if owner is not None:
                target_pairs[owner.url] = target_pairs[owner.url] | set(pairs)
        synthetic: dict[str, dict[str, float]] = {}
        for name, series_values in parsed.items():
            for series, value in series_values.items():
                pairs = parse_series(series)
                labels = dict(pairs)
                owner = by_key.get((labels.get("job", ""), labels.get("instance", "")))
                if owner is None:
                    continue
                added = target_pairs[owner.url]
                key = render_series(p for p in pairs if p not in added)
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
                result.error = self._last_errors.get(url) or "down according to Prometheus"
            if not result.up:
                result.samples = {}  # as a failed scrape: a down target has no data

    async def close(self) -> None:
        """Close the session to Prometheus."""
        await self._api.close()
