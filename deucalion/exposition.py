"""Prometheus exposition parsing (interim: replaced by the fast, strict parser)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from deucalion.errors import ParseError

__all__ = ["is_openmetrics", "parse_exposition"]

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created", "_info", "_gsum", "_gcount")


def is_openmetrics(content_type: str) -> bool:
    """Whether a Content-Type names the OpenMetrics text format."""
    return content_type.split(";", 1)[0].strip().lower() == "application/openmetrics-text"


def parse_exposition(
    text: str | bytes, *, openmetrics: bool = False, metrics: Iterable[str] | None = None
) -> dict[str, dict[str, float]]:
    """Parse one target's exposition into ``{sample_name: {series: value}}``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"invalid UTF-8: {exc}") from None
    wanted = None if metrics is None else frozenset(metrics)
    out: dict[str, dict[str, float]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ParseError("malformed sample line", lineno)
        name, labels, value = match.groups()
        if wanted is not None and name not in wanted and not any(
            name.endswith(s) and name[: -len(s)] in wanted for s in _SUFFIXES
        ):
            continue
        pairs = sorted(_LABEL.findall(labels[1:-1])) if labels else []
        series = "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"
        try:
            out.setdefault(name, {})[series] = float(value)
        except ValueError:
            raise ParseError(f"invalid value {value!r}", lineno) from None
    return out
