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
``deucalion.observer``), so it imports ``re`` only.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

__all__ = ["EVERYTHING", "FAMILY_SUFFIXES", "METRIC_NAME", "Selector", "family_selects"]

#: Suffixes by which a family name also selects its samples (prometheus_client's naming).
FAMILY_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info")

#: A valid metric name (anchored: ``match`` and ``fullmatch`` agree, and refuse a trailing newline).
METRIC_NAME = re.compile(r"\A[a-zA-Z_:][a-zA-Z0-9_:]*\Z")

#: The desired metric that selects every sample.
EVERYTHING = ".*"

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

    __slots__ = ("_regex", "_samples", "everything", "names", "patterns")

    def __init__(self, names: frozenset[str], patterns: tuple[str, ...]) -> None:
        self.names = names
        self.patterns = patterns
        self.everything = EVERYTHING in patterns
        # Every sample name the names select, so that exact names cost one set lookup.
        self._samples = frozenset(n + s for n in names for s in ("", *FAMILY_SUFFIXES))
        self._regex = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

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
                raise ValueError(f"{entry!r} is neither a metric name nor a regular expression")
            if METRIC_NAME.fullmatch(entry):
                names.add(entry)
                continue
            if not _REGEX_SIGN.search(entry) or any(c.isspace() for c in entry):
                # "1abc" or "cpu seconds" is a mistyped name, not a pattern meant to match names.
                raise ValueError(f"{entry!r} is neither a metric name nor a regular expression")
            try:
                re.compile(entry)
            except re.error as exc:
                raise ValueError(
                    f"{entry!r} is neither a metric name nor a valid regular expression ({exc})"
                ) from None
            patterns.add(entry)
        return cls(frozenset(names), tuple(sorted(patterns)))

    @property
    def exact(self) -> bool:
        """Whether it holds metric names only (no regular expression)."""
        return self._regex is None

    def sample_names(self) -> frozenset[str]:
        """Every sample name the metric names select (the names with each family suffix)."""
        return self._samples

    def selects(self, sample_name: str) -> bool:
        """Whether the sample called ``sample_name`` is selected."""
        if sample_name in self._samples:
            return True
        regex = self._regex
        if regex is None:
            return False
        if regex.fullmatch(sample_name):
            return True
        return any(
            sample_name.endswith(suffix) and regex.fullmatch(sample_name[: -len(suffix)])
            for suffix in FAMILY_SUFFIXES
        )

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
