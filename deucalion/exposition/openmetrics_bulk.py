"""OpenMetrics bodies as client libraries write them, read in bulk.

One ``findall()`` splits the body into lines and checks their grammar; the rules of the
standard are then checked family by family in one pass, with what depends on label sets only
(the ``le``, ``quantile`` or state label of a series and the group it belongs to) remembered by
the parser from one body to the next. What the pass finds of a body's structure (everything
but its values and exemplars) is kept as a plan: a body of the same structure, as a target
serves scrape after scrape, costs the checks of its values, done a rule at a time over all
the values it applies to. It takes every family type but gauge histograms, label
blocks in the canonical notation, ``# UNIT`` lines and exemplars; a body with a sample
timestamp, anything else or any fault gives None, and the line-by-line reader of
:mod:`deucalion.exposition.openmetrics` reads it and names the fault. It never accepts what
that reader refuses, and reads the same samples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from itertools import compress
from operator import eq, itemgetter, le
from typing import NamedTuple, cast

from deucalion.errors import ParseError
from deucalion.exposition.grammar import BLOCK, NAME_FAST, VALUE_FAST, Samples, unescape
from deucalion.exposition.labels import LabelMemory, label_order, unescaped

__all__ = ["read_bulk"]

# Groups (kind, name, argument, sample name, block, value, exemplar block, exemplar value,
# eof, other): a metadata line, a sample line without timestamp (with an exemplar or not),
# "# EOF", or anything else (in ``other``; "" for a blank line).
_LINE = re.compile(
    rf"(?:# (TYPE|HELP|UNIT) ({NAME_FAST}) ([^\n]*+)"
    rf"|({NAME_FAST})({BLOCK})?+ ({VALUE_FAST})"
    rf"(?: # ({BLOCK}) ({VALUE_FAST})(?: [0-9]++(?:\.[0-9]++)?+)?+)?+"
    r"|(# EOF)|([^\n]*+))\n"
)
_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# The sample names of each type a bulk read takes, by suffix.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "unknown": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
}
# The names a family of each type takes, for clashes between families (as the standard's).
_CLAIMS = {
    "counter": ("", "_total", "_created"),
    "histogram": ("", "_count", "_sum", "_bucket", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("", "_info"),
}
# What series_of answers for a sample name not seen yet.
_UNSEEN: dict[str, float] = {}

# Bound of the splits of series keys around a label a LabelMemory keeps (the label sets of a
# body are remembered whole: past it, they are forgotten before the next body).
_MAX_SPLITS = 1 << 16


def _split(key: str, label: str) -> tuple[str, str] | None:
    """(the series key without ``label``, ``label``'s value as written) of a canonical series
    key, None when it has no such label."""
    pairs = _PAIRS.findall(key)
    for index, (name, value) in enumerate(pairs):
        if name == label:
            del pairs[index]
            return "{" + ",".join(f'{n}="{v}"' for n, v in pairs) + "}", value
    return None


def _split_of(splits: dict[str, tuple[str, str]], key: str, label: str) -> tuple[str, str]:
    """:func:`_split` of ``key`` around ``label``, now remembered in ``splits`` (("", "") when
    it has no such label)."""
    split = splits[key] = _split(key, label) or ("", "")
    return split


def _number(raw: str) -> float | None:
    """A ``le`` or ``quantile`` label value as prometheus_client reads it, None if invalid."""
    if raw == "NaN":
        return None
    try:
        number = float(unescape(raw))
    except ValueError:
        return None
    if number == math.inf and raw != "+Inf":
        return None
    return number


def _exemplar_ok(block: str) -> bool:
    """Whether an exemplar's label block (canonical, braces included) keeps the rules: no
    duplicate or reserved label name, at most 128 characters of names and values."""
    if len(block) > 130:
        # (Names and unescaped values are never longer than the block: only then count.)
        return False
    if '",' not in block:
        return True
    try:
        label_order("".join(unescaped(block).split('"')[::2]))
    except ParseError:
        return False
    return True


class _Plan(NamedTuple):
    """What reading a body in full found of its structure (everything but the values and the
    exemplars), so that a body of the same structure costs the checks of its values only.

    Value indices count the sample lines. ``layout`` has, per kept sample name, its series
    keys and the indices of their values; the others list the values each rule applies to.
    """

    layout: tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...]
    not_negative: tuple[int, ...]  # nor NaN
    integers: tuple[int, ...]
    ones: tuple[int, ...]
    states: tuple[int, ...]
    quantiles: tuple[int, ...]
    # Pairs of bucket values that must not fall, and of a count and its +Inf bucket.
    rising: tuple[tuple[int, ...], tuple[int, ...]]
    equal: tuple[tuple[int, ...], tuple[int, ...]]
    #: The lines (not values) that may carry an exemplar.
    exemplars: frozenset[int]
    #: The number of lines of the body.
    lines: int


_KIND_OF = itemgetter(0)
_SAMPLE_OF = itemgetter(3)
_BLOCK_OF = itemgetter(4)
# The parts of a metadata line: kind, name, argument.
_METADATA = (_KIND_OF, itemgetter(1), itemgetter(2))
_VALUE_OF = itemgetter(5)
_EXEMPLAR_VALUE_OF = itemgetter(7)
_NOT_NEGATIVE = (0.0).__le__
_NEGATIVE = (0.0).__gt__
_ONE = (1.0).__eq__
_STATES = frozenset([0.0, 1.0])
# Bound of the structures a LabelMemory keeps plans of, in lines.
_MAX_PLAN_LINES = 1 << 16


def _read_known(lines: list[tuple[str, ...]], plan: _Plan) -> Samples | None:
    """The samples of a body whose structure ``plan`` was made from, once its values and
    exemplars keep the rules; None when they do not."""
    raws = list(map(_VALUE_OF, lines))
    values = list(map(float, compress(raws, raws)))  # (metadata lines have no value)
    get = values.__getitem__
    if not (
        all(map(_NOT_NEGATIVE, map(get, plan.not_negative)))
        and all(map(float.is_integer, map(get, plan.integers)))
        and all(map(_ONE, map(get, plan.ones)))
        and _STATES.issuperset(map(get, plan.states))
        and not any(map(_NEGATIVE, map(get, plan.quantiles)))
        and all(map(le, map(get, plan.rising[0]), map(get, plan.rising[1])))
        and all(map(eq, map(get, plan.equal[0]), map(get, plan.equal[1])))
    ):
        return None
    exemplars = list(compress(range(len(lines)), map(_EXEMPLAR_VALUE_OF, lines)))
    if exemplars and not (
        plan.exemplars.issuperset(exemplars) and all(_exemplar_ok(lines[i][6]) for i in exemplars)
    ):
        return None
    return {
        name: dict(zip(keys, map(get, places), strict=True)) for name, keys, places in plan.layout
    }


def read_bulk(
    text: str, wants: Callable[[str], bool] | None, memory: LabelMemory
) -> Samples | None:
    """The samples of an OpenMetrics body (those ``wants`` keeps, all when None), checked by
    every rule of the standard that applies to them; None for the line-by-line reader on a
    body it does not take (see the module's docstring) or any fault."""
    if not text.endswith("\n"):
        text += "\n"
    lines = _LINE.findall(text)
    if not lines or not lines[-1][8]:
        return None
    del lines[-1]
    # Everything but the values and exemplars, joined (cheaper to hash and compare than a
    # tuple per line): the number of lines, each line's sample name and block ("" for a
    # metadata line), and the metadata lines' kinds, names and arguments. (No part holds a
    # "\n", so a join tells its parts. A blank line, "# EOF" or any other line in place of a
    # line of a body the plan was made from changes the structure: it has no sample name, and
    # is not a metadata line.)
    metadata = list(compress(lines, map(_KIND_OF, lines)))
    structure = (
        str(len(lines)),
        "\n".join(map(_SAMPLE_OF, lines)),
        "\n".join(map(_BLOCK_OF, lines)),
        *("\n".join(map(part, metadata)) for part in _METADATA),
    )
    plans = cast(dict[tuple[str, ...], _Plan], memory.plans)
    plan = plans.get(structure)
    if plan is not None:
        known = _read_known(lines, plan)
        if known is not None:
            return known
    try:
        keys = memory.series_keys(lines, 4)
    except ParseError:
        return None
    splits = memory.splits
    if sum(map(len, splits.values())) > _MAX_SPLITS:
        splits.clear()
    le_splits = splits.get("le") or splits.setdefault("le", {})
    quantile_splits = splits.get("quantile") or splits.setdefault("quantile", {})
    numbers: dict[str, float | None] = {}

    seen_names: set[str] = set()
    family = ""
    typ = ""
    unit: str | None = None
    suffix_of: dict[str, str] = {}
    help_seen = typed = has_samples = False
    groups: set[str] = set()
    group: str | None = None
    # The histogram group being read: its last bucket's bound and value, its count, whether
    # it has a sum and negative buckets.
    bucket: float | None = None
    bucket_value = 0.0
    count: float | None = None
    has_sum = negative = False
    # What the plan of this structure records (see _Plan), value indices counting from 0.
    n = -1
    not_negative: list[int] = []
    integers: list[int] = []
    ones: list[int] = []
    state_values: list[int] = []
    quantiles: list[int] = []
    rising: tuple[list[int], list[int]] = ([], [])
    equal: tuple[list[int], list[int]] = ([], [])
    exemplar_lines: list[int] = []
    places: dict[str, tuple[list[str], list[int]]] = {}
    last_bucket = count_at = -1
    # Each sample name's series (None for a name not kept), in the body's order.
    series_of: dict[str, dict[str, float] | None] = {}
    current_name = ""
    current: dict[str, float] | None = None

    def finish() -> bool:
        """The checks at the end of a family; False on a fault."""
        kind = typ or "unknown"
        for suffix in _CLAIMS.get(kind, ("",)):
            if family + suffix in seen_names:
                return False
            seen_names.add(family + suffix)
        if unit and (not family.endswith("_" + unit) or kind in ("info", "stateset")):
            return False
        return kind != "histogram" or group is None or histogram_ok()

    def histogram_ok() -> bool:
        """The checks at the end of a histogram group."""
        if bucket != math.inf or (count is not None and bucket_value != count):
            return False
        if has_sum != (count is not None):
            return False
        if count is not None:
            equal[0].append(count_at)
            equal[1].append(last_bucket)
        return not (negative and has_sum)

    for index, line in enumerate(lines):
        kind, name, argument, sample, block, raw, ex_block, ex_value, _, other = line
        if not sample:
            if not kind or other:
                return None
            if name != family:
                if family and not finish():
                    return None
                family, typ, unit = name, "", None
                suffix_of = {name: ""}
                help_seen = typed = has_samples = False
                groups = set()
                group = None
            elif has_samples:
                return None  # metadata after the family's samples
            if kind == "TYPE":
                if typed or argument not in _SUFFIXES:
                    return None
                typed = True
                typ = argument
                suffix_of = {name + suffix: suffix for suffix in _SUFFIXES[argument]}
            elif kind == "HELP":
                if help_seen:
                    return None
                help_seen = True
            else:
                if unit is not None:
                    return None
                unit = argument
            continue
        suffix = suffix_of.get(sample)
        if suffix is None:
            if family and not finish():
                return None
            family, typ, unit = sample, "unknown", None
            suffix_of = {sample: ""}
            suffix = ""
            help_seen = typed = True
            groups = set()
            group = None
        has_samples = True
        n += 1
        key = (keys[index] if keys is not None else block) or "{}"
        value = float(raw)
        if typ == "histogram":
            if suffix == "_bucket":
                split = le_splits.get(key) or _split_of(le_splits, key, "le")
                g, le_raw = split
                bound = numbers.get(le_raw)
                if bound is None:
                    bound = numbers[le_raw] = _number(le_raw) if le_raw else None
                    if bound is None:
                        return None
                le = bound
                if not value >= 0 or not value.is_integer():
                    return None
                not_negative.append(n)
                integers.append(n)
                exemplar_lines.append(index)
            else:
                g = key
                if suffix != "_created":
                    if not value >= 0:
                        return None
                    not_negative.append(n)
            if g != group:
                if g in groups or (group is not None and not histogram_ok()):
                    return None
                groups.add(g)
                group = g
                bucket = count = None
                bucket_value = 0.0
                has_sum = negative = False
            if suffix == "_bucket":
                if le < 0:
                    negative = True
                if (bucket is not None and le <= bucket) or value < bucket_value:
                    return None
                if bucket is not None:
                    rising[0].append(last_bucket)
                    rising[1].append(n)
                bucket, bucket_value, last_bucket = le, value, n
            elif suffix == "_count":
                if not value.is_integer():
                    return None
                integers.append(n)
                count, count_at = value, n
            elif suffix == "_sum":
                has_sum = True
            if ex_value and suffix != "_bucket":
                return None
        else:
            if typ == "counter":
                g = key
                if suffix == "_total":
                    if not value >= 0:
                        return None
                    not_negative.append(n)
                    exemplar_lines.append(index)
                elif ex_value:
                    return None
            else:
                if ex_value:
                    return None
                if typ == "summary":
                    if suffix:
                        g = key
                        if suffix != "_created":
                            if not value >= 0:
                                return None
                            not_negative.append(n)
                        if suffix == "_count":
                            if not value.is_integer():
                                return None
                            integers.append(n)
                    else:
                        split = quantile_splits.get(key) or _split_of(
                            quantile_splits, key, "quantile"
                        )
                        g, q_raw = split
                        quantile = numbers.get(q_raw) if q_raw else None
                        if quantile is None and q_raw:
                            quantile = numbers[q_raw] = _number(q_raw)
                        if quantile is None or not 0 <= quantile <= 1 or value < 0:
                            return None
                        quantiles.append(n)
                elif typ == "info":
                    g = ""
                    if value != 1:
                        return None
                    ones.append(n)
                elif typ == "stateset":
                    states = splits.get(family) or splits.setdefault(family, {})
                    split = states.get(key) or _split_of(states, key, family)
                    g = split[0]
                    if not g or (value != 0 and value != 1):
                        return None
                    state_values.append(n)
                else:
                    g = key
            if g != group:
                if g in groups:
                    return None
                groups.add(g)
                group = g
        if ex_value and not _exemplar_ok(ex_block):
            return None
        if sample != current_name:
            # (Histograms and counters change sample name every line or few.)
            current_name = sample
            current = series_of.get(sample, _UNSEEN)
            if current is _UNSEEN:
                current = series_of[sample] = (
                    None if wants is not None and not wants(sample) else {}
                )
        if current is not None:
            current[key] = value
            place = places.get(sample) or places.setdefault(sample, ([], []))
            place[0].append(key)
            place[1].append(n)
    if family and not finish():
        return None
    size = sum(known.lines for known in plans.values())
    if size + len(lines) > _MAX_PLAN_LINES:
        plans.clear()
    if len(lines) <= _MAX_PLAN_LINES:
        plans[structure] = _Plan(
            tuple((name, tuple(k), tuple(i)) for name, (k, i) in places.items()),
            tuple(not_negative),
            tuple(integers),
            tuple(ones),
            tuple(state_values),
            tuple(quantiles),
            (tuple(rising[0]), tuple(rising[1])),
            (tuple(equal[0]), tuple(equal[1])),
            frozenset(exemplar_lines),
            len(lines),
        )
    return {name: series for name, series in series_of.items() if series is not None}
