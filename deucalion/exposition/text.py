"""Parse Prometheus text 0.0.4 and OpenMetrics 1.0 expositions into plain dicts.

The result maps each sample name to its series, and each series (its label set in Prometheus
notation, labels sorted by name, values escaped, ``{}`` for none) to its value::

    {"node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 1234.5, ...}, "up": {"{}": 1.0}}

Timestamps, exemplars, HELP, TYPE and UNIT are checked but not returned. When one series
appears twice in a body, the last sample wins.

Speed comes from leaving the per-line work to C. A full text 0.0.4 parse is one findall() over
the body whose pattern validates every line and captures, of a canonical sample line, its name,
its value and its series key: the label block as written. The pattern takes a block as is only
if it is empty, has one label, or has a sequence of label names already seen sorted and distinct
(a "skeleton"); the lines it does not take are read in Python, which teaches the pattern their
skeleton for the next chunk and the next scrape. Python then only converts values and fills the
dicts. With a metrics filter, ``str.find`` jumps from one occurrence of a wanted name to the
next and only lines starting with one are read: other lines are skipped unparsed.
OpenMetrics is parsed by :mod:`.openmetrics`, line by line with every rule of the
standard that prometheus_client's OpenMetrics parser enforces, on every line, filter or not: it
is strict, and slower.

Not supported (rejected): quoted UTF-8 metric and label names, native histograms, label names
starting with ``__``. Label values may contain any escape; ``\\\\``, ``\\"`` and ``\\n`` are
unescaped and any other backslash is kept as is, as prometheus_client does.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable
from functools import lru_cache

from deucalion.errors import ParseError
from deucalion.exposition.grammar import ANY_VALUE, CANON_VALUE, LABEL, NAME, Samples, canonical
from deucalion.exposition.naming import FAMILY_SUFFIXES, family_selects
from deucalion.exposition.openmetrics import parse_openmetrics

__all__ = ["ExpositionParser", "is_openmetrics", "parse_exposition"]

# ---- text 0.0.4 -------------------------------------------------------------------------------

_CANON_BLOCK = rf"{LABEL}={CANON_VALUE}(?:,{LABEL}={CANON_VALUE})*"
# Text 0.0.4 allows blanks around every token inside the braces and a trailing comma.
_LOOSE_PAIR = rf"{LABEL}[ \t]*=[ \t]*{ANY_VALUE}[ \t]*"
_LOOSE_BLOCK = rf"[ \t]*(?:{_LOOSE_PAIR}(?:,[ \t]*{_LOOSE_PAIR})*(?:,[ \t]*)?)?"

_TEXT_TYPES = "counter|gauge|histogram|summary|untyped"
# HELP and TYPE lines as Go and Python clients write them, tried before the general _SKIP_ANY:
# the regex engine then settles most comment lines with its first alternative. The general
# patterns accept the rest of text 0.0.4 (blanks and tabs between tokens, a trailing comma,
# any escape in label values).
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
_RAW_VALUE = r"[0-9a-zA-Z.+-]+"
# After the name: (canonical block, value) | (canonical block, loose block, value).
_REST_CANON = rf"(?:\{{({_CANON_BLOCK})\}})? ({_RAW_VALUE})(?: [+-]?[0-9]+)?"
_REST_ANY = (
    rf"(?:[ \t]*\{{({_CANON_BLOCK})?\}}[ \t]*|[ \t]*\{{({_LOOSE_BLOCK})\}}[ \t]*|[ \t]+)"
    rf"({_RAW_VALUE})(?:[ \t]+[+-]?[0-9]+)?[ \t]*"
)

# The same languages as NAME, LABEL and CANON_VALUE, spelt so that the regex engine keeps no
# backtracking state: nothing after them could match what they give back.
_NAME_FAST = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
_LABEL_FAST = r"(?!__)[a-zA-Z_][a-zA-Z0-9_]*+"
_CANON_VALUE_FAST = r'"[^"\\\n]*+(?:"|(?:\\[\\"n][^"\\\n]*+)++")'


def _text_full_pattern(skeletons: frozenset[tuple[str, ...]]) -> re.Pattern[str]:
    """The pattern that reads a text 0.0.4 body one sample line (and the lines before it) a match.

    Its groups are (name, key, value, other). The first alternative takes canonical lines whose
    label block is empty, has one label, or has one of ``skeletons``: label names known to be
    sorted and distinct. Such a block, braces included, is its series key as written, so the
    pattern captures the key itself. Any other line lands whole in ``other`` for Python to read
    (or reject), so the matches tile the body and findall() sees every line. Few groups and
    no repeated group keep the regex engine quick: it pays for both on every match.
    """
    blocks = f"{_LABEL_FAST}={_CANON_VALUE_FAST}"
    if skeletons:
        blocks += "|" + _skeleton_trie(list(skeletons))
    return re.compile(
        rf"(?:(?:{_SKIP_CANON}|{_SKIP_ANY})\n)*+"
        rf"(?:({_NAME_FAST})(\{{(?:{blocks}|)\}})?+ ({_RAW_VALUE}+)(?: [+-]?[0-9]++)?+\n"
        r"|([^\n]*)\n?)"
    )


def _skeleton_trie(skeletons: list[tuple[str, ...]]) -> str:
    """An alternation of label blocks with exactly the names of one of ``skeletons``.

    It is factored as a trie on the names: the regex engine picks a branch by its first
    character instead of trying every skeleton in turn, so a process that has learnt many
    (from many exporters) does not pay for each on every line.
    """
    children: dict[str, list[tuple[str, ...]]] = {}
    for names in skeletons:
        children.setdefault(names[0], []).append(names[1:])
    branches = []
    for first in sorted(children):
        rests = children[first]
        deeper = [rest for rest in rests if rest]
        branch = f"{re.escape(first)}={_CANON_VALUE_FAST}"
        if deeper:
            # An empty alternative rather than "?", which the engine runs as a repeat.
            end = "|" if () in rests else ""
            branch += f"(?:,(?:{_skeleton_trie(deeper)}){end})"
        branches.append(branch)
    return "|".join(branches)


# The label-name skeletons learnt so far (sorted multi-label name sequences) and the pattern
# that knows them, swapped together. Exporters use few; a body that shows a new one is read
# with the general alternative until its chunk ends, then the pattern is rebuilt.
_MAX_SKELETONS = 256
_text_full: tuple[frozenset[tuple[str, ...]], re.Pattern[str]] = (
    frozenset(),
    _text_full_pattern(frozenset()),
)


def _learn_skeletons(new: set[tuple[str, ...]]) -> None:
    """Rebuild the full-parse pattern with ``new`` skeletons too, up to the cap."""
    global _text_full
    known = _text_full[0]
    if len(known) >= _MAX_SKELETONS:
        return
    skeletons = known | new
    _text_full = (skeletons, _text_full_pattern(skeletons))


_SKIP_LINE = re.compile(_SKIP_ANY)
_SAMPLE_LINE = re.compile(rf"[ \t]*({NAME}){_REST_ANY}")

_CANON_NAMES = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="[^"\\]*+(?:\\.[^"\\]*+)*+"')
_CANON_PAIRS = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*+(?:\\.[^"\\]*+)*+"')
_LOOSE_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*+(?:\\.[^"\\]*+)*+)"')

def _series_key(pairs: list[tuple[str, str]], lineno: int | None) -> str:
    """The series key of (name, value as written) pairs, which may be unsorted."""
    pairs.sort()
    previous = None
    for name, _ in pairs:
        if name == previous:
            raise ParseError(f"duplicate label name {name!r}", lineno)
        previous = name
    return "{" + ",".join(f'{name}="{canonical(raw)}"' for name, raw in pairs) + "}"


# Label name sequence ("a,b,c") -> None when sorted and unique, else the sorting permutation.
# Few distinct sequences exist in practice; the cache is cleared if it ever grows large.
_ORDER_CACHE: dict[str, tuple[int, ...] | None] = {}


def _order(names: list[str], lineno: int | None) -> tuple[int, ...] | None:
    signature = ",".join(names)
    try:
        return _ORDER_CACHE[signature]
    except KeyError:
        pass
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ParseError(f"duplicate label name {duplicate!r}", lineno)
    permutation = tuple(sorted(range(len(names)), key=names.__getitem__))
    order = None if permutation == tuple(range(len(names))) else permutation
    if len(_ORDER_CACHE) > 10_000:
        _ORDER_CACHE.clear()
    _ORDER_CACHE[signature] = order
    return order


def _several_labels_key(canon: str) -> str:
    """The series key of a canonically written block of several labels, maybe unsorted."""
    names = _CANON_NAMES.findall(canon)
    signature = ",".join(names)
    order = _ORDER_CACHE[signature] if signature in _ORDER_CACHE else _order(names, None)
    if order is None:
        return "{" + canon + "}"
    pairs = _CANON_PAIRS.findall(canon)
    return "{" + ",".join([pairs[i] for i in order]) + "}"


def _float(raw: str, lineno: int) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ParseError(f"invalid sample value {raw!r}", lineno) from None


def _text_line(line: str, lineno: int) -> tuple[str, str, float] | None:
    """Parse one text 0.0.4 line the slow, thorough way: None for a line without a sample.

    The fast paths hand every line they find wrong to this function, so the error a user sees
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
    value = _float(raw, lineno)
    pairs = _LOOSE_PAIRS.findall(loose or canon or "")
    return name, _series_key(pairs, lineno), value


