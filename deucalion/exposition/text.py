"""Reading Prometheus text 0.0.4 bodies: every line, or the lines of selected metrics.

The result maps each sample name to its series, and each series (its label set in Prometheus
notation, labels sorted by name, values escaped, ``{}`` for none) to its value::

    {"node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 1234.5, ...}, "up": {"{}": 1.0}}

Speed comes from leaving the per-line work to C. A body is read in pieces of about
``PIECE_CHARS`` bytes that end at a line end, joined from the chunks the body arrived in and
decoded one at a time, so a large body is never held twice. A full read of a piece is one
``findall()`` whose pattern validates every line and captures, of a canonical sample line, its
name, its label block as written and its value; the lines it does not take are read by
:func:`read_line`. Whether the blocks of a piece have their labels sorted (then a block is its
series key as is) is decided once per piece from the distinct label-name sequences of its
blocks, extracted by splitting the joined blocks at their quotes; blocks written in an unsorted
order are reordered together, per order, by splitting them into pairs and zipping the pairs
back in sorted order. A parser's :class:`LabelMemory` remembers, by the text of a piece's label
blocks, what that work found: a target serves the same label sets scrape after scrape, so the
next body costs one lookup per piece for its keys (the first costs what the work does).

A filtered read (:class:`Filter`) keeps the lines of the selected metrics and still refuses a
body that is not an exposition. Selected lines are checked in full. With a handful of exact
names, the body is not decoded: one search over its bytes finds the lines that start with them
and any line that does not start like an exposition's (blank, ``#``, or the first character of
a metric name: what tells an HTML page, JSON or garbage after valid lines apart), and the last
line is read in full (a body cut short). Only the selected lines are decoded; the others are
checked for how they start, not for their UTF-8. The layout of the selected lines (which sample
and series each is) is remembered by their parts before the value, so that a body like the last
one costs the search, one lookup and the conversion of its values. Otherwise the body is taken
a run of same-name lines at a time, the selector asked once per name (remembered, bounded),
adjacent selected runs read together; once most of a body is selected, the next piece is read
in full and filtered by name.

Not supported (rejected): quoted UTF-8 metric and label names, native histograms, label names
starting with ``__``. Label values may contain any escape; ``\\\\``, ``\\"`` and ``\\n`` are
unescaped and any other backslash is kept as is, as prometheus_client does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from itertools import compress
from operator import itemgetter

from deucalion.errors import ParseError
from deucalion.exposition.grammar import ANY_VALUE, NAME, NAME_FAST, Samples, canonical
from deucalion.exposition.naming import Selector

__all__ = [
    "PIECE_CHARS",
    "Filter",
    "LabelMemory",
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
    rf"(?:({NAME_FAST})(\{{(?:{_BLOCK_FAST})?+\}})?+ ({_RAW_VALUE}++)(?: [+-]?[0-9]++)?+\n"
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
    rf"({NAME_FAST})(\{{{_BLOCK_FAST}\}}|\{{\}}|)"
    rf" ({_RAW_VALUE}+)(?: [+-]?[0-9]++)?+".encode()
)
# The rest of a canonical line's head after the start of its name, and then its value (group)
# and timestamp: the value group is b"" when the line is not canonical.
_HEAD_REST = rf"[a-zA-Z0-9_:]*+(?:\{{(?:{_BLOCK_FAST})?+\}})?+".encode()
_VALUE_REST = rf"(?: ({_RAW_VALUE}++)(?: [+-]?[0-9]++)?+(?=\n|\Z))?+".encode()
# What float() may read, values joined by blanks and checked in one match: float() would also
# take what the format does not ("1_0", "\x0c1").
_VALUES = re.compile(rf"{_RAW_VALUE}++(?: {_RAW_VALUE}++)*+".encode()).fullmatch
_SAMPLE_LINES = re.compile(r"\n[ \t]*+(?=[a-zA-Z_:])")
_SAMPLE_LINES_BYTES = re.compile(rb"\n[ \t]*+(?=[a-zA-Z_:])")

# Cache bounds: past them a cache is emptied (a body that varies endlessly pays, nothing grows).
_MAX_ORDERS = 4096
_MAX_HEADS = 4096
_MAX_LAYOUTS = 1024
_MAX_NAMES = 65536

#: Where the selected lines of a body go: (sample name, series keys, first line, line after)
#: for each run of lines of one sample, the lines counted among those a filter found.
Layout = tuple[tuple[str, tuple[str, ...], int, int], ...]

#: Label-name sequence of a block ("{a=,b=}") -> None when sorted, else the positions of its
#: pairs in sorted order.
Orders = dict[str, tuple[int, ...] | None]

# Bound of the label blocks a LabelMemory keeps the series keys of, in characters.
_MAX_KEY_CHARS = 1 << 23
# What LabelMemory._keys answers for blocks not seen before.
_UNKNOWN: list[str] = []


class LabelMemory:
    """What a parser remembers of the label blocks of the bodies it read (bounded: past a
    bound a memory is emptied), so that the next body with the same label sets costs less.

    ``orders`` maps each label-name sequence seen (see :data:`Orders`). The series keys of
    the blocks of a piece of a body are remembered by the blocks' text: a target serves the
    same label sets scrape after scrape, and finding its keys by that text is much cheaper
    than reading and sorting the blocks again. Values are never part of it.
    """

    __slots__ = ("_chars", "_keys", "orders")

    def __init__(self) -> None:
        self.orders: Orders = {}
        self._keys: dict[str, list[str] | None] = {}
        self._chars = 0

    def series_keys(self, matches: Sequence[tuple[str, ...]], block: int) -> list[str] | None:
        """None when every label block of ``matches`` (item ``block`` of each, braces
        included, "" for none) is sorted, so that a block is its series key; else the series
        key of each (not to be changed: it is remembered). Raises ParseError on a duplicate
        or reserved label name."""
        blocks = "\n".join(map(itemgetter(block), matches))
        keys = self._keys.get(blocks, _UNKNOWN)
        if keys is not _UNKNOWN:
            return keys
        sequences = _sequences(blocks, self.orders)
        if sequences is not None:
            keys = [key or "{}" for key in map(itemgetter(block), matches)]
            _sort_keys(keys, sequences, self.orders)
        else:
            keys = None
        if self._chars + len(blocks) > _MAX_KEY_CHARS:
            self._keys.clear()
            self._chars = 0
        self._keys[blocks] = keys
        self._chars += len(blocks)
        return keys


# ---- pieces of a body -------------------------------------------------------------------------


Body = str | bytes | bytearray | memoryview | list[bytes]
"""A body: text, bytes, or the list of byte chunks it arrived in (consumed as it is read)."""


def pieces(body: Body) -> Iterator[tuple[int, str]]:
    """The body as (lines before, text) pieces of about ``PIECE_CHARS`` that end at line ends,
    the last one with a "\n" added when missing. Bytes are decoded as UTF-8 a piece at a time;
    a list of chunks is emptied as it is read, so that the body is never held twice."""
    if isinstance(body, str):
        for lines, piece, last in _text_pieces(body):
            yield lines, piece if piece.endswith("\n") or not last else piece + "\n"
        return
    for lines, offset, chunk, last in _byte_pieces(body):
        yield lines, _decoded(chunk, lines, offset, last)


def _decoded(piece: bytes, lines: int, offset: int, last: bool) -> str:
    """A piece from :func:`_byte_pieces` as text (with a "\n" added to the last one when
    missing); ParseError naming the byte and line if it is not UTF-8."""
    try:
        text = str(piece, "utf-8")
    except UnicodeDecodeError as exc:
        lineno = lines + piece.count(b"\n", 0, exc.start) + 1
        raise ParseError(f"invalid UTF-8 at byte {offset + exc.start}", lineno) from None
    return text if not last or text.endswith("\n") else text + "\n"


def _text_pieces(body: str) -> Iterator[tuple[int, str, bool]]:
    """(lines before, text, whether it is the last) slices of ``body`` ending at line ends."""
    lines = 0
    size = len(body)
    start = 0
    while start < size:
        end = body.find("\n", start + PIECE_CHARS) + 1 or size
        yield lines, body[start:end], end == size
        if end < size:
            lines += body.count("\n", start, end)
        start = end


def _byte_pieces(body: Body) -> Iterator[tuple[int, int, bytes, bool]]:
    """(lines before, bytes before, piece, whether it is the last) pieces of ``body`` of about
    ``PIECE_CHARS`` bytes, undecoded, each ending at a line end (the last one where the body
    ends). A list of chunks is emptied as it is read, so that the body is never held twice;
    a ``bytes`` body of one piece is the piece itself. Text is encoded first."""
    lines = offset = 0
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(body, list):
        data = body if isinstance(body, bytes | bytearray) else bytes(body)
        size = len(data)
        while offset < size:
            end = data.find(b"\n", offset + PIECE_CHARS) + 1 or size
            piece = data if not offset and end == size and isinstance(data, bytes) else None
            yield lines, offset, piece or bytes(data[offset:end]), end == size
            if end < size:
                lines += data.count(b"\n", offset, end)
            offset = end
        return
    total = sum(map(len, body))
    parts: list[bytes] = []
    size = received = 0
    for chunk in _chunks(body):
        received += len(chunk)
        parts.append(chunk)
        size += len(chunk)
        last = received == total
        if size < PIECE_CHARS and not last:
            continue
        joined = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        cut = len(joined) if last else joined.rfind(b"\n") + 1
        if cut:
            yield lines, offset, joined if cut == len(joined) else joined[:cut], last
            if not last:
                lines += joined.count(b"\n", 0, cut)
            offset += cut
        carry = joined[cut:]
        parts = [carry] if carry else []
        size = len(carry)


def _whole(body: Body) -> bytes | None:
    """``body`` as one ``bytes`` when it is one non-empty piece (a list of chunks is then
    joined and emptied), else None."""
    if isinstance(body, bytes):
        return body if 0 < len(body) <= PIECE_CHARS else None
    if isinstance(body, list) and 0 < sum(map(len, body)) <= PIECE_CHARS:
        whole = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        return whole
    return None


def _chunks(body: list[bytes]) -> Iterator[bytes]:
    """The chunks of ``body``, each dropped from it as it is taken (so that the body is never
    held twice)."""
    body.reverse()
    while body:
        yield body.pop()


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
            name = re.match(rf"[ \t]*({NAME_FAST})", line)
            if name is None or selects(name.group(1)):
                return exc
    return ParseError("malformed exposition")  # pragma: no cover - the paths agree


# ---- full reads -------------------------------------------------------------------------------


def _sequences(blocks: str, orders: Orders) -> list[str] | None:
    """None when every block of ``blocks`` (label blocks joined by "\n") has its labels
    sorted; else each block's label-name sequence (as ``orders`` keys, now all known). Raises
    ParseError on a duplicate or reserved label name."""
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
    memory: LabelMemory,
    selects: Callable[[str], bool] | None,
) -> int:
    """Add the samples of ``_LINES`` matches to ``result``; the number of sample lines.

    ``selects`` filters the lines ``read_line`` reads (the others are all of one run).
    Raises ParseError or ValueError on a bad line, without saying which.
    """
    keys = memory.series_keys(matches, 1)
    current_name = ""
    current: dict[str, float] = {}
    count = len(matches)
    if keys is None:
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
    for (name, _, value, other), key in zip(matches, keys, strict=True):
        if name:
            if name != current_name:
                current_name = name
                current = result.get(name) or result.setdefault(name, {})
            current[key] = float(value)
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


def read_full(data: Body, memory: LabelMemory) -> tuple[Samples, int]:
    """Every sample of a text 0.0.4 body, and the number of sample lines.

    ``memory`` is the caller's memory of label blocks (see :class:`LabelMemory`).
    """
    result: Samples = {}
    count = 0
    for lines, piece in pieces(data):
        try:
            count += _take(_LINES.findall(piece), result, memory, None)
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

    #: With at most this many exact names to look for, one search over the bytes finds them.
    MAX_NEEDLES = 8

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self._selected: dict[str, bool] = {}
        self._heads: dict[bytes, tuple[str, str]] = {}
        # The layout of the selected lines of bodies read before, by their parts before the
        # value: a target serves the same lines scrape after scrape.
        self._layouts: dict[tuple[bytes, ...], Layout] = {}
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
            whole = _whole(data)
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
        for lines, offset, piece, last in _byte_pieces(data):
            if count:
                counted += count_samples(piece)
            found = None
            if self._needles is not None and piece is not whole:  # (whole: tried above)
                found = self._found(piece)
            if found is None:
                text = _decoded(piece, lines, offset, last)
                try:
                    if self._dense:
                        found = self._selected_of_full(text, memory)
                    if found is None:
                        self._runs(text, result, memory)
                except (ParseError, ValueError):
                    raise _located(_first_error(text, self.selects), lines) from None
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
            read_line(_decoded(line, lineno - 1, offset + start, False), None)
        except ParseError as exc:
            raise ParseError(exc.reason, lineno) from None

    def _selected_of_full(self, text: str, memory: LabelMemory) -> Samples | None:
        """The selected samples of a full read of ``text``, or None when the full read finds
        a fault (for :meth:`_runs` to judge: it may be in an unselected line)."""
        every: Samples = {}
        try:
            _take(_LINES.findall(text), every, memory, None)
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
                _take(_LINES.findall(text, start, end), result, memory, None)
                start = -1
            line = run.group(2)
            if line:
                try:
                    _take_other(line, result, selects)
                except ParseError:
                    # Only the start of an unselected line is checked.
                    if not _LIGHT_LINE.fullmatch(line):
                        raise
                    head = re.match(rf"[ \t]*({NAME_FAST})", line)
                    if head is None or selects(head.group(1)):
                        raise
        if start >= 0:
            _take(_LINES.findall(text, start, end), result, memory, None)
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
        if sample not in self._samples:
            seen = ("", "")
        elif block.count('"') > 2:
            sequence = "".join(_unescaped(block).split('"')[::2])
            try:
                order = _order(sequence)
            except ParseError:
                return None
            seen = (sample, block if order is None else _sorted_keys([block], sequence, order)[0])
        else:
            seen = (sample, block or "{}")
        if len(self._heads) >= _MAX_HEADS:
            self._heads.clear()
        self._heads[head] = seen
        return seen


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
