"""Filtered reads of text 0.0.4: the lines of selected metrics, in a body still checked to be
an exposition.

Selected lines are checked in full. With a handful of exact names, the body is not decoded: one
search over its bytes finds the lines that start with them and any line that does not start like
an exposition's (blank, ``#``, or the first character of a metric name: what tells an HTML page,
JSON or garbage after valid lines apart), and the last line is read in full (a body cut short).
Only the selected lines are decoded; the others are checked for how they start, not for their
UTF-8. The layout of the selected lines (which sample and series each is) is remembered by their
parts before the value, so that a body like the last one costs the search, one lookup and the
conversion of its values. Otherwise the body is taken a run of same-name lines at a time, the
selector asked once per name (remembered, bounded), adjacent selected runs read together; once
most of a body is selected, the next piece is read in full and filtered by name.
"""

from __future__ import annotations

import re

from deucalion.errors import ParseError
from deucalion.exposition.body import Body, byte_pieces, decoded, located, whole_body
from deucalion.exposition.grammar import BLOCK_FAST, NAME_FAST, RAW_VALUE, Samples
from deucalion.exposition.labels import LabelMemory, label_order, sorted_keys, unescaped
from deucalion.exposition.naming import Selector
from deucalion.exposition.text import (
    LIGHT_LINE,
    LINES,
    count_samples,
    first_error,
    read_line,
    take,
    take_other,
)

__all__ = ["Filter"]

_START_BYTES = frozenset(b"#\nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:")
# A line start (after a "\n") that is not one (or is indented, for _RUNS to look at).
_BAD_START = r"[^#a-zA-Z_:\n]"
# Runs of lines of one sample name, after the blank and comment lines before them: groups
# (name, other); a line that does not start with "#" or a name lands in ``other``.
_RUNS = re.compile(
    rf"(?:[ \t]*+(?:#[^\n]*+)?\n)*+"
    rf"(?:({NAME_FAST})[^\n]*+(?:\n\1(?![a-zA-Z0-9_:])[^\n]*+)*+\n?"
    r"|([^\n]*)\n?)"
)
# A canonical line from its name on: (name, block with braces or "", value).
_WANTED_LINE = re.compile(
    rf"({NAME_FAST})(\{{{BLOCK_FAST}\}}|\{{\}}|)"
    rf" ({RAW_VALUE}+)(?: [+-]?[0-9]++)?+".encode()
)
# The rest of a canonical line's head after the start of its name, and then its value (group)
# and timestamp: the value group is b"" when the line is not canonical.
_HEAD_REST = rf"[a-zA-Z0-9_:]*+(?:\{{(?:{BLOCK_FAST})?+\}})?+".encode()
_VALUE_REST = rf"(?: ({RAW_VALUE}++)(?: [+-]?[0-9]++)?+(?=\n|\Z))?+".encode()
# What float() may read, values joined by blanks and checked in one match: float() would also
# take what the format does not ("1_0", "\x0c1").
_VALUES = re.compile(rf"{RAW_VALUE}++(?: {RAW_VALUE}++)*+".encode()).fullmatch

_MAX_HEADS = 4096
_MAX_LAYOUTS = 1024
_MAX_NAMES = 65536
# Past this many exact names, no search for them is tried (sorting them would cost more).
_MAX_NAMES_SEARCHED = 1024

#: Where the selected lines of a body go: (sample name, series keys, first line, line after)
#: for each run of lines of one sample, the lines counted among those a filter found.
Layout = tuple[tuple[str, tuple[str, ...], int, int], ...]


