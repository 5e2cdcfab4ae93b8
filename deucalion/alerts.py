"""``Alert``: what an observer returns to raise an alert.

This module is imported in worker processes (observers create alerts there), so it imports
the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Alert"]


@dataclass(frozen=True)
class Alert:
    """An anomaly to report to Alertmanager.

    ``labels`` identify the alert (as in Alertmanager: the same labels are the same alert);
    ``annotations`` describe it. ``target`` names the target it concerns (its URL, as in the
    data passed to ``new_data``), so that the target's labels are added; ``score`` is exported
    as the gauge ``deucalion_anomaly_score``.
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    target: str | None = field(default=None, kw_only=True)
    score: float | None = field(default=None, kw_only=True)
