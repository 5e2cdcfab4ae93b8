"""Series keys as data: ``'{cpu="0",mode="idle"}'`` to ``{"cpu": "0", "mode": "idle"}`` and back.

A series key is the label set of a sample in the notation observers receive: labels sorted by
name, each value between double quotes with the exposition format's three escapes (``\\\\``,
``\\"``, ``\\n``), ``{}`` for no labels. Both directions are exact: for every label set,
``series_labels(series_key(labels)) == labels``, and for every key deucalion hands out,
``series_key(series_labels(key)) == key``. Standard library only (workers import it).

The one place for series keys and label names: collection (federation), recordings, telemetry
and the detectors all read and write keys here. ``series_pairs`` and ``pairs_key`` work on
escaped values, for code that takes labels out of a key and puts the rest back (federation
drops the target labels a Prometheus added) without unescaping and escaping each value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from deucalion.errors import UsageError
from deucalion.exposition.grammar import CANON_VALUE, escape, unescape

__all__ = [
    "LABEL_NAME",
    "pairs_key",
    "series_key",
    "series_labels",
    "series_pairs",
    "without_label",
]

# Any label name: a key built by a user (or a federating Prometheus's exported labels) may hold
# names the text parser would refuse, and reading one back must not fail.
_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
#: A label name, as Prometheus defines one (letters, digits, underscores, no leading digit).
LABEL_NAME = re.compile(_NAME)
_PAIR = re.compile(rf"({_NAME})=({CANON_VALUE})")
_ESCAPED_PAIR = re.compile(rf'({_NAME})="((?:[^"\\]|\\.)*)"')


def series_pairs(key: str) -> list[tuple[str, str]]:
    """``[(name, escaped_value), ...]`` of a series key such as ``{a="1",b="x\\"y"}``.

    Values stay escaped, so ``pairs_key(series_pairs(k)) == k`` for any key deucalion hands out.
    A key that is not one gives the pairs that could be read (this is for keys deucalion made).
    """
    return _ESCAPED_PAIR.findall(key)


def pairs_key(pairs: Iterable[tuple[str, str]]) -> str:
    """The series key of ``(name, escaped_value)`` pairs: sorted by name, ``{}`` for none."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs)) + "}"


def series_labels(key: str) -> dict[str, str]:
    """The labels of series key ``key`` (``'{cpu="0",mode="idle"}'``), values unescaped.

    Raises ``ValueError`` naming the key when it is not in series-key notation.
    """
    if not isinstance(key, str) or len(key) < 2 or key[0] != "{" or key[-1] != "}":
        raise UsageError(
            f"{key!r} is not a series key: expected labels in braces, such as "
            "'{cpu=\"0\",mode=\"idle\"}' or '{}'"
        )
    labels: dict[str, str] = {}
    position, end = 1, len(key) - 1
    while position < end:
        match = _PAIR.match(key, position, end)
        if match is None:
            raise UsageError(
                f"{key!r} is not a series key: cannot read a label at character "
                f'{position} (name="value" pairs, separated by commas)'
            )
        name = match.group(1)
        if name in labels:
            raise UsageError(f"{key!r} is not a series key: label {name} appears twice")
        labels[name] = unescape(match.group(2)[1:-1])
        position = match.end()
        if position < end:
            if key[position] != ",":
                raise UsageError(
                    f"{key!r} is not a series key: expected ',' at character {position}"
                )
            position += 1
            if position == end:  # a trailing comma is written by no one; refuse it
                raise UsageError(f"{key!r} is not a series key: it ends with a comma")
    return labels


def series_key(labels: Mapping[str, str]) -> str:
    """The series key of ``labels``: sorted by name, values escaped (``{}`` for none).

    Raises ``ValueError`` for a label name that is not one (letters, digits, underscores, not
    starting with a digit) or a value that is not a string.
    """
    parts = []
    for name in sorted(labels):
        value = labels[name]
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
            raise UsageError(
                f"label name {name!r} is invalid: use letters, digits and "
                "underscores, not starting with a digit"
            )
        if not isinstance(value, str):
            raise UsageError(f"label {name} has the value {value!r}, not a string")
        parts.append(f'{name}="{escape(value)}"')
    return "{" + ",".join(parts) + "}"


def without_label(key: str, name: str) -> str:
    """Series key ``key`` without label ``name`` (``le`` groups a histogram's buckets)."""
    labels = series_labels(key)
    labels.pop(name, None)
    return series_key(labels)
