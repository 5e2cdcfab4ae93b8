"""Progress of the long commands (``deucalion record``, ``deucalion backtest``) on stderr.

On a terminal, a tqdm bar (tqdm: small, maintained, no dependencies) with the total, the
percentage and the time left when the total is known. Elsewhere (a pipe, a CI log) a bar
redrawn with carriage returns is noise, so a plain line is printed every
``DEUCALION_PROGRESS_INTERVAL`` (default 10s; a recording also says at once that it started).

Only the commands use this module: the library's ``backtest()`` and ``record()`` print nothing
of their own beyond what their ``progress`` option asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from deucalion.errors import ConfigError

if TYPE_CHECKING:
    from deucalion.replay.sources import Cycle, HistorySource, SourceStats

__all__ = ["Progress", "backtest_progress", "format_seconds", "recording_progress"]

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL = 10.0
#: Seconds between two updates of a backtest's progress (tqdm redraws every 0.5 s at most).
SHOW_EVERY = 0.1


def format_seconds(seconds: float) -> str:
    """A span of time as a person reads it: ``45s``, ``12m05s``, ``3h20m``, ``2.5d``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.1f}d"


def _interval(environ: dict[str, str] | os._Environ[str]) -> float:
    text = environ.get("DEUCALION_PROGRESS_INTERVAL", "").strip()
    if not text:
        return DEFAULT_INTERVAL
    from deucalion.config.settings import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"DEUCALION_PROGRESS_INTERVAL: {exc}") from None
    if seconds == 0:
        raise ConfigError("DEUCALION_PROGRESS_INTERVAL: must be more than 0, e.g. 10s or 1m")
    return seconds


