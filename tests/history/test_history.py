"""deucalion.history: series keys, windows, and PromQL's rate/increase/histogram_quantile."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import deucalion as dc
from deucalion.history import (
    Window,
    bucket_quantile,
    increase,
    rate,
    series_key,
    series_labels,
    without_label,
)
from deucalion.history.promql import CounterRates, counter_increase
from deucalion.observer import handing_data

T = "http://target:9100/metrics"
U = "http://other:9100/metrics"

# -- series keys -------------------------------------------------------------------------------

label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)
label_values = st.text(
    alphabet=st.sampled_from(["a", '"', "\\", "\n", "n", ",", "=", "}", "{", " ", "é", "\t"]),
    max_size=8,
)


@given(st.dictionaries(label_names, label_values, max_size=5))
def test_labels_to_key_and_back_is_exact(labels: dict[str, str]) -> None:
    """Any label set, escapes included, survives series_key then series_labels."""
    key = series_key(labels)
    assert series_labels(key) == labels
    assert series_key(series_labels(key)) == key


def test_keys_from_the_parser_round_trip() -> None:
    """Keys parse_exposition hands out, with every escape, read back exactly."""
    text = 'm{b="x\\\\y",a="q\\"uote",c="new\\nline",d="back\\\\n",e=""} 1\nm 2\n'
    keys = list(dc.parse_exposition(text)["m"])
    assert series_labels(keys[0]) == {
        "a": 'q"uote',
        "b": "x\\y",
        "c": "new\nline",
        "d": "back\\n",
        "e": "",
    }
    assert series_labels(keys[1]) == {}
    assert [series_key(series_labels(k)) for k in keys] == keys


@pytest.mark.parametrize(
    "key",
    [
        "",
        'cpu="0"',
        "{cpu=0}",
        '{cpu="0",}',
        '{cpu="0" mode="x"}',
        '{cpu="0",cpu="1"}',
        '{0cpu="1"}',
        '{cpu="\\x"}',
        "{",
    ],
)
def test_a_malformed_key_is_a_value_error_naming_it(key: str) -> None:
    """Anything that is not a series key is refused, the message quoting it."""
    with pytest.raises(ValueError, match="is not a series key"):
        series_labels(key)


def test_series_key_refuses_bad_names_and_values() -> None:
    """A label name that cannot be one, or a value that is not a string, is refused."""
    with pytest.raises(ValueError, match="label name"):
        series_key({"bad-name": "x"})
    with pytest.raises(ValueError, match="not a string"):
        series_key({"le": 0.5})  # type: ignore[dict-item]
    assert without_label('{handler="/",le="0.5"}', "le") == '{handler="/"}'


# -- windows -----------------------------------------------------------------------------------


def cycle(value: float, **extra: float) -> dict[str, dict[str, dict[str, float]]]:
    return {T: {"g": {'{a="1"}': value, **extra}}}


def test_a_window_keeps_the_last_n_points_with_their_times() -> None:
    """points=N keeps N cycles, oldest first, each with its scrape time."""
    window = Window(points=4)
    for i in range(10):
        window.add(cycle(float(i)), time=1000.0 + i)
    times, values = window.series(T, "g", '{a="1"}')
    assert values.tolist() == [6.0, 7.0, 8.0, 9.0]
    assert times.tolist() == [1006.0, 1007.0, 1008.0, 1009.0]
    block = window.block("g")
    assert block.keys == [(T, '{a="1"}')] and block.values.shape == (1, 4)


def test_a_window_by_time_keeps_the_last_t_seconds_and_grows_as_needed() -> None:
    """seconds=T keeps every point newer than T seconds, however many that is."""
    window = Window(seconds=10.0)
    for i in range(500):
        window.add(cycle(float(i)), time=i * 0.1)
    times, values = window.series(T, "g", '{a="1"}')
    assert times[0] > 49.9 - 10.0 - 1e-9 and len(values) == 100
    assert values[-1] == 499.0


def test_the_time_defaults_to_the_data_time_of_each_target() -> None:
    """Inside new_data (handing_data), each target's points carry its own scrape time."""
    window = Window(points=3)
    with handing_data(50.0, {T: 51.0, U: 52.5}):
        window.add({T: {"g": {"{}": 1.0}}, U: {"g": {"{}": 2.0}}})
    assert window.series(T, "g")[0].tolist() == [51.0]
    assert window.series(U, "g")[0].tolist() == [52.5]
    with pytest.raises(RuntimeError, match="time="):
        window.add({T: {"g": {"{}": 1.0}}})


