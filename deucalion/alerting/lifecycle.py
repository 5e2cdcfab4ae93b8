"""The alert lifecycle, as Prometheus has it: what to send to Alertmanager, and when.

A new alert is sent at once with ``startsAt`` = when it was first reported; while it fires it
is sent again every ``resend_interval`` with ``endsAt`` = now + ``lifetime`` (4 x max(scrape
interval, resend interval)), so it expires by itself if deucalion dies; once an observer's
successful call no longer returns it, it is resolved (``endsAt`` = now) and re-sent as resolved
for 15 minutes. Re-sends are due by time alone (``resend_due``), not by a call returning: an
observer whose call hangs has not said that its alerts ended.

Pure bookkeeping: no I/O, and the clock is injected, so tests move time by hand. Delivery is
``deucalion.alerting.alertmanager``'s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Generator, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["RESOLVED_RETENTION", "AlertLifecycle", "LabelSet", "Payload", "rfc3339"]

log = logging.getLogger(__name__)

#: How long a resolved alert is still sent, as Prometheus does.
RESOLVED_RETENTION = 15 * 60.0
#: Alerts an update handles between two turns of the event loop (``update_in_slices``).
UPDATE_SLICE = 1000
#: Alerts starting (or resolving) in one update that are logged one by one.
LOGGED_CHANGES = 10

Payload = dict[str, Any]
"""One alert as Alertmanager's API v2 takes it (labels, annotations, startsAt, endsAt, ...)."""
LabelSet = frozenset[tuple[str, str]]
"""An alert's identity: its labels, hashable."""


def rfc3339(timestamp: float) -> str:
    """``timestamp`` (seconds since the epoch) as Alertmanager's API writes times."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Tracked:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    last_sent: float
    resolved_at: float | None = None


class AlertLifecycle:
    """Which alerts to send now: firing, re-sent while firing, resolved, re-sent resolved.

    Alerts are identified by their full label set within a group (one group per observer).
    ``clock`` returns seconds since the epoch; tests pass a fake one.
    """

    def __init__(
        self,
        *,
        resend_interval: float,
        lifetime: float,
        generator_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resend_interval = resend_interval
        self.lifetime = lifetime
        self.generator_url = generator_url
        self._clock = clock
        self._groups: dict[Hashable, dict[LabelSet, _Tracked]] = {}

    def update(
        self, group: Hashable, alerts: Iterable[tuple[Mapping[str, str], Mapping[str, str]]]
    ) -> list[Payload]:
        """Record one successful call's ``(labels, annotations)``; return what to send now."""
        steps = self._updating(group, alerts)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def update_in_slices(
        self, group: Hashable, alerts: Iterable[tuple[Mapping[str, str], Mapping[str, str]]]
    ) -> list[Payload]:
        """``update``, giving the event loop its turn every ``UPDATE_SLICE`` alerts: a result
        of 100,000 alerts would otherwise hold the loop for a second or more. Between two
        slices the re-send timer and ``/alerts`` see the group partly updated, which is only
        ever a state it passes through (resolutions come last)."""
        steps = self._updating(group, alerts)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            await asyncio.sleep(0)

    def _updating(
        self, group: Hashable, alerts: Iterable[tuple[Mapping[str, str], Mapping[str, str]]]
    ) -> Generator[None, None, list[Payload]]:
        now = self._clock()
        tracked = self._groups.setdefault(group, {})
        current: dict[LabelSet, tuple[Mapping[str, str], Mapping[str, str]]] = {}
        for pair in alerts:
            current[frozenset(pair[0].items())] = pair
        out: list[Payload] = []
        news = _ChangeLog("firing")
        for done, (key, (labels, notes)) in enumerate(current.items(), 1):
            state = tracked.get(key)
            if state is None or state.resolved_at is not None:
                # New, or back after being resolved: a new alert with a new start.
                state = tracked[key] = _Tracked(dict(labels), dict(notes), now, -math.inf)
                news.add(state.labels)
            changed = state.annotations != notes
            state.annotations = dict(notes)
            if changed or now - state.last_sent >= self.resend_interval:
                state.last_sent = now
                out.append(self._payload(state, now))
            if done % UPDATE_SLICE == 0:
                yield
        news.close()
        gone = _ChangeLog("resolved")
        for done, (key, state) in enumerate(list(tracked.items()), 1):
            if done % UPDATE_SLICE == 0:
                yield
            if key in current:
                continue
            if state.resolved_at is None:
                state.resolved_at = state.last_sent = now
                gone.add(state.labels)
                out.append(self._payload(state, now))
            else:
                self._resend_if_due(tracked, key, state, now, out)
        gone.close()
        return out

    def resend_due(self) -> list[Payload]:
        """The alerts of every group whose ``resend_interval`` has passed since they were last
        sent, firing (with a new ``endsAt``) or resolved; resolved ones past their retention are
        forgotten. Call it on a timer: it needs no call of the observer."""
        now = self._clock()
        out: list[Payload] = []
        for tracked in self._groups.values():
            for key, state in list(tracked.items()):
                self._resend_if_due(tracked, key, state, now, out)
        return out

    def next_resend(self) -> float | None:
        """When (on the clock) ``resend_due`` next has something to do; None if nothing is
        tracked."""
        last = min(
            (state.last_sent for tracked in self._groups.values() for state in tracked.values()),
            default=None,
        )
        return None if last is None else last + self.resend_interval

    def _resend_if_due(
        self,
        tracked: dict[LabelSet, _Tracked],
        key: LabelSet,
        state: _Tracked,
        now: float,
        out: list[Payload],
    ) -> None:
        if state.resolved_at is not None and now - state.resolved_at >= RESOLVED_RETENTION:
            del tracked[key]
        elif now - state.last_sent >= self.resend_interval:
            state.last_sent = now
            out.append(self._payload(state, now))

    def firing(self) -> list[Payload]:
        """Every alert firing now, as it would be sent."""
        now = self._clock()
        return [
            self._payload(state, now)
            for group in self._groups.values()
            for state in group.values()
            if state.resolved_at is None
        ]

    def _payload(self, state: _Tracked, now: float) -> Payload:
        ends_at = state.resolved_at if state.resolved_at is not None else now + self.lifetime
        payload: Payload = {
            "labels": dict(state.labels),
            "annotations": dict(state.annotations),
            "startsAt": rfc3339(state.starts_at),
            "endsAt": rfc3339(ends_at),
        }
        if self.generator_url:
            payload["generatorURL"] = self.generator_url
        return payload


class _ChangeLog:
    """Logs the first alerts that start firing (or resolve) in one update one by one, and the
    rest as a count: a result of 100,000 alerts must not write 100,000 lines."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0

    def add(self, labels: Mapping[str, str]) -> None:
        self.count += 1
        if self.count <= LOGGED_CHANGES:
            log.info("alert %s: %s", self.what, _describe(labels))

    def close(self) -> None:
        if self.count > LOGGED_CHANGES:
            log.info(
                "%d more alerts %s (the first %d are logged above)",
                self.count - LOGGED_CHANGES,
                self.what,
                LOGGED_CHANGES,
            )


def _describe(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(labels.items())) + "}"
