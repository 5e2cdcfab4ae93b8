"""What collection hands on: one ``ScrapeResult`` per target, and what it reads of a target.

``ScrapeTarget`` is the part of a target a collector reads (``deucalion.targets.Target`` is
one); collection imports nothing of the providers that discover targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from deucalion._http import Credentials

__all__ = ["ScrapeResult", "ScrapeTarget"]


class ScrapeTarget(Protocol):
    """One target as collection reads it (``deucalion.targets.Target`` is one)."""

    @property
    def url(self) -> str:
        """Its URL: its identity, and the key of its data."""
        ...

    @property
    def labels(self) -> Mapping[str, str]:
        """The labels discovery gave it (a federating Prometheus's target labels, say)."""
        ...

    @property
    def timeout(self) -> float | None:
        """Seconds one scrape may take; ``None`` for the collector's own."""
        ...

    @property
    def credentials(self) -> Credentials:
        """How it is scraped: authentication and TLS."""
        ...

    @property
    def shown(self) -> str:
        """The URL as logs show it (secrets as ``***``)."""
        ...

    @property
    def instance(self) -> str:
        """Its ``instance`` label."""
        ...

    @property
    def job(self) -> str:
        """Its ``job`` label."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the target's source says its last scrape failed (a federating Prometheus's
        ``lastError``), or None."""
        ...


@dataclass
class ScrapeResult:
    """What one scrape of one target produced."""

    target: ScrapeTarget
    samples: dict[str, dict[str, float]] = field(default_factory=dict)
    """The desired samples, ``{sample_name: {series: value}}``; empty when the scrape failed."""
    up: bool = False
    duration: float = 0.0
    """Seconds from the request to the parsed body."""
    samples_scraped: int | None = None
    """Samples the target exposed (all of them, desired or not); None when not counted."""
    error: str | None = None
    scraped_at: float | None = None
    """When the scrape started (Unix seconds): the time of its data. None when unknown."""

    def with_synthetic(self) -> dict[str, dict[str, float]]:
        """The samples plus ``up``, ``scrape_duration_seconds`` and ``scrape_samples_scraped``."""
        data = dict(self.samples)
        data["up"] = {"{}": 1.0 if self.up else 0.0}
        data["scrape_duration_seconds"] = {"{}": self.duration}
        if self.samples_scraped is not None:
            data["scrape_samples_scraped"] = {"{}": float(self.samples_scraped)}
        return data