def test_gaps_are_gaps_not_zeros() -> None:
    """A series absent from a cycle, or a target that is down, leaves NaN, not 0."""
    window = Window(points=6)
    for i in range(6):
        data = {
            T: {"g": {'{a="1"}': 5.0, **({'{a="2"}': 7.0} if i % 2 else {})}},
            U: {"g": {"{}": 1.0}} if i not in (2, 3) else {"up": {"{}": 0.0}},
        }
        window.add(data, time=float(i))
    block = window.block("g")
    rows = dict(zip(block.keys, block.values.tolist(), strict=True))
    assert rows[(T, '{a="1"}')] == [5.0] * 6
    assert np.isnan(rows[(T, '{a="2"}')][0::2]).all() and rows[(T, '{a="2"}')][1::2] == [7.0] * 3
    down = rows[(U, "{}")]
    assert np.isnan(down[2:4]).all() and down[:2] == [1.0, 1.0] and down[4:] == [1.0, 1.0]
    assert window.series(U, "g")[0].tolist() == [0.0, 1.0, 4.0, 5.0]


def test_nan_inf_and_non_numbers_do_not_raise() -> None:
    """NaN and infinities are kept; anything that is not a number is a gap."""
    window = Window(points=3)
    window.add(
        {T: {"g": {"{}": math.inf, '{a="1"}': math.nan, '{a="2"}': "x"}}},  # type: ignore[dict-item]
        time=1.0,
    )
    latest = window.latest("g").to_dict()
    assert latest[(T, "{}")] == math.inf
    assert math.isnan(latest[(T, '{a="1"}')]) and math.isnan(latest[(T, '{a="2"}')])


def test_series_that_vanish_are_forgotten_so_churn_stays_bounded() -> None:
    """New series every cycle (label churn): the window holds at most N cycles' worth."""
    window = Window(points=5)
    for i in range(300):
        window.add({T: {"g": {f'{{id="{i}"}}': 1.0, f'{{id="{i}b"}}': 2.0}}}, time=float(i))
        assert len(window) <= 2 * 5
    size = window.nbytes
    for i in range(300, 600):
        window.add({T: {"g": {f'{{id="{i}"}}': 1.0, f'{{id="{i}b"}}': 2.0}}}, time=float(i))
    assert window.nbytes == size  # rows are reused, nothing grows
    assert (T, "g", '{id="599"}') in window and (T, "g", '{id="0"}') not in window


def test_forget_after_drops_a_series_absent_that_long() -> None:
    """forget_after=S forgets a series S seconds after it was last seen."""
    window = Window(points=100, forget_after=3.0)
    window.add({T: {"g": {"{}": 1.0, '{a="1"}': 1.0}}}, time=0.0)
    for t in range(1, 6):
        window.add({T: {"g": {"{}": 1.0}}}, time=float(t))
    assert (T, "g", '{a="1"}') not in window and (T, "g", "{}") in window


def test_bad_window_arguments_are_refused() -> None:
    """A window without a bound, or with a nonsensical one, says what to pass."""
    with pytest.raises(ValueError, match="points=N"):
        Window()
    with pytest.raises(ValueError, match="points"):
        Window(points=1)
    with pytest.raises(ValueError, match="seconds"):
        Window(seconds=-1)
    with pytest.raises(ValueError, match="no time given"):
        Window(points=3).add({T: {}}, time={U: 1.0})


