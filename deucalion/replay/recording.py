"""Recordings: what the targets served, cycle by cycle, as gzip-compressed OpenMetrics text.

Why OpenMetrics text with timestamps: it is the format Prometheus itself reads back
(``promtool tsdb create-blocks-from openmetrics FILE DIR`` turns a recording, gunzipped first,
into blocks a Prometheus server serves), it is plain text any tool can read, and gzip takes a
recording of node_exporter to a few bytes a sample. The format, line by line::

    deucalion_record_target_info{instance="localhost:9100",job="node",deucalion_target="..."} 1 ...
    node_load1{deucalion_target="http://localhost:9100/metrics"} 0.52 1700000000.003
    up{deucalion_target="http://localhost:9100/metrics"} 1.0 1700000000.003
    scrape_duration_seconds{deucalion_target="http://localhost:9100/metrics"} 0.004 1700000000.003
    deucalion_record_cycle_time_seconds 1700000000.0 1700000000.0
    ...
    # EOF

- Every sample of a target is one line: its name, its series' labels plus
  ``deucalion_target`` (the target's URL, which keys the data an observer receives), the value
  (``NaN``, ``+Inf``, ``-Inf`` as OpenMetrics writes them) and the target's scrape time in Unix
  seconds, to the microsecond (Prometheus keeps the milliseconds).
- ``deucalion_record_target_info`` (value 1, at the target's scrape time) comes before each
  target's samples and carries what live alerts about the target take from it: its labels (as
  configured or discovered) and its ``instance`` and ``job`` as alerts carry them, plus
  ``deucalion_target``. A replay labels alerts with them, as live. Nothing of the target's
  credentials is written, and its URL as logs show it. Recordings without these lines (written
  before they were, or by a writer handed no labels) replay alerts labelled by the URL alone.
  The name is the recording's own: a target's sample of that name would be read as this line.
- ``up`` and ``scrape_duration_seconds`` (and ``scrape_samples_scraped`` when counted) are
  recorded for every target, so a target that was down is in the recording.
- ``deucalion_record_cycle_time_seconds`` closes each cycle; its value and timestamp are the
  cycle's scrape time. A reader yields a cycle when it reads this line, so samples after the
  last one are an incomplete cycle (the recorder was killed) and are left out, counted.
- ``# EOF`` ends a complete recording. There are no ``# TYPE`` lines: the samples are recorded
  by their own names, as an observer receives them, so every family is of unknown type.
  Recordings joined end to end (``cat a.om.gz b.om.gz``: two gzip members) read as one, the
  second's cycles after the first's ``# EOF``.

A recording cut off mid-line or mid-gzip-stream (a killed recorder, a full disk) is read up to
the cut, with a warning counted as ``truncated``. The compressor is flushed every
``FLUSH_INTERVAL`` seconds of recording, so a killed recorder loses at most that much.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import os
import re
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from deucalion._http import redact_url
from deucalion.exposition.grammar import escape
from deucalion.exposition.naming import Selector
from deucalion.history.labels import LABEL_NAME, pairs_key, series_labels
from deucalion.observer import SYNTHETIC_METRICS, TargetsData
from deucalion.provisioner import CollectedCycle, MetricsProvisioner
from deucalion.replay.files import create_private, why_not_written
from deucalion.replay.sources import Cycle, HistoryError, SourceStats

if TYPE_CHECKING:
    from deucalion.config.loading import Settings

__all__ = [
    "CYCLE_METRIC",
    "RECORDING_SUFFIXES",
    "TARGET_INFO",
    "TARGET_LABEL",
    "RecordingListener",
    "RecordingProvisioner",
    "RecordingSource",
    "RecordingWriter",
    "check_recording_path",
    "is_recording_name",
    "record",
]

log = logging.getLogger(__name__)

#: The sample that closes each cycle of a recording.
CYCLE_METRIC = "deucalion_record_cycle_time_seconds"
#: The label that carries each sample's target URL.
TARGET_LABEL = "deucalion_target"
#: The sample, one a target a cycle, whose labels are the target's (see the module docstring).
TARGET_INFO = "deucalion_record_target_info"
#: Bytes a reader decompresses and decodes at a time.
READ_BLOCK = 1 << 16
#: Seconds of recording between two flushes of the compressor.
FLUSH_INTERVAL = 10.0

# Possessive repeats (*+, ++): nothing to backtrack into, so a label value of megabytes costs its
# own size, not a backtracking state per character (1.6 GB for 10 MB).
_HEAD = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*+)(\{(?:[^"}]++|"(?:[^"\\\n]++|\\.)*+")*+\})?\Z')
#: One ``name="value"`` of a series key, value escaped (possessive, as ``_HEAD``).
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*+)="((?:[^"\\]++|\\.)*+)"')
#: Series whose name, target and key a reader remembers (it forgets all past this).
MAX_CACHED_SERIES = 1_000_000


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


#: The suffixes of a recording's name: ``deucalion backtest --from`` (``open_source``) reads a
#: file by its name, and a recording only so named.
RECORDING_SUFFIXES = (".om", ".gz")


def is_recording_name(path: str | Path) -> bool:
    """Whether ``path`` is named as a recording (``*.om``, ``*.om.gz``, ``*.gz``)."""
    return Path(path).suffix in RECORDING_SUFFIXES


def _refuse_another_format(path: Path) -> None:
    if not is_recording_name(path):
        # A source is read by its name: OpenMetrics text in x.csv is read back as CSV, in
        # x.prom as no source at all, and refused there, after the hour it took to record.
        raise HistoryError(
            f"cannot write the recording {path}: a recording is OpenMetrics text, "
            f"which `deucalion backtest --from` reads by its name: call it FILE.om.gz "
            f"(or FILE.om uncompressed), not "
            f"{path.suffix or 'a name without a suffix'}"
        )


def _exists(path: Path) -> str:
    try:
        size = f" ({path.stat().st_size:,} bytes)"
    except OSError:
        size = ""
    return (
        f"cannot write the recording {path}: it exists{size}; give a new name, or "
        "--overwrite to replace it"
    )


def check_recording_path(path: str | Path, *, overwrite: bool = False) -> None:
    """Refuse, before anything is recorded, a recording ``path`` that cannot be written: a
    name ``backtest --from`` would not read, a directory, a link, a file already there (unless
    ``overwrite``), a directory that does not exist or cannot be written. ``HistoryError``
    says which; ``RecordingWriter`` still refuses what appears there meanwhile."""
    path = Path(path)
    _refuse_another_format(path)
    cannot = f"cannot write the recording {path}: "
    if path.is_symlink():
        raise HistoryError(f"{cannot}it is a link; give the path of a regular file")
    if path.is_dir():
        raise HistoryError(f"{cannot}it is a directory; give the path of a file in it")
    if path.exists() and not overwrite:
        raise HistoryError(_exists(path))
    folder = path.absolute().parent
    if not folder.is_dir():
        raise HistoryError(f"{cannot}its directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HistoryError(f"{cannot}permission denied; give a path you can write")


class RecordingWriter:
    """Writes cycles to a recording file (gzip-compressed unless the name lacks ``.gz``).

    The file is the owner's only (0600), and a link at ``path`` is refused, never followed: a
    recording holds what the targets serve. A file already at ``path`` is replaced, unless
    ``overwrite`` is false: then it is refused. Use as a context manager or call ``close()``,
    which writes ``# EOF``; ``close()`` twice is harmless.
    """

    def __init__(self, path: str | Path, *, compresslevel: int = 6, overwrite: bool = True) -> None:
        self.path = Path(path)
        _refuse_another_format(self.path)
        self._gzip: gzip.GzipFile | None = None
        self._file: IO[bytes] | gzip.GzipFile
        try:
            self._raw: IO[bytes] = create_private(self.path, exclusive=not overwrite)
        except FileExistsError:
            raise HistoryError(_exists(self.path)) from None
        except OSError as exc:
            raise HistoryError(
                f"cannot write the recording {self.path}: {why_not_written(exc)}"
            ) from None
        if self.path.name.endswith(".gz"):
            self._gzip = gzip.GzipFile(
                filename=self.path.name, mode="wb", compresslevel=compresslevel, fileobj=self._raw
            )
            self._file = self._gzip
        else:
            self._file = self._raw
        self._last_flush = -math.inf
        self._closed = False
        self.cycles = 0
        self.samples = 0

    def write_cycle(self, cycle: Cycle) -> None:
        """Append one cycle: every sample of every target, then the line that closes it."""
        lines: list[str] = []
        infos = 0
        target_labels = cycle.target_labels or {}
        for target, samples in cycle.samples.items():
            # To the microsecond, so a replay hands the observer the very times it saw live;
            # Prometheus keeps milliseconds of it when backfilling.
            stamp = f"{cycle.target_times.get(target, cycle.time):.6f}"
            # As logs show it: a secret in the URL's query never reaches the file.
            own = f'{TARGET_LABEL}="{escape(redact_url(target))}"'
            labels_of_target = target_labels.get(target)
            if labels_of_target is not None:
                lines.append(f"{TARGET_INFO}{{{_info_labels(labels_of_target)}{own}}} 1 {stamp}\n")
                infos += 1
            for name, series_values in samples.items():
                for series, value in series_values.items():
                    labels = f"{{{series[1:-1]},{own}}}" if series != "{}" else f"{{{own}}}"
                    lines.append(f"{name}{labels} {_number(value)} {stamp}\n")
        self.samples += len(lines) - infos
        lines.append(f"{CYCLE_METRIC} {cycle.time!r} {cycle.time:.6f}\n")
        self._file.write("".join(lines).encode("utf-8"))
        self.cycles += 1
        if self._gzip is not None and cycle.time - self._last_flush >= FLUSH_INTERVAL:
            # A sync flush ends a deflate block, so what was written so far can be read back
            # even if the process dies now; doing it every cycle would cost compression.
            self._gzip.flush(zlib.Z_SYNC_FLUSH)
            self._last_flush = cycle.time

    def close(self) -> None:
        """Write ``# EOF`` and close the file."""
        if self._closed:
            return
        self._closed = True
        self._file.write(b"# EOF\n")
        self._file.close()
        self._raw.close()  # a GzipFile leaves the file it was given open

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _info_labels(labels: Mapping[str, str]) -> str:
    """A target's labels as the first pairs of its info line (each followed by a comma),
    sorted; a name that is no label name, or is ``deucalion_target``, cannot be written."""
    return "".join(
        f'{name}="{escape(value)}",'
        for name, value in sorted(labels.items())
        if name != TARGET_LABEL and LABEL_NAME.fullmatch(name)
    )