def _text_error(text: str) -> ParseError:
    """The error of the first bad line of a text 0.0.4 body the fast path found wrong."""
    for lineno, line in enumerate(text.split("\n"), 1):
        try:
            _text_line(line, lineno)
        except ParseError as exc:
            return exc
    return ParseError("malformed exposition")  # pragma: no cover - the two paths agree


# Above this size a parse pauses the garbage collector: it allocates a tuple per sample, and the
# collections those allocations trigger scan the growing result for nothing to free.
_GC_PAUSE_SIZE = 1 << 20
# Bodies are read in chunks of about this size, so that skeletons learnt in one chunk speed up
# the next: the first read of a large body with new label names is then not slow throughout.
_CHUNK_SIZE = 1 << 16


def _parse_text_full(text: str) -> Samples:
    if not text.endswith("\n"):
        text += "\n"
    result: Samples = {}
    size = len(text)
    pause_gc = size > _GC_PAUSE_SIZE and gc.isenabled()
    if pause_gc:
        gc.disable()
    try:
        current_name = ""
        current: dict[str, float] = {}
        start = 0
        while start < size:
            end = text.find("\n", start + _CHUNK_SIZE) + 1 or size
            skeletons, pattern = _text_full
            learnt: set[tuple[str, ...]] = set()
            for name, key, value, other in pattern.findall(text, start, end):
                if name:
                    # The common case, kept short: the pattern has checked the key.
                    if name != current_name:
                        current_name = name
                        series = result.get(name)
                        if series is None:
                            series = result[name] = {}
                        current = series
                    current[key or "{}"] = float(value)
                elif other:
                    match = _SAMPLE_LINE.fullmatch(other)
                    if match is None:
                        raise ParseError(other)
                    name, canon, loose, value = match.groups()
                    key, skeleton = _general_key(loose or canon)
                    if skeleton is not None and skeleton not in skeletons:
                        learnt.add(skeleton)
                    current_name = name
                    current = result.setdefault(name, {})
                    current[key] = float(value)
                # else: the empty match at the end of a chunk
            if learnt:
                _learn_skeletons(learnt)
            start = end
    except (ParseError, ValueError):
        # Something is wrong somewhere: find the line and the reason the slow way.
        raise _text_error(text) from None
    finally:
        if pause_gc:
            gc.enable()
    return result


