"""Reading Prometheus text 0.0.4 bodies: every line, or the lines of selected metrics.

The result maps each sample name to its series, and each series (its label set in Prometheus
notation, labels sorted by name, values escaped, ``{}`` for none) to its value::

    {"node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 1234.5, ...}, "up": {"{}": 1.0}}

Speed comes from leaving the per-line work to C. A body is read in pieces of about
``PIECE_CHARS`` that end at a line end, decoded one at a time from the chunks the body arrived
in, so a large body is never held twice. A full read of a piece is one ``findall()`` whose
pattern validates every line and captures, of a canonical sample line, its name, its label
block as written and its value; the lines it does not take are read by :func:`read_line`.
Whether the blocks of a piece have their labels sorted (then a block is its series key as is)
is decided once per piece from the distinct label-name sequences of its blocks, extracted by
splitting the joined blocks at their quotes; blocks written in an unsorted order are reordered
together, per order, by splitting them into pairs and zipping the pairs back in sorted order.
Label sets that vary from series to series or are written unsorted thus cost little more than
sorted ones, and the first parse of a body costs what the next ones do.

A filtered read (:class:`Filter`) keeps the lines of the selected metrics and still refuses a
body that is not an exposition. Selected lines are checked in full. With a handful of exact
names, one search finds the lines that start with them and another checks that every line
starts like an exposition's (blank, ``#``, or the first character of a metric name: what tells
an HTML page, JSON or garbage after valid lines apart), and the last line is read in full (a
body cut short). Otherwise the body is taken a run of same-name lines at a time, the selector
asked once per name (remembered, bounded), adjacent selected runs read together; once most of
a body is selected, the next piece is read in full and filtered by name.

Not supported (rejected): quoted UTF-8 metric and label names, native histograms, label names
starting with ``__``. Label values may contain any escape; ``\\\\``, ``\\"`` and ``\\n`` are
unescaped and any other backslash is kept as is, as prometheus_client does.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator, Sequence
from itertools import compress
from operator import itemgetter

from deucalion.errors import ParseError
from deucalion.exposition.grammar import ANY_VALUE, NAME, Samples, canonical
from deucalion.exposition.naming import Selector

__all__ = [
    "PIECE_CHARS",
    "Filter",
    "canonical_keys",
    "count_samples",
    "pieces",
    "read_full",
    "read_line",
]

#: Bodies are decoded and read in pieces of about this many characters, ending at line ends.
PIECE_CHARS = 1 << 16

# ---- the grammar as regular expressions -------------------------------------------------------

_LABEL = r"(?!__)[a-zA-Z_][a-zA-Z0-9_]*"
# Text 0.0.4 allows blanks around every token inside the braces and a trailing comma.
_LOOSE_PAIR = rf"{_LABEL}[ \t]*=[ \t]*{ANY_VALUE}[ \t]*"
_LOOSE_BLOCK = rf"[ \t]*(?:{_LOOSE_PAIR}(?:,[ \t]*{_LOOSE_PAIR})*(?:,[ \t]*)?)?"

_TEXT_TYPES = "counter|gauge|histogram|summary|untyped"
# HELP and TYPE lines as Go and Python clients write them, tried before the general _SKIP_ANY:
# the regex engine then settles most comment lines with its first alternative.
_SKIP_CANON = rf"# HELP {NAME}(?: [^\n]*)?|# TYPE {NAME} (?:{_TEXT_TYPES})"
# A line that carries no sample: blank, a comment, or a well-formed HELP or TYPE line.
_SKIP_ANY = (
    rf"[ \t]*(?:#(?:[ \t]+(?:HELP[ \t]+{NAME}(?:[ \t][^\n]*)?"
    rf"|TYPE[ \t]+{NAME}[ \t]+(?:{_TEXT_TYPES})[ \t]*)"
    r"|(?![ \t]+(?:HELP|TYPE)(?:[ \t\n]|\Z))[^\n]*))?"
)
# The value is only told apart from its neighbours here; float() decides whether it is a
# number (under a try), which is cheaper than spelling the float grammar in the regex. The
# character class keeps out what float() would wrongly accept: "_" and non-ASCII digits.
_RAW_VALUE = r"[0-9a-zA-Z.+-]"
_CANON_BLOCK = rf"{_LABEL}={ANY_VALUE}(?:,{_LABEL}={ANY_VALUE})*"
_REST_ANY = (
    rf"(?:[ \t]*\{{({_CANON_BLOCK})?\}}[ \t]*|[ \t]*\{{({_LOOSE_BLOCK})\}}[ \t]*|[ \t]+)"
    rf"({_RAW_VALUE}+)(?:[ \t]+[+-]?[0-9]+)?[ \t]*"
)

# The same languages spelt so that the regex engine keeps no backtracking state.
_NAME_FAST = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
_ANY_LABEL_FAST = r"[a-zA-Z_][a-zA-Z0-9_]*+"
# A label value whose only escapes are the three canonical ones is already in key notation.
_CANON_VALUE_FAST = r'"[^"\\\n]*+(?:"|(?:\\[\\"n][^"\\\n]*+)++")'
# Reserved label names ("__x") are refused when the block's label names are looked at.
_PAIR_FAST = rf"{_ANY_LABEL_FAST}={_CANON_VALUE_FAST}"
_BLOCK_FAST = rf"(?!__){_PAIR_FAST}(?:,{_PAIR_FAST})*+"

# One sample line (and the comment lines before it) a match: groups (name, block, value,
# other). A canonical line gives its name, its label block with braces ("" for none) and its
# value; any other line lands whole in ``other`` for read_line(), so the matches tile the text.
_LINES = re.compile(
    rf"(?:(?:{_SKIP_CANON}|{_SKIP_ANY})\n)*+"
    rf"(?:({_NAME_FAST})(\{{(?:{_BLOCK_FAST})?+\}})?+ ({_RAW_VALUE}++)(?: [+-]?[0-9]++)?+\n"
    r"|([^\n]*)\n?)"
)
_BLOCK_OF = itemgetter(1)
#: A canonical label block with braces, for the OpenMetrics reader's common case.
BLOCK = rf"\{{(?:{_BLOCK_FAST})?+\}}"
_CANON_PAIRS = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*+(?:\\.[^"\\]*+)*+"')
_LOOSE_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*+(?:\\.[^"\\]*+)*+)"')

_SKIP_LINE = re.compile(_SKIP_ANY)
_SAMPLE_LINE = re.compile(rf"[ \t]*({NAME}){_REST_ANY}")

# How every line of a filtered body must start: blank, or "#" or the first character of a
# metric name after any blanks (Prometheus's "valid start token").
_LIGHT_LINE = re.compile(r"[ \t]*+(?:[#a-zA-Z_:][^\n]*+)?")
_STARTS = frozenset("#\nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:")
# A line start (after a "\n") that is not one (or is indented, for _RUNS to look at).
_BAD_START = r"[^#a-zA-Z_:\n]"
# Runs of lines of one sample name, after the blank and comment lines before them: groups
# (name, other); a line that does not start with "#" or a name lands in ``other``.
_RUNS = re.compile(
    rf"(?:[ \t]*+(?:#[^\n]*+)?\n)*+"
    rf"(?:({_NAME_FAST})[^\n]*+(?:\n\1(?![a-zA-Z0-9_:])[^\n]*+)*+\n?"
    r"|([^\n]*)\n?)"
)
# A canonical line from its name on: (name, block with braces or "", value).
_WANTED_LINE = re.compile(
    rf"({_NAME_FAST})(\{{{_BLOCK_FAST}\}}|\{{\}}|)"
    rf" ({_RAW_VALUE}+)(?: [+-]?[0-9]++)?+(?=\n|\Z)"
)
# What float() may read: it would also take what the format does not ("1_0", "\x0c1").
_VALUE = re.compile(rf"{_RAW_VALUE}++").fullmatch
_SAMPLE_LINES = re.compile(r"\n[ \t]*+(?=[a-zA-Z_:])")
_SAMPLE_LINES_BYTES = re.compile(rb"\n[ \t]*+(?=[a-zA-Z_:])")

# Cache bounds: past them a cache is emptied (a body that varies endlessly pays, nothing grows).
_MAX_ORDERS = 4096
_MAX_HEADS = 4096
_MAX_NAMES = 65536

#: Label-name sequence of a block ("{a=,b=}") -> None when sorted, else the positions of its
#: pairs in sorted order.
Orders = dict[str, tuple[int, ...] | None]

# ---- pieces of a body -------------------------------------------------------------------------


Body = str | bytes | bytearray | memoryview | list[bytes]
"""A body: text, bytes, or the list of byte chunks it arrived in (consumed as it is read)."""


def pieces(body: Body) -> Iterator[tuple[int, str]]:
    """The body as (lines before, text) pieces of about ``PIECE_CHARS`` that end at line ends,
    the last one with a "\n" added when missing. Bytes are decoded as UTF-8 a piece at a time;
    a list of chunks is emptied as it is read, so that the body is never held twice."""
    for lines, piece, last in _texts(body):
        yield lines, piece if piece.endswith("\n") or not last else piece + "\n"


def _texts(body: Body) -> Iterator[tuple[int, str, bool]]:
    """(lines before, text, whether it is the last) pieces of ``body`` ending at line ends."""
    lines = 0
    if isinstance(body, str):
        size = len(body)
        start = 0
        while start < size:
            end = body.find("\n", start + PIECE_CHARS) + 1 or size
            yield lines, body[start:end], end == size
            if end < size:
                lines += body.count("\n", start, end)
            start = end
        return
    total = sum(map(len, body)) if isinstance(body, list) else len(body)
    if total <= PIECE_CHARS:
        # A small body is decoded at once (a copy of it is cheap).
        whole = (
            bytes(body)
            if not isinstance(body, list)
            else (body[0] if len(body) == 1 else b"".join(body))
        )
        if isinstance(body, list):
            body.clear()
        try:
            yield 0, str(whole, "utf-8"), True
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"invalid UTF-8 at byte {exc.start}", whole.count(b"\n", 0, exc.start) + 1
            ) from None
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry = ""
    parts: list[str] = []
    size = 0
    decoded = 0
    for chunk in _chunks(body):
        last = decoded + len(chunk) == total
        try:
            text = decoder.decode(chunk, final=last)
        except UnicodeDecodeError as exc:
            at = decoded + exc.start
            seen = carry + "".join(parts)
            lineno = lines + seen.count("\n") + bytes(chunk[: exc.start]).count(b"\n") + 1
            raise ParseError(f"invalid UTF-8 at byte {at}", lineno) from None
        decoded += len(chunk)
        parts.append(text)
        size += len(text)
        if size < PIECE_CHARS and not last:
            continue
        joined = carry + "".join(parts) if carry or len(parts) > 1 else parts[0]
        cut = len(joined) if last else joined.rfind("\n") + 1
        if cut:
            yield lines, joined[:cut], last
            if not last:
                lines += joined.count("\n", 0, cut)
        carry = joined[cut:]
        parts = []
        size = len(carry)


def _chunks(body: bytes | bytearray | memoryview | list[bytes]) -> Iterator[bytes | memoryview]:
    """The chunks of ``body`` to decode: a list's own, each dropped from it as it is taken (so
    that the body is never held twice), or slices of one buffer, without copies."""
    if isinstance(body, list):
        body.reverse()
        while body:
            yield body.pop()
        return
    view = memoryview(body)
    for start in range(0, len(view), PIECE_CHARS):
        yield view[start : start + PIECE_CHARS]


def lines_before(text: str, offset: int) -> int:
    """How many line ends ``text`` has before ``offset``."""
    return text.count("\n", 0, offset)


def _located(error: ParseError, lines: int) -> ParseError:
    """``error`` found in a piece after ``lines`` lines, with its line number in the body."""
    if error.lineno is None or not lines:
        return error
    return ParseError(error.reason, error.lineno + lines)


# ---- one line, the slow and thorough way ------------------------------------------------------


def _series_key(pairs: list[tuple[str, str]], lineno: int | None) -> str:
    """The series key of (name, value as written) pairs, which may be unsorted."""
    pairs.sort()
    previous = None
    for name, _ in pairs:
        if name == previous:
            raise ParseError(f"duplicate label name {name!r}", lineno)
        previous = name
    return "{" + ",".join(f'{name}="{canonical(raw)}"' for name, raw in pairs) + "}"


def read_line(line: str, lineno: int | None) -> tuple[str, str, float] | None:
    """Read one text 0.0.4 line: (name, series key, value), or None for a line without one.

    The fast paths hand every line they do not take to this function, so the error a user sees
    always comes from here.
    """
    if _SKIP_LINE.fullmatch(line):
        return None
    match = _SAMPLE_LINE.fullmatch(line)
    if match is None:
        shown = line if len(line) <= 80 else line[:77] + "..."
        if line.lstrip(" \t").startswith("#"):
            raise ParseError(f"malformed HELP or TYPE line {shown!r}", lineno)
        raise ParseError(
            f"malformed sample line {shown!r}: expected name{{labels}} value [timestamp]", lineno
        )
    name, canon, loose, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        raise ParseError(f"invalid sample value {raw!r}", lineno) from None
    pairs = _LOOSE_PAIRS.findall(loose or canon or "")
    return name, _series_key(pairs, lineno), value


def _first_error(text: str, selects: Callable[[str], bool] | None) -> ParseError:
    """The error of the first bad line of ``text`` that a fast path found wrong: any line of a
    full read; in a filtered one, a line that does not start right or a bad selected line."""
    for lineno, line in enumerate(text.split("\n"), 1):
        try:
            read_line(line, lineno)
        except ParseError as exc:
            if selects is None or not _LIGHT_LINE.fullmatch(line):
                return exc
            name = re.match(rf"[ \t]*({_NAME_FAST})", line)
            if name is None or selects(name.group(1)):
                return exc
    return ParseError("malformed exposition")  # pragma: no cover - the paths agree


# ---- full reads -------------------------------------------------------------------------------


def _orders_of(
    matches: Sequence[tuple[str, ...]], orders: Orders, block: int = 1
) -> list[str] | None:
    """None when every block of ``matches`` (item ``block`` of each) has its labels sorted;
    else each match's label-name sequence (as ``orders`` keys, now all known). Raises
    ParseError on a duplicate or reserved label name."""
    blocks = "\n".join(map(itemgetter(block), matches))
    if '",' not in blocks:  # no block of two labels or more
        return None
    # Once escaped backslashes and quotes are out of the way, every other piece between quotes
    # is a value: splitting there is cheaper than a regular expression.
    names = "".join(_unescaped(blocks).split('"')[::2])
    unsorted = False
    for sequence in set(names.split("\n")):
        order = orders.get(sequence, False)
        if order is False:
            order = _order(sequence)
            if len(orders) >= _MAX_ORDERS:
                orders.clear()
            orders[sequence] = order
        unsorted = unsorted or order is not None
    return names.split("\n") if unsorted else None


def _unescaped(blocks: str) -> str:
    """Canonical ``blocks`` with each escaped backslash and quote replaced by a control
    character, so that every quote left delimits a value (the label names are unchanged)."""
    if "\\" not in blocks:
        return blocks
    return blocks.replace("\\\\", "\x01").replace('\\"', "\x02")


def _order(sequence: str) -> tuple[int, ...] | None:
    """None when the label names of ``sequence`` ("{a=,b=}") are sorted, else the positions of
    the pairs in sorted order. Raises ParseError on a duplicate or reserved name."""
    labels = sequence[1:-2].split("=,") if len(sequence) > 2 else []
    if len(set(labels)) != len(labels):
        raise ParseError("duplicate label name")
    if any(label.startswith("__") for label in labels):
        raise ParseError("reserved label name")
    permutation = tuple(sorted(range(len(labels)), key=labels.__getitem__))
    return None if permutation == tuple(range(len(labels))) else permutation


def _sorted_keys(blocks: list[str], sequence: str, order: tuple[int, ...]) -> list[str]:
    """The series keys of canonical ``blocks`` that share one unsorted label-name ``sequence``
    ("{b=,a=}"), ``order`` giving the positions of their labels in sorted order.

    Done for all the blocks at once, in C: joined and split at the quotes, the values taken
    column by column in sorted order and written back into a template of the sorted names.
    """
    joined = "\n".join(blocks)
    escaped = "\\" in joined
    if escaped:
        if "\x01" in joined or "\x02" in joined:
            # The stand-ins for escapes are in the values themselves: one block at a time.
            reorder = itemgetter(*order)
            return ["{" + ",".join(reorder(_CANON_PAIRS.findall(block))) + "}" for block in blocks]
        # An escaped quote would be split on: it stands aside meanwhile.
        joined = _unescaped(joined)
    labels = sequence[1:-2].split("=,")
    width = len(order)
    values = joined.split('"')[1::2]
    template = "{" + ",".join(f'{labels[i]}="%s"' for i in order) + "}"
    keys = list(map(template.__mod__, zip(*[values[i::width] for i in order], strict=True)))
    if escaped:
        return "\n".join(keys).replace("\x02", '\\"').replace("\x01", "\\\\").split("\n")
    return keys


def canonical_keys(matches: Sequence[tuple[str, ...]], orders: Orders, block: int) -> list[str]:
    """The series keys of the canonical label blocks (braces included, "" for none) that are
    item ``block`` of each of ``matches``: sorted by label name, in bulk. Raises ParseError on
    a duplicate or reserved label name."""
    sequences = _orders_of(matches, orders, block)
    keys = [key or "{}" for key in map(itemgetter(block), matches)]
    if sequences is not None:
        _sort_keys(keys, sequences, orders)
    return keys


def _sort_keys(keys: list[str], sequences: list[str], orders: Orders) -> None:
    """Put in ``keys`` the sorted spelling of every block whose label-name sequence (the same
    place in ``sequences``) is unsorted, per sequence in bulk."""
    for sequence in set(sequences):
        order = orders.get(sequence)
        if order is not None:
            lines = list(compress(range(len(keys)), map(sequence.__eq__, sequences)))
            for line, key in zip(
                lines, _sorted_keys([keys[i] for i in lines], sequence, order), strict=True
            ):
                keys[line] = key


def _take(
    matches: list[tuple[str, str, str, str]],
    result: Samples,
    orders: Orders,
    selects: Callable[[str], bool] | None,
) -> int:
    """Add the samples of ``_LINES`` matches to ``result``; the number of sample lines.

    ``selects`` filters the lines ``read_line`` reads (the others are all of one run).
    Raises ParseError or ValueError on a bad line, without saying which.
    """
    sequences = _orders_of(matches, orders)
    current_name = ""
    current: dict[str, float] = {}
    count = len(matches)
    if sequences is None:
        for name, key, value, other in matches:
            if name:
                # The common case, kept short: the pattern has checked the line.
                if name != current_name:
                    current_name = name
                    current = result.get(name) or result.setdefault(name, {})
                current[key or "{}"] = float(value)
            else:
                count -= _take_other(other, result, selects)
                current_name = ""
        return count
    # Keys of the blocks written unsorted, made per label-name sequence in bulk and put in
    # their lines' places.
    keys = list(map(_BLOCK_OF, matches))
    _sort_keys(keys, sequences, orders)
    for (name, _, value, other), key in zip(matches, keys, strict=True):
        if name:
            if name != current_name:
                current_name = name
                current = result.get(name) or result.setdefault(name, {})
            current[key or "{}"] = float(value)
        else:
            count -= _take_other(other, result, selects)
            current_name = ""
    return count


def _take_other(line: str, result: Samples, selects: Callable[[str], bool] | None) -> int:
    """Read a line the pattern did not take; 1 when it holds no sample, else 0."""
    sample = read_line(line, None)
    if sample is None:
        return 1
    name, key, value = sample
    if selects is None or selects(name):
        result.setdefault(name, {})[key] = value
    return 0


def read_full(data: Body, orders: Orders) -> tuple[Samples, int]:
    """Every sample of a text 0.0.4 body, and the number of sample lines.

    ``orders`` is the caller's memory of label-name sequences (see :data:`Orders`).
    """
    result: Samples = {}
    count = 0
    for lines, piece in pieces(data):
        try:
            count += _take(_LINES.findall(piece), result, orders, None)
        except (ParseError, ValueError):
            # Something is wrong somewhere: find the line and the reason the slow way.
            raise _located(_first_error(piece, None), lines) from None
    return result, count


# ---- filtered reads ---------------------------------------------------------------------------


class Filter:
    """Reads the lines of the samples a :class:`~deucalion.exposition.naming.Selector`
    selects, remembering between bodies what makes the next one quicker (bounded caches).

    Its dicts are only read and written by key, so threads may share one.
    """

    #: With at most this many exact names to look for, each is found with str.find.
    MAX_NEEDLES = 8

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self._selected: dict[str, bool] = {}
        self._heads: dict[str, tuple[str, str]] = {}
        self._samples = selector.sample_names()
        needles: list[str] = []
        if selector.exact:
            # The names to search for, without those another one already finds (after
            # sorting, a name's prefixes come before it).
            for name in sorted(selector.names):
                if not any(name.startswith(shorter) for shorter in needles):
                    needles.append(name)
        exact = selector.exact and len(needles) <= self.MAX_NEEDLES
        self._needles = tuple(needles) if exact else None
        # Whether the last piece read had most of its lines selected: the next is then read in
        # full and filtered by name, cheaper than going through it a run at a time.
        self._dense = False
        # One search, in the body's order, finds the lines of every needle (group 1) and any
        # line that does not start like an exposition's: cheaper than a str.find() per needle,
        # each a scan of the whole body, and than a second scan for bad starts.
        self._starts = re.compile(
            "\n(?:("
            + "|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))
            + ")|"
            + _BAD_START
            + ")"
        ).finditer

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
        self, data: Body, orders: Orders, *, count: bool = False
    ) -> tuple[Samples, int | None]:
        """The selected samples of a text 0.0.4 body and, when ``count``, its number of sample
        lines; ParseError if it is not a text exposition."""
        result: Samples = {}
        lines, piece = 0, ""
        counted = 0
        for lines, piece in pieces(data):
            if count:
                counted += count_samples(piece)
            try:
                found = self._found(piece) if self._needles is not None else None
                if found is None and self._dense:
                    found = self._selected_of_full(piece, orders)
                if found is None:
                    self._runs(piece, result, orders)
                else:
                    for name, series in found.items():
                        result.setdefault(name, {}).update(series)
            except (ParseError, ValueError):
                raise _located(_first_error(piece, self.selects), lines) from None
        # The last line is read in full, selected or not: a body cut short or ending in
        # garbage is refused.
        text = piece.rstrip("\n")
        start = text.rfind("\n") + 1
        try:
            read_line(text[start:], None)
        except ParseError as exc:
            raise ParseError(exc.reason, lines + text.count("\n", 0, start) + 1) from None
        return result, counted if count else None

    def _selected_of_full(self, text: str, orders: Orders) -> Samples | None:
        """The selected samples of a full read of ``text``, or None when the full read finds
        a fault (for :meth:`_runs` to judge: it may be in an unselected line)."""
        every: Samples = {}
        try:
            _take(_LINES.findall(text), every, orders, None)
        except (ParseError, ValueError):
            return None
        selects = self.selects
        found = {name: series for name, series in every.items() if selects(name)}
        self._dense = 2 * len(found) > len(every)
        return found

    def _runs(self, text: str, result: Samples, orders: Orders) -> None:
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
                _take(_LINES.findall(text, start, end), result, orders, None)
                start = -1
            line = run.group(2)
            if line:
                try:
                    _take_other(line, result, selects)
                except ParseError:
                    # Only the start of an unselected line is checked.
                    if not _LIGHT_LINE.fullmatch(line):
                        raise
                    head = re.match(rf"[ \t]*({_NAME_FAST})", line)
                    if head is None or selects(head.group(1)):
                        raise
        if start >= 0:
            _take(_LINES.findall(text, start, end), result, orders, None)
        self._dense = 2 * selected > runs

    def _found(self, text: str) -> Samples | None:
        """Read the selected lines of ``text`` where the regex engine visits only those.

        One regular-expression search jumps from one line starting with a needle to the next
        and also finds any line that starts like no exposition line; only the needles' lines
        are read (one of a longer name that starts with a needle is read and skipped), the
        others passed over. All lines of one sample name are found by the same search, in
        order, so within a series the last line still wins. Returns None, for :meth:`_runs` to
        do, on anything else: a line that does not start like an exposition's, a selected line
        with blanks before its name or outside the canonical layout, or an error.

        ``_heads`` maps the part before the value of canonical lines read before to their
        (sample name, or "" when unselected; series key): a parser reads the same few lines
        scrape after scrape, and then only the value is left to check.
        """
        if text[0] not in _STARTS:
            return None
        matches = list(self._starts(text))
        starts = [m.start() + 1 for m in matches if m.lastindex]
        if len(starts) < len(matches):
            return None  # a line starts with something else
        # Every line now starts with "#" or a name (none is indented): a selected line is one
        # that starts with "\n" and a needle, or the first one.
        result: Samples = {}
        find = text.find
        heads = self._heads
        assert self._needles is not None
        if text.startswith(self._needles):
            starts.insert(0, 0)
        try:
            for pos in starts:
                end = find("\n", pos)
                head, _, value = text[pos:end].rpartition(" ")
                seen = heads.get(head)
                if seen is None:
                    # Not read before, or it has a timestamp: the regex reads it.
                    seen, value = self._read_head(text, pos)
                    if seen is None:
                        return None
                elif not _VALUE(value):
                    return None
                sample, key = seen
                if sample:
                    series = result.get(sample)
                    if series is None:
                        series = result[sample] = {}
                    series[key] = float(value)
        except (ParseError, ValueError):
            return None
        return result

    def _read_head(self, text: str, pos: int) -> tuple[tuple[str, str] | None, str]:
        """Read the line at ``pos`` into ``_heads``: ((sample or "", key), value), or
        (None, "") when the line is not canonical."""
        line = _WANTED_LINE.match(text, pos)
        if line is None:
            return None, ""
        sample, block, value = line.groups()
        if sample not in self._samples:
            seen = ("", "")
        elif block.count('"') > 2:
            sequence = "".join(_unescaped(block).split('"')[::2])
            try:
                order = _order(sequence)
            except ParseError:
                return None, ""
            seen = (sample, block if order is None else _sorted_keys([block], sequence, order)[0])
        else:
            seen = (sample, block or "{}")
        if len(self._heads) >= _MAX_HEADS:
            self._heads.clear()
        self._heads[sample + block] = seen
        return seen, value


# ---- counting ---------------------------------------------------------------------------------


def count_samples(data: str | bytes | bytearray) -> int:
    """The sample lines of an exposition: lines whose first character after any blanks starts
    a metric name (comments, indented or not, and blank lines are not samples)."""
    pattern: re.Pattern[str] | re.Pattern[bytes]
    newline: str | bytes
    if isinstance(data, str):
        pattern, newline = _SAMPLE_LINES, "\n"
        first = data[:256].lstrip(" \t")[:1]
    else:
        pattern, newline = _SAMPLE_LINES_BYTES, b"\n"
        first = bytes(data[:256]).lstrip(b" \t")[:1].decode("latin-1")
    count = 1 if first and ((first.isascii() and first.isalpha()) or first in "_:") else 0
    size = len(data)
    start = 0
    # In slices that end at a line end, so that the list findall() builds stays small.
    while start < size:
        end = data.find(newline, start + (1 << 20)) if start + (1 << 20) < size else -1  # type: ignore[arg-type]
        end = size if end < 0 else end
        count += len(pattern.findall(data, start, end))  # type: ignore[arg-type]
        start = end
    return count