class RecordingSource:
    """Reads a recording back as cycles (see the module's docstring for the format).

    Lines are parsed as they stream out of gzip, one cycle held at a time. A line that breaks
    the format is a ``HistoryError`` naming the file and line; a recording cut off is read up to
    the cut and counted in ``stats.warnings["truncated"]``. Damage (a gzip checksum that fails,
    a damaged block) is counted in ``stats.errors["corrupted"]`` with what was lost: every
    cycle that decodes is read. Cycles are given in file order; those that go back in time or
    repeat a time, and samples a cycle holds twice, are counted in ``stats.warnings``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise HistoryError(f"{self.path}: no such recording")
        self.stats = SourceStats()
        self._compressed = False
        self._size = self._position = 0  # of the file, and how much of it was decompressed
        self._cut_off: tuple[int, str] | None = None  # where the text stops short, if it does

    def _blocks(self) -> Iterator[bytes]:
        """The file's text in blocks, decompressed when it is gzip; ``EOFError`` after the
        last block when the gzip stream is cut short, ``_Corrupt`` where it is damaged
        (everything before the cut or the damage is given); a file that cannot be read is a
        ``HistoryError`` saying why."""
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise HistoryError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with raw:
            self._compressed = raw.read(2) == b"\x1f\x8b"
            self._size = self.path.stat().st_size
            raw.seek(0)
            if not self._compressed:
                while block := raw.read(READ_BLOCK):
                    self._position = raw.tell()
                    yield block
                return
            for accepted, block in _inflate(raw, self._size):
                self._position = accepted
                yield block
            self._position = self._size  # and its trailer, which gives no text

    def read_fraction(self) -> float | None:
        """The share of the file read so far, 0 to 1 (bytes decompressed out of the file's
        size; None before reading starts): how far a replay is when its span is unknown."""
        return min(1.0, self._position / self._size) if self._size else None

    def _lines(self) -> Iterator[tuple[int, str]]:
        """``(line number, line)``; stops at damage, counting it, or at a cut, kept in
        ``_cut_off`` (warned about once the reader knows the file is a recording)."""
        self._cut_off = None
        lineno = 0
        rest: list[bytes] = []
        try:
            # Decoded and split a block at a time: per line, that costs a third less.
            for block in self._blocks():
                cut = block.rfind(b"\n") + 1
                if not cut:
                    rest.append(block)  # a long line: joined once it ends, not per block
                    continue
                whole = b"".join([*rest, block[:cut]]) if rest else block[:cut]
                rest = [block[cut:]] if cut < len(block) else []
                for line in whole.decode("utf-8").split("\n")[:-1]:
                    lineno += 1
                    yield lineno, line
        except EOFError as exc:
            self._cut_off = (lineno + 1, f"in the gzip stream ({exc})")
            return
        except _Corrupt as exc:
            self.stats.fail("corrupted", f"{self.path}: {exc} (after line {lineno})")
            return
        except UnicodeDecodeError as exc:
            raise HistoryError(f"{self.path}: not UTF-8 text after line {lineno} ({exc})") from None
        if rest:
            self._cut_off = (lineno + 1, "mid-line")

    def _cut(self, lineno: int, how: str) -> None:
        self.stats.warn(
            "truncated",
            f"{self.path} is cut off {how} at line {lineno}: read up "
            "to the cut (a recorder that was killed leaves this)",
        )

    async def cycles(
        self,
        metrics: Iterable[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> AsyncIterator[Cycle]:
        """Every recorded cycle between ``start`` and ``end``; ``step`` is ignored (a recording
        has the cycles it was recorded with)."""
        desired = None if metrics is None else _selector(metrics, self.path)
        keep: dict[str, bool] = {}
        heads: dict[str, tuple[str, str, str] | None] = {}
        samples: TargetsData = {}
        target_times: dict[str, float] = {}
        target_labels: dict[str, Mapping[str, str]] = {}
        labels_of: dict[str, Mapping[str, str]] = {}  # an info line's labels, by its series key
        pending = 0
        ended = False
        order = _CycleOrder()
        repeated = 0  # samples the cycle being read holds twice
        closed = 0  # cycles read to their closing line, in range or not
        try:
            for lineno, line in self._lines():
                if line.startswith("#"):
                    ended = ended or line == "# EOF"
                    continue
                if not line:
                    continue
                # Samples after `# EOF`: recordings joined end to end (`cat a.om.gz b.om.gz`),
                # read one after the other; what is no recording is refused below.
                ended = False
                head, _, stamp_text = line.rpartition(" ")
                head, _, value_text = head.rpartition(" ")
                try:
                    value, stamp = float(value_text), float(stamp_text)
                except ValueError:
                    raise HistoryError(
                        f"{self.path}:{lineno}: not a sample line of a recording: {line[:120]!r}"
                    ) from None
                if head == CYCLE_METRIC:
                    closed += 1
                    order.see(value, lineno)
                    # No early stop past ``end``: a recording whose clock went back has cycles in
                    # the range after it, and they are data.
                    if (start is None or stamp >= start) and (end is None or stamp <= end):
                        # A cycle without info lines (an older recording): labels unknown.
                        yield Cycle(value, target_times, samples, target_labels or None)
                    samples, target_times, target_labels, pending = {}, {}, {}, 0
                    if repeated:
                        order.repeated_samples += repeated
                        order.first_sample = order.first_sample or f"line {lineno}"
                        repeated = 0
                    continue
                pending += 1
                # The same series recurs every cycle: its name, target and key are worked out once.
                try:
                    known = heads[head]
                except KeyError:
                    known = heads[head] = self._head(head, lineno, desired, keep)
                    if len(heads) > MAX_CACHED_SERIES:
                        heads.clear()
                        labels_of.clear()
                if known is None:
                    continue
                name, target, series = known
                if name == TARGET_INFO:
                    try:
                        target_labels[target] = labels_of[series]
                    except KeyError:
                        target_labels[target] = labels_of[series] = series_labels(series)
                    continue
                per_series = samples.setdefault(target, {}).setdefault(name, {})
                if series in per_series:
                    repeated += 1
                per_series[series] = value
                target_times[target] = stamp
        except HistoryError as exc:
            if not self._compressed or not closed:
                raise  # before any cycle it is no damage: the file is no recording
            # gzip decodes a damaged block into text that is no recording before it notices:
            # that is the damage, and what follows it cannot be read.
            unread = max(0, self._size - self._position)
            self.stats.fail(
                "corrupted",
                f"{exc}: the recording is damaged here; the cycles before it were read, "
                f"about the last {unread:,} bytes ({100 * unread / max(self._size, 1):.0f}% "
                "of the file) could not be read",
            )
            ended, pending = True, 0
        if not closed and not ended:
            # Text without one cycle's closing line nor `# EOF`: another file under a
            # recording's name (or one cut off before its first cycle ended), not history.
            raise HistoryError(
                f"{self.path}: not a deucalion recording: it holds no complete cycle (no "
                f"{CYCLE_METRIC} line, no # EOF); `deucalion record -o FILE.om.gz --all` "
                "writes one"
            )
        if self._cut_off is not None:
            self._cut(*self._cut_off)
        order.report(self.path, self.stats)
        if pending:
            self.stats.warn(
                "incomplete_cycle",
                f"{self.path}: the {pending} sample(s) after "
                "the last complete cycle are left out (the recording ends before "
                "the line that closes their cycle)",
            )
        elif not ended and "truncated" not in self.stats.warnings:
            self._cut(0, "before # EOF")

    def _head(
        self, head: str, lineno: int, desired: Selector | None, keep: dict[str, bool]
    ) -> tuple[str, str, str] | None:
        """``(sample name, target, series key)`` of a line's ``name{labels}``; None when the
        sample is not desired."""
        match = _HEAD.match(head)
        if match is None:
            raise HistoryError(
                f"{self.path}:{lineno}: not a sample line of a recording: {head[:120]!r}"
            )
        name, labels = match.groups()
        wanted = keep.get(name)
        if wanted is None:
            wanted = keep[name] = (
                desired is None
                or name in SYNTHETIC_METRICS
                or name == TARGET_INFO
                or desired.selects(name)
            )
        if not wanted:
            return None
        pairs: list[tuple[str, str]] = _PAIR.findall(labels or "{}")
        target = None
        for pair in pairs:
            if pair[0] == TARGET_LABEL:
                target = _unescape(pair[1])
        if target is None:
            raise HistoryError(
                f"{self.path}:{lineno}: sample without a {TARGET_LABEL} "
                "label: not a deucalion recording?"
            )
        return name, target, pairs_key(p for p in pairs if p[0] != TARGET_LABEL)


class _Corrupt(Exception):
    """The gzip stream of a recording is damaged (the message says where and what is lost)."""


#: Bytes of a gzip member's trailer (CRC-32 and length), checked after all its data.
_TRAILER = 8


def _inflate(raw: IO[bytes], size: int) -> Iterator[tuple[int, bytes]]:
    """The decompressed blocks of a gzip file (of ``size`` bytes), member after member, each
    with the bytes of the file decompressed to give it and those before it.

    zlib rather than gzip.open, so that a stream cut short still gives all it holds
    (``EOFError`` after it). Output comes in blocks of at most ``READ_BLOCK`` and each member's
    trailer is fed apart from its data, so that damage costs at most a block before it: a bad
    checksum in the trailer loses nothing, a damaged block loses what follows it. Damage
    raises ``_Corrupt`` saying where and how much is lost.
    """
    decompressor: Any = None
    data = b""
    offset = 0  # bytes of the file the decompressor has accepted
    ended = False
    while True:
        if not ended and len(data) < 2 * READ_BLOCK:
            more = raw.read(READ_BLOCK)
            data += more
            ended = not more
        # Hold back what could be the trailer until all before it is in: its check then runs
        # after every byte of the member's data was given out.
        feed = data if ended and len(data) <= _TRAILER else data[: max(0, len(data) - _TRAILER)]
        if not feed:
            if ended:
                break
            continue
        if decompressor is None:
            decompressor = zlib.decompressobj(wbits=31)
        try:
            out = decompressor.decompress(feed, READ_BLOCK)
        except zlib.error as exc:
            unread = size - offset
            if "incorrect data check" in str(exc) or "incorrect length check" in str(exc):
                raise _Corrupt(
                    f"its gzip checksum does not match its contents ({exc}): every cycle was "
                    "read, but a bit of the file changed since it was written, so values may "
                    "be wrong"
                ) from None
            raise _Corrupt(
                f"the gzip stream is damaged at about byte {offset:,} of {size:,} ({exc}): "
                f"the cycles before it were read, the last {unread:,} bytes "
                f"({100 * unread / max(size, 1):.0f}% of the file) could not be read"
            ) from None
        # At a member's end, the input it did not take is in unused_data, and CPython leaves
        # it in unconsumed_tail too: counting both took a second member for damage at byte 8.
        left = len(decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail)
        accepted = len(feed) - left
        offset += accepted
        data = data[accepted:]
        if out:
            yield offset, out
        if decompressor.eof:
            decompressor = None  # another gzip member may follow
    if decompressor is not None and not decompressor.eof:
        raise EOFError("the gzip stream ends before its end marker")


class _CycleOrder:
    """Counts the cycles of a recording that go back in time or repeat the time before them
    (replayed in file order as they come) and samples a cycle holds twice: each said once."""

    def __init__(self) -> None:
        self.last = -math.inf
        self.back = self.repeated = self.repeated_samples = 0
        self.first_back = self.first_repeat = self.first_sample = ""

    def see(self, time: float, lineno: int) -> None:
        if time < self.last:
            self.back += 1
            self.first_back = self.first_back or f"line {lineno}: {time!r} after {self.last!r}"
        elif time == self.last:
            self.repeated += 1
            self.first_repeat = self.first_repeat or f"line {lineno}: {time!r}"
        self.last = time

    def report(self, path: Path, stats: SourceStats) -> None:
        if self.back:
            stats.warn(
                "cycles_out_of_order",
                f"{path}: {self.back} cycle(s) go back in time (the first at "
                f"{self.first_back}); replayed in file order, so data_time() goes back too",
                self.back,
            )
        if self.repeated:
            stats.warn(
                "repeated_cycles",
                f"{path}: {self.repeated} cycle(s) have the time of the cycle before them (the "
                f"first at {self.first_repeat}); each replayed as recorded",
                self.repeated,
            )
        if self.repeated_samples:
            stats.warn(
                "repeated_samples",
                f"{path}: {self.repeated_samples} sample(s) recur in the cycle that already "
                f"has them (the first cycle closing at {self.first_sample}); the cycle keeps "
                "the last",
                self.repeated_samples,
            )


def _selector(metrics: Iterable[str], path: Path) -> Selector:
    """The samples a replay reads: those the live selection would hand (names, families,
    regular expressions), and the synthetic ones, which a backtest hands when desired."""
    try:
        return Selector.from_desired(metrics)
    except ValueError as exc:
        raise HistoryError(f"{path}: {exc}") from None


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


# --- recording live ---------------------------------------------------------------------------


class RecordingListener:
    """Records every cycle of a provisioner, as its observers receive it, to ``path``: a
    ``CycleListener`` (``MetricsProvisioner.add_listener``).

    ``metrics`` are the metrics it needs collected besides the observers' (``None``: every
    sample; the default, none: it records what the observers desire). Each target's ``up`` and
    ``scrape_duration_seconds`` are always recorded. The file is opened when the provisioner
    starts and closed (``# EOF``) when it stops.
    """

    def __init__(
        self, path: str | Path, *, metrics: Iterable[str] | None = (), overwrite: bool = True
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.desired_metrics: frozenset[str] | None = (
            None if metrics is None else frozenset(metrics)
        )
        self.writer: RecordingWriter | None = None
        """The open recording (closed once the provisioner stopped); ``None`` before."""

    async def open(self) -> None:
        """Open the recording."""
        self.writer = await asyncio.to_thread(
            lambda: RecordingWriter(self.path, overwrite=self.overwrite)
        )

    async def on_cycle(self, cycle: CollectedCycle) -> None:
        """Append the cycle."""
        if self.writer is not None:
            # Compressing a large cycle takes milliseconds: off the loop.
            await asyncio.to_thread(self.writer.write_cycle, _cycle_of(cycle))

    async def close(self) -> None:
        """Close the recording (``# EOF``); twice is harmless."""
        if self.writer is not None:
            await asyncio.shield(asyncio.to_thread(self.writer.close))


def _cycle_of(cycle: CollectedCycle) -> Cycle:
    samples = {r.target.url: r.with_synthetic() for r in cycle.results}
    # What live alerts about a target take from it (``alert_labels``): its labels, instance
    # and job; never its credentials.
    labels = {
        r.target.url: {**r.target.labels, "instance": r.target.instance, "job": r.target.job}
        for r in cycle.results
    }
    return Cycle(cycle.time, cycle.target_times, samples, labels)


async def record(
    settings: Settings,
    path: str | Path,
    *,
    metrics: Iterable[str] | None,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    overwrite: bool = True,
) -> RecordingWriter:
    """Collect the configured targets every ``scrape_interval`` and record each cycle.

    ``metrics`` are the desired metrics recorded (``None``: every sample). Runs for
    ``duration`` seconds, or until ``stop`` is set or the task is cancelled; the recording is
    closed (``# EOF``) in every case. Returns the closed writer (its ``cycles`` and
    ``samples`` counted). A file at ``path`` is replaced, unless ``overwrite`` is false.

    It is the provisioner's own cycle loop, with a recording as its only listener and no
    observer (and no HTTP server of its own: a recorder runs beside a deucalion).
    """
    # What waits on the loop (a progress display's first line) runs before the set-up does.
    await asyncio.sleep(0)
    quiet = settings.model_copy(
        update={"telemetry": settings.telemetry.model_copy(update={"enabled": False})}
    )
    provisioner = MetricsProvisioner(quiet)
    listener = RecordingListener(path, metrics=metrics, overwrite=overwrite)
    provisioner.add_listener(listener)
    await provisioner.start()
    try:
        if stop is None:
            stop = asyncio.Event()
        try:
            await asyncio.wait_for(stop.wait(), duration)
        except TimeoutError:
            pass
    finally:
        await asyncio.shield(provisioner.stop())
    assert listener.writer is not None
    return listener.writer


class RecordingProvisioner(MetricsProvisioner):
    """A ``MetricsProvisioner`` that also records each cycle, as its observers receive it, to
    ``record_path`` (``deucalion run --record FILE``): one with a ``RecordingListener``.

    The recording holds every sample some observer desires, plus each target's ``up`` and
    ``scrape_duration_seconds``, at the scrape times the observers are handed; it is closed
    (``# EOF``) when the provisioner stops.
    """

    def __init__(
        self, config: str | Any | None = None, *, record_path: str | Path, **settings: Any
    ) -> None:
        super().__init__(config, **settings)
        self.record_path = Path(record_path)
        self._recorder = RecordingListener(self.record_path)
        self.add_listener(self._recorder)

    @property
    def recording(self) -> RecordingWriter | None:
        """The recording (open while running, closed once stopped); ``None`` before."""
        return self._recorder.writer


def desired_union(observers: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """Every metric some configured observer desires."""
    return frozenset().union(*(frozenset(m) for m in observers.values()))
