"""Unit, table and hypothesis tests of deucalion.exposition against prometheus_client."""

from __future__ import annotations

import gc
import itertools
import math
import re
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deucalion.errors import ParseError
from deucalion.exposition.naming import Selector
from deucalion.exposition.parser import ExpositionParser, is_openmetrics, parse_exposition
from deucalion.exposition.text import read_line as _text_line
from tests.exposition_reference import assert_same, reference, series_key

# ---- examples ---------------------------------------------------------------------------------


def test_series_keys_sort_labels_and_escape_values() -> None:
    """Labels come out sorted by name with values escaped as in the exposition format."""
    text = 'm{mode="idle",cpu="0"} 1\nm{b="x\\\\y\\"z\\n"} 2\nn 3\nn2{} 4\n'
    assert parse_exposition(text) == {
        "m": {'{cpu="0",mode="idle"}': 1.0, '{b="x\\\\y\\"z\\n"}': 2.0},
        "n": {"{}": 3.0},
        "n2": {"{}": 4.0},
    }


def test_unknown_escape_keeps_its_backslash() -> None:
    """A backslash before any other character stays, as prometheus_client reads it."""
    assert parse_exposition('m{a="c:\\temp"} 1') == {"m": {'{a="c:\\\\temp"}': 1.0}}


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1e+06", 1e6),
        ("1E-3", 1e-3),
        ("+Inf", math.inf),
        ("Inf", math.inf),
        ("-Inf", -math.inf),
        ("-1.5", -1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("123456789012345678901234567890", 1.2345678901234568e29),
    ],
)
def test_go_float_formats(written: str, value: float) -> None:
    """Every float spelling Go's client writes is read to the same float as prometheus_client."""
    assert parse_exposition(f"m {written}\n") == {"m": {"{}": value}}
    assert_same(parse_exposition(f"m {written}\n"), reference(f"m {written}\n"))


def test_nan_value() -> None:
    """NaN is a value like any other."""
    assert math.isnan(parse_exposition("m NaN")["m"]["{}"])


def test_whitespace_comments_timestamps_and_missing_final_newline() -> None:
    """Tabs, blanks, comments, timestamps and a body without final newline are all fine."""
    text = (
        "# HELP m Some help with \\n escapes.\n# TYPE m gauge\n\n  # just a comment\n#\n"
        '\tm { b = "2" , a = "1" , }\t7\t1700000000000\n'
        "m_total 8 -5\nlast 9"
    )
    assert parse_exposition(text) == {
        "m": {'{a="1",b="2"}': 7.0},
        "m_total": {"{}": 8.0},
        "last": {"{}": 9.0},
    }
    assert_same(parse_exposition(text), reference(text))


def test_duplicate_series_last_wins() -> None:
    """When a body repeats a series, the last sample is kept."""
    assert parse_exposition('m{a="1"} 1\nm{a="1"} 2\n') == {"m": {'{a="1"}': 2.0}}


def test_bytes_are_decoded_as_utf8() -> None:
    """A bytes body is UTF-8."""
    assert parse_exposition('m{a="é"} 1\n'.encode()) == {"m": {'{a="é"}': 1.0}}


def test_invalid_utf8_names_its_line() -> None:
    """Invalid UTF-8 is a ParseError with the line, never a UnicodeDecodeError."""
    with pytest.raises(ParseError) as info:
        parse_exposition(b'a 1\nb 2\nc{x="\xff"} 3\n')
    assert info.value.lineno == 3
    assert str(info.value).startswith("line 3: ")


@pytest.mark.parametrize(
    ("text", "lineno"),
    [
        ("a 1\nb\n", 2),
        ("a 1 2 3\n", 1),
        ('a{b="1",b="2"} 1\n', 1),
        ('a{b="1"} 1\na{b="1",,c="2"} 1\n', 2),
        ("a{b=1} 1\n", 1),
        ('a{__name__="x"} 1\n', 1),
        ("0a 1\n", 1),
        ("a 1_000\n", 1),
        ("a 0x10\n", 1),
        ("a 1\r\n", 1),
        ("a 1 1.5\n", 1),
        ("# TYPE a\n", 1),
        ("# TYPE a meh\n", 1),
        ("# HELP\n", 1),
        ("# HELP 0a x\n", 1),
        ("ok 1\n\n# c\nbad bad bad", 4),
    ],
)
def test_malformed_text_lines_are_rejected(text: str, lineno: int) -> None:
    """A malformed line in text 0.0.4 is a ParseError naming it, filtered or not."""
    with pytest.raises(ParseError) as info:
        parse_exposition(text)
    assert info.value.lineno == lineno
    name = text.splitlines()[lineno - 1].split("{")[0].split()[0]
    if name[0].isalpha():  # a filter can only ask for valid names
        with pytest.raises(ParseError) as info:
            parse_exposition(text, metrics=[name])
        assert info.value.lineno == lineno


def test_filter_by_sample_and_family_name() -> None:
    """A family name selects its _bucket/_sum/_count/_total/_created samples; others are dropped."""
    text = (
        'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\nhx 9\n'
        "c_total 5\nc_created 1\nc_totalx 1\ng 7\nother 1\n"
    )
    assert parse_exposition(text, metrics=["h", "c", "g_sum"]) == {
        "h_bucket": {'{le="1"}': 1.0, '{le="+Inf"}': 2.0},
        "h_sum": {"{}": 3.0},
        "h_count": {"{}": 2.0},
        "c_total": {"{}": 5.0},
        "c_created": {"{}": 1.0},
    }
    assert parse_exposition(text, metrics=["h_sum", "g"]) == {
        "h_sum": {"{}": 3.0},
        "g": {"{}": 7.0},
    }
    assert parse_exposition(text, metrics=[]) == {}


def test_filter_skips_unwanted_lines_unparsed() -> None:
    """In text 0.0.4 a malformed line of an unwanted metric does not stop the wanted ones."""
    assert parse_exposition('bad{ 1\nok{a="1"} 2\n', metrics=["ok"]) == {"ok": {'{a="1"}': 2.0}}


def test_parser_is_reusable() -> None:
    """One ExpositionParser serves many bodies, and says which names it keeps."""
    parser = ExpositionParser(["up"])
    assert parser.wants("up") and not parser.wants("upx") and parser.wants("up_total")
    assert parser.parse("up 1\n") == {"up": {"{}": 1.0}}
    assert parser.parse(b"up 0\nx 1") == {"up": {"{}": 0.0}}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        ("Application/OpenMetrics-Text", True),
        ("text/plain; version=0.0.4; charset=utf-8", False),
        ("", False),
    ],
)
def test_is_openmetrics(content_type: str, expected: bool) -> None:
    """The Content-Type decides the format."""
    assert is_openmetrics(content_type) is expected


# ---- OpenMetrics: accept/reject table ---------------------------------------------------------
# The ground of the OpenMetrics project's parser test cases (as mirrored in prometheus_client's
# tests/openmetrics/test_parser.py), written here as data: (body, valid).

H = "# TYPE a histogram\n"
GH = "# TYPE a gaugehistogram\n"
S = "# TYPE a summary\n"
C = "# TYPE a counter\n"
EOF = "# EOF\n"

