"""prometheus_client's parsers mapped to the shape of ``deucalion.parse_exposition``.

Shared by tests/exposition/test_exposition.py and tests/integration/test_exposition_real.py,
so both compare against the reference the same way.
"""

from __future__ import annotations

import math
import re

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families


def series_key(labels: dict[str, str]) -> str:
    """Our series notation for a label dict."""
    escaped = (
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in sorted(labels.items())
    )
    return "{" + ",".join(e.replace("\n", "\\n") for e in escaped) + "}"


def reference(text: str, *, openmetrics: bool = False) -> dict[str, dict[str, float]]:
    """What prometheus_client reads from ``text``, as {sample name: {series: value}}.

    Its text parser renames the samples of a counter typed without ``_total`` (``x`` becomes
    ``x_total``); that is undone here, since deucalion keeps the names as written.
    """
    result: dict[str, dict[str, float]] = {}
    if openmetrics:
        families = list(openmetrics_families(text))
        renamed: set[str] = set()
    else:
        families = list(text_families(text))
        renamed = {
            m.group(1)
            for m in re.finditer(r"^[ \t]*#[ \t]+TYPE[ \t]+(\S+)[ \t]+counter\b", text, re.M)
            if not m.group(1).endswith("_total")
        }
    for family in families:
        for sample in family.samples:
            name = sample.name
            if family.type == "counter" and family.name in renamed and name.endswith("_total"):
                name = name[: -len("_total")]
            result.setdefault(name, {})[series_key(sample.labels)] = float(sample.value)
    return result


def assert_same(ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]]) -> None:
    """Equal names, series and values, NaN equal to NaN."""
    assert ours.keys() == theirs.keys()
    for name, series in theirs.items():
        assert ours[name].keys() == series.keys(), name
        for key, value in series.items():
            mine = ours[name][key]
            if math.isnan(value):
                assert math.isnan(mine), (name, key, mine)
            else:
                assert mine == value, (name, key, mine, value)
