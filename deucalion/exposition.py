"""Parse Prometheus text 0.0.4 and OpenMetrics 1.0 expositions into plain dicts.

The result maps each sample name to its series, and each series (its label set in Prometheus
notation, labels sorted by name, values escaped, ``{}`` for none) to its value::

    {"node_cpu_seconds_total": {'{cpu="0",mode="idle"}': 1234.5, ...}, "up": {"{}": 1.0}}

Timestamps, exemplars, HELP, TYPE and UNIT are checked but not returned. When one series
appears twice in a body, the last sample wins.

Speed comes from regular expressions run over the whole body: in text 0.0.4 one pattern finds,
validates and splits every sample line in C, and Python only touches the captured groups. With a
metrics filter the pattern is built from the wanted names, so an unwanted line is skipped by the
regex engine before anything of it is parsed (and, in text 0.0.4, before it is validated).
OpenMetrics is parsed line by line with every rule of the standard that prometheus_client's
OpenMetrics parser enforces, on every line, filter or not: it is strict, and slower.

Not supported (rejected): quoted UTF-8 metric and label names, native histograms, label names
starting with ``__``. Label values may contain any escape; ``\\\\``, ``\\"`` and ``\\n`` are
unescaped and any other backslash is kept as is, as prometheus_client does.
"""

from __future__ import annotations

import gc
import itertools
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache

from deucalion.errors import ParseError
from deucalion.naming import FAMILY_SUFFIXES, family_selects

__all__ = ["ExpositionParser", "is_openmetrics", "parse_exposition"]

Samples = dict[str, dict[str, float]]


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# Label names starting with "__" are reserved; prometheus_client rejects them too.
_LABEL = r"(?!__)[a-zA-Z_][a-zA-Z0-9_]*"
# A label value whose only escapes are the three canonical ones is already in our notation.
_CANON_VALUE = r'"[^"\\\n]*+(?:\\[\\"n][^"\\\n]*+)*+"'
_ANY_VALUE = r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
_CANON_BLOCK = rf"{_LABEL}={_CANON_VALUE}(?:,{_LABEL}={_CANON_VALUE})*"
# Text 0.0.4 allows blanks around every token inside the braces and a trailing comma.
_LOOSE_PAIR = rf"{_LABEL}[ \t]*=[ \t]*{_ANY_VALUE}[ \t]*"
_LOOSE_BLOCK = rf"[ \t]*(?:{_LOOSE_PAIR}(?:,[ \t]*{_LOOSE_PAIR})*(?:,[ \t]*)?)?"
# Exactly the ASCII spellings Python's float() and Go's ParseFloat both read the same way.
_VALUE = (
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf(?:inity)?|nan))"
)
_DECIMAL = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"

# ---- text 0.0.4 -------------------------------------------------------------------------------