def _general_key(block: str) -> tuple[str, tuple[str, ...] | None]:
    """The series key of any label block, and its skeleton if the fast path may learn it."""
    if not block:
        return "{}", None
    pairs = _LOOSE_PAIRS.findall(block)
    names = tuple(name for name, _ in pairs)
    key = _series_key(pairs, None)
    if len(names) > 1 and list(names) == sorted(names):
        return key, names
    return key, None


# ---- front door -------------------------------------------------------------------------------


class ExpositionParser:
    """A parser for one set of wanted metrics, built once and reused every scrape.

    ``metrics`` holds sample names (``x_bucket``, ``x_total``) or family names (``x`` also
    selects ``x_total``, ``x_created``, ``x_bucket``, ``x_sum``, ``x_count``, ``x_gsum``,
    ``x_gcount`` and ``x_info``); ``None`` keeps every sample. In text 0.0.4 only the lines
    of wanted metrics are parsed and checked; OpenMetrics bodies are always checked in full.
    """

    def __init__(self, metrics: Iterable[str] | None = None) -> None:
        self.metrics: frozenset[str] | None = None if metrics is None else frozenset(metrics)
        self._filter: re.Pattern[str] | None = None
        # The wanted names to search for, without those another one already finds (after
        # sorting, a name's prefixes come before it).
        needles: list[str] = []
        for name in sorted(self.metrics or ()):
            if not any(name.startswith(shorter) for shorter in needles):
                needles.append(name)
        self._needles = tuple(needles)
        self._samples = frozenset(
            name + suffix for name in self.metrics or () for suffix in ("", *FAMILY_SUFFIXES)
        )
        self._heads: dict[str, tuple[str, str]] = {}
        if self.metrics:
            names = "|".join(re.escape(n) for n in sorted(self.metrics, key=len, reverse=True))
            suffixes = "|".join(FAMILY_SUFFIXES)
            # A leading "\n" lets the regex engine jump from line start to line start in C; a
            # line whose name is not wanted fails at its first characters. A wanted line that
            # is not a valid sample falls into the last group and is reported.
            self._filter = re.compile(
                rf"\n[ \t]*((?:{names})(?:{suffixes})?)(?![a-zA-Z0-9_:])"
                rf"(?:{_REST_CANON}(?=\n)|{_REST_ANY}(?=\n)|([^\n]*))"
            )

    def wants(self, name: str) -> bool:
        """Whether the sample called ``name`` is kept."""
        return self.metrics is None or family_selects(self.metrics, name)

    def parse(self, text: str | bytes, *, openmetrics: bool = False) -> Samples:
        """Parse one exposition; see :func:`parse_exposition`."""
        if not isinstance(text, str):
            text = _decode(bytes(text))
        if openmetrics:
            return parse_openmetrics(text, None if self.metrics is None else self.wants)
        if self.metrics is None:
            return _parse_text_full(text)
        if self._filter is None:
            return {}
        result = _parse_text_found(text, self._needles, self._samples, self._heads)
        if result is not None:
            return result
        # The newlines around let every line, the first and the last too, match the same way.
        body = "\n" + text if text.endswith("\n") else "\n" + text + "\n"
        return _parse_text_filtered(body, self._filter)