def test_frame_is_a_time_indexed_dataframe_with_a_column_per_series() -> None:
    """frame() gives a UTC DatetimeIndex, one column per series, NaN in gaps."""
    window = Window(points=5)
    for i in range(3):
        window.add(
            {T: {"g": {'{a="1"}': float(i), **({'{a="2"}': 9.0} if i != 1 else {})}}},
            time=1_700_000_000.0 + i,
        )
    frame = window.frame("g", T)
    assert list(frame.columns) == ['{a="1"}', '{a="2"}']
    assert str(frame.index.tz) == "UTC" and frame.index[0].timestamp() == 1_700_000_000.0
    assert frame['{a="1"}'].tolist() == [0.0, 1.0, 2.0]
    assert math.isnan(frame['{a="2"}'].iloc[1])
    both = Window(points=2)
    both.add({T: {"g": {"{}": 1.0}}, U: {"g": {"{}": 2.0}}}, time={T: 10.0, U: 10.5})
    assert list(both.frame("g").columns) == [(T, "{}"), (U, "{}")]


# -- rate / increase ---------------------------------------------------------------------------


def test_rate_counts_resets_and_extrapolates_as_prometheus() -> None:
    """A reset adds back the value before it; the range ends are extrapolated to."""
    times = [103.0, 104.0, 105.0, 106.0, 107.0]
    values = [30.0, 40.0, 3.0, 60.0, 70.0]
    # Raw increase 40 + 40 (reset) = 80 over 4 s; start is 0.5 s before the first sample
    # (< 1.1 intervals: extrapolated), not beyond the counter's zero (1.5 s), end at 107.
    assert increase(times, values, 4.5, at=107.0) == pytest.approx(80 * 4.5 / 4)
    assert rate(times, values, 4.5, at=107.0) == pytest.approx(80 / 4)


def test_rate_extrapolates_half_an_interval_when_the_series_starts_inside_the_range() -> None:
    """A series that starts late is extrapolated by half an interval, not to the range start."""
    times, values = [50.0, 60.0, 70.0], [100.0, 110.0, 120.0]
    # 20 over 20 s; start is 50 s away (> 1.1 x 10): +5 s; zero point is 200 s away.
    assert increase(times, values, 100.0, at=70.0) == pytest.approx(20 * 25 / 20)


def test_rate_does_not_extrapolate_below_zero() -> None:
    """A counter that started near zero is extrapolated back at most to its zero."""
    times, values = [10.0, 20.0, 30.0], [1.0, 11.0, 21.0]
    # Zero is 1 s before the first sample, closer than the 10 s to the range start.
    assert increase(times, values, 30.0, at=30.0) == pytest.approx(20 * 21 / 20)


def test_rate_with_too_few_samples_gaps_nan_and_inf_never_raises() -> None:
    """Fewer than two samples give NaN; NaN samples are gaps; Inf gives Inf or NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(rate([1.0], [1.0], 10.0))
        assert math.isnan(rate([], [], 10.0))
        assert rate([1.0, 2.0, 3.0], [1.0, math.nan, 3.0], 2.5, at=3.0) == pytest.approx(
            increase([1.0, 3.0], [1.0, 3.0], 2.5, at=3.0) / 2.5
        )
        assert not math.isfinite(rate([1.0, 2.0], [1.0, math.inf], 10.0))
    with pytest.raises(ValueError, match="range"):
        rate([1.0, 2.0], [1.0, 2.0], 0)


def test_window_rate_is_vectorised_and_handles_a_reset_and_a_gap() -> None:
    """Window.rate evaluates every series at its target's newest time."""
    window = Window(points=10)
    for i in range(6):
        series = {'{a="1"}': 10.0 * i, '{a="2"}': 5.0 * i if i != 3 else 1.0}
        data = {T: {"c_total": series}} if i != 4 else {T: {"up": {"{}": 0.0}}}
        window.add(data, time=float(i))
    rates = window.rate("c_total", 5.0).to_dict()
    t = [0.0, 1.0, 2.0, 3.0, 5.0]
    assert rates[(T, '{a="1"}')] == pytest.approx(rate(t, [0, 10, 20, 30, 50], 5.0, at=5.0))
    assert rates[(T, '{a="2"}')] == pytest.approx(rate(t, [0, 5, 10, 1, 25], 5.0, at=5.0))
    rates_a = window.increase("c_total", 5.0, target=T).to_dict()
    assert set(rates_a) == set(rates)