OPENMETRICS_CASES: list[tuple[str, bool]] = [
    # valid
    ("# TYPE a counter\n# HELP a help\na_total 1\n" + EOF, True),
    (C + "a_total 9223372036854775808\n" + EOF, True),
    ("# TYPE a gauge\n# HELP a help\na 1.2\n" + EOF, True),
    (
        "# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n# HELP a_seconds help\na_seconds 1\n"
        + EOF,
        True,
    ),
    (S + 'a_count 1\na_sum 2\na{quantile="0.5"} 0.7\n' + EOF, True),
    (H + 'a_bucket{le="1"} 0\na_bucket{le="+Inf"} 3\na_count 3\na_sum 2\n' + EOF, True),
    (
        H + 'a_bucket{le="1"} 0 # {a="b"} 0.5\na_bucket{le="2"} 2 # {a="c"} 0.5 123\n'
        'a_bucket{le="+Inf"} 3 # {a="d"} 4 123\n' + EOF,
        True,
    ),
    (H + 'a_bucket{le="+Inf"} 3\na_count 3\na_sum 2\na_created 1\n' + EOF, True),
    (GH + 'a_bucket{le="-1"} 1\na_bucket{le="+Inf"} 3\na_gcount 3\na_gsum -5\n' + EOF, True),
    (C + 'a_total 1 # {a="b"} 1\na_created 5\n' + EOF, True),
    (C + "a_total 1 # {} 1\n" + EOF, True),
    ("a 1\n" + EOF, True),
    ("a NaN\n" + EOF, True),
    ("a -Inf\n" + EOF, True),
    ("# HELP a help\n# TYPE a counter\na_total 1\n" + EOF, True),
    (C + 'a_total{foo="bar",bar="b{a}z"} 1\n' + EOF, True),
    (C + "# HELP a \na_total 1\n" + EOF, True),
    (C + "a_total{} 1\n" + EOF, True),
    ("# TYPE a gauge\na 1\n# EOF", True),
    (C + 'a_total{foo="b\\"a\\nr"} 1\na_total{foo="b\\\\a\\z"} 2\n' + EOF, True),
    (
        C + 'a_total{foo="1"} 1 000\na_total{foo="2"} 1 0.0\na_total{foo="3"} 1 1.1\n'
        'a_total{foo="5"} 1 1.5e3\n' + EOF,
        True,
    ),
    ('# TYPE a info\na_info{x="y"} 1\n' + EOF, True),
    ('# TYPE a stateset\na{a="x"} 1\na{a="y"} 0\n' + EOF, True),
    ("# TYPE a unknown\na 1\n" + EOF, True),
    ("a 1 1\na 2 2\n" + EOF, True),
    ('a{x="1"} 1\na{x="2"} 1\n# TYPE b gauge\nb 1\n' + EOF, True),
    # no EOF, text after it, blank lines
    ("", False),
    ("a 1\n", False),
    ("a 1\n# EOF\nblah", False),
    ("a 1\n# EOFblah", False),
    ("a 1\n# EOF\n\n", False),
    ("a 1\n\n# EOF\n", False),
    # labels
    ("a{a=1} 1\n" + EOF, False),
    ('a{a="1} 1\n' + EOF, False),
    ("a{a='1'} 1\n" + EOF, False),
    ('a{a="1"b="2"} 1\n' + EOF, False),
    ('a{a="1",,b="2"} 1\n' + EOF, False),
    ('a{a="1",b="2",} 1\n' + EOF, False),
    ('a{,a="1"} 1\n' + EOF, False),
    ('a{a="1",a="1"} 1\n' + EOF, False),
    ('a{__x="1"} 1\n' + EOF, False),
    ('a{a="1"}1\n' + EOF, False),
    # values and timestamps
    ("a\n" + EOF, False),
    ("a \n" + EOF, False),
    ("a a\n" + EOF, False),
    ("a  1\n" + EOF, False),
    ("a 1\t\n" + EOF, False),
    ("a 1 \n" + EOF, False),
    ("a 1_0\n" + EOF, False),
    ("a 1 z\n" + EOF, False),
    ("a 1 1z\n" + EOF, False),
    ("a 1 1.1.1\n" + EOF, False),
    ("a 1 NaN\n" + EOF, False),
    ("a 1 Inf\n" + EOF, False),
    ("a 1 1e999\n" + EOF, False),
    # metric names
    ("0a 1\n" + EOF, False),
    ("a.b 1\n" + EOF, False),
    ("a-b 1\n" + EOF, False),
    # metadata
    ("# HELP\n" + EOF, False),
    ("# HELP \n" + EOF, False),
    ("# HELP a\n" + EOF, False),
    ("# HELP a\t\n" + EOF, False),
    (" # HELP a meh\n" + EOF, False),
    ("# TYPE\n" + EOF, False),
    ("# TYPE a\n" + EOF, False),
    ("# TYPE a meh\n" + EOF, False),
    ("# TYPE a meh \n" + EOF, False),
    ("# TYPE a gauge \n" + EOF, False),
    ("# TYPE a untyped\n" + EOF, False),
    ("# UNIT\n" + EOF, False),
    ("# UNIT a\n" + EOF, False),
    ("# UNIT a seconds\n" + EOF, False),
    ("# UNIT a_seconds seconds \n" + EOF, False),
    ("# TYPE x_u info\n# UNIT x_u u\n" + EOF, False),
    ("# TYPE x_u stateset\n# UNIT x_u u\n" + EOF, False),
    ("# comment\na 1\n" + EOF, False),
    ("# TYPE a gauge\n# TYPE a gauge\n" + EOF, False),
    ("# HELP a x\n# HELP a y\n" + EOF, False),
    ("# UNIT a_s s\n# UNIT a_s s\n" + EOF, False),
    ("# TYPE a gauge\na 1\n# HELP a late\n" + EOF, False),
    # families: interleaved, clashing
    ("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n" + EOF, False),
    (C + "a_total 1\n# TYPE a_total gauge\na_total 2\n" + EOF, False),
    ('a{x="1"} 1\na{x="2"} 1\na{x="1"} 1\n' + EOF, False),
    # counters
    (C + "a 1\n" + EOF, False),
    (C + "a_total -1\n" + EOF, False),
    (C + "a_total NaN\n" + EOF, False),
    # exemplars
    (H + 'a_bucket{le="+Inf"} 1 #\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1# {} 1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1 #{} 1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1 # {}1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1 # {} 1 \n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1 # {} 1 1 \n' + EOF, False),
    ('# TYPE a gauge\na 1 # {a="b"} 1\n' + EOF, False),
    (C + 'a_total 1 # {a="' + "x" * 128 + '"} 1\n' + EOF, False),
    # histograms
    (H + 'a_bucket{le="1"} 1\n' + EOF, False),
    (H + 'a_bucket{le="2"} 1\na_bucket{le="1"} 1\na_bucket{le="+Inf"} 1\n' + EOF, False),
    (H + 'a_bucket{le="1"} 2\na_bucket{le="+Inf"} 1\n' + EOF, False),
    (H + "a_bucket 1\n" + EOF, False),
    (H + 'a_bucket{le="NaN"} 1\n' + EOF, False),
    (H + 'a_bucket{le="Inf"} 1\n' + EOF, False),
    (H + 'a_bucket{le="x"} 1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1.5\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1\na_count 2\na_sum 1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1\na_sum 1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1\na_count 1\n' + EOF, False),
    (H + 'a_bucket{le="-1"} 0\na_bucket{le="+Inf"} 1\na_count 1\na_sum 1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} 1\na_count 1.5\na_sum 1\n' + EOF, False),
    (H + 'a_bucket{le="+Inf"} -1\n' + EOF, False),
    (GH + 'a_bucket{le="+Inf"} 1\na_gcount 1\na_gsum -1\n' + EOF, False),
    # summaries, statesets, infos
    (S + "a 1\n" + EOF, False),
    (S + 'a{quantile="2"} 1\n' + EOF, False),
    (S + 'a{quantile="x"} 1\n' + EOF, False),
    (S + 'a{quantile="0.5"} -1\n' + EOF, False),
    (S + "a_count 1 1\na_sum 2\n" + EOF, False),
    ("# TYPE a stateset\na 1\n" + EOF, False),
    ('# TYPE a stateset\na{a="x"} 2\n' + EOF, False),
    ("# TYPE a info\na_info 2\n" + EOF, False),
    # timestamps
    ("a 1 2\na 1 1\n" + EOF, False),
]