class Progress:
    """One task's progress: ``update(done, detail)`` as it goes, ``close()`` at the end.

    ``done`` and ``total`` are in the task's own unit (seconds of history, seconds recorded);
    ``detail`` is what else to say (steps, speed). With a ``total`` the bar shows the
    percentage and the time left; without one, what was done and the time taken. Plain lines
    start after ``interval``, or at the first update with ``announce``.
    """

    def __init__(
        self,
        what: str,
        *,
        total: float | None,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        interval: float | None = None,
        announce: bool = False,
    ) -> None:
        self.what = what
        self.total = total if total is not None and total > 0 else None
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.interval = _interval(os.environ) if interval is None else interval
        self._began = time.monotonic()
        self._printed: float | None = None
        # Without announce, a task shorter than the interval prints no line at all.
        self._next_line = self._began + (0.0 if announce else self.interval)
        self._done = 0.0
        self.detail = ""
        """What the last update said besides the figure done."""
        self._closed = False
        self._bar: Any = None
        if self.terminal:
            from tqdm import tqdm

            # The detail goes in the description: tqdm's postfix would open with a comma.
            shape = " {percentage:3.0f}%|{bar}|" if self.total else ""
            times = " [{elapsed}<{remaining}]" if self.total else " [{elapsed}]"
            self._bar = tqdm(
                total=self.total,
                desc=what,
                file=self.stream,
                bar_format="{desc}" + shape + times,
                mininterval=0.5,
                dynamic_ncols=True,
                leave=True,
            )
            # Log lines (a target down) are printed above the bar instead of through it.
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._logging = contextlib.ExitStack()
            self._logging.enter_context(logging_redirect_tqdm())

    def update(self, done: float, detail: str = "") -> None:
        """``done`` so far (absolute, not an increment) and what else to show."""
        if self._closed:
            return
        if self.total is not None:
            done = min(done, self.total)  # a recording's last cycle may end past its duration
        self._done, self.detail = done, detail
        if self._bar is not None:
            self._bar.set_description_str(f"{self.what}: {detail}", refresh=False)
            self._bar.update(done - self._bar.n)
            return
        now = time.monotonic()
        if now >= self._next_line:
            self._next_line = now + self.interval
            self._print_line(now)

    def close(self) -> None:
        """Show the final state; ``close()`` twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.set_description_str(f"{self.what}: {self.detail}", refresh=False)
            self._bar.close()
            self._logging.close()
        elif self._printed is not None:
            self._print_line(time.monotonic(), final=True)

    def _print_line(self, now: float, *, final: bool = False) -> None:
        self._printed = now
        elapsed = now - self._began
        parts = [self.detail] if self.detail else []
        if self.total and not final:
            fraction = min(1.0, max(0.0, self._done / self.total))
            parts.append(f"{100 * fraction:.0f}%")
            if fraction > 0 and elapsed >= 1.0:  # sooner, the rate is noise
                left = elapsed * (1 - fraction) / fraction
                parts.append(f"about {format_seconds(left)} left")
        parts.append(f"{format_seconds(elapsed)} {'in all' if final else 'elapsed'}")
        print(f"{self.what}: {', '.join(parts)}", file=self.stream, flush=True)


class _ProgressSource:
    """A ``HistorySource`` that reports each cycle it passes on to a ``Progress``."""

    def __init__(self, source: HistorySource, start: float | None, end: float | None) -> None:
        self.source = source
        self.start, self.end = start, end
        # The wrapped source's own counter, which it goes on filling: the summary reads it.
        self.stats = cast("SourceStats", getattr(source, "stats", None))  # its own may lack it

    async def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        """The wrapped source's cycles, counted on the way."""
        span = None
        if self.start is not None and self.end is not None:
            span = self.end - self.start
        # A recording or CSV files are read whole, whatever the range: the share of the source
        # read, when it can tell it, measures the work left better than the range does.
        read_fraction = getattr(self.source, "read_fraction", None)
        if not callable(read_fraction):
            read_fraction = None
        progress: Progress | None = None
        began = time.monotonic()
        first: float | None = self.start
        last = 0.0
        steps = 0

        def show(*, final: bool = False) -> Progress:
            nonlocal progress
            covered = 0.0 if first is None else max(0.0, last - first)
            fraction = read_fraction() if read_fraction is not None else None
            if fraction is None and span:
                fraction = covered / span
            if progress is None:
                # Made at the first cycle: only then does a source know its size.
                progress = Progress("backtest", total=None if fraction is None else 1.0)
            if final and progress.total:
                # The history ran out before the range did, or its last bytes held no cycle:
                # the backtest is done all the same.
                fraction = progress.total
            wall = time.monotonic() - began
            speed = f", {covered / wall:,.0f}x real time" if wall > 0 and covered else ""
            of = f" of {format_seconds(span)}" if span else ""
            progress.update(
                covered if progress.total is None else fraction or 0.0,
                f"{steps:,} steps, {format_seconds(covered)}{of} of history{speed}",
            )
            return progress

        next_show = began
        try:
            async for cycle in self.source.cycles(metrics, start, end, step):
                yield cycle
                steps += 1
                last = cycle.time
                if first is None:
                    first = last
                now = time.monotonic()
                if now >= next_show:
                    # A few times a second, not every step: a fast source (CSV files) would
                    # spend a tenth of its time on the progress's text.
                    next_show = now + min(SHOW_EVERY, show().interval)
            if steps:
                show(final=True)
        finally:
            if progress is not None:
                progress.close()


def backtest_progress(
    source: HistorySource, *, start: float | None, end: float | None
) -> HistorySource:
    """``source`` as the backtest reads it, showing the backtest's progress on stderr.

    The bar shows the percentage and the time left when the source tells how much of it was
    read (``read_fraction()``: recordings, CSV files) or the range is known (``start`` and
    ``end``: a Prometheus range).
    """
    return _ProgressSource(source, start, end)


@contextlib.asynccontextmanager
async def recording_progress(path: str | Path, duration: float | None) -> AsyncIterator[None]:
    """Show a running recording's progress on stderr while the block runs: the time recorded
    (of ``duration``, with the time left) and the size of the file so far."""
    progress = Progress(f"record {path}", total=duration, announce=True)

    began = time.monotonic()

    def show() -> None:
        recorded = time.monotonic() - began
        try:
            size = _size(os.stat(path).st_size) + " written, "
        except OSError:
            size = ""
        of = f" of {format_seconds(duration)}" if duration else ""
        progress.update(recorded, f"{size}{format_seconds(recorded)}{of} recorded")

    async def watch() -> None:
        while True:
            show()
            await asyncio.sleep(min(1.0, progress.interval))

    task = asyncio.get_running_loop().create_task(watch(), name="deucalion-record-progress")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        show()
        progress.close()


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
