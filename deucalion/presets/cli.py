"""``deucalion presets list`` and ``deucalion presets show NAME --target URL``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import time
from typing import Any

from deucalion._redact import redact_text, redact_url
from deucalion.cli.shared import duration_seconds
from deucalion.errors import ConfigError

__all__ = ["add_commands", "describe", "show"]

#: How ``show`` says that a target gives none of the preset's signals (and the command exits 1).
NONE_FOUND = "none of the preset's signals is there"


#: The longest signal series ``show`` aligns the value column past; longer ones overflow it.
_WIDEST_NAME = 60


def describe(name: str) -> str:
    """What preset ``name`` watches, one signal a line."""
    from deucalion.presets import preset_signals

    lines = [f"{name}:"]
    for signal in preset_signals(name):
        moves = {"up": "rises", "down": "falls", "both": "moves"}[signal.direction]
        lines.append(f"  {signal.name:<26} {signal.help} ({signal.unit}; alerts when it {moves})")
    return "\n".join(lines)


async def show(name: str, url: str, *, interval: float = 1.0, scrape_timeout: float = 10.0) -> str:
    """What preset ``name`` would watch on the target ``url``: it is scraped twice,
    ``interval`` apart (a rate needs two samples), and each signal's series are listed with
    their values, or said missing with the metrics looked for."""
    from deucalion.config.loading import normalize_target_url
    from deucalion.presets import preset_observer

    try:
        url = normalize_target_url(url)
    except ValueError as exc:
        # Not quoted back: the message quotes what it may (a password whose / ended the host
        # early cannot be told apart from the rest of the URL).
        raise ConfigError(f"--target: {redact_text(str(exc))}") from None
    observer = preset_observer(name)
    # What it finds or misses is this command's output: the observer's own log line saying
    # that the target serves none of its metrics would say it a second time.
    observer.silent_.told.add(url)
    desired = frozenset(observer.desired_metrics)
    limit = 50 * 10**6  # deucalion's default body_size_limit
    # A target that is down is this command's error, said once: not also the scraper's log.
    # Only that line, of this target, is left out: the process's other scrapes log as before
    # (a library leaves its host's logging configuration alone).
    scrape_log = logging.getLogger("deucalion.collection.scrape")
    said_once = _DownOf(redact_url(url))
    scrape_log.addFilter(said_once)
    try:
        return await _listed(name, url, observer, desired, limit, interval, scrape_timeout)
    finally:
        scrape_log.removeFilter(said_once)


class _DownOf(logging.Filter):
    """Drops the scraper's "target URL is down" records of one target (its URL as logs show
    it), passes every other record."""

    def __init__(self, shown: str) -> None:
        super().__init__()
        self.shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args[:1] == (self.shown,) and "is down" in str(record.msg))


async def _listed(
    name: str,
    url: str,
    observer: Any,
    desired: frozenset[str],
    limit: int,
    interval: float,
    scrape_timeout: float,
) -> str:
    """``show``'s two scrapes and the listing of what the preset computed from them."""
    from deucalion.collection.scrape import Scraper
    from deucalion.observer import handing_data, select_data
    from deucalion.presets.signals import served_of
    from deucalion.targets import Target

    computed: dict[str, Any] = {}
    served: list[str] = []
    shown = redact_url(url)  # a token in the target's query is a secret: never printed
    async with Scraper(timeout=scrape_timeout, body_size_limit=limit, metrics=desired) as scraper:
        for attempt in range(2):
            if attempt:
                await asyncio.sleep(interval)
            results = await scraper.scrape_all([Target(url)])
            if not results[0].up:
                raise ConfigError(f"{shown} is down: {results[0].error}")
            data = select_data(observer.desired_metrics, results).data
            served = served_of(observer.signals, data.get(url, {}))
            stamp = results[0].scraped_at or time.time()
            with handing_data(stamp, {url: stamp}):
                computed = observer.compute(data).get(url, {})
    rows: list[tuple[str, str]] = []  # (signal or series, what of it), aligned below
    found = 0
    said: dict[tuple[str, ...], str] = {}  # the metrics a missing signal looks for, said once
    for signal in observer.signals:
        values = computed.get(signal.name)
        lacking = signal.lacking(data.get(url, {})) if signal.lacking and not values else None
        if lacking:
            rows.append((signal.name, f"no value: {lacking}"))
            continue
        if not values:
            # Every name, not the first six: the one a user's instrumentation serves (Spring's
            # http_server_requests_active_seconds_active_count) may be the last.
            needs = signal.needs_on(data.get(url, {}))
            if all(metric in data.get(url, {}) for metric in needs):
                # Served, and yet no value: a service without requests between the two scrapes
                # (no error ratio of no requests, no quantile of a handful). "Not found, looks
                # for http_requests_total" on a target serving it read as the wrong metrics.
                rows.append(
                    (
                        signal.name,
                        f"no value: it serves {', '.join(needs)}, "
                        + _too_few(
                            signal.name, computed.get("request_rate", {}), interval, observer
                        ),
                    )
                )
                continue
            first = said.setdefault(needs, signal.name)
            looks = "the same as " + first if first != signal.name else ", ".join(needs)
            rows.append((signal.name, f"not found (looks for {looks})"))
            continue
        found += 1
        for series, value in sorted(values.items()):
            where = "" if series == "{}" else series
            rows.append((signal.name + where, f"{value:.4g} {signal.unit}"))
    # One column for the values, past the longest series (filesystem_free{mountpoint="/"}):
    # at a fixed 26 characters a labelled series pushed its value out of line. A series
    # longer than the cap (a long mount point) overflows it rather than widen every row.
    width = max((len(label) for label, _ in rows if len(label) <= _WIDEST_NAME), default=0)
    width = max(width, 26)
    lines = [f"preset {name} on {shown}:"]
    lines.extend(f"  {label:<{width}} {what}" for label, what in rows)
    if not found:
        if served:
            why = f"it serves {', '.join(served)}, too few for any signal (each one's above)"
        else:
            why = f"it serves none of {', '.join(sorted(observer.desired_metrics - {'up'}))}"
        lines.append(f"{NONE_FOUND}: {why}")
    return "\n".join(lines)


