"""History from a Prometheus server: ``query_range`` over a time range, for the desired metrics.

One ``/api/v1/query_range`` request per desired name (with its family's suffixes) and per
synthetic sample (``up``, ``scrape_duration_seconds``), each for a piece of the range short
enough for Prometheus's limit of 11,000 points per series. The series are split per target as
federated mode splits them (``deucalion.targets.prometheus``): by their ``job`` and
``instance`` labels, each target known by its ``scrapeUrl`` in ``/api/v1/targets``; a target
Prometheus no longer scrapes is named ``http://<instance>/metrics``. The target labels are
dropped from every series, so the observer sees what it would have seen scraping the target.

The time of each cycle is the step's evaluation time: ``query_range`` answers with the newest
sample at or before it (within Prometheus's lookback of 5 minutes), not with the scrape's own
timestamp, so a step shorter than the scrape interval repeats samples. Such a step (shorter
than the shortest ``scrapeInterval`` of the targets ``/api/v1/targets`` lists, or than a second
when it lists none) or one that makes more than ``MANY_CYCLES`` cycles is replayed as given,
with a warning that names it and the cycles it makes: ``--step 1ms`` for ``1m`` made 125,813
cycles of repeated samples from two minutes of history, without a word.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from deucalion._http import APIClient, HTTPError, redact_url
from deucalion.exposition.grammar import escape
from deucalion.exposition.naming import FAMILY_SUFFIXES
from deucalion.history.labels import pairs_key
from deucalion.observer import TargetsData
from deucalion.replay.sources import Cycle, HistoryError, SourceStats
from deucalion.targets.target import Target

__all__ = ["MANY_CYCLES", "MAX_POINTS", "PrometheusRangeSource"]

log = logging.getLogger(__name__)

#: Points per series and request: under Prometheus's limit of 11,000.
MAX_POINTS = 10_000
#: A range and step making more cycles than this is warned about: a year at 15 s is 2.1 million,
#: a typo (``1ms`` for ``1m``) makes that many of a few days.
MANY_CYCLES = 2_500_000
#: Said when a URL given as history answers as no Prometheus server does: most often the
#: address of a target (an exporter's), which serves its present, not its history.
_NOT_PROMETHEUS = (
    "; is {name} a Prometheus server? --from takes a Prometheus server's URL, a recording "
    "or CSV files: a target's own address serves no history (`deucalion record` it first)"
)

#: Series dropped from a target's samples: the labels Prometheus attached to it.
_SYNTHETIC = ("up", "scrape_duration_seconds")


class PrometheusRangeSource:
    """Cycles from a Prometheus server's ``query_range``, one per ``step`` from start to end.

    ``url`` is the server's base URL (a ``user:password@`` in it is sent as basic auth, never
    shown); ``jobs`` limits the targets to those jobs. ``start`` and ``end`` are required by
    ``cycles``; ``step`` defaults to 15 s. An answer Prometheus says is partial (its
    ``warnings``) is replayed and counted in ``stats.errors``, which fails the command, or, with
    ``allow_partial``, in ``stats.warnings``.
    """

    def __init__(
        self,
        url: str,
        *,
        jobs: Iterable[str] = (),
        timeout: float = 60.0,
        body_size_limit: int = 500 * 1024 * 1024,
        allow_partial: bool = False,
    ) -> None:
        self.url = url
        self.allow_partial = allow_partial
        self._warned: set[str] = set()
        self.name = redact_url(url)
        self.jobs = frozenset(jobs)
        self.timeout = timeout
        self.body_size_limit = body_size_limit
        self.stats = SourceStats()
        self.requests = 0

    async def _get(self, client: APIClient, path: str, query: list[tuple[str, str]]) -> Any:
        """The ``data`` of Prometheus's answer; a partial answer (``warnings``) is noted."""
        self.requests += 1
        where = f"Prometheus at {self.name}{path}" + "".join(
            f" {k}={v}" for k, v in query if k == "query"
        )
        try:
            answer = await client.get_json(path, query)
        except HTTPError as exc:
            hint = ""
            if exc.status == 404 or "not JSON" in exc.reason:
                hint = _NOT_PROMETHEUS.format(name=self.name)
            raise HistoryError(f"{where}: {exc.reason}{_reason(exc.body)}{hint}") from None
        if not isinstance(answer, dict):
            raise HistoryError(
                f"{where} did not answer as Prometheus does: not a JSON object"
                + _NOT_PROMETHEUS.format(name=self.name)
            )
        if answer.get("status") != "success":
            raise HistoryError(
                f"{where}: {answer.get('errorType', 'error')}: "
                f"{answer.get('error', 'the status is not success')}"
            )
        data = answer.get("data")
        if not isinstance(data, dict):
            raise HistoryError(
                f"{where} did not answer as Prometheus does: its data is {data!r}, not an object"
            )
        warnings = answer.get("warnings")
        if warnings:
            self._partial(where, warnings)
        return data

    def _partial(self, where: str, warnings: object) -> None:
        """Prometheus says an answer is partial (a remote store or a shard did not answer, a
        limit was hit): the history has holes. Said once per distinct warning."""
        text = "; ".join(map(str, warnings)) if isinstance(warnings, list) else str(warnings)
        if text in self._warned:
            kind = "partial_answers"
            counter = self.stats.warnings if self.allow_partial else self.stats.errors
            counter[kind] += 1
            return
        self._warned.add(text)
        message = (
            f"{where} says its answer is partial: {text!r}. The history read has holes where "
            "Prometheus lacked data"
        )
        if self.allow_partial:
            self.stats.warn("partial_answers", f"{message} (replayed as allowed)")
        else:
            self.stats.fail(
                "partial_answers",
                f"{message}; the backtest fails unless partial answers are allowed "
                "(--allow-partial, or PrometheusRangeSource(allow_partial=True))",
            )

    async def _targets(
        self, client: APIClient
    ) -> tuple[dict[tuple[str, str], Target], list[float]]:
        """``(job, instance) -> Target`` of the targets the server scrapes now, and the scrape
        intervals it gives for them (of ``jobs``'; none from a Prometheus that gives none)."""
        from deucalion.config.settings import parse_duration

        data = await self._get(client, "/api/v1/targets", [("state", "active")])
        known: dict[tuple[str, str], Target] = {}
        intervals: list[float] = []
        try:
            for entry in data.get("activeTargets") or []:
                labels = {str(k): str(v) for k, v in entry["labels"].items()}
                known.setdefault(
                    (labels.get("job", ""), labels.get("instance", "")),
                    Target(str(entry["scrapeUrl"]), labels),
                )
                if not self.jobs or labels.get("job") in self.jobs:
                    try:
                        intervals.append(parse_duration(entry.get("scrapeInterval")))
                    except ValueError:
                        pass  # none given (an older Prometheus), or not a duration
        except (KeyError, TypeError, AttributeError) as exc:
            raise HistoryError(
                f"Prometheus at {self.name}/api/v1/targets did not answer as Prometheus does: "
                f"an active target without {exc}"
            ) from None
        return known, [i for i in intervals if i > 0]

    def _check_step(self, start: float, end: float, step: float, intervals: list[float]) -> None:
        """Warn of a step shorter than the scrape interval (each sample repeated), or making
        an implausible number of cycles: most often a typo (``1ms`` for ``1m``)."""
        cycles = math.floor((end - start) / step) + 1
        shortest = min(intervals, default=None)
        if shortest is not None and step < shortest:
            why = (
                f"shorter than the scrape interval of the targets Prometheus scrapes "
                f"({_duration(shortest)}): each sample is replayed about "
                f"{shortest / step:,.0f} times over"
            )
        elif shortest is None and step < 1.0:
            why = (
                "shorter than a second, and than any usual scrape interval: each sample is "
                "replayed many times over"
            )
        elif cycles > MANY_CYCLES:
            why = "more cycles than a backtest of any usual range and scrape interval"
        else:
            return
        guess = ""
        if step < 1.0 and step * 60_000 <= 3600:  # a typed "ms" for "m"
            guess = f" (did you mean {_duration(step * 60_000)}?)"
        message = (
            f"the step (--step, step=) of {_duration(step)} is {why}: the range "
            f"{_when(start)} .. {_when(end)} makes {cycles:,} cycles. Replayed as given; a "
            f"step of the scrape interval reads each sample once{guess}"
        )
        if message not in self._warned:  # once, not again when a plot reads values again
            self._warned.add(message)
            self.stats.warn("step_warned_of", message)

    def _selectors(self, metrics: Iterable[str] | None) -> list[str]:
        jobs = ""
        if self.jobs:
            jobs = ',job=~"' + "|".join(escape(j) for j in sorted(self.jobs)) + '"'
        if metrics is None:
            raise HistoryError(
                f"Prometheus at {self.name}: say which metrics to read (the "
                "observer's desired metrics); reading every series of a server "
                "is not supported"
            )
        names = sorted(set(metrics) | set(_SYNTHETIC))
        suffixes = "|".join(FAMILY_SUFFIXES)
        # (?:...) around the entry: a desired regular expression (a|b) keeps its alternation.
        return [f'{{__name__=~"(?:{name})(?:{suffixes})?"{jobs}}}' for name in names]

    async def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        """One cycle per ``step`` from ``start`` to ``end`` (both required)."""
        if start is None or end is None:
            raise HistoryError(
                f"Prometheus at {self.name}: give the range to read (--start and "
                "--end, or start= and end=)"
            )
        step = 15.0 if step is None else step
        if not (step > 0 and end >= start):
            raise HistoryError(
                f"Prometheus range {start}..{end} step {step}: the end must not "
                "be before the start and the step must be positive"
            )
        selectors = self._selectors(metrics)
        async with APIClient(
            self.url, timeout=self.timeout, body_size_limit=self.body_size_limit
        ) as client:
            targets, intervals = await self._targets(client)
            self._check_step(start, end, step, intervals)
            chunk = step * (MAX_POINTS - 1)
            piece_start = start
            seen_any = False
            while piece_start <= end:
                piece_end = min(end, piece_start + chunk)
                grid: dict[float, TargetsData] = {}
                for selector in selectors:
                    data = await self._get(
                        client,
                        "/api/v1/query_range",
                        [
                            ("query", selector),
                            ("start", repr(piece_start)),
                            ("end", repr(piece_end)),
                            ("step", repr(step)),
                        ],
                    )
                    self._place(data, selector, targets, grid)
                _drop_down_targets(grid)
                labels = {t.url: t.labels for t in targets.values()}
                for when in sorted(grid):
                    seen_any = True
                    samples = grid[when]
                    yield Cycle(when, dict.fromkeys(samples, when), samples, labels)
                piece_start = piece_end + step
        if not seen_any:
            raise HistoryError(
                f"Prometheus at {self.name} has no samples of {', '.join(selectors)} between "
                f"{_when(start)} and {_when(end)}: check the range (and its time zone), the "
                "metric names and that Prometheus scraped them then"
            )

    def _place(
        self,
        data: dict[str, Any],
        selector: str,
        targets: dict[tuple[str, str], Target],
        grid: dict[float, TargetsData],
    ) -> None:
        """Put each series' values into the grid, under its target, without target labels."""
        where = f"Prometheus at {self.name} answered {selector} with"
        if data.get("resultType", "matrix") != "matrix" or not isinstance(
            data.get("result", []), list
        ):
            raise HistoryError(
                f"{where} a {data.get('resultType')!r} result, not the matrix of a range query: "
                "is the URL that of Prometheus's API?"
            )
        for entry in data.get("result", []):
            metric = entry.get("metric") if isinstance(entry, dict) else None
            if not isinstance(metric, dict):
                raise HistoryError(
                    f"{where} a series without its labels ('metric'): {entry!r:.200}"
                )
            labels = {str(k): str(v) for k, v in metric.items()}
            name = labels.pop("__name__", "")
            key = (labels.get("job", ""), labels.get("instance", ""))
            target = targets.get(key)
            if target is None:
                target = targets[key] = Target(
                    f"http://{key[1]}/metrics", {"job": key[0], "instance": key[1]}
                )
            own = set(target.labels.items())
            series = pairs_key((k, escape(v)) for k, v in labels.items() if (k, v) not in own)
            values = entry.get("values", [])
            if not isinstance(values, list):
                raise HistoryError(f"{where} values of {name}{series} that are not a list")
            for point in values:
                try:
                    stamp, text = point
                    when, value = float(stamp), float(text)
                except (TypeError, ValueError):
                    raise HistoryError(
                        f'{where} {point!r:.80} for {name}{series}: not a [time, "value"] '
                        "pair of numbers"
                    ) from None
                grid.setdefault(when, {}).setdefault(target.url, {}).setdefault(name, {})[
                    series
                ] = value


def _drop_down_targets(grid: dict[float, TargetsData]) -> None:
    """As a failed scrape: a target that was down has only its synthetic samples."""
    for samples in grid.values():
        for per_target in samples.values():
            up = per_target.get("up")
            if up is not None and up.get("{}") == 0.0:
                for name in [n for n in per_target if n not in _SYNTHETIC]:
                    del per_target[name]


def _reason(body: bytes) -> str:
    """Prometheus's own reason for an error status, from its JSON body (``error``)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    if isinstance(answer, dict) and answer.get("error"):
        return f": {answer.get('errorType', 'error')}: {answer['error']}"
    return ""


def _duration(seconds: float) -> str:
    """Seconds as a Prometheus duration reads: 1ms, 15s, 1m, 2h30m (to the millisecond)."""
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{seconds * 1000:g}ms"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis >= size:
            parts.append(f"{millis // size}{unit}")
            millis %= size
    return "".join(parts) + (f"{millis}ms" if millis else "")


def _when(stamp: float) -> str:
    if not math.isfinite(stamp):
        return str(stamp)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