def test_counter_increase_counts_from_zero_after_a_drop() -> None:
    """The one reset rule (Prometheus's): without a drop the difference, after one the new
    value; floats and arrays alike; NaN stays NaN."""
    assert counter_increase(10.0, 14.0) == 4.0
    assert counter_increase(14.0, 3.0) == 3.0
    assert math.isnan(counter_increase(math.nan, 3.0))
    assert math.isnan(counter_increase(3.0, math.nan))
    got = counter_increase(np.array([10.0, 14.0, 5.0]), np.array([14.0, 3.0, 5.0]))
    assert got.tolist() == [4.0, 3.0, 0.0]


def test_interval_rates_and_counter_rates_agree_but_on_the_reset() -> None:
    """The same counter read through a window and sample by sample gives the same rates (after
    a gap, the increase since the last sample before it); across the reset the window gives
    Prometheus's irate (the new value over the interval), CounterRates no rate, and the window
    with ``withhold_resets=True`` no rate either."""
    times = [0.0, 2.0, 4.0, 6.0, 8.0, 11.0, 13.0]
    values = [10.0, 14.0, 15.0, 1.0, 3.0, math.nan, 9.0]  # reset at 6 s, a gap at 11 s
    expected = [math.nan, 2.0, 0.5, 0.5, 1.0, math.nan, 6.0 / 5.0]
    window = Window(points=10)
    for t, v in zip(times, values, strict=True):
        window.add({T: {"c_total": {"{}": v}}} if v == v else {T: {"up": {"{}": 0.0}}}, time=t)
    block = window.interval_rates("c_total")
    streaming = CounterRates()
    sampled = [streaming.update("c", t, v)[0] for t, v in zip(times, values, strict=True)]
    # The window's columns are the cycles; its rates sit at the later sample's place.
    assert block.values[0].tolist() == pytest.approx(expected, nan_ok=True)
    assert sampled == pytest.approx([*expected[:3], math.nan, *expected[4:]], nan_ok=True)
    # Withheld, the window's rates are the streaming ones.
    withheld = window.interval_rates("c_total", withhold_resets=True)
    assert withheld.values[0].tolist() == pytest.approx(sampled, nan_ok=True)


@pytest.mark.parametrize("window", [False, True], ids=["online detector", "window detector"])
def test_a_restart_is_no_alert_for_the_ready_observer(window: bool) -> None:
    """A service restart (its counter back near zero) is no anomaly for DetectorObserver: its
    increase over that interval, by Prometheus's rule, is a dip that would alert. The online
    detector is fed rates by CounterRates; a window detector gets the window's rates with that
    interval withheld (``interval_rates(withhold_resets=True)``), even alerting on one cycle."""
    from deucalion.detectors import DetectorObserver, RobustZScore

    rng = np.random.default_rng(1)
    observer = (
        DetectorObserver(RobustZScore(), {"requests_total"}, for_cycles=1)
        if window
        else DetectorObserver(desired_metrics={"requests_total"})
    )
    total, fired = 1e5, []
    for cycle in range(450):
        step = 150 + rng.normal(0, 10)
        total = step / 10 if cycle == 400 else total + step  # restarted late in the interval
        with handing_data(1000.0 + 15 * cycle, {}):
            fired += [cycle] * len(observer.new_data({T: {"requests_total": {"{}": total}}}).alerts)
    assert fired == []


# -- histogram_quantile ------------------------------------------------------------------------


