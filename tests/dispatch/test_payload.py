"""The hand-off format: what the worker decodes is exactly what the application encoded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deucalion.dispatch import payload as _payload
from deucalion.dispatch.payload import LayoutError, PayloadEncoder, decode

Data = dict[str, dict[str, dict[str, float]]]

names = st.sampled_from(["up", "node_load1", "x_bucket", "y_total"])
series = st.dictionaries(
    st.sampled_from(["{}", '{cpu="0"}', '{cpu="1"}', '{le="+Inf"}', '{a="\\"q\\""}']),
    st.floats(allow_nan=False),
    max_size=4,
)
datas = st.dictionaries(
    st.sampled_from(["http://a/metrics", "http://b:1/m"]),
    st.dictionaries(names, series, max_size=3),
    max_size=2,
)


@pytest.fixture(autouse=True)
def fresh_worker_state() -> None:
    """Each test starts with a worker that was sent nothing."""
    _payload._layouts = {}


@given(st.lists(datas, min_size=1, max_size=6))
def test_a_sequence_of_payloads_round_trips(sequence: list[Data]) -> None:
    """Whatever changes between calls (targets, names, series), each call decodes exactly."""
    _payload._layouts = {}
    encoder = PayloadEncoder()
    for data in sequence:
        assert decode(encoder.encode(data)) == data


def test_unchanged_keys_are_not_sent_again() -> None:
    """The second payload of the same series is smaller: it carries values only."""
    encoder = PayloadEncoder()
    data = {"t": {"m": {f'{{i="{i}"}}': float(i) for i in range(100)}}}
    first = encoder.encode(data)
    data["t"]["m"] = {k: v + 1 for k, v in data["t"]["m"].items()}
    second = encoder.encode(data)
    assert len(second) < len(first) / 2
    decode(first)
    assert decode(second) == data


def test_nan_and_infinities_survive() -> None:
    """Special float values arrive as they were."""
    data = {"t": {"m": {"{}": math.nan, '{a="1"}': math.inf, '{a="2"}': -math.inf}}}
    decoded = decode(PayloadEncoder().encode(data))["t"]["m"]
    assert math.isnan(decoded["{}"]) and decoded['{a="1"}'] == math.inf


def test_a_target_without_samples_is_kept() -> None:
    """A down target still appears, with no samples."""
    data: Data = {"down": {}, "up": {"up": {"{}": 1.0}}}
    assert decode(PayloadEncoder().encode(data)) == data


def test_a_worker_that_missed_the_keys_says_so() -> None:
    """A payload relying on keys the worker never got raises LayoutError, not wrong data."""
    encoder = PayloadEncoder()
    data = {"t": {"m": {"{}": 1.0}}}
    encoder.encode(data)  # sent to a worker that then died
    with pytest.raises(LayoutError, match="no series keys for m of t"):
        decode(encoder.encode(data))
    encoder.reset()
    assert decode(encoder.encode(data)) == data