# Bodies the OpenMetrics standard forbids that prometheus_client's parser lets through.
PROMETHEUS_CLIENT_LAXER = {
    ('a{a="1", b="2"} 1\n' + EOF),
    ("#  HELP a x\n" + EOF),
}
OPENMETRICS_CASES += [(body, False) for body in sorted(PROMETHEUS_CLIENT_LAXER)]


def _om_accepts(text: str) -> bool:
    try:
        parse_exposition(text, openmetrics=True)
    except ParseError:
        return False
    return True


def _prometheus_client_accepts(text: str) -> bool:
    try:
        reference(text, openmetrics=True)
    except Exception:  # it raises ValueError, KeyError, IndexError... on bad input
        return False
    return True


@pytest.mark.parametrize(("text", "valid"), OPENMETRICS_CASES)
def test_openmetrics_cases(text: str, valid: bool) -> None:
    """Strict OpenMetrics accepts and rejects what the standard's test cases expect."""
    assert _om_accepts(text) is valid
    if text not in PROMETHEUS_CLIENT_LAXER:
        assert _prometheus_client_accepts(text) is valid
    if valid:
        assert_same(parse_exposition(text, openmetrics=True), reference(text, openmetrics=True))


def test_openmetrics_filter_checks_grammar_and_place_of_unwanted_lines() -> None:
    """With a filter, lines of unwanted families are still checked for their grammar and their
    place in the body (blank lines, # EOF, clashing names, metadata after samples); the rules of
    their type are skipped, and the wanted families keep every rule."""
    kept = ["a"]
    for bad, lineno in [
        ("a 1\n# TYPE b counter\nb_total 1 x\n# EOF\n", 3),
        ("a 1\nb{c=1} 1\n# EOF\n", 2),
        ("a 1\n\nb 1\n# EOF\n", 2),
        ("a 1\nb 1\n", 2),
        ("a 1\nb 1\n# EOF\nb 2\n", 4),
        ("a 1\nb 1\n# TYPE b gauge\n# EOF\n", 3),
        ("a 1\nb 1\nc 1\nb 2\n# EOF\n", 4),
        ("# TYPE a counter\na_total -1\nb 1\n# EOF\n", 2),
    ]:
        with pytest.raises(ParseError) as info:
            parse_exposition(bad, openmetrics=True, metrics=kept)
        assert info.value.lineno == lineno, bad
    # A negative counter (a rule of the type) of an unwanted family is not looked at.
    assert parse_exposition(
        "a 1\n# TYPE b counter\nb_total -1\n# EOF\n", openmetrics=True, metrics=kept
    ) == {"a": {"{}": 1.0}}


# ---- hypothesis: generated expositions --------------------------------------------------------

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,6}", fullmatch=True)
label_values = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def numbers(draw: st.DrawFn) -> str:
    """A sample value in one of the spellings clients write."""
    number = draw(st.floats(allow_nan=True, allow_infinity=True))
    style = draw(st.sampled_from(["repr", "go", "int", "special", "g"]))
    if math.isnan(number) or style == "special":
        return draw(st.sampled_from(["NaN", "+Inf", "-Inf", "Inf", "nan", "-inf"]))
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if style == "go":
        return f"{number:g}".replace("e+0", "e+0")
    if style == "int":
        return str(draw(st.integers(-(10**20), 10**20)))
    if style == "g":
        return f"{number:.17g}"
    return repr(number)


@st.composite
def text_expositions(draw: st.DrawFn) -> str:
    """A valid text 0.0.4 body in varied but legal layout."""
    blank = st.sampled_from([" ", "\t", "  ", " \t"])
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(metric_names)
        if draw(st.booleans()):
            lines.append(f"# HELP {name} {draw(st.text(string.printable.strip(), max_size=20))}")
        if draw(st.booleans()):
            typ = draw(st.sampled_from(["gauge", "untyped", "summary", "histogram"]))
            lines.append(f"# TYPE {name} {typ}")
        if draw(st.booleans()):
            lines.append("")
        for _ in range(draw(st.integers(0, 5))):
            sample = name + draw(st.sampled_from(["", "", "_sum", "_count", "_bucket"]))
            names = draw(st.lists(label_names, max_size=4, unique=True))
            pairs = [f'{n}="{_escape(draw(label_values))}"' for n in names]
            if draw(st.booleans()):
                block = "{" + ",".join(pairs) + "}"
            else:
                sep = draw(blank)
                block = "{" + sep + f"{sep},{sep}".join(pairs) + (sep + "," if pairs else "") + "}"
            if not pairs and draw(st.booleans()):
                block = ""
            line = draw(st.sampled_from(["", " ", "\t"])) + sample
            line += (draw(blank) if not block else "") + block + draw(blank) + draw(numbers())
            if draw(st.booleans()):
                line += draw(blank) + str(draw(st.integers(-(2**40), 2**40)))
            lines.append(line + draw(st.sampled_from(["", "", " ", "\t"])))
    body = "\n".join(lines)
    return body + ("\n" if lines and draw(st.booleans()) else "")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text_expositions())
@example("m 1e+06\n")
def test_text_matches_prometheus_client(text: str) -> None:
    """On generated text 0.0.4 bodies every value equals prometheus_client's."""
    ours = parse_exposition(text)
    assert_same(ours, reference(text))
    for name in list(ours)[:2]:
        wanted = ExpositionParser([name])
        expected = {n: series for n, series in ours.items() if wanted.wants(n)}
        assert_same(parse_exposition(text, metrics=[name]), expected)


@st.composite
def openmetrics_expositions(draw: st.DrawFn) -> str:
    """A valid OpenMetrics body: gauges, counters, histograms and unknowns, with metadata."""
    lines: list[str] = []
    names = draw(
        st.lists(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), max_size=5, unique=True)
    )
    for index, base in enumerate(names):
        name = f"{base}_{index}"
        typ = draw(st.sampled_from(["gauge", "counter", "histogram", "unknown"]))
        lines.append(f"# TYPE {name} {typ}")
        if draw(st.booleans()):
            lines.append(f"# HELP {name} {draw(st.text(string.ascii_letters + ' ', max_size=10))}")
        label_sets = draw(st.lists(st.lists(label_names, max_size=3, unique=True), max_size=3))
        seen: set[str] = set()
        for labels in label_sets:
            pairs = [(n, draw(label_values)) for n in labels if n != "le"]
            key = series_key(dict(pairs))
            if key in seen:
                continue
            seen.add(key)
            block = ",".join(f'{n}="{_escape(v)}"' for n, v in pairs)
            with_braces = "{" + block + "}" if block or draw(st.booleans()) else ""
            if typ in ("gauge", "unknown"):
                lines.append(f"{name}{with_braces} {draw(numbers())}")
            elif typ == "counter":
                value = draw(st.floats(min_value=0, allow_infinity=False))
                exemplar = ' # {t="x"} 1.5' if draw(st.booleans()) else ""
                lines.append(f"{name}_total{with_braces} {value!r}{exemplar}")
            else:
                bounds = sorted(set(draw(st.lists(st.floats(-1e6, 1e6), max_size=3))))
                counts = sorted(
                    draw(
                        st.lists(
                            st.integers(0, 10**6),
                            min_size=len(bounds) + 1,
                            max_size=len(bounds) + 1,
                        )
                    )
                )
                sep = "," if block else ""
                for bound, count in zip([*map(repr, bounds), "+Inf"], counts, strict=True):
                    lines.append(f'{name}_bucket{{{block}{sep}le="{bound}"}} {count}')
                if not bounds or bounds[0] >= 0:
                    lines.append(f"{name}_count{with_braces} {counts[-1]}")
                    lines.append(f"{name}_sum{with_braces} {draw(st.floats(0, 1e9))!r}")
    return "\n".join([*lines, "# EOF"]) + ("\n" if draw(st.booleans()) else "")


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(openmetrics_expositions())
def test_openmetrics_matches_prometheus_client(text: str) -> None:
    """On generated OpenMetrics bodies every value equals prometheus_client's."""
    assert_same(parse_exposition(text, openmetrics=True), reference(text, openmetrics=True))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(openmetrics_expositions(), st.data())