class Filter:
    """Reads the lines of the samples a :class:`~deucalion.exposition.naming.Selector`
    selects, remembering between bodies what makes the next one quicker (bounded caches).

    Its dicts are only read and written by key, so threads may share one.
    """

    #: With at most this many exact names to look for, one search over the bytes finds them.
    MAX_NEEDLES = 8

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self._selected: dict[str, bool] = {}
        self._heads: dict[bytes, tuple[str, str]] = {}
        # The layout of the selected lines of bodies read before, by their parts before the
        # value: a target serves the same lines scrape after scrape.
        self._layouts: dict[tuple[bytes, ...], Layout] = {}
        needles: list[str] = []
        searched = selector.exact and len(selector.names) <= _MAX_NAMES_SEARCHED
        if searched:
            # The names to search for, without those another one already finds (after
            # sorting, a name's prefixes come before it). Given up past MAX_NEEDLES, so that
            # many names cost a linear set-up: they are looked up in a set, name by name.
            for name in sorted(selector.names):
                if not any(name.startswith(shorter) for shorter in needles):
                    needles.append(name)
                    if len(needles) > self.MAX_NEEDLES:
                        break
        exact = searched and len(needles) <= self.MAX_NEEDLES
        self._needles = tuple(needles) if exact else None
        # Whether the last piece read had most of its lines selected: the next is then read in
        # full and filtered by name, cheaper than going through it a run at a time.
        self._dense = False
        # One search, in the body's order, finds the lines of every needle and any line that
        # does not start like an exposition's: cheaper than a find() per needle, each a scan
        # of the whole body, and than a second scan for bad starts. It reads bytes (the body
        # is not decoded) and gives (head, value) for a needle's canonical line, (head or
        # b"", b"") for any other needle line and (b"", b"") for a bad start.
        alternatives = b"|".join(
            re.escape(n.encode()) for n in sorted(needles, key=len, reverse=True)
        )
        selected = rb"((?:" + alternatives + rb")" + _HEAD_REST + rb")" + _VALUE_REST
        self._lines = re.compile(b"\n(?:" + _BAD_START.encode() + b"|" + selected + b")").findall
        self._first_line = re.compile(selected).match
        self._first = tuple(n.encode() for n in needles)

    def selects(self, name: str) -> bool:
        """Whether the sample called ``name`` is kept (remembered per name)."""
        selected = self._selected.get(name)
        if selected is None:
            selected = self.selector.selects(name)
            if len(self._selected) >= _MAX_NAMES:
                self._selected.clear()
            self._selected[name] = selected
        return selected

    def read(
        self, data: Body, memory: LabelMemory, *, count: bool = False
    ) -> tuple[Samples, int | None]:
        """The selected samples of a text 0.0.4 body and, when ``count``, its number of sample
        lines; ParseError if it is not a text exposition."""
        if isinstance(data, str):
            data = data.encode()
        if self._needles is not None:
            whole = whole_body(data)
            if whole:
                # Most bodies are one piece: read it at once.
                found = self._found(whole, True)
                if found is not None:
                    return found, count_samples(whole) if count else None
                data = whole
        else:
            whole = None
        result: Samples = {}
        counted = 0
        lines, offset, piece = 0, 0, b""
        for lines, offset, piece, last in byte_pieces(data):
            if count:
                counted += count_samples(piece)
            found = None
            if self._needles is not None and piece is not whole:  # (whole: tried above)
                found = self._found(piece)
            if found is None:
                text = decoded(piece, lines, offset, last)
                try:
                    if self._dense:
                        found = self._selected_of_full(text, memory)
                    if found is None:
                        self._runs(text, result, memory)
                except (ParseError, ValueError):
                    raise located(first_error(text, self.selects), lines) from None
            if not result and found is not None:
                result = found  # the first piece's (most bodies are one piece)
            elif found:
                for name, series in found.items():
                    result.setdefault(name, {}).update(series)
        self._check_last_line(piece, lines, offset)
        return result, counted if count else None

    def _check_last_line(self, piece: bytes, lines: int, offset: int) -> None:
        """Read the last line of the body (the end of its last ``piece``, after ``lines``
        lines and ``offset`` bytes) in full, selected or not: a body cut short or ending in
        garbage is refused. A line read before is known by its head; its value is left to
        check."""
        end = len(piece)
        while end and piece[end - 1] == 10:  # "\n"
            end -= 1
        start = piece.rfind(b"\n", 0, end) + 1
        line = piece[start:end]
        head, _, value = line.rpartition(b" ")
        known = head in self._heads
        canonical = None if known else _WANTED_LINE.fullmatch(line)
        if canonical and self._key_of(canonical[1] + canonical[2]) is not None:
            known = head in self._heads  # read now; unless it carries a timestamp
        if known and _VALUES(value):
            try:
                float(value)
                return
            except ValueError:
                pass
        lineno = lines + piece.count(b"\n", 0, start) + 1
        try:
            read_line(decoded(line, lineno - 1, offset + start, False), None)
        except ParseError as exc:
            raise ParseError(exc.reason, lineno) from None

    def _selected_of_full(self, text: str, memory: LabelMemory) -> Samples | None:
        """The selected samples of a full read of ``text``, or None when the full read finds
        a fault (for :meth:`_runs` to judge: it may be in an unselected line)."""
        every: Samples = {}
        try:
            take(LINES.findall(text), every, memory, None)
        except (ParseError, ValueError):
            return None
        selects = self.selects
        found = {name: series for name, series in every.items() if selects(name)}
        self._dense = 2 * len(found) > len(every)
        return found

    def _runs(self, text: str, result: Samples, memory: LabelMemory) -> None:
        """Read ``text`` a run of same-name lines at a time, the selected runs in full.

        Selected runs next to each other (comments between them included) are read together,
        so that a selector taking most of a body costs little more than a full read; when
        most runs are selected, the next piece is read in full and filtered by name instead.
        """
        selects = self.selects
        start = end = -1
        runs = selected = 0
        for run in _RUNS.finditer(text):
            name = run.group(1)
            runs += 1
            if name is not None and selects(name):
                selected += 1
                if start < 0:
                    start = run.start(1)
                end = run.end()
                continue
            if start >= 0:
                take(LINES.findall(text, start, end), result, memory, None)
                start = -1
            line = run.group(2)
            if line:
                try:
                    take_other(line, result, selects)
                except ParseError:
                    # Only the start of an unselected line is checked.
                    if not LIGHT_LINE.fullmatch(line):
                        raise
                    head = re.match(rf"[ \t]*({NAME_FAST})", line)
                    if head is None or selects(head.group(1)):
                        raise
        if start >= 0:
            take(LINES.findall(text, start, end), result, memory, None)
        self._dense = 2 * selected > runs

    def _found(self, piece: bytes, last: bool = False) -> Samples | None:
        """Read the selected lines of ``piece`` where the regex engine visits only those (and,
        when ``last``, the piece is the whole body: check its last line too).

        One regular-expression search jumps from one line starting with a needle to the next
        and also finds any line that starts like no exposition line; only the needles' lines
        are read (one of a longer name that starts with a needle is read and skipped), the
        others passed over. All lines of one sample name are found by the same search, in
        order, so within a series the last line still wins. Returns None, for :meth:`_runs` to
        do, on anything else: a line that does not start like an exposition's, a selected line
        with blanks before its name or outside the canonical layout, or an error.

        ``_layouts`` maps the heads (the parts before the value) of the selected lines of a
        body read before to where each line's value goes: a parser reads the same lines scrape
        after scrape, and then only the values are left to convert. ``_heads`` maps each head
        read to its (sample name, or "" when unselected; series key).
        """
        if piece[0] not in _START_BYTES:
            return None
        found = self._lines(piece)
        if piece.startswith(self._first):
            # The first line, which no "\n" comes before.
            first = self._first_line(piece)
            found.insert(0, first.groups(b"") if first else (b"", b""))
        if found:
            heads, values = zip(*found, strict=True)
            if b"" in values:
                # A line that starts with something else, or a selected line outside the
                # canonical layout.
                return None
            layout = self._layouts.get(heads)
            if layout is None:
                layout = self._layout(heads)
                if layout is None:
                    return None
        else:
            heads, values, layout = (), (), ()
        try:
            numbers = list(map(float, values))
            if last:
                # The body's last line, selected or not, after the selected ones (whose faults
                # come first): one known by its head has its value checked, any other is read.
                end = len(piece) - (piece[-1] == 10)  # "\n"
                head, _, value = piece[piece.rfind(b"\n", 0, end) + 1 : end].rpartition(b" ")
                if head in self._heads and _VALUES(value):
                    float(value)
                else:
                    self._check_last_line(piece, 0, 0)
        except ValueError:
            return None
        result: Samples = {}
        for sample, keys, start, stop in layout:
            series = result.get(sample)
            if series is None:
                result[sample] = dict(zip(keys, numbers[start:stop], strict=True))
            else:
                series.update(zip(keys, numbers[start:stop], strict=True))
        return result

    def _layout(self, heads: tuple[bytes, ...]) -> Layout | None:
        """The layout of selected lines whose parts before the value are the canonical
        ``heads``, now remembered; None when a block has a duplicate or reserved label."""
        layout: list[tuple[str, tuple[str, ...], int, int]] = []
        for index, head in enumerate(heads):
            seen = self._heads.get(head) or self._key_of(head)
            if seen is None:
                return None
            sample, key = seen
            if not sample:
                continue
            if layout and layout[-1][0] == sample and layout[-1][3] == index:
                first = layout[-1]
                layout[-1] = (sample, (*first[1], key), first[2], index + 1)
            else:
                layout.append((sample, (key,), index, index + 1))
        if len(self._layouts) >= _MAX_LAYOUTS:
            self._layouts.clear()
        found = self._layouts[heads] = tuple(layout)
        return found

    def _key_of(self, head: bytes) -> tuple[str, str] | None:
        """(sample name, or "" when unselected; series key) of a canonical ``head`` (a name
        and its label block as written), now in ``_heads``; None when it is not UTF-8 or has
        a duplicate or reserved label name."""
        name, brace, rest = head.partition(b"{")
        try:
            sample, block = name.decode(), (brace + rest).decode()
        except UnicodeDecodeError:
            return None
        if not self.selector.names_select(sample):
            seen = ("", "")
        elif block.count('"') > 2:
            sequence = "".join(unescaped(block).split('"')[::2])
            try:
                order = label_order(sequence)
            except ParseError:
                return None
            seen = (sample, block if order is None else sorted_keys([block], sequence, order)[0])
        else:
            seen = (sample, block or "{}")
        if len(self._heads) >= _MAX_HEADS:
            self._heads.clear()
        self._heads[head] = seen
        return seen
