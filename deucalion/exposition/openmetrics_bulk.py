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
    lines = _lines(text)
    if lines is None:
        return None
    structure = _structure(lines)
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
    reading = _FirstRead(memory.splits, wants)
    samples = reading.read(lines, keys)
    if samples is not None:
        _keep_plan(plans, structure, reading, len(lines))
    return samples


def _lines(text: str) -> list[tuple[str, ...]] | None:
    """The lines of a body as ``_LINE`` splits them, "# EOF" left out; None when the body
    does not end with it."""
    if not text.endswith("\n"):
        text += "\n"
    lines = _LINE.findall(text)
    if not lines or not lines[-1][8]:
        return None
    del lines[-1]
    return lines


def _structure(lines: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Everything of a body but its values and exemplars, joined (cheaper to hash and compare
    than a tuple per line): the number of lines, each line's sample name and block ("" for a
    metadata line), and the metadata lines' kinds, names and arguments.

    No part holds a "\n", so a join tells its parts. A blank line, "# EOF" or any other line
    in place of a line of a body the plan was made from changes the structure: it has no
    sample name, and is not a metadata line.
    """
    metadata = list(compress(lines, map(_KIND_OF, lines)))
    return (
        str(len(lines)),
        "\n".join(map(_SAMPLE_OF, lines)),
        "\n".join(map(_BLOCK_OF, lines)),
        *("\n".join(map(part, metadata)) for part in _METADATA),
    )


def _keep_plan(
    plans: dict[tuple[str, ...], _Plan], structure: tuple[str, ...], reading: _FirstRead, lines: int
) -> None:
    """Remember the plan ``reading`` made of a body of ``structure`` and ``lines`` lines, within
    ``_MAX_PLAN_LINES`` lines of plans (past it, the plans kept so far are forgotten)."""
    size = sum(known.lines for known in plans.values())
    if size + lines > _MAX_PLAN_LINES:
        plans.clear()
    if lines <= _MAX_PLAN_LINES:
        plans[structure] = reading.plan(lines)


class _FirstRead:
    """The first read of a body's structure: every rule, family by family and group by group,
    in one pass; what it finds of the structure is recorded for the plan (see ``_Plan``).

    The methods that check a sample take its value's index ``n`` (counting the sample lines)
    and return False on a fault, which ends the read.
    """

    # Slots: the state is read on every line, and a slot is quicker to read than an attribute
    # of the instance's dict (the first read of a body lost 3-7% without them).
    __slots__ = (
        "bucket",
        "bucket_value",
        "count",
        "count_at",
        "equal",
        "exemplar_lines",
        "family",
        "group",
        "groups",
        "has_samples",
        "has_sum",
        "help_seen",
        "integers",
        "last_bucket",
        "le_splits",
        "negative",
        "not_negative",
        "numbers",
        "ones",
        "places",
        "quantile_splits",
        "quantiles",
        "rising",
        "seen_names",
        "splits",
        "state_values",
        "suffix_of",
        "typ",
        "typed",
        "unit",
        "wants",
    )

    def __init__(
        self, splits: dict[str, dict[str, tuple[str, str]]], wants: Callable[[str], bool] | None
    ) -> None:
        if sum(map(len, splits.values())) > _MAX_SPLITS:
            splits.clear()
        self.splits = splits
        self.le_splits = splits.get("le") or splits.setdefault("le", {})
        self.quantile_splits = splits.get("quantile") or splits.setdefault("quantile", {})
        self.numbers: dict[str, float | None] = {}
        self.wants = wants
        self.seen_names: set[str] = set()
        # The family being read.
        self.family = ""
        self.typ = ""
        self.unit: str | None = None
        self.suffix_of: dict[str, str] = {}
        self.help_seen = self.typed = self.has_samples = False
        self.groups: set[str] = set()
        self.group: str | None = None
        # The histogram group being read: its last bucket's bound and value (and index), its
        # count (and index), whether it has a sum and negative buckets.
        self.bucket: float | None = None
        self.bucket_value = 0.0
        self.count: float | None = None
        self.has_sum = self.negative = False
        self.last_bucket = self.count_at = -1
        # What the plan records (see _Plan).
        self.not_negative: list[int] = []
        self.integers: list[int] = []
        self.ones: list[int] = []
        self.state_values: list[int] = []
        self.quantiles: list[int] = []
        self.rising: tuple[list[int], list[int]] = ([], [])
        self.equal: tuple[list[int], list[int]] = ([], [])
        self.exemplar_lines: list[int] = []
        self.places: dict[str, tuple[list[str], list[int]]] = {}

    def read(self, lines: list[tuple[str, ...]], keys: list[str] | None) -> Samples | None:
        """The samples of ``lines`` (their series keys in ``keys``, None when the blocks are
        canonical already); None on a fault."""
        n = -1
        # Each sample name's series (None for a name not kept), in the body's order.
        series_of: dict[str, dict[str, float] | None] = {}
        places = self.places
        wants = self.wants
        current_name = ""
        current: dict[str, float] | None = None
        for index, line in enumerate(lines):
            kind, name, argument, sample, block, raw, ex_block, ex_value, _, other = line
            if not sample:
                if not kind or other or not self.metadata(kind, name, argument):
                    return None
                continue
            suffix = self.suffix_of.get(sample)
            if suffix is None:
                if not self.untyped_family(sample):
                    return None
                suffix = ""
            self.has_samples = True
            n += 1
            key = (keys[index] if keys is not None else block) or "{}"
            value = float(raw)
            typ = self.typ
            if typ == "histogram":
                ok = self.histogram_sample(suffix, key, value, n, index, ex_value)
            elif ex_value and (typ != "counter" or suffix != "_total"):
                return None  # an exemplar where the standard allows none
            elif typ == "counter":
                ok = self.counter_sample(suffix, key, value, n, index)
            elif typ == "summary":
                ok = self.summary_sample(suffix, key, value, n)
            elif typ == "info":
                ok = value == 1 and self.enter_group("")
                self.ones.append(n)
            elif typ == "stateset":
                ok = self.stateset_sample(key, value, n)
            else:
                ok = self.enter_group(key)
            if not ok or (ex_value and not _exemplar_ok(ex_block)):
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
        if self.family and not self.finish_family():
            return None
        return {name: series for name, series in series_of.items() if series is not None}

    # --- families ------------------------------------------------------------------------

    def metadata(self, kind: str, name: str, argument: str) -> bool:
        """A ``# TYPE``, ``# HELP`` or ``# UNIT`` line: at most one of each, before the
        family's samples."""
        if name != self.family:
            if self.family and not self.finish_family():
                return False
            self.start_family(name, "", {name: ""})
            self.help_seen = self.typed = False
        elif self.has_samples:
            return False  # metadata after the family's samples
        if kind == "TYPE":
            if self.typed or argument not in _SUFFIXES:
                return False
            self.typed = True
            self.typ = argument
            self.suffix_of = {name + suffix: suffix for suffix in _SUFFIXES[argument]}
        elif kind == "HELP":
            if self.help_seen:
                return False
            self.help_seen = True
        else:
            if self.unit is not None:
                return False
            self.unit = argument
        return True

    def untyped_family(self, sample: str) -> bool:
        """A sample of no family declared so far starts an ``unknown`` family of its name."""
        if self.family and not self.finish_family():
            return False
        self.start_family(sample, "unknown", {sample: ""})
        self.help_seen = self.typed = True
        return True

    def start_family(self, name: str, typ: str, suffix_of: dict[str, str]) -> None:
        """Read the family ``name`` from here on: of type ``typ`` ("" until its ``# TYPE``),
        with the sample names of ``suffix_of``."""
        self.family, self.typ, self.unit = name, typ, None
        self.suffix_of = suffix_of
        self.has_samples = False
        self.groups = set()
        self.group = None

    def finish_family(self) -> bool:
        """The checks at the end of a family: no name another family took, a unit its name
        ends with, complete histogram groups."""
        family, unit = self.family, self.unit
        kind = self.typ or "unknown"
        for suffix in _CLAIMS.get(kind, ("",)):
            if family + suffix in self.seen_names:
                return False
            self.seen_names.add(family + suffix)
        if unit and (not family.endswith("_" + unit) or kind in ("info", "stateset")):
            return False
        return kind != "histogram" or self.group is None or self.histogram_ok()

    def enter_group(self, group: str) -> bool:
        """The sample's group (its label set without ``le``, ``quantile`` or the state label):
        a family's groups are not interleaved."""
        if group != self.group:
            if group in self.groups:
                return False
            self.groups.add(group)
            self.group = group
        return True

    # --- samples by family type ----------------------------------------------------------

    def histogram_sample(
        self, suffix: str, key: str, value: float, n: int, index: int, ex_value: str
    ) -> bool:
        """A histogram's ``_bucket``, ``_count``, ``_sum`` or ``_created`` sample: integer,
        non-negative counts, rising buckets up to ``+Inf``, a count that equals it."""
        if suffix == "_bucket":
            split = self.le_splits.get(key) or _split_of(self.le_splits, key, "le")
            group, le_raw = split
            le = self.numbers.get(le_raw)
            if le is None:
                le = self.numbers[le_raw] = _number(le_raw) if le_raw else None
                if le is None:
                    return False
            if not value >= 0 or not value.is_integer():
                return False
            self.not_negative.append(n)
            self.integers.append(n)
            self.exemplar_lines.append(index)
        else:
            group = key
            le = 0.0
            if suffix != "_created":
                if not value >= 0:
                    return False
                self.not_negative.append(n)
        if group != self.group:
            if group in self.groups or (self.group is not None and not self.histogram_ok()):
                return False
            self.groups.add(group)
            self.group = group
            self.bucket = self.count = None
            self.bucket_value = 0.0
            self.has_sum = self.negative = False
        if suffix == "_bucket":
            if le < 0:
                self.negative = True
            bucket = self.bucket
            if (bucket is not None and le <= bucket) or value < self.bucket_value:
                return False
            if bucket is not None:
                self.rising[0].append(self.last_bucket)
                self.rising[1].append(n)
            self.bucket, self.bucket_value, self.last_bucket = le, value, n
            return True
        if suffix == "_count":
            if not value.is_integer():
                return False
            self.integers.append(n)
            self.count, self.count_at = value, n
        elif suffix == "_sum":
            self.has_sum = True
        return not ex_value

    def histogram_ok(self) -> bool:
        """The checks at the end of a histogram group: a ``+Inf`` bucket that its count
        equals, a sum when it has a count, no sum beside negative buckets."""
        count = self.count
        if self.bucket != math.inf or (count is not None and self.bucket_value != count):
            return False
        if self.has_sum != (count is not None):
            return False
        if count is not None:
            self.equal[0].append(self.count_at)
            self.equal[1].append(self.last_bucket)
        return not (self.negative and self.has_sum)

    def counter_sample(self, suffix: str, key: str, value: float, n: int, index: int) -> bool:
        """A counter's ``_total`` (non-negative, may carry an exemplar) or ``_created``."""
        if suffix == "_total":
            if not value >= 0:
                return False
            self.not_negative.append(n)
            self.exemplar_lines.append(index)
        return self.enter_group(key)

    def summary_sample(self, suffix: str, key: str, value: float, n: int) -> bool:
        """A summary's quantile (``quantile`` label in [0, 1], value not negative) or its
        ``_count`` (an integer), ``_sum`` (not negative) or ``_created``."""
        if suffix:
            group = key
            if suffix != "_created":
                if not value >= 0:
                    return False
                self.not_negative.append(n)
            if suffix == "_count":
                if not value.is_integer():
                    return False
                self.integers.append(n)
        else:
            splits = self.quantile_splits
            group, q_raw = splits.get(key) or _split_of(splits, key, "quantile")
            quantile = self.numbers.get(q_raw) if q_raw else None
            if quantile is None and q_raw:
                quantile = self.numbers[q_raw] = _number(q_raw)
            if quantile is None or not 0 <= quantile <= 1 or value < 0:
                return False
            self.quantiles.append(n)
        return self.enter_group(group)

    def stateset_sample(self, key: str, value: float, n: int) -> bool:
        """A stateset's state: a label named as the family, and 0 or 1."""
        family = self.family
        states = self.splits.get(family) or self.splits.setdefault(family, {})
        group = (states.get(key) or _split_of(states, key, family))[0]
        if not group or (value != 0 and value != 1):
            return False
        self.state_values.append(n)
        return self.enter_group(group)

    def plan(self, lines: int) -> _Plan:
        """The plan of the structure read (see ``_Plan``), for a body of ``lines`` lines."""
        return _Plan(
            tuple((name, tuple(k), tuple(i)) for name, (k, i) in self.places.items()),
            tuple(self.not_negative),
            tuple(self.integers),
            tuple(self.ones),
            tuple(self.state_values),
            tuple(self.quantiles),
            (tuple(self.rising[0]), tuple(self.rising[1])),
            (tuple(self.equal[0]), tuple(self.equal[1])),
            frozenset(self.exemplar_lines),
            lines,
        )
