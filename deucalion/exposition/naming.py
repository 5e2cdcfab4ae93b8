"""Which sample names a set of desired metrics selects: one matcher for every place that selects.

A desired metric is written one of two ways, as in Prometheus:

- a metric name (``node_load1``, ``http_request_duration_seconds``) selects the sample of that
  name and, as a family name, its samples with a suffix: ``x`` also selects ``x_total``,
  ``x_created``, ``x_bucket``, ``x_sum``, ``x_count``, ``x_gsum``, ``x_gcount`` and ``x_info``;
- anything else with a character of regular-expression syntax (``.*+?[](){}|^$\\``) and no
  blank is a regular expression, anchored at both ends as PromQL's ``{__name__=~"..."}`` is:
  ``node_.*`` selects every sample whose name, or whose family name (the name less one of
  those suffixes), it matches. ``.*`` selects everything. Python's ``re`` reads it, which for
  the expressions used on metric names is the RE2 syntax Prometheus uses.

Anything else (``1abc``, ``cpu seconds``) is refused.

The live selection of each observer's samples, ``deucalion scrape --metrics``, replay and the
parser's filter all ask :class:`Selector`, so they agree. Imported by worker processes (through
``deucalion.observer``), so it imports ``re`` and ``deucalion.errors`` only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable

from deucalion.errors import UsageError

__all__ = ["EVERYTHING", "FAMILY_SUFFIXES", "METRIC_NAME", "Selector", "family_selects"]

#: Suffixes by which a family name also selects its samples (prometheus_client's naming).
FAMILY_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info")

#: A valid metric name (anchored: ``match`` and ``fullmatch`` agree, and refuse a trailing newline).
METRIC_NAME = re.compile(r"\A[a-zA-Z_:][a-zA-Z0-9_:]*\Z")

#: The desired metric that selects every sample.
EVERYTHING = ".*"

_SUFFIX_SET = frozenset(FAMILY_SUFFIXES)
# The literal characters a regular expression starts with, and what may follow them.
_LITERAL_START = re.compile(r"[a-zA-Z0-9_:]*")


def _literal_start(pattern: str) -> str:
    """The text every name ``pattern`` matches in full starts with ("node_" for "node_.*"); ""
    when it is not plain (an alternation, a group or an escape first)."""
    if "|" in pattern:
        return ""
    start = _LITERAL_START.match(pattern).group()  # type: ignore[union-attr]
    if pattern[len(start) : len(start) + 1] in ("?", "*", "+", "{"):
        start = start[:-1]  # the quantifier applies to the last character
    return start


def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(
            f"{pattern!r} is neither a metric name nor a valid regular expression ({exc})"
        ) from None


def _matcher(patterns: list[str]) -> Callable[[str], object]:
    """What tells whether one of ``patterns`` matches the whole of a name; ValueError naming
    the first that is not a valid regular expression."""
    if len(patterns) == 1:
        return _compiled(patterns[0]).fullmatch
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns)).fullmatch
    except re.error:
        # One is invalid (named now), or cannot share an alternation (a leading "(?i)").
        each = [_compiled(p).fullmatch for p in patterns]
        return lambda name: any(fullmatch(name) for fullmatch in each)


# What tells a regular expression from a mistyped metric name.
_REGEX_SIGN = re.compile(r"[.*+?\[\](){}|^$\\]")


def family_selects(desired: Collection[str], sample_name: str) -> bool:
    """Whether ``sample_name`` is desired by metric names only: named itself, or its family is
    (``x`` -> ``x_sum``). Regular expressions are not looked at: ask a :class:`Selector`."""
    if sample_name in desired:
        return True
    return any(
        sample_name.endswith(suffix) and sample_name[: -len(suffix)] in desired
        for suffix in FAMILY_SUFFIXES
    )


class Selector:
    """The sample names a set of desired metrics (names and regular expressions) selects.

    Build it with :meth:`from_desired`; it is immutable and cheap to ask. ``names`` are the
    desired metric names, ``patterns`` the regular expressions (as written), ``everything``
    whether it selects every sample.
    """

    __slots__ = ("_by_prefix", "_prefix_lengths", "everything", "names", "patterns")

    def __init__(self, names: frozenset[str], patterns: tuple[str, ...]) -> None:
        self.names = names
        self.patterns = patterns
        self.everything = EVERYTHING in patterns
        # The patterns by their literal start ("node_" for "node_.*"), so that a name is
        # matched against the few patterns it can match only: one alternation of every
        # pattern costs each name a try of all of them, and thousands of them take seconds to
        # compile. Building it is linear in the patterns.
        grouped: dict[str, list[str]] = {}
        for pattern in patterns:
            grouped.setdefault(_literal_start(pattern), []).append(pattern)
        self._by_prefix = {prefix: _matcher(group) for prefix, group in grouped.items()}
        self._prefix_lengths = tuple(sorted({len(prefix) for prefix in grouped}))

    @classmethod
    def from_desired(cls, desired: Iterable[str]) -> Selector:
        """The selector of ``desired``: metric names and regular expressions.

        Raises ``ValueError`` naming the entry when one is neither a metric name nor a valid
        regular expression (or is empty).
        """
        names: set[str] = set()
        patterns: set[str] = set()
        for entry in desired:
            if not isinstance(entry, str) or not entry:
                raise UsageError(f"{entry!r} is neither a metric name nor a regular expression")
            if METRIC_NAME.fullmatch(entry):
                names.add(entry)
                continue
            if not _REGEX_SIGN.search(entry) or any(c.isspace() for c in entry):
                # "1abc" or "cpu seconds" is a mistyped name, not a pattern meant to match names.
                raise UsageError(f"{entry!r} is neither a metric name nor a regular expression")
            patterns.add(entry)  # (compiled, and so checked, by the constructor)
        return cls(frozenset(names), tuple(sorted(patterns)))

    @property
    def exact(self) -> bool:
        """Whether it holds metric names only (no regular expression)."""
        return not self.patterns

    def names_select(self, sample_name: str) -> bool:
        """Whether the metric names (not the patterns) select ``sample_name``: it is one of
        them, or one of them with a family suffix."""
        names = self.names
        if sample_name in names:
            return True
        # Every family suffix is "_" and a word: one split finds the only one it can be.
        family, _, suffix = sample_name.rpartition("_")
        return "_" + suffix in _SUFFIX_SET and family in names

    def selects(self, sample_name: str) -> bool:
        """Whether the sample called ``sample_name`` is selected."""
        if self.names_select(sample_name):
            return True
        if not self.patterns:
            return False
        if self._matches(sample_name):
            return True
        return any(
            sample_name.endswith(suffix) and self._matches(sample_name[: -len(suffix)])
            for suffix in FAMILY_SUFFIXES
        )

    def _matches(self, name: str) -> bool:
        """Whether a pattern matches the whole of ``name``."""
        by_prefix = self._by_prefix
        for length in self._prefix_lengths:
            if length > len(name):
                break
            fullmatch = by_prefix.get(name[:length])
            if fullmatch is not None and fullmatch(name):
                return True
        return False

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Selector)
            and self.names == other.names
            and self.patterns == other.patterns
        )

    def __hash__(self) -> int:
        return hash((self.names, self.patterns))

    def __repr__(self) -> str:
        return f"Selector({sorted(self.names) + list(self.patterns)!r})"