def test_bucket_quantile_interpolates_within_the_bucket() -> None:
    """The rank falls in a bucket and is interpolated linearly across it."""
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 40.0)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (10 / 20))
    assert bucket_quantile(0.1, buckets) == pytest.approx(0.04)  # from 0 in the first bucket
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * (39.6 - 30) / 10)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [(0.1, 10.0), (1.0, 20.0)], math.nan),  # no +Inf bucket
        (0.5, [(math.inf, 20.0)], math.nan),  # one bucket
        (0.5, [(1.0, 0.0), (math.inf, 0.0)], math.nan),  # no observations
        (-0.1, [(1.0, 1.0), (math.inf, 1.0)], -math.inf),
        (1.1, [(1.0, 1.0), (math.inf, 1.0)], math.inf),
        (math.nan, [(1.0, 1.0), (math.inf, 1.0)], math.nan),
        (0.99, [(1.0, 10.0), (math.inf, 100.0)], 1.0),  # in the +Inf bucket
        (0.5, [(-1.0, 10.0), (math.inf, 20.0)], -1.0),  # lowest bound <= 0
        (0.5, [(math.inf, 20.0), (1.0, 20.0), (0.5, 10.0)], 0.5),  # any order
        (0.75, [(0.5, 10.0), (1.0, 5.0), (math.inf, 20.0)], 1.0 + 0 * 1),  # non-monotonic
        (0.0, [(1.0, 0.0), (2.0, 0.0), (math.inf, 4.0)], math.nan),  # 0/0 as Go divides
    ],
)
def test_bucket_quantile_special_cases_follow_prometheus(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    """Each special case of Prometheus's bucketQuantile answers as Prometheus does."""
    result = bucket_quantile(q, buckets)
    if math.isnan(expected):
        assert math.isnan(result)
    else:
        assert result == expected


def test_non_monotonic_buckets_take_the_count_below_them() -> None:
    """A bucket counting less than the one below is read as counting as much."""
    fixed = bucket_quantile(0.6, [(0.5, 10.0), (1.0, 10.0), (2.0, 20.0), (math.inf, 20.0)])
    assert bucket_quantile(0.6, [(0.5, 10.0), (1.0, 4.0), (2.0, 20.0), (math.inf, 20.0)]) == fixed


def test_window_histogram_quantile_groups_buckets_and_skips_bad_le() -> None:
    """Buckets group by their labels without le; a bad or missing le is left out."""
    window = Window(points=5)
    for i in range(4):
        buckets = {
            '{h="a",le="0.1"}': 10.0 * i,
            '{h="a",le="1"}': 20.0 * i,
            '{h="a",le="+Inf"}': 20.0 * i,
            '{h="a",le="x"}': 99.0,
            '{h="b",le="1"}': 3.0,
            '{h="b"}': 1.0,
        }
        window.add({T: {"lat_bucket": buckets}}, time=float(i))
    now = window.histogram_quantile(0.75, "lat").to_dict()
    assert now[(T, '{h="a"}')] == pytest.approx(0.1 + 0.9 * (45 - 30) / 30)
    assert math.isnan(now[(T, '{h="b"}')])  # no +Inf bucket
    rated = window.histogram_quantile(0.25, "lat_bucket", range_seconds=3.0).to_dict()
    assert rated[(T, '{h="a"}')] == pytest.approx(0.1 * 5 / 10)


def test_a_missing_bucket_in_a_cycle_is_missing_from_the_quantile() -> None:
    """A bucket absent from the newest cycle is not read as zero."""
    window = Window(points=3)
    window.add({T: {"x_bucket": {'{le="1"}': 5.0, '{le="+Inf"}': 10.0}}}, time=0.0)
    window.add({T: {"x_bucket": {'{le="+Inf"}': 10.0}}}, time=1.0)
    assert math.isnan(window.histogram_quantile(0.5, "x").get(T))


# -- optional extras ---------------------------------------------------------------------------


def test_core_observer_and_history_labels_do_not_import_numpy() -> None:
    """Importing deucalion, its observer and the label helpers loads no NumPy or pandas."""
    code = (
        "import sys, deucalion, deucalion.observer, deucalion.history, deucalion.detectors\n"
        "from deucalion.history import series_labels\n"
        "import deucalion.alerting.alerts\n"
        "bad = {'numpy', 'pandas', 'sklearn', 'river'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_numpy_names_the_extra_to_install() -> None:
    """Without NumPy, a Window says to install deucalion[ml]."""
    code = "import sys; sys.modules['numpy'] = None\nfrom deucalion.history import Window\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'deucalion[ml]'" in result.stderr
    assert "deucalion.history" in result.stderr
