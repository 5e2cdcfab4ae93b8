"""The tokens text 0.0.4 and OpenMetrics share, and the label-value notation of series keys.

Regular-expression fragments (no groups) for names, label names, label values and numbers, and
the escaping rules of label values, used by :mod:`deucalion.exposition.text` and
:mod:`deucalion.exposition.openmetrics`.
"""

from __future__ import annotations

import re

__all__ = [
    "ANY_VALUE",
    "BLOCK",
    "BLOCK_FAST",
    "CANON_VALUE",
    "DECIMAL",
    "LABEL",
    "NAME",
    "NAME_FAST",
    "RAW_VALUE",
    "VALUE",
    "VALUE_FAST",
    "Samples",
    "canonical",
    "escape",
    "unescape",
]

#: What a parse returns: {sample name: {series key: value}}.
Samples = dict[str, dict[str, float]]

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# Label names starting with "__" are reserved; prometheus_client rejects them too.
LABEL = r"(?!__)[a-zA-Z_][a-zA-Z0-9_]*"
# A label value whose only escapes are the three canonical ones is already in our notation.
CANON_VALUE = r'"[^"\\\n]*+(?:\\[\\"n][^"\\\n]*+)*+"'
ANY_VALUE = r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
# Exactly the ASCII spellings Python's float() and Go's ParseFloat both read the same way.
VALUE = (
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf(?:inity)?|nan))"
)
DECIMAL = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# NAME and VALUE spelt so that the regex engine keeps no backtracking state (the same
# languages: what follows them in a line never starts with what they could give back).
NAME_FAST = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
VALUE_FAST = (
    r"[+-]?+(?:(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][+-]?+[0-9]++)?+"
    r"|(?i:inf(?:inity)?+|nan))"
)

_UNESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE_SEQUENCE = re.compile(r'\\[\\"n]')


def unescape(raw: str) -> str:
    """A label value as written (between its quotes) to the string it stands for."""
    if "\\" not in raw:
        return raw
    return _ESCAPE_SEQUENCE.sub(lambda m: _UNESCAPES[m.group()], raw)


def escape(value: str) -> str:
    """A label value to the way the exposition formats write it between quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def canonical(raw: str) -> str:
    """A label value as written to the notation of series keys (canonical escapes)."""
    if "\\" not in raw:
        return raw
    return escape(unescape(raw))


# ---- shared by the fast paths ---------------------------------------------------------------

# The same languages spelt so that the regex engine keeps no backtracking state.
_ANY_LABEL_FAST = r"[a-zA-Z_][a-zA-Z0-9_]*+"
# A label value whose only escapes are the three canonical ones is already in key notation.
_CANON_VALUE_FAST = r'"[^"\\\n]*+(?:"|(?:\\[\\"n][^"\\\n]*+)++")'
# Reserved label names ("__x") are refused when the block's label names are looked at.
_PAIR_FAST = rf"{_ANY_LABEL_FAST}={_CANON_VALUE_FAST}"
BLOCK_FAST = rf"(?!__){_PAIR_FAST}(?:,{_PAIR_FAST})*+"
#: A canonical label block with braces, for the OpenMetrics reader's common case.
BLOCK = rf"\{{(?:{BLOCK_FAST})?+\}}"

# The value is only told apart from its neighbours here; float() decides whether it is a
# number (under a try), which is cheaper than spelling the float grammar in the regex. The
# character class keeps out what float() would wrongly accept: "_" and non-ASCII digits.
RAW_VALUE = r"[0-9a-zA-Z.+-]"