def _parse_text_filtered(body: str, pattern: re.Pattern[str]) -> Samples:
    """Parse the wanted lines of ``body`` (the exposition with a "\n" before and after)."""
    result: Samples = {}
    for match in pattern.finditer(body):
        try:
            _add_filtered(match, result)
        except (ParseError, ValueError):
            start = match.start() + 1
            lineno = body.count("\n", 0, start)
            _text_line(body[start : body.index("\n", start)], lineno)
            raise ParseError("malformed sample line", lineno) from None  # pragma: no cover
    return result


def _parse_text_found(
    text: str, names: tuple[str, ...], samples: frozenset[str], heads: dict[str, tuple[str, str]]
) -> Samples | None:
    """Read the wanted lines of ``text`` where the regex engine visits only those.

    ``str.find`` jumps from one occurrence of a wanted name to the next in C, several times
    faster than the regex engine steps from line to line. An occurrence that starts a line is
    read; any other (in a HELP or TYPE line, a longer name, a value) is passed over. All lines
    of one sample name are found by the same search, in order, so within a series the last
    line still wins. Returns None, for :func:`_parse_text_filtered` to do, on anything else:
    a wanted line with blanks before its name or outside the canonical layout, or an error
    (that function names the first bad line).

    ``heads`` maps the part before the value of canonical lines read before (by this parser)
    to their (sample name, or "" when unwanted; series key): a parser reads the same few lines
    scrape after scrape, and then only the value is left to check.
    """
    result: Samples = {}
    find = text.find
    try:
        for name in names:
            pos = find(name)
            while pos >= 0:
                before = text[pos - 1] if pos else "\n"
                if before == "\n":
                    end = find("\n", pos)
                    if end < 0:
                        end = len(text)
                    head, _, value = text[pos:end].rpartition(" ")
                    seen = heads.get(head)
                    if seen is None:
                        # Not read before, or it has a timestamp: the value comes from the regex.
                        seen, value = _read_head(text, pos, samples, heads)
                        if seen is None:
                            return None
                    elif not (value.isascii() and value.isprintable() and "_" not in value):
                        # float() would take what the format does not ("1_0", "\x0c1").
                        return None
                    sample, key = seen
                    if sample:
                        series = result.get(sample)
                        if series is None:
                            series = result[sample] = {}
                        series[key] = float(value)
                    pos = find(name, end)
                    continue
                if before in " \t" and not text[text.rfind("\n", 0, pos) + 1 : pos].strip(" \t"):
                    return None  # a line indented with blanks
                pos = find(name, pos + len(name))
    except (ParseError, ValueError):
        return None
    return result


