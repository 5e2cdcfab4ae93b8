"""Reading Prometheus text 0.0.4 bodies: every line (the filtered reads are in ``filtering``).

The result maps each sample name to its series, and each series (its label set in Prometheus
notation, labels sorted by name, values escaped, ``{}`` for none) to its value::

    {"node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 1234.5, ...}, "up": {"{}": 1.0}}

Speed comes from leaving the per-line work to C. A body is read in pieces (see ``body``). A
full read of a piece is one ``findall()`` whose pattern validates every line and captures, of a
canonical sample line, its name, its label block as written and its value; the lines it does not
take are read by :func:`read_line`. The series keys of the label blocks come from the parser's
:class:`~deucalion.exposition.labels.LabelMemory`.

Not supported (rejected): quoted UTF-8 metric and label names, native histograms, label names
starting with ``__``. Label values may contain any escape; ``\\\\``, ``\\"`` and ``\\n`` are
unescaped and any other backslash is kept as is, as prometheus_client does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from deucalion.errors import ParseError
from deucalion.exposition.body import Body, located, pieces
from deucalion.exposition.grammar import (
    ANY_VALUE,
    BLOCK_FAST,
    NAME,
    NAME_FAST,
    RAW_VALUE,
    Samples,
    canonical,
)
from deucalion.exposition.labels import LabelMemory

__all__ = [
    "LIGHT_LINE",
    "LINES",
    "count_samples",
    "first_error",
    "read_full",
    "read_line",
    "take",
    "take_other",
]

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
_CANON_BLOCK = rf"{_LABEL}={ANY_VALUE}(?:,{_LABEL}={ANY_VALUE})*"
_REST_ANY = (
    rf"(?:[ \t]*\{{({_CANON_BLOCK})?\}}[ \t]*|[ \t]*\{{({_LOOSE_BLOCK})\}}[ \t]*|[ \t]+)"
    rf"({RAW_VALUE}+)(?:[ \t]+[+-]?[0-9]+)?[ \t]*"
)


# One sample line (and the comment lines before it) a match: groups (name, block, value,
# other). A canonical line gives its name, its label block with braces ("" for none) and its
# value; any other line lands whole in ``other`` for read_line(), so the matches tile the text.
LINES = re.compile(
    rf"(?:(?:{_SKIP_CANON}|{_SKIP_ANY})\n)*+"
    rf"(?:({NAME_FAST})(\{{(?:{BLOCK_FAST})?+\}})?+ ({RAW_VALUE}++)(?: [+-]?[0-9]++)?+\n"
    r"|([^\n]*)\n?)"
)

_LOOSE_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*+(?:\\.[^"\\]*+)*+)"')

_SKIP_LINE = re.compile(_SKIP_ANY)
_SAMPLE_LINE = re.compile(rf"[ \t]*({NAME}){_REST_ANY}")

# How every line of a filtered body must start: blank, or "#" or the first character of a
# metric name after any blanks (Prometheus's "valid start token").
LIGHT_LINE = re.compile(r"[ \t]*+(?:[#a-zA-Z_:][^\n]*+)?")
_SAMPLE_LINES = re.compile(r"\n[ \t]*+(?=[a-zA-Z_:])")
_SAMPLE_LINES_BYTES = re.compile(rb"\n[ \t]*+(?=[a-zA-Z_:])")


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


def first_error(text: str, selects: Callable[[str], bool] | None) -> ParseError:
    """The error of the first bad line of ``text`` that a fast path found wrong: any line of a
    full read; in a filtered one, a line that does not start right or a bad selected line."""
    for lineno, line in enumerate(text.split("\n"), 1):
        try:
            read_line(line, lineno)
        except ParseError as exc:
            if selects is None or not LIGHT_LINE.fullmatch(line):
                return exc
            name = re.match(rf"[ \t]*({NAME_FAST})", line)
            if name is None or selects(name.group(1)):
                return exc
    return ParseError("malformed exposition")  # pragma: no cover - the paths agree


def take(
    matches: list[tuple[str, str, str, str]],
    result: Samples,
    memory: LabelMemory,
    selects: Callable[[str], bool] | None,
) -> int:
    """Add the samples of ``LINES`` matches to ``result``; the number of sample lines.

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
                count -= take_other(other, result, selects)
                current_name = ""
        return count
    for (name, _, value, other), key in zip(matches, keys, strict=True):
        if name:
            if name != current_name:
                current_name = name
                current = result.get(name) or result.setdefault(name, {})
            current[key] = float(value)
        else:
            count -= take_other(other, result, selects)
            current_name = ""
    return count


def take_other(line: str, result: Samples, selects: Callable[[str], bool] | None) -> int:
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
            count += take(LINES.findall(piece), result, memory, None)
        except (ParseError, ValueError):
            # Something is wrong somewhere: find the line and the reason the slow way.
            raise located(first_error(piece, None), lines) from None
    return result, count


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