def test_openmetrics_mutations_rejected_like_prometheus_client(
    text: str, data: st.DataObject
) -> None:
    """A valid body with a line dropped or two swapped is rejected iff prometheus_client does."""
    lines = text.split("\n")
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(0, len(lines) - 1))
    if data.draw(st.booleans()):
        lines[i], lines[j] = lines[j], lines[i]
    else:
        del lines[i]
    mutated = "\n".join(lines)
    assert _om_accepts(mutated) is _prometheus_client_accepts(mutated), mutated


# ---- OpenMetrics read in bulk against the line-by-line reader (issue 28) ---------------------


def _line_by_line(text: str, desired: list[str] | None = None) -> dict[str, dict[str, float]]:
    """The OpenMetrics body read by the thorough line-by-line reader alone."""
    from deucalion.exposition import openmetrics

    wants = None if desired is None else ExpositionParser(desired).wants
    saved = openmetrics.read_bulk
    openmetrics.read_bulk = lambda *args: None  # type: ignore[assignment]
    try:
        return openmetrics.parse_openmetrics(text, wants)
    finally:
        openmetrics.read_bulk = saved  # type: ignore[assignment]


def _bulk_agrees(text: str, desired: list[str] | None = None, primed: str = "") -> bool:
    """Whether the bulk reader took ``text``; when it did, the line-by-line reader accepts it
    too and reads the same samples (the bulk reader never accepts what that one refuses).
    ``primed``: a body the reader has read before (whose plan a body of the same structure
    and other values is read by)."""
    from deucalion.exposition.labels import LabelMemory
    from deucalion.exposition.openmetrics_bulk import read_bulk

    wants = None if desired is None else ExpositionParser(desired).wants
    memory = LabelMemory()
    if primed:
        read_bulk(primed, wants, memory)
    bulk = read_bulk(text, wants, memory)
    if bulk is None:
        return False
    assert_same(bulk, _line_by_line(text, desired))
    again = read_bulk(text, wants, memory)  # what the parser remembers changes nothing
    assert again is not None
    assert_same(again, bulk)
    return True


@pytest.mark.parametrize(("text", "valid"), OPENMETRICS_CASES)
def test_openmetrics_bulk_reader_agrees_with_the_line_by_line_one(text: str, valid: bool) -> None:
    """On every case of the standard's table, the bulk reader gives up or reads what the
    line-by-line reader reads; it never takes an invalid body."""
    if not valid:
        from deucalion.exposition.labels import LabelMemory
        from deucalion.exposition.openmetrics_bulk import read_bulk

        assert read_bulk(text, None, LabelMemory()) is None
        return
    _bulk_agrees(text)
    _bulk_agrees(text, ["a"])


@st.composite
def modern_openmetrics(draw: st.DrawFn) -> str:
    """A valid OpenMetrics body as client libraries write it: histograms with ``_created`` and
    exemplars, counters with ``_created`` and exemplars, gauges with ``# UNIT``, summaries with
    quantiles, info and stateset families."""
    lines: list[str] = []
    kinds = draw(
        st.lists(
            st.sampled_from(
                ["histogram", "counter", "gauge", "summary", "info", "stateset", "unknown"]
            ),
            max_size=6,
        )
    )
    for index, kind in enumerate(kinds):
        name = f"f{index}_seconds"
        lines.append(f"# HELP {name} help {index}")
        lines.append(f"# TYPE {name} {kind}")
        if kind in ("histogram", "gauge", "summary") and draw(st.booleans()):
            lines.append(f"# UNIT {name} seconds")
        label_sets = draw(st.lists(st.lists(label_names, max_size=2, unique=True), max_size=3))
        seen: set[str] = set()
        for labels in label_sets:
            pairs = sorted(
                (n, draw(label_values)) for n in labels if n not in ("le", "quantile", name)
            )
            key = series_key(dict(pairs))
            if key in seen:
                continue
            seen.add(key)
            block = ",".join(f'{n}="{_escape(v)}"' for n, v in pairs)
            sep = "," if block else ""
            braces = "{" + block + "}" if block or draw(st.booleans()) else ""
            created = f"{name}_created{braces} {draw(st.floats(0, 2e9))!r}"
            exemplar = (
                f' # {{trace_id="{draw(st.integers(0, 10**9))}"}} {draw(st.floats(0, 10))!r}'
                if draw(st.booleans())
                else ""
            )
            if kind == "histogram":
                bounds = sorted(set(draw(st.lists(st.floats(0, 1e6), max_size=4))))
                counts = sorted(
                    draw(
                        st.lists(
                            st.integers(0, 10**6),
                            min_size=len(bounds) + 1,
                            max_size=len(bounds) + 1,
                        )
                    )
                )
                for i, (bound, count) in enumerate(
                    zip([*map(repr, bounds), "+Inf"], counts, strict=True)
                ):
                    lines.append(
                        f'{name}_bucket{{{block}{sep}le="{bound}"}} {count}.0'
                        + (exemplar if i == 0 else "")
                    )
                lines.append(f"{name}_count{braces} {counts[-1]}.0")
                lines.append(f"{name}_sum{braces} {draw(st.floats(0, 1e9))!r}")
                if draw(st.booleans()):
                    lines.append(created)
            elif kind == "counter":
                lines.append(f"{name}_total{braces} {draw(st.floats(0, 1e9))!r}{exemplar}")
                if draw(st.booleans()):
                    lines.append(created)
            elif kind == "summary":
                for q in draw(st.lists(st.sampled_from(["0.5", "0.9", "0.99"]), unique=True)):
                    lines.append(
                        f'{name}{{{block}{sep}quantile="{q}"}} {draw(st.floats(0, 1e6))!r}'
                    )
                lines.append(f"{name}_count{braces} {draw(st.integers(0, 10**6))}.0")
                lines.append(f"{name}_sum{braces} {draw(st.floats(0, 1e9))!r}")
                if draw(st.booleans()):
                    lines.append(created)
            elif kind == "info":
                lines.append(f'{name}_info{{{block}{sep}version="{len(seen)}"}} 1.0')
            elif kind == "stateset":
                for state in ("a", "b"):
                    lines.append(
                        f'{name}{{{block}{sep}{name}="{state}"}} '
                        f"{draw(st.sampled_from(['0', '1', '1.0']))}"
                    )
            else:
                lines.append(f"{name}{braces} {draw(numbers())}")
    return "\n".join([*lines, "# EOF"]) + ("\n" if draw(st.booleans()) else "")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(modern_openmetrics())