_TEXT_TYPES = "counter|gauge|histogram|summary|untyped"
# The canonical layout Go and Python clients write is tried first: the regex engine then settles
# most lines with its first alternative. The general alternatives accept the rest of text 0.0.4
# (blanks and tabs between tokens, a trailing comma, any escape in label values).
_SKIP_CANON = rf"# HELP {_NAME}(?: [^\n]*)?|# TYPE {_NAME} (?:{_TEXT_TYPES})"
# A line that carries no sample: blank, a comment, or a well-formed HELP or TYPE line.
_SKIP_ANY = (
    rf"[ \t]*(?:#(?:[ \t]+(?:HELP[ \t]+{_NAME}(?:[ \t][^\n]*)?"
    rf"|TYPE[ \t]+{_NAME}[ \t]+(?:{_TEXT_TYPES})[ \t]*)"
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

# The same languages as _NAME, _LABEL and _CANON_VALUE, spelt so that the regex engine keeps no
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
    pair = f"={_CANON_VALUE_FAST}"
    blocks = [_LABEL_FAST + pair]
    blocks += [",".join(re.escape(name) + pair for name in names) for names in sorted(skeletons)]
    return re.compile(
        rf"(?:(?:{_SKIP_CANON}|{_SKIP_ANY})\n)*+"
        rf"(?:({_NAME_FAST})(\{{(?:{'|'.join(blocks)}|)\}})?+ ({_RAW_VALUE}+)(?: [+-]?[0-9]++)?+\n"
        r"|([^\n]*)\n?)"
    )


# The label-name skeletons learnt so far (sorted multi-label name sequences) and the pattern
# that knows them, swapped together. Exporters use few; a body that shows a new one is read
# with the general alternative until its chunk ends, then the pattern is rebuilt.
_MAX_SKELETONS = 256
_text_full: tuple[frozenset[tuple[str, ...]], re.Pattern[str]] = (
    frozenset(),
    _text_full_pattern(frozenset()),
)


def _learn_skeletons(new: set[tuple[str, ...]]) -> None:
    global _text_full
    known = _text_full[0]
    if len(known) >= _MAX_SKELETONS:
        return
    skeletons = known | new
    _text_full = (skeletons, _text_full_pattern(skeletons))


_SKIP_LINE = re.compile(_SKIP_ANY)
_SAMPLE_LINE = re.compile(rf"[ \t]*({_NAME}){_REST_ANY}")

_CANON_NAMES = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="[^"\\]*+(?:\\.[^"\\]*+)*+"')
_CANON_PAIRS = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*+(?:\\.[^"\\]*+)*+"')
_LOOSE_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*+(?:\\.[^"\\]*+)*+)"')

_UNESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE_SEQUENCE = re.compile(r'\\[\\"n]')


def _unescape(raw: str) -> str:
    """A label value as written (between its quotes) to the string it stands for."""
    if "\\" not in raw:
        return raw
    return _ESCAPE_SEQUENCE.sub(lambda m: _UNESCAPES[m.group()], raw)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _canonical(raw: str) -> str:
    """A label value as written to the notation of series keys (canonical escapes)."""
    if "\\" not in raw:
        return raw
    return _escape(_unescape(raw))


def _series_key(pairs: list[tuple[str, str]], lineno: int | None) -> str:
    """The series key of (name, value as written) pairs, which may be unsorted."""
    pairs.sort()
    previous = None
    for name, _ in pairs:
        if name == previous:
            raise ParseError(f"duplicate label name {name!r}", lineno)
        previous = name
    return "{" + ",".join(f'{name}="{_canonical(raw)}"' for name, raw in pairs) + "}"


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


# ---- OpenMetrics 1.0 --------------------------------------------------------------------------

_OM_TYPES = frozenset(
    ["counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown"]
)
_OM_ALLOWED_SUFFIXES = {
    "counter": ("_total", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_count", "_sum", "_bucket", "_created"),
    "gaugehistogram": ("_gcount", "_gsum", "_bucket"),
    "info": ("_info",),
}
_OM_BLOCK = rf"{_LABEL}={_ANY_VALUE}(?:,{_LABEL}={_ANY_VALUE})*"
_OM_META = re.compile(rf"# (HELP|TYPE|UNIT) ({_NAME}) (.*)")
_OM_SAMPLE = re.compile(
    rf"({_NAME})(?:\{{({_OM_BLOCK})?\}})? ({_VALUE})(?: ({_DECIMAL}))?"
    rf"(?: # \{{({_OM_BLOCK})?\}} ({_VALUE})(?: ({_DECIMAL}))?)?"
)
_OM_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_COUNTER_LIKE_NOT_NAN = frozenset(["_total", "_sum", "_count", "_bucket", "_gcount", "_gsum"])
_COUNTER_LIKE_NOT_NEGATIVE = frozenset(["_total", "_sum", "_count", "_bucket", "_gcount"])


def _om_timestamp(raw: str, lineno: int) -> Decimal:
    if "e" in raw or "E" in raw:
        value = float(raw)
        if math.isinf(value):
            raise ParseError(f"invalid timestamp {raw!r}", lineno)
        return Decimal(value)
    return Decimal(raw)


def _om_labels(block: str | None, lineno: int) -> list[tuple[str, str]]:
    """Sorted (name, canonical value) pairs of an OpenMetrics label block."""
    if not block:
        return []
    pairs = [(name, _canonical(raw)) for name, raw in _OM_PAIRS.findall(block)]
    pairs.sort()
    for (a, _), (b, _) in itertools.pairwise(pairs):
        if a == b:
            raise ParseError(f"duplicate label name {a!r}", lineno)
    return pairs


class _Family:
    """What the OpenMetrics checks need to remember of the family being read."""

    def __init__(self, name: str, typ: str | None) -> None:
        self.name = name
        self.typ = typ
        self.help_seen = False
        self.unit: str | None = None
        self.allowed: tuple[str, ...] = (name,)
        self.has_samples = False
        self.group: tuple[tuple[str, str], ...] | None = None
        self.group_timestamp: Decimal | None = None
        self.seen_groups: set[tuple[tuple[str, str], ...]] = set()
        # (suffix, group, timestamp, le, value) of every sample, for the histogram checks.
        self.histogram: list[
            tuple[str, tuple[tuple[str, str], ...], Decimal | None, float, float]
        ] = []
        self.lineno = 0


def _check_histogram(family: _Family) -> None:
    """Bucket order, +Inf bucket, count and sum rules, per group of one histogram family."""
    name = family.name
    lineno = family.lineno
    group: object = None
    timestamp: object = None
    count: float | None = None
    bucket: float | None = None
    value = 0.0
    negative_buckets = has_sum = has_gsum = negative_gsum = False

    def finish() -> None:
        if bucket != math.inf:
            raise ParseError(f"histogram {name}: +Inf bucket missing", lineno)
        if count is not None and value != count:
            raise ParseError(f"histogram {name}: count does not match the +Inf bucket", lineno)
        if has_sum and count is None:
            raise ParseError(f"histogram {name}: _count must be present with _sum", lineno)
        if has_gsum and count is None:
            raise ParseError(f"histogram {name}: _gcount must be present with _gsum", lineno)
        if not (has_sum or has_gsum) and count is not None:
            raise ParseError(f"histogram {name}: _sum must be present with _count", lineno)
        if negative_buckets and has_sum:
            raise ParseError(f"histogram {name}: _sum with negative buckets", lineno)
        if not negative_buckets and negative_gsum:
            raise ParseError(f"histogram {name}: negative _gsum without negative buckets", lineno)

    for suffix, g, ts, le, sample_value in family.histogram:
        if not suffix:
            continue
        if g != group or ts != timestamp:
            if group is not None:
                finish()
            count = bucket = None
            negative_buckets = has_sum = has_gsum = negative_gsum = False
            value = 0.0
        group, timestamp = g, ts
        if suffix == "_bucket":
            if le < 0:
                negative_buckets = True
            if bucket is not None and le <= bucket:
                raise ParseError(f"histogram {name}: buckets out of order", lineno)
            if sample_value < value:
                raise ParseError(f"histogram {name}: bucket values out of order", lineno)
            bucket, value = le, sample_value
        elif suffix in ("_count", "_gcount"):
            count = sample_value
        elif suffix == "_sum":
            has_sum = True
        elif suffix == "_gsum":
            has_gsum = True
            if sample_value < 0:
                negative_gsum = True
    if group is not None:
        finish()


def _finish_family(family: _Family, seen_names: set[str]) -> None:
    typ = family.typ or "unknown"
    name = family.name
    lineno = family.lineno
    for suffix in {"", *_OM_ALLOWED_SUFFIXES.get(typ, ())}:
        if name + suffix in seen_names:
            raise ParseError(f"clashing name {name + suffix!r}: families must not repeat", lineno)
        seen_names.add(name + suffix)
    if family.unit:
        if not name.endswith("_" + family.unit):
            raise ParseError(f"unit {family.unit!r} does not match metric name {name}", lineno)
        if typ in ("info", "stateset"):
            raise ParseError(f"no unit allowed for {typ} {name}", lineno)
    if typ in ("histogram", "gaugehistogram"):
        _check_histogram(family)


def _parse_openmetrics(text: str, wants: Callable[[str], bool] | None) -> Samples:
    result: Samples = {}
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    seen_names: set[str] = set()
    family: _Family | None = None
    eof = False
    for index, line in enumerate(lines):
        lineno = index + 1
        if eof:
            raise ParseError("text after # EOF", lineno)
        if not line:
            raise ParseError("blank line (not allowed in OpenMetrics)", lineno)
        if line[0] == "#":
            if line == "# EOF":
                eof = True
                continue
            meta = _OM_META.fullmatch(line)
            if meta is None:
                raise ParseError(f"malformed metadata line {line[:80]!r}", lineno)
            kind, name, argument = meta.groups()
            if family is not None and family.name == name:
                if family.has_samples:
                    raise ParseError(f"metadata for {name} after its samples", lineno)
            else:
                if family is not None:
                    _finish_family(family, seen_names)
                family = _Family(name, None)
            family.lineno = lineno
            if kind == "HELP":
                if family.help_seen:
                    raise ParseError(f"more than one HELP for {name}", lineno)
                family.help_seen = True
            elif kind == "TYPE":
                if family.typ is not None:
                    raise ParseError(f"more than one TYPE for {name}", lineno)
                if argument not in _OM_TYPES:
                    raise ParseError(f"invalid type {argument!r} for {name}", lineno)
                family.typ = argument
                family.allowed = tuple(name + s for s in _OM_ALLOWED_SUFFIXES.get(argument, ("",)))
            else:
                if family.unit is not None:
                    raise ParseError(f"more than one UNIT for {name}", lineno)
                family.unit = argument
            continue
        sample = _OM_SAMPLE.fullmatch(line)
        if sample is None:
            raise ParseError(
                f"malformed sample line {line[:80]!r}: expected "
                "name{labels} value [timestamp] [# {labels} value [timestamp]]",
                lineno,
            )
        name, block, raw_value, raw_ts, ex_block, ex_value, ex_ts = sample.groups()
        labels = _om_labels(block, lineno)
        value = float(raw_value)
        timestamp = _om_timestamp(raw_ts, lineno) if raw_ts is not None else None
        if family is None or name not in family.allowed:
            if family is not None:
                _finish_family(family, seen_names)
            family = _Family(name, "unknown")
        family.lineno = lineno
        family.has_samples = True
        _check_om_sample(family, name, labels, value, timestamp, line, lineno)
        if ex_value is not None:
            _check_exemplar(family, name, ex_block, ex_ts, lineno)
        if wants is None or wants(name):
            key = "{" + ",".join(f'{n}="{v}"' for n, v in labels) + "}"
            result.setdefault(name, {})[key] = value
    if family is not None:
        _finish_family(family, seen_names)
    if not eof:
        raise ParseError("missing # EOF at the end", len(lines) or 1)
    return result


def _label(labels: list[tuple[str, str]], name: str) -> str | None:
    for n, v in labels:
        if n == name:
            return v
    return None


def _check_om_sample(
    family: _Family,
    name: str,
    labels: list[tuple[str, str]],
    value: float,
    timestamp: Decimal | None,
    line: str,
    lineno: int,
) -> None:
    """The per-sample rules of OpenMetrics, in prometheus_client's order."""
    fam = family.name
    typ = family.typ
    suffix = name[len(fam) :]
    le = math.nan
    if typ == "stateset" and _label(labels, fam) is None:
        raise ParseError(f"stateset sample without its {fam!r} label", lineno)
    if suffix == "_bucket":
        raw_le = _label(labels, "le")
        if raw_le is None or raw_le == "NaN":
            raise ParseError("bucket without a valid le label", lineno)
        le = _number_label(raw_le, "le", lineno)
        if le == math.inf and raw_le != "+Inf":
            raise ParseError(f"le={raw_le!r} must be written +Inf", lineno)
        if not value.is_integer():
            raise ParseError("bucket value must be an integer", lineno)
    if suffix in ("_count", "_gcount") and not value.is_integer():
        raise ParseError("count value must be an integer", lineno)
    if typ == "summary" and not suffix:
        raw_q = _label(labels, "quantile")
        quantile = -1.0 if raw_q is None else _number_label(raw_q, "quantile", lineno)
        if not 0 <= quantile <= 1:
            raise ParseError("quantile label must be between 0 and 1", lineno)

    if typ == "info":
        group: tuple[tuple[str, str], ...] = ()
    elif (typ == "summary" and not suffix) or typ == "stateset":
        drop = "quantile" if typ == "summary" else fam
        group = tuple(p for p in labels if p[0] != drop)
    elif typ in ("histogram", "gaugehistogram") and suffix == "_bucket":
        group = tuple(p for p in labels if p[0] != "le")
    else:
        group = tuple(labels)
    if family.group is not None and group != family.group and group in family.seen_groups:
        raise ParseError(f"samples of one group of {fam} are not together", lineno)
    if family.group is not None and group == family.group:
        if (timestamp is None) != (family.group_timestamp is None):
            raise ParseError("mix of samples with and without timestamp in a group", lineno)
        if (
            timestamp is not None
            and family.group_timestamp is not None
            and family.group_timestamp > timestamp
            and typ != "info"
        ):
            raise ParseError("timestamps went backwards within a group", lineno)
    family.group = group
    family.group_timestamp = timestamp
    family.seen_groups.add(group)
    if typ in ("histogram", "gaugehistogram"):
        family.histogram.append((suffix, group, timestamp, le, value))

    if typ == "stateset" and value not in (0, 1):
        raise ParseError("stateset values must be 0 or 1", lineno)
    if typ == "info" and value != 1:
        raise ParseError("info values must be 1", lineno)
    if typ == "summary" and not suffix and value < 0:
        raise ParseError("quantile values must not be negative", lineno)
    if suffix in _COUNTER_LIKE_NOT_NAN and math.isnan(value):
        raise ParseError(f"{name} is counter-like and must not be NaN", lineno)
    if suffix in _COUNTER_LIKE_NOT_NEGATIVE and value < 0:
        raise ParseError(f"{name} is counter-like and must not be negative", lineno)


def _number_label(raw: str, label: str, lineno: int) -> float:
    try:
        # float() on the unescaped value, as prometheus_client reads le and quantile.
        return float(_unescape(raw))
    except ValueError:
        raise ParseError(f"{label}={raw!r} is not a number", lineno) from None


def _check_exemplar(
    family: _Family, name: str, block: str | None, raw_ts: str | None, lineno: int
) -> None:
    typ = family.typ
    if not (
        (typ in ("histogram", "gaugehistogram") and name.endswith("_bucket"))
        or (typ == "counter" and name.endswith("_total"))
    ):
        raise ParseError("only histogram buckets and counter totals can have exemplars", lineno)
    labels = _om_labels(block, lineno)
    if sum(len(n) + len(_unescape(v)) for n, v in labels) > 128:
        raise ParseError("exemplar labels longer than 128 characters", lineno)
    if raw_ts is not None:
        _om_timestamp(raw_ts, lineno)


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
            return _parse_openmetrics(text, None if self.metrics is None else self.wants)
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
