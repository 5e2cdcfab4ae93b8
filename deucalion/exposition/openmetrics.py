"""Strict OpenMetrics 1.0 parsing, behind :func:`deucalion.exposition.parser.parse_exposition`.

The body is read line by line with every rule of the standard that prometheus_client's
OpenMetrics parser enforces (metadata, family grouping, counter, histogram, summary, stateset
and info rules, exemplars, timestamps). With a filter, the lines of a family none of whose
samples is kept are checked for their grammar (name, label block, value, timestamp, exemplar
syntax) and their place (the family they belong to, metadata before samples, names that clash,
blank lines, ``# EOF`` last), but not for the rules of their type, duplicate labels or exemplar
rules: that work is skipped. It is strict, and slower than the text 0.0.4 reader. The result
has the shape of :func:`~deucalion.exposition.parser.parse_exposition`'s.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from decimal import Decimal

from deucalion.errors import ParseError
from deucalion.exposition.grammar import (
    ANY_VALUE,
    DECIMAL,
    LABEL,
    NAME,
    VALUE,
    Samples,
    canonical,
    unescape,
)
from deucalion.exposition.labels import LabelMemory
from deucalion.exposition.openmetrics_bulk import read_bulk

__all__ = ["parse_openmetrics"]

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
_OM_BLOCK = rf"{LABEL}={ANY_VALUE}(?:,{LABEL}={ANY_VALUE})*"
_OM_META = re.compile(rf"# (HELP|TYPE|UNIT) ({NAME}) (.*)")
_OM_SAMPLE = re.compile(
    rf"({NAME})(?:\{{({_OM_BLOCK})?\}})? ({VALUE})(?: ({DECIMAL}))?"
    rf"(?: # \{{({_OM_BLOCK})?\}} ({VALUE})(?: ({DECIMAL}))?)?"
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
    pairs = [(name, canonical(raw)) for name, raw in _OM_PAIRS.findall(block)]
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
        # Whether the caller keeps any of its samples (decided at its first sample).
        self.wanted: bool | None = None


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


def parse_openmetrics(
    text: str, wants: Callable[[str], bool] | None, memory: LabelMemory | None = None
) -> Samples:
    """Parse an OpenMetrics 1.0 body, checking every line; keep the samples ``wants`` names.

    ``wants`` is None to keep every sample; ``memory`` is the caller's memory of label blocks
    (see :class:`~deucalion.exposition.text.LabelMemory`). Raises
    :class:`~deucalion.errors.ParseError` naming the line on anything the standard (as
    prometheus_client's parser reads it) forbids. A body as client libraries write it is read
    in bulk (:mod:`~deucalion.exposition.openmetrics_bulk`); any other, or any fault, line by
    line.
    """
    bulk = read_bulk(text, wants, LabelMemory() if memory is None else memory)
    if bulk is not None:
        return bulk
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
        timestamp = _om_timestamp(raw_ts, lineno) if raw_ts is not None else None
        if family is None or name not in family.allowed:
            if family is not None:
                _finish_family(family, seen_names)
            family = _Family(name, "unknown")
        family.lineno = lineno
        family.has_samples = True
        if family.wanted is None:
            family.wanted = wants is None or any(map(wants, family.allowed))
        if not family.wanted:
            # A family no sample of which is kept: its lines are checked for their grammar
            # and their place (family, metadata, clashes, # EOF), not for the rules of its
            # type, its labels or its exemplars.
            continue
        labels = _om_labels(block, lineno)
        value = float(raw_value)
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
        return float(unescape(raw))
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
    if sum(len(n) + len(unescape(v)) for n, v in labels) > 128:
        raise ParseError("exemplar labels longer than 128 characters", lineno)
    if raw_ts is not None:
        _om_timestamp(raw_ts, lineno)