def test_modern_openmetrics_is_read_in_bulk_like_prometheus_client(text: str) -> None:
    """Bodies as client libraries write them (exemplars, _created, UNIT, info, stateset) are
    read in bulk, with prometheus_client's values, in full and filtered."""
    expected = reference(text, openmetrics=True)
    assert_same(parse_exposition(text, openmetrics=True), expected)
    assert _bulk_agrees(text)
    assert _bulk_agrees(text, ["f0_seconds", "f2_seconds_total"])


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(modern_openmetrics(), st.data())
def test_modern_openmetrics_mutations_agree_in_bulk_and_line_by_line(
    text: str, data: st.DataObject
) -> None:
    """A valid body with a line dropped, doubled or two swapped, or a value or label changed:
    the bulk reader takes it only when the line-by-line reader does, with the same samples;
    and the parser accepts it exactly when prometheus_client does."""
    lines = text.split("\n")
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(0, len(lines) - 1))
    how = data.draw(st.sampled_from(["swap", "drop", "double", "value", "label"]))
    if how == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif how == "drop":
        del lines[i]
    elif how == "double":
        lines.insert(j, lines[i])
    elif how == "value":
        head, _, _ = lines[i].partition(" # ")
        if " " in head and not head.startswith("#"):
            lines[i] = (
                head.rsplit(" ", 1)[0]
                + " "
                + data.draw(st.sampled_from(["-1", "NaN", "0.5", "2", "+Inf", "1"]))
            )
    else:
        lines[i] = lines[i].replace('le="', 'lx="').replace('quantile="', 'quantile="1')
    mutated = "\n".join(lines)
    try:
        slow = _line_by_line(mutated)
    except ParseError:
        from deucalion.exposition.labels import LabelMemory
        from deucalion.exposition.openmetrics_bulk import read_bulk

        assert read_bulk(mutated, None, LabelMemory()) is None, mutated
        # Nor when it has read the valid body (a changed value keeps the structure).
        memory = LabelMemory()
        read_bulk(text, None, memory)
        assert read_bulk(mutated, None, memory) is None, mutated
        return
    if _bulk_agrees(mutated):
        assert_same(parse_exposition(mutated, openmetrics=True), slow)
    _bulk_agrees(mutated, primed=text)


def test_what_the_bulk_reader_remembers_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans of bodies read and splits of label sets are forgotten past their bounds, and what
    a parser reads is unchanged."""
    from deucalion.exposition import openmetrics_bulk

    monkeypatch.setattr(openmetrics_bulk, "_MAX_PLAN_LINES", 40)
    monkeypatch.setattr(openmetrics_bulk, "_MAX_SPLITS", 30)
    parser = ExpositionParser()
    for round_ in range(30):
        text = (
            "# TYPE h histogram\n"
            + "".join(
                f'h_bucket{{a="{round_}-{i}",le="+Inf"}} 1\nh_count{{a="{round_}-{i}"}} 1\n'
                f'h_sum{{a="{round_}-{i}"}} 1\n'
                for i in range(round_ % 5 + 1)
            )
            + "# EOF\n"
        )
        for _ in range(2):
            assert_same(parser.parse(text, openmetrics=True), _line_by_line(text))
        memory = parser._memory
        assert sum(plan.lines for plan in memory.plans.values()) <= 40  # type: ignore[attr-defined]
        assert sum(map(len, memory.splits.values())) <= 30 + 5


def test_the_bulk_reader_takes_the_benchmark_bodies() -> None:
    """The OpenMetrics bodies of bench_parse are read in bulk, with prometheus_client's values."""
    from benchmarks import bodies

    for text in (bodies.openmetrics_modern(families=30), bodies.openmetrics(series=500)):
        assert _bulk_agrees(text)
        assert_same(parse_exposition(text, openmetrics=True), reference(text, openmetrics=True))


# ---- hypothesis: nothing but ParseError -------------------------------------------------------


def _parse_everyway(data: str | bytes) -> None:
    for openmetrics in (False, True):
        for metrics in (None, ["a", "b_total", "m"]):
            try:
                parse_exposition(data, openmetrics=openmetrics, metrics=metrics)
            except ParseError:
                pass


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    """Random bytes, invalid UTF-8 included, either parse or raise ParseError."""
    _parse_everyway(data)


@settings(max_examples=300)
@given(
    st.text(st.sampled_from(list('ab_m{}="\\, \t\n#0123456789.+-eEInfaN:TYPEHLPUOF')), max_size=80)
)
def test_random_text_only_raises_parse_error(text: str) -> None:
    """Random text from the format's own alphabet either parses or raises ParseError."""
    _parse_everyway(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(text_expositions(), openmetrics_expositions()), st.data())
def test_truncated_bodies_only_raise_parse_error(text: str, data: st.DataObject) -> None:
    """Any prefix of a valid body either parses or raises ParseError."""
    cut = data.draw(st.integers(0, len(text)))
    _parse_everyway(text[:cut])
    _parse_everyway(text.encode()[:cut])


def test_huge_label_value() -> None:
    """A label value of a megabyte parses; one without its closing quote is a ParseError."""
    value = "x" * 1_000_000
    assert parse_exposition(f'm{{a="{value}"}} 1\n')["m"] == {f'{{a="{value}"}}': 1.0}
    with pytest.raises(ParseError):
        parse_exposition(f'm{{a="{value}}} 1\n')
    with pytest.raises(ParseError):
        parse_exposition(f'm{{a="{value}}} 1\n', openmetrics=True)


# ---- fast paths against the slow one ----------------------------------------------------------


def _slow_parse(text: str) -> dict[str, dict[str, float]]:
    """The body read line by line by the thorough reader every fast path defers to on errors."""
    result: dict[str, dict[str, float]] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        sample = _text_line(line, lineno)
        if sample is not None:
            name, key, value = sample
            result.setdefault(name, {})[key] = value
    return result


def test_unsorted_blocks_of_many_label_orders_in_one_piece() -> None:
    """Blocks written in several unsorted orders, with escapes, interleaved in one body, get
    the keys of their sorted spelling, each with its own value."""
    lines, expected = [], {}
    for i in range(300):
        pairs = [("b", f"{i}"), ("a", 'x\\"q' if i % 7 == 0 else "p"), ("c", f"{i % 3}")]
        if i % 2:
            pairs.insert(0, ("d", "é"))
        order = [pairs[j] for j in ([2, 0, 1] if i % 3 == 0 else [1, 2, 0])] + pairs[3:]
        lines.append("m{" + ",".join(f'{k}="{v}"' for k, v in order) + f"}} {i}")
        expected["{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs)) + "}"] = float(i)
    text = "\n".join(lines) + "\n"
    assert parse_exposition(text) == {"m": expected}
    assert_same(parse_exposition(text), reference(text))


