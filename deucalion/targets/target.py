"""``Target``: one scrape target, its labels, and the credentials it is scraped with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from deucalion._http import Credentials, redact_url

if TYPE_CHECKING:
    from deucalion.config.settings import ClientOptions

__all__ = ["Target", "target_from_settings"]


@dataclass(frozen=True)
class Target:
    """One scrape target: its URL (its identity), the labels alerts about it carry, and how
    it is scraped.

    Only ``url`` takes part in equality and hashing; the credentials keep their secrets out of
    the repr.
    """

    url: str
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    timeout: float | None = field(default=None, compare=False)
    """Seconds one scrape may take; ``None`` uses the scraper's timeout."""
    credentials: Credentials = field(default_factory=Credentials, compare=False)
    """Authentication and TLS settings of the scrapes."""
    last_error: str | None = field(default=None, compare=False)
    """Why the target's source says its last scrape failed (a federating Prometheus's
    ``lastError``), or None."""

    @cached_property
    def shown(self) -> str:
        """The URL as logs, labels, listings and recordings show it: a secret in its query
        (``?token=``, ...) as ``***``."""
        return redact_url(self.url)

    @property
    def instance(self) -> str:
        """Prometheus's ``instance`` label: the one discovery or configuration set (a federated
        Prometheus's relabelled instance, a file_sd or static group's label), else the URL's
        ``host:port``."""
        # As in Prometheus, an empty label is no label: the address stands in for it.
        return self.labels.get("instance") or urlsplit(self.url).netloc.rpartition("@")[2]

    @property
    def job(self) -> str:
        """The ``job`` label: the configured one, else ``deucalion``."""
        return self.labels.get("job", "deucalion")


def target_from_settings(url: str, labels: Mapping[str, str], options: ClientOptions) -> Target:
    """A ``Target`` carrying a configured group's scrape options.

    A ``password_file`` is read here, once, so a missing file is reported when targets are built.
    """
    return Target(
        url,
        dict(labels),
        timeout=getattr(options, "scrape_timeout", None),
        credentials=options.credentials(),
    )