def _read_head(
    body: str, pos: int, samples: frozenset[str], heads: dict[str, tuple[str, str]]
) -> tuple[tuple[str, str] | None, str]:
    """Read the line at ``pos`` into ``heads``: ((sample or "", key), value), or (None, "")
    when the line is not canonical."""
    line = _WANTED_LINE.match(body, pos)
    if line is None:
        return None, ""
    sample, block, value = line.groups()
    if sample not in samples:
        seen = ("", "")
    elif block.count('"') > 2:
        seen = (sample, _several_labels_key(block[1:-1]))
    else:
        seen = (sample, block or "{}")
    if len(heads) >= _MAX_HEADS:
        heads.clear()
    heads[sample + block] = seen
    return seen, value


_MAX_HEADS = 4096
# A line in the canonical layout: (name, label block with braces or "", value).
_WANTED_LINE = re.compile(
    rf"({_NAME_FAST})(\{{{_LABEL_FAST}={_CANON_VALUE_FAST}(?:,{_LABEL_FAST}={_CANON_VALUE_FAST})*+\}}|)"
    rf" ({_RAW_VALUE}+)(?: [+-]?[0-9]++)?+(?=\n|\Z)"
)


def _add_filtered(match: re.Match[str], result: Samples) -> None:
    """Add the sample of one match of an :class:`ExpositionParser`'s filter pattern."""
    name, canon, value, canon2, loose, value2, bad = match.groups()
    if bad is not None:
        raise ParseError(bad)
    if value is None:
        canon, value = canon2, value2
    if loose is not None:
        key = _series_key(_LOOSE_PAIRS.findall(loose), None)
    elif not canon:
        key = "{}"
    elif canon.count('"') == 2:
        key = "{" + canon + "}"
    else:
        key = _several_labels_key(canon)
    series = result.get(name)
    if series is None:
        series = result[name] = {}
    series[key] = float(value)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(f"invalid UTF-8 at byte {exc.start}", lineno) from None


@lru_cache(maxsize=64)
def _parser_for(metrics: frozenset[str] | None) -> ExpositionParser:
    return ExpositionParser(metrics)


def parse_exposition(
    text: str | bytes, *, openmetrics: bool = False, metrics: Iterable[str] | None = None
) -> Samples:
    """Parse a Prometheus text 0.0.4 (or, with ``openmetrics=True``, OpenMetrics 1.0) body.

    Returns ``{sample name: {series: value}}``; the series is the label set in Prometheus
    notation, labels sorted by name (``{cpu="0",mode="idle"}``, ``{}`` for none). ``metrics``
    keeps only the named samples or families (see :class:`ExpositionParser`); lines of other
    metrics are skipped unparsed. When a series appears twice, the last sample wins. ``bytes``
    are decoded as UTF-8. Anything that breaks the format raises
    :class:`~deucalion.errors.ParseError` naming the line.
    """
    return _parser_for(None if metrics is None else frozenset(metrics)).parse(
        text, openmetrics=openmetrics
    )


def is_openmetrics(content_type: str) -> bool:
    """Whether a response's Content-Type header announces the OpenMetrics text format."""
    return content_type.split(";", 1)[0].strip().lower() == "application/openmetrics-text"