def test_unsorted_blocks_of_dozens_of_label_orders_in_one_piece() -> None:
    """Dozens of unsorted label orders in one piece (as stateset families give, each state
    label named as its family) are each put in order, in text and in OpenMetrics."""
    lines, expected = [], {}
    for i in range(400):
        first = f"s{i % 37}"
        pairs = [(first, f"v{i}"), ("job", "j" if i % 5 else 'q\\"x'), ("a", str(i % 4))]
        lines.append("m{" + ",".join(f'{k}="{v}"' for k, v in pairs) + f"}} {i}")
        expected["{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs)) + "}"] = float(i)
    text = "\n".join(lines) + "\n"
    assert parse_exposition(text) == {"m": expected}
    assert_same(parse_exposition(text), reference(text))
    om = (
        "".join(
            f"# TYPE st{i} stateset\n"
            + "".join(
                f'st{i}{{st{i}="{s}",a="x",b="{i}"}} {int(s == "on")}\n' for s in ("off", "on")
            )
            for i in range(12)
        )
        + "# EOF\n"
    )
    assert_same(parse_exposition(om, openmetrics=True), reference(om, openmetrics=True))
    assert _bulk_agrees(om)


def test_unsorted_blocks_whose_values_hold_quotes_commas_and_escapes() -> None:
    """Values that start with a comma, hold '",' or escapes keep their place when the labels
    of unsorted blocks are put in order, in text and in OpenMetrics."""
    values = [",", '\\",', "\\\\", '\\"', "a\\nb", "", "}", "{x}", ",,"]
    lines = [f'm{{b="{v}",a="{w}"}} {i}' for i, (v, w) in enumerate(itertools.pairwise(values))]
    text = "\n".join(lines) + "\n"
    assert_same(parse_exposition(text), reference(text))
    om = "# TYPE m gauge\n" + text + "# EOF\n"
    assert_same(parse_exposition(om, openmetrics=True), reference(om, openmetrics=True))


def test_sorted_and_unsorted_blocks_give_one_key() -> None:
    """A block written unsorted gets the key of its sorted spelling, first time and after."""
    sorted_line = 'm{a="1",b="2",c="3"} 1\n'
    unsorted_line = 'm{c="3",a="1",b="2"} 2\n'
    for _ in range(2):  # the second time the pattern knows the skeleton (a, b, c)
        assert parse_exposition(sorted_line + unsorted_line) == {"m": {'{a="1",b="2",c="3"}': 2.0}}
        assert parse_exposition(unsorted_line + sorted_line) == {"m": {'{a="1",b="2",c="3"}': 1.0}}


def test_learnt_skeleton_still_rejects_duplicate_labels() -> None:
    """Knowing the skeleton (a, b) does not let a="1",a="2" through."""
    parse_exposition('m{a="1",b="2"} 1\n')
    with pytest.raises(ParseError) as info:
        parse_exposition('m{a="1",b="2"} 1\nm{a="1",a="2"} 1\n')
    assert info.value.lineno == 2


def test_escapes_in_keys_of_learnt_skeletons() -> None:
    """Canonical escapes stay as written in the key; others are made canonical."""
    text = 'm{a="x\\\\y",b="q\\"\\n"} 1\nm{a="c:\\temp",b=""} 2\n'
    expected = {"m": {'{a="x\\\\y",b="q\\"\\n"}': 1.0, '{a="c:\\\\temp",b=""}': 2.0}}
    for _ in range(2):
        assert parse_exposition(text) == expected
        assert_same(parse_exposition(text), reference(text))


def test_overlapping_skeletons() -> None:
    """Learnt label-name sequences that share a start only let their own blocks through."""
    lines = ['m{a="1",b="2"} 1', 'm{a="1",b="2",c="3"} 2', 'm{a="1",c="3"} 3', 'm{b="1",a="2"} 4']
    parse_exposition("\n".join(lines))
    more = ['m{a="9"} 5', 'm{a="1",b="2",d="4"} 6', 'm{a="1",b="2",c="3",d="4"} 7']
    more.append('m{a="1",a="1"} 8')
    for text in ("\n".join(lines + more[:3]) + "\n", "\n".join(reversed(lines + more[:3]))):
        assert parse_exposition(text) == _slow_parse(text)
    with pytest.raises(ParseError) as info:
        parse_exposition("\n".join(lines + more))
    assert info.value.lineno == 8


def test_new_skeletons_in_a_large_body() -> None:
    """A body of many chunks whose label names change midway reads like the slow path."""
    lines = [f'm{{a="{i}",b="x"}} {i}' for i in range(5000)]
    lines += [f'm{{b="y",c="{i}",d="\\\\"}} {i}' for i in range(5000)]
    lines += [f'n{{d="{i}",c="z"}} {i}' for i in range(5000)]
    text = "\n".join(lines) + "\n"
    assert parse_exposition(text) == _slow_parse(text)


def test_large_body_leaves_garbage_collection_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large parse, failed or not, never switches the host's garbage collector."""

    def forbidden() -> None:
        raise AssertionError("the parser switched the garbage collector")

    monkeypatch.setattr(gc, "disable", forbidden)
    monkeypatch.setattr(gc, "enable", forbidden)
    text = "".join(f'big{{i="{i}"}} {i}\n' for i in range(60_000))
    assert len(parse_exposition(text)["big"]) == 60_000
    with pytest.raises(ParseError) as info:
        parse_exposition(text + "big{ 1\n")
    assert info.value.lineno == 60_001


def test_filter_finds_lines_wherever_the_name_appears() -> None:
    """Wanted names in HELP lines, inside longer names or values, or after blanks are told apart."""
    text = (
        "# HELP up up is up\n# TYPE up gauge\n"
        'upx 1\nother{l="up"} 2\nup{a="1"} 3\n  up{a="2"} 4\n\tup_total 5\nnot_up 6\nup 7\n'
    )
    parser = ExpositionParser(["up"])
    for _ in range(2):  # the second time the canonical lines are known by their head
        assert parser.parse(text) == {
            "up": {'{a="1"}': 3.0, '{a="2"}': 4.0, "{}": 7.0},
            "up_total": {"{}": 5.0},
        }


def test_filter_reads_known_lines_with_new_values() -> None:
    """A line read before, now with another value, a timestamp or a bad value, reads right."""
    parser = ExpositionParser(["m"])
    assert parser.parse('m{b="1",a="2"} 1\nm 2\n') == {"m": {'{a="2",b="1"}': 1.0, "{}": 2.0}}
    assert parser.parse('m{b="1",a="2"} 3 123\nm 4\n') == {"m": {'{a="2",b="1"}': 3.0, "{}": 4.0}}
    for bad in ("1_0", "\x0c1", "", "0x1", "1\r"):
        with pytest.raises(ParseError) as info:
            parser.parse(f"# c\nm 1\nm {bad}\n")
        assert info.value.lineno == 3


def test_filter_reports_the_first_bad_line_of_any_wanted_name() -> None:
    """With several wanted names, the error names the first bad line in the body."""
    with pytest.raises(ParseError) as info:
        parse_exposition("a 1\nb x\na y\n", metrics=["b", "a"])
    assert info.value.lineno == 2


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(text_expositions())
def test_fast_paths_match_the_slow_path(text: str) -> None:
    """Full and filtered parses, first and repeated (learnt skeletons, known heads), equal the
    line-by-line reader."""
    slow = _slow_parse(text)
    for _ in range(2):
        assert_same(parse_exposition(text), slow)
        for name in list(slow)[:2]:
            parser = ExpositionParser([name])
            expected = {n: series for n, series in slow.items() if parser.wants(n)}
            assert_same(parser.parse(text), expected)
            assert_same(parser.parse(text), expected)


def _labelled_body(values: list[float], moved: bool = False) -> str:
    """A body of sorted, unsorted and escaped label sets with ``values``; ``moved`` changes
    one label set and swaps two lines."""
    lines = [
        "# HELP m A metric.",
        "# TYPE m gauge",
        'm{a="1",b="x"} %r',
        'm{c="3",a="1"} %r',
        'm{b="q\\"\\n",a="c:\\temp"} %r',
        "m %r",
        'n{z="1",y="2"} %r',
        'n{y="3",z="4"} %r 1700000000000',
        "last %r",
    ]
    if moved:
        lines[3] = 'm{c="4",a="1"} %r'
        lines[2], lines[6] = lines[6], lines[2]
    return "\n".join(lines) % tuple(values) + "\n"


