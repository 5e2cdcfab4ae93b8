"""Federated mode's discovery: the active targets of a Prometheus server.

``discover`` lists the server's active targets (``/api/v1/targets``), each identified by its
``scrapeUrl``, with Prometheus's target labels and the ``lastError`` of its last scrape. Their
samples come from the same server by federation: ``deucalion.collection.federation``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deucalion._http import APIClient, HTTPError, redact_url
from deucalion.targets.target import Target

if TYPE_CHECKING:
    from deucalion.config.loading import PrometheusSettings

__all__ = ["PrometheusTargets"]

log = logging.getLogger(__name__)


class PrometheusTargets:
    """The active targets of a Prometheus server."""

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
        for entry in active:
            labels: dict[str, str] = dict(entry["labels"])
            if self.settings.jobs and labels.get("job") not in self.settings.jobs:
                continue
            if any(labels.get(k) != v for k, v in self.settings.match_labels.items()):
                continue
            url = str(entry["scrapeUrl"])
            # One URL scraped by two jobs is one target to deucalion: the first one wins.
            error = str(entry.get("lastError") or "") or None
            selected.setdefault(url, Target(url, labels, last_error=error))
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

    async def close(self) -> None:
        """Close the session to Prometheus."""
        await self._api.close()