def _too_few(name: str, rates: dict[str, float], interval: float, observer: Any) -> str:
    """Why a signal read from requests (``http_service.REQUESTS_NEEDED``) has no value after
    the two scrapes ``interval`` apart, with the service's request rate measured (``rates``'s
    ``{}``): the requests it needs and the --interval that would give them."""
    from deucalion._progress import format_seconds
    from deucalion.presets.http_service import REQUESTS_NEEDED
    from deucalion.presets.observer import MIN_RATE_SECONDS

    rate = rates.get("{}", 0.0)
    if name not in REQUESTS_NEEDED or not rate > 0:
        return (
            f"from which none came in the {interval:g}s between the two scrapes (too few "
            "requests in them? a longer --interval waits longer)"
        )
    what, needed, between = REQUESTS_NEEDED[name]
    # The requests it counts: over the rate's range (2 scrape intervals: it starts half an
    # interval before the first scrape), or between the range's scrapes (one interval here).
    per_interval = 1.0 if between else observer.rate_points + 0.5
    held = rate * max(per_interval * interval, 0 if between else MIN_RATE_SECONDS)
    where = (
        "between its range's scrapes"
        if between
        else f"within its range ({per_interval:g} scrape intervals)"
    )
    # A tenth more than the rate measured needs: the next minutes' rate may be lower.
    wanted = 1.1 * needed / (rate * per_interval)
    wanted = math.ceil(wanted) if wanted <= 10 else 5 * math.ceil(wanted / 5)
    shown = f"{wanted // 60}m" if wanted >= 60 and wanted % 60 == 0 else format_seconds(wanted)
    hint = (
        f": --interval {shown} or more would give it"
        if wanted > interval
        else " (the rate varies: a longer --interval waits longer)"
    )
    return (
        f"but too few requests came in the {interval:g}s between the two scrapes: {what} "
        f"needs {needed:g} {where}, and at {rate:.3g} requests/s there were about "
        f"{held:.0f}{hint}"
    )


def _list(args: argparse.Namespace) -> int:
    from deucalion.presets import PRESETS

    print("\n\n".join(describe(name) for name in PRESETS))
    return 0


def _show(args: argparse.Namespace) -> int:
    from deucalion.cli.shared import check_preset

    check_preset(args.name, "presets show")  # a misspelt name is told the one meant, as `run`
    if not args.target:
        print(describe(args.name))
        return 0
    printed = asyncio.run(show(args.name, args.target, interval=args.interval))
    print(printed)
    # A check before deploying (`presets show NAME --target URL && ...`) fails on a target
    # the preset would watch nothing of, as `deucalion scrape` does on a target that is down.
    return 1 if NONE_FOUND in printed else 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``presets list`` and ``presets show``."""
    presets = commands.add_parser(
        "presets",
        help="list the presets and what one would watch on a target",
        description="Presets are ready observers over a service's health signals: "
        "`deucalion run --preset NAME`, `preset: NAME` in the config, or the pod annotation "
        "deucalion.io/preset.",
    )
    # `deucalion presets` alone lists them, as `presets list` does.
    presets.set_defaults(func=_list)
    sub = presets.add_subparsers(dest="presets_command", metavar="COMMAND")
    listing = sub.add_parser("list", help="every preset and its signals")
    listing.set_defaults(func=_list)
    show_parser = sub.add_parser(
        "show",
        help="the signals a preset watches (on --target: those it finds, with their values)",
    )
    show_parser.add_argument("name", metavar="NAME")
    show_parser.add_argument("--target", metavar="URL", help="scrape this target twice")
    show_parser.add_argument(
        "--interval",
        type=duration_seconds(),
        default=1.0,
        help="time between the two scrapes: seconds or e.g. 2s (default: 1s)",
    )
    show_parser.set_defaults(func=_show)