@pytest.mark.parametrize("desired", [None, ["m"], ["m", "n", "last"], ["n"], ["m.*"]], ids=str)
def test_a_parser_reads_known_label_sets_with_new_values(desired: list[str] | None) -> None:
    """A parser remembers the label sets and selected lines of the bodies it read; the same
    lines with new values, moved lines and a changed label set still read like the line-by-
    line reader, from text, bytes and chunks."""
    parser = ExpositionParser(desired)
    for round_, moved in enumerate([False, False, True, False, True]):
        text = _labelled_body([round_ * 10.0 + i for i in range(7)], moved)
        expected = {n: s for n, s in _slow_parse(text).items() if parser.wants(n)}
        data = text.encode()
        for body in (text, data, [data[:50], data[50:]]):
            assert parser.parse(body) == expected


def test_a_known_line_whose_value_equals_its_timestamp_reads_its_value() -> None:
    """'m 5 5' then 'm 5 7': the part before the last blank is not the line's head when a
    timestamp follows, however the first body was read."""
    parser = ExpositionParser(["m"])
    assert parser.parse("m 5 5\nx 1\n") == {"m": {"{}": 5.0}}
    assert parser.parse("m 5 7\nx 1\n") == {"m": {"{}": 5.0}}
    assert parser.parse("m 6 7\nx 1\n") == {"m": {"{}": 6.0}}


def test_the_last_line_of_a_filtered_body_is_read_in_full_however_well_known() -> None:
    """A last line known from earlier bodies is still refused with a bad value, and a last
    line that is a comment or a new line is read in full."""
    parser = ExpositionParser(["m"])
    assert parser.parse("m 1\nlast 2\n") == {"m": {"{}": 1.0}}
    for bad in ("last x", "last 1_0", "last{ 1", "last"):
        with pytest.raises(ParseError) as info:
            parser.parse(f"m 1\n{bad}\n")
        assert info.value.lineno == 2
    assert parser.parse("m 2\nlast 3\n# a comment at the end\n\n") == {"m": {"{}": 2.0}}
    assert parser.parse(b"m 3\nlast 4") == {"m": {"{}": 3.0}}
    # A fault in a selected line is named before one in the last line.
    for last in ("last 4", "last x", "last{"):
        with pytest.raises(ParseError) as info:
            parser.parse(f"m 1e\nx 2\n{last}\n")
        assert info.value.lineno == 1


def test_the_memory_of_label_sets_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound, a parser's memory of label sets starts again: it never holds more,
    and what it reads is unchanged."""
    from deucalion.exposition import labels

    monkeypatch.setattr(labels, "_MAX_KEY_CHARS", 2_000)
    parser = ExpositionParser()
    for round_ in range(40):
        text = "".join(f'm{{z="{round_}",a="{i}"}} {i}\n' for i in range(round_ % 7 + 1))
        assert parser.parse(text) == _slow_parse(text)
        assert parser._memory._chars <= 2_000


# ---- bodies that are not expositions, filtered or not (issue 13, item 1) ----------------------

NOT_EXPOSITIONS = [
    pytest.param("<!DOCTYPE html>\n<html><body>Service Unavailable</body></html>\n", 1, id="html"),
    pytest.param('{"status": "error", "errorType": "internal"}\n', 1, id="json"),
    pytest.param('{\n  "node_load1": 1\n}\n', 1, id="json-pretty"),
    pytest.param("node_load1 1\nnode_load15 2\n<html>\n", 3, id="valid-then-html"),
    pytest.param("node_load1 1\n\x00\x01\x02garbage\n", 2, id="valid-then-binary"),
    pytest.param(
        "node_load1 1\nnode_load15 2\nthis is not an exposition\n", 3, id="valid-then-words"
    ),
    pytest.param("node_load1 1\nnode_memory_MemAvailable_byt", 2, id="cut-short"),
    pytest.param("OK\n", 1, id="health-endpoint"),
    pytest.param("# HELP up x\nup 1\n  <b>oops</b>\nup 2\n", 3, id="indented-html"),
]
DESIRED_SETS = [
    pytest.param(["node_load1", "up"], id="few-names"),
    pytest.param([f"name_{i}" for i in range(50)] + ["node_load1", "up"], id="many-names"),
    pytest.param(["node_.*", "up"], id="regex"),
    pytest.param(["absent_metric"], id="nothing-present"),
]


@pytest.mark.parametrize(("body", "lineno"), NOT_EXPOSITIONS)
@pytest.mark.parametrize("desired", DESIRED_SETS)
def test_filtered_parse_refuses_a_body_that_is_not_an_exposition(
    body: str, lineno: int, desired: list[str]
) -> None:
    """HTML, JSON or garbage after valid lines is a ParseError naming its line however few
    metrics are desired, as Prometheus fails such a scrape ("not a valid start token")."""
    for data in (body, body.encode(), [body.encode()[:7], body.encode()[7:]]):
        with pytest.raises(ParseError) as info:
            ExpositionParser(desired).parse(data)
        assert info.value.lineno == lineno
    with pytest.raises(ParseError):
        parse_exposition(body)


def test_filtered_parse_checks_how_unselected_lines_start() -> None:
    """An unselected line is checked for how it starts (and the last line in full); the rest of
    it is not read, which is what keeps filtering cheap."""
    parser = ExpositionParser(["ok"])
    assert parser.parse('bad{ 1\nbad x y z\nok{a="1"} 2\n') == {"ok": {'{a="1"}': 2.0}}
    for body in ("0bad 1\nok 2\n", "ok 2\n-bad 1\nok 3\n", "ok 1\nbad x y z\n"):
        with pytest.raises(ParseError):
            parser.parse(body)
    # A selector taking most lines reads bodies in full once it has seen one: the same rule.
    dense = ExpositionParser(["ok.*"])
    body = 'ok1 1\nok2{b="2",a="1"} 2\nbad{ 1\nok3 3\n'
    expected = {"ok1": {"{}": 1.0}, "ok2": {'{a="1",b="2"}': 2.0}, "ok3": {"{}": 3.0}}
    for _ in range(3):
        assert dense.parse(body) == expected
    with pytest.raises(ParseError):
        dense.parse("ok1 1\nok2 2\n<html>\n")


# ---- selectors ----------------------------------------------------------------------------------


SELECTOR_BODY = (
    "# TYPE node_cpu_seconds_total counter\n"
    'node_cpu_seconds_total{cpu="0",mode="idle"} 1\n'
    "node_load1 0.5\nnode_load15 0.7\n"
    "# TYPE http_latency_seconds histogram\n"
    'http_latency_seconds_bucket{le="+Inf"} 3\nhttp_latency_seconds_sum 1.5\n'
    "http_latency_seconds_count 3\ngo_goroutines 8\nup 1\n"
)


@pytest.mark.parametrize(
    ("desired", "expected"),
    [
        (["node_.*"], {"node_cpu_seconds_total", "node_load1", "node_load15"}),
        (["node_load1"], {"node_load1"}),
        (["node_load.*", "go_goroutines"], {"node_load1", "node_load15", "go_goroutines"}),
        (
            ["http_.*_seconds"],
            {
                "http_latency_seconds_bucket",
                "http_latency_seconds_sum",
                "http_latency_seconds_count",
            },
        ),
        (
            ["http_latency_seconds"],
            {
                "http_latency_seconds_bucket",
                "http_latency_seconds_sum",
                "http_latency_seconds_count",
            },
        ),
        (["node_cpu_seconds"], {"node_cpu_seconds_total"}),
        (
            [".*"],
            {
                "node_cpu_seconds_total",
                "node_load1",
                "node_load15",
                "go_goroutines",
                "up",
                "http_latency_seconds_bucket",
                "http_latency_seconds_sum",
                "http_latency_seconds_count",
            },
        ),
        (["(node|go)_[a-z]+"], {"go_goroutines"}),
        (["absent", "also_absent.*"], set()),
    ],
)
def test_selectors_select_like_prometheus(desired: list[str], expected: set[str]) -> None:
    """Names select their family; other entries are regular expressions anchored at both ends,
    matching a sample's name or its family's; the parser and the Selector agree."""
    selector = Selector.from_desired(desired)
    full = parse_exposition(SELECTOR_BODY)
    assert {name for name in full if selector.selects(name)} == expected
    parser = ExpositionParser(desired)
    assert parser.parse(SELECTOR_BODY) == {n: s for n, s in full.items() if n in expected}
    assert parse_exposition(SELECTOR_BODY, metrics=desired) == parser.parse(SELECTOR_BODY)


@pytest.mark.parametrize("bad", ["node_(", "", "a[b", "*"])
def test_selector_refuses_what_is_neither_a_name_nor_a_regular_expression(bad: str) -> None:
    """An entry that is no metric name and no valid regular expression is an error naming it."""
    with pytest.raises(ValueError, match="neither a metric name nor"):
        Selector.from_desired(["up", bad])


def test_many_desired_names_select_like_few() -> None:
    """Thousands of desired names (most absent) read what the full parse reads for them."""
    text = "".join(
        f'# TYPE m{i} gauge\nm{i}{{b="{j}",a="x"}} {j}\n' for i in range(300) for j in range(3)
    )
    full = parse_exposition(text)
    desired = [f"m{i}" for i in range(0, 300, 2)] + [f"absent_{i}" for i in range(5000)]
    assert parse_exposition(text, metrics=desired) == {
        n: s for n, s in full.items() if int(n[1:]) % 2 == 0
    }


def _selected_by_reading(desired: list[str], name: str) -> bool:
    """What a selector must answer, read from its definition: a name or family is desired, or
    a pattern matches the name or its family name in full (one pattern at a time)."""
    from deucalion.exposition.naming import FAMILY_SUFFIXES

    families = [name] + [name[: -len(s)] for s in FAMILY_SUFFIXES if name.endswith(s)]
    return any(
        family == entry or re.fullmatch(entry, family) is not None
        for family in families
        for entry in desired
    )


PATTERN_SETS = [
    pytest.param(["node_.*", "go_.*", "up"], id="prefixes"),
    pytest.param(["ab+c", "a?b.*", "x{2}y", "node_c[a-z]u.*", "nod.?_load1"], id="quantifiers"),
    pytest.param(["(node|go)_[a-z]+", "node_.*|up", "up|http_.*"], id="alternations"),
    pytest.param(["(?i)NODE_LOAD.*", r"node_load\d+", "http_latency_seconds_.*"], id="flags"),
    pytest.param(
        [f"app_{i}_.*" for i in range(3000)] + ["node_load1.*", "app_7.*"],
        id="thousands-of-patterns",
    ),
    pytest.param(
        [f"node_load{i}" for i in range(3000)] + ["go_.*", "node_cpu_seconds"],
        id="thousands-of-names",
    ),
]


@pytest.mark.parametrize("desired", PATTERN_SETS)
def test_many_patterns_select_what_each_pattern_would(desired: list[str]) -> None:
    """However many names and patterns a selector holds, and whatever they start with, it
    selects exactly the samples one of them would on its own; the parser agrees."""
    names = [
        "node_load1",
        "node_load15",
        "node_load2999",
        "node_cpu_seconds_total",
        "go_goroutines",
        "up",
        "abc",
        "bc",
        "abbbc",
        "xxy",
        "app_7_x",
        "app_2999_y_total",
        "app_3000_z",
        "http_latency_seconds_bucket",
        "http_latency_seconds_sum",
        "NODE_LOAD1",
        "nodx_load1",
    ]
    selector = Selector.from_desired(desired)
    for name in names:
        assert selector.selects(name) == _selected_by_reading(desired, name), name
    body = "".join(f"{name} {i}\n" for i, name in enumerate(names))
    full = parse_exposition(body)
    expected = {n: s for n, s in full.items() if _selected_by_reading(desired, n)}
    parser = ExpositionParser(desired)
    assert parser.parse(body) == expected
    assert parser.parse(body.encode()) == expected


# ---- counting and chunks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a 1\n\n\n\nb 2\n", 2),
        ("a 1\n  # an indented comment\n\t# another\nb 2\n", 2),
        ("\n\n\n", 0),
        ("  a 1\n\tb 2", 2),
        ("# only\n# comments", 0),
    ],
)
def test_every_path_counts_sample_lines_alike(body: str, expected: int) -> None:
    """Blank runs and indented comments are not samples, for the full, filtered and
    OpenMetrics reads alike (scrape_samples_scraped, issue 13 item 4)."""
    from deucalion.exposition.text import count_samples

    assert count_samples(body) == count_samples(body.encode()) == expected
    for desired in (None, ["a"], ["a.*"]):
        assert ExpositionParser(desired).read(body, count=True)[1] == expected


def test_a_body_in_chunks_reads_like_a_whole_one() -> None:
    """A body given as the chunks it arrived in (split inside lines and UTF-8 characters) reads
    as the whole body does, and the chunk list is emptied as it is read."""
    body = "".join(f'm{{a="é{i}",b="ü"}} {i}\n' for i in range(40_000)).encode()
    expected = parse_exposition(body)
    for desired in (None, ["m"], ["m.*"]):
        chunks = [body[i : i + 7777] for i in range(0, len(body), 7777)]
        assert ExpositionParser(desired).parse(chunks) == expected
        assert chunks == []
    bad = body + b"m{a=\xff} 1\n"
    with pytest.raises(ParseError) as info:
        parse_exposition([bad[i : i + 7777] for i in range(0, len(bad), 7777)])
    assert info.value.lineno == 40_001


def test_parsers_share_nothing() -> None:
    """What one parser learns stays its own; the library keeps no global state."""
    import inspect

    from deucalion.exposition import body, filtering, labels, naming, openmetrics, parser, text

    first, second = ExpositionParser(), ExpositionParser()
    first.parse('m{b="1",a="2"} 1\n')
    assert first._memory.orders and not second._memory.orders
    for module in (body, filtering, labels, naming, openmetrics, parser, text):
        source = inspect.getsource(module)
        assert "global " not in source and "gc." not in source and "lru_cache" not in source


def test_label_names_sort_as_strings_whatever_follows_them() -> None:
    """a < a1 < a_ < ab, in every path: a digit after a shared prefix sorts after the end."""
    text = 'm{ab="1",a_="2",a1="3",a="4"} 1\n'
    key = '{a="4",a1="3",a_="2",ab="1"}'
    for desired in (None, ["m"], ["m.*"], [f"n{i}" for i in range(20)] + ["m"]):
        parser = ExpositionParser(desired)
        for _ in range(2):
            assert parser.parse(text) == {"m": {key: 1.0}}
