"""What ``update`` and ``score_series`` make of the inputs a user hands them: times of every
kind README names, and inputs they cannot use (said in one line, not in NumPy's words)."""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deucalion import detectors
from deucalion.detectors import (
    AlertPolicy,
    AnomalyDetector,
    DetectorObserver,
    RangeDetector,
    RangeObserver,
    RobustZScore,
    Threshold,
)
from deucalion.detectors.anomaly import KINDS
from deucalion.errors import UsageTypeError

START = 1767225600.0  # 2026-01-01T00:00:00Z
_NS = "datetime64[ns]"

# Two rows, at START and START + 1 s, in every form README's "(the time in seconds, or a
# datetime, pandas Timestamp or ISO 8601 string)" covers, arrays of NumPy's and pandas' units.
ARRAY_TIMES: dict[str, Any] = {
    "seconds": np.array([START, START + 1]),
    "pandas zoned index": pd.date_range("2026-01-01", periods=2, freq="1s", tz="UTC"),
    "pandas naive index": pd.date_range("2026-01-01", periods=2, freq="1s"),
    "pandas index in Paris": pd.date_range(
        "2026-01-01 01:00", periods=2, freq="1s", tz="Europe/Paris"
    ),
    "pandas Series": pd.Series(pd.date_range("2026-01-01", periods=2, freq="1s", tz="UTC")),
    "datetime64[ns]": np.array(["2026-01-01T00:00:00", "2026-01-01T00:00:01"], dtype=_NS),
    "datetime64[ms]": np.array(["2026-01-01T00:00:00", "2026-01-01T00:00:01"], "datetime64[ms]"),
    "datetime64[s]": np.array(["2026-01-01T00:00:00", "2026-01-01T00:00:01"], "datetime64[s]"),
    "Timestamps": [pd.Timestamp("2026-01-01T00:00:00Z"), pd.Timestamp("2026-01-01T00:00:01Z")],
    "datetimes": [dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.UTC)],
    "ISO 8601": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01+00:00"],
}


@pytest.mark.parametrize("form", list(ARRAY_TIMES))
def test_update_reads_array_times_of_every_kind_as_seconds(form: str) -> None:
    """`update(values, times=index)` read a pandas index as its microseconds (10^6 too
    large), NumPy's datetime64[ns] as nanoseconds: every value was timed in the year 58,000,
    silently. Each form is the same two times in seconds."""
    detector = AnomalyDetector()
    detector.update(np.array([1.0, 2.0]), times=ARRAY_TIMES[form])
    assert [detector.explain(row).time for row in (0, 1)] == [START, START + 1]


@pytest.mark.parametrize(
    "when",
    [
        pd.Timestamp("2026-01-01T00:00:00Z"),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        np.datetime64("2026-01-01T00:00:00", "ns"),
        "2026-01-01T00:00:00Z",
        START,
        pd.date_range("2026-01-01", periods=2, tz="UTC")[[0]],
    ],
    ids=["Timestamp", "datetime", "datetime64", "ISO", "seconds", "index of one"],
)
def test_one_time_for_an_array_update_times_every_row(when: Any) -> None:
    """A scalar time (or one of one) given for an array update applies to every row."""
    detector = RangeDetector()
    detector.update(np.array([1.0, 2.0, 3.0]), times=when)
    assert [detector.explain(row).time for row in range(3)] == [START] * 3


def test_the_dict_form_reads_numpy_datetimes_as_seconds() -> None:
    """`{"a": (np.datetime64(..., "ns"), v)}` went through NumPy's float conversion: its
    nanoseconds were the time."""
    detector = AnomalyDetector()
    detector.update({"a": (np.datetime64("2026-01-01T00:00:00", "ns"), 1.0)})
    detector.update({"a": (np.datetime64("2026-01-01T00:00:01", "ms"), 1.0), "b": (START, 2.0)})
    assert detector.explain("a").time == START + 1
    assert detector.explain("b").time == START


@pytest.mark.parametrize("when", ["yesterday", object(), ["noon"]])
def test_an_unreadable_time_is_one_line_naming_the_forms_read(when: Any) -> None:
    detector = AnomalyDetector()
    with pytest.raises(ValueError, match=r"Unix seconds .* datetime .* ISO 8601") as info:
        detector.update(np.array([1.0]), times=when)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"Unix seconds .* datetime .* ISO 8601"):
        detector.update({"a": (when, 1.0)})
    assert detector.n_series_ == 0 and not detector.__dict__.get("rows_")


# --- arrays that do not fit -------------------------------------------------------------------


def test_times_of_another_length_than_the_values_are_named() -> None:
    """NumPy's "operands could not be broadcast together with remapped shapes" said nothing
    of which argument was wrong."""
    detector = AnomalyDetector()
    with pytest.raises(ValueError, match=r"update: 3 values but 2 times: give one per value"):
        detector.update(np.ones(3), times=np.ones(2))
    with pytest.raises(ValueError, match=r"3 values but 2 resolutions"):
        detector.update(np.ones(3), np.ones(2), times=1.0)
    assert detector.n_series_ == 0  # refused before anything was taken in


def test_a_table_of_values_is_refused_not_flattened() -> None:
    """`update(np.ones((3, 2)))` made six series of a 3 x 2 table."""
    with pytest.raises(ValueError, match=r"one value per series.*shape \(3, 2\)"):
        AnomalyDetector().update(np.ones((3, 2)), times=np.ones(3))


def test_a_shorter_array_update_gives_the_rows_past_it_no_value() -> None:
    """The walk's "changing row count": 3 rows, then 2 values with their 2 times raised
    NumPy's broadcast error; README's rows are fixed and a longer array adds series, so a
    shorter one leaves the last rows without a value this cycle."""
    detector = AnomalyDetector()
    detector.update(np.ones(3), times=np.zeros(3))
    scores = detector.update(np.ones(2), times=np.ones(2))
    assert scores.shape == (3,) and math.isnan(scores[2]) and not np.isnan(scores[:2]).any()
    assert detector.explain(2).time == 0.0  # row 2 kept its last time


def test_score_series_names_a_value_that_is_no_number() -> None:
    with pytest.raises(ValueError, match=r"score_series: the value 'x' \(at 1\) is not a number"):
        AnomalyDetector().score_series(["1", "x"])
    with pytest.raises(ValueError, match=r"update: the value 'x' \(at 0\) is not a number"):
        AnomalyDetector().update(["x"])


@pytest.mark.parametrize("text", [["1", "2"], np.array(["1.5", "2"]), "12", [b"1", b"2"]])
def test_score_series_refuses_numbers_written_as_text(text: Any) -> None:
    """NumPy reads "1" as 1.0: text scored as numbers (all 0 while the detector warms up)
    would hide that it was never parsed. One line naming the value and what to give."""
    with pytest.raises(
        ValueError,
        match=r"score_series: the value .*1.* \(at 0\) is text, not a "
        r"number: give numbers \(float\(x\) of each, or pandas.to_numeric",
    ):
        AnomalyDetector().score_series(text)


@pytest.mark.parametrize(
    ("times", "said"),
    [([0.0, 2.0, 1.0, 3.0], "comes before"), ([0.0, 1.0, 1.0, 2.0], "repeats")],
    ids=["unsorted", "duplicate"],
)
def test_score_series_refuses_times_out_of_order_saying_to_sort_them(
    times: list[float], said: str
) -> None:
    """Unsorted times were scored in the order given, a shuffled series' scores."""
    with pytest.raises(ValueError, match=f"not increasing.*{said}.*sort_index") as info:
        AnomalyDetector().score_series(pd.Series([1.0, 2.0, 3.0, 4.0]), times=times)
    assert "\n" not in str(info.value)


# --- times out of order in update ---------------------------------------------------------------


def _noise(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(10.0, 1.0, n)


@pytest.mark.parametrize("late", [100.0, 299.0], ids=["going back", "duplicate"])
def test_update_drops_a_value_not_after_its_series_last_time(
    late: float, caplog: pytest.LogCaptureFixture
) -> None:
    """As Prometheus drops an out-of-order sample: not learned (a duplicate time with 50 was
    learned and scored 445), NaN, a warning naming the series; never raised
    (it would stop a running provisioner's observer)."""
    detector = AnomalyDetector()
    for i, x in enumerate(_noise(300)):
        detector.update({"cpu": (float(i), float(x)), "mem": (float(i), float(x))})
    before = detector.explain("cpu")
    with caplog.at_level(logging.WARNING, logger="deucalion.detectors.base"):
        scores = detector.update({"cpu": (late, 50.0), "mem": (300.0, 10.0)})
        again = detector.update({"cpu": (late, 50.0)})
    assert math.isnan(scores["cpu"]) and not math.isnan(scores["mem"]) and math.isnan(again["cpu"])
    assert detector.explain("cpu").time == before.time == 299.0
    said = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(said) == 1 and "'cpu'" in said[0] and "'mem'" not in said[0]
    assert not math.isnan(detector.update({"cpu": (300.0, 10.0)})["cpu"])  # in order again


def test_a_window_detector_drops_a_late_value_too() -> None:
    detector = RobustZScore()
    for i, x in enumerate(_noise(30)):
        detector.update(np.array([x]), times=float(i))
    assert math.isnan(detector.update(np.array([50.0]), times=5.0)[0])
    assert detector.explain(0).time == 29.0 and detector.explain(0).observed != 50.0


def test_a_series_silenced_by_a_time_in_another_unit_is_said_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One time in milliseconds among seconds makes every later value of its series late:
    the warning comes at the first dropped value and again at the 10th, 100th, ..., naming
    the series each time (said once per detector, a series silenced after another had been
    warned of was never named); an infinite time is none, and silences nothing."""
    detector = AnomalyDetector()
    detector.update({"b": (10.0, 1.0), "a": (1.0, 1.0)})
    with caplog.at_level(logging.WARNING, logger="deucalion.detectors.base"):
        detector.update({"b": (5.0, 1.0)})  # b: one late value, warned
        assert math.isnan(detector.update({"a": (math.inf, 1.0)})["a"])
        assert not math.isnan(detector.update({"a": (2.0, 1.0)})["a"])
        detector.update({"a": (1767225600000.0, 1.0)})  # milliseconds
        for i in range(3, 12):
            detector.update({"a": (1767225600.0 + i, 1.0)})
    said = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(said) == 2 and "'b'" in said[0] and "'a'" in said[1], said
    assert "10 dropped so far" in said[1]


@pytest.mark.parametrize("when", [None, math.nan, np.datetime64("NaT"), pd.NaT])
def test_a_value_without_a_time_is_no_value(when: Any) -> None:
    """A None or NaN time was learned with it: the series' last time became NaN."""
    detector = AnomalyDetector()
    detector.update({"a": (1.0, 1.0)})
    assert math.isnan(detector.update({"a": (when, 1.0)})["a"])
    assert detector.explain("a").time == 1.0
    assert not math.isnan(detector.update({"a": (2.0, 1.0)})["a"])
    as_arrays = AnomalyDetector()  # (one detector takes its series by key or as arrays)
    as_arrays.update(np.array([1.0]), times=[1.0])
    assert math.isnan(as_arrays.update(np.array([2.0]), times=[when])[0])
    assert as_arrays.explain(0).time == 1.0
    assert not math.isnan(as_arrays.update(np.array([1.0]), times=[2.0])[0])


def test_last_times_follow_their_series_when_others_are_forgotten() -> None:
    """A series that takes a forgotten one's row is not judged by that one's time."""
    detector = RangeDetector()
    detector.update({"a": (100.0, 1.0), "b": (5.0, 1.0)})
    detector.forget("a")
    assert not math.isnan(detector.update({"b": (6.0, 1.0)})["b"])
    assert not math.isnan(detector.update({"c": (7.0, 1.0)})["c"])


def test_score_series_on_a_detector_that_holds_series_is_still_a_new_series() -> None:
    detector = AnomalyDetector()
    detector.update({"a": (1e10, 1.0)})
    assert not np.isnan(detector.score_series(_noise(50), times=np.arange(50.0))).any()


# --- explanations -------------------------------------------------------------------------------


def test_threshold_explains_by_its_bounds_not_the_window_range() -> None:
    """`Threshold(above=20)` alerting on 25 said "expected 1.0 .. 3.0", the range of its
    window; its band is its bounds, open on the side without one."""
    above = Threshold(above=20)
    both = Threshold(above=20, below=5)
    for i, x in enumerate([1.0, 2.0, 3.0, 25.0]):
        above.update({"g": (float(i), x)})
        both.update({"g": (float(i), x)})
    (why,) = above.alerts()
    assert (why.expected_low, why.expected_high, why.observed, why.time) == (-math.inf, 20, 25, 3)
    assert (both.explain("g").expected_low, both.explain("g").expected_high) == (5, 20)


def test_range_detector_explains_with_the_time_of_the_value() -> None:
    """`RangeDetector`'s explanations had `time` NaN always."""
    detector = RangeDetector(window=10, warmup=5)
    for i, x in enumerate(_noise(20)):
        detector.update({"g": (100.0 + i, float(x))})
    detector.update({"g": (200.0, 1000.0)})
    (why,) = detector.alerts()
    assert why.time == 200.0 and detector.explain("g").time == 200.0


def test_a_checkpoint_from_before_late_values_were_dropped_still_drops_them() -> None:
    """A detector restored from a checkpoint without the last times takes them from what each
    series saw last: its first update's late values are dropped too, not learned."""
    detector = AnomalyDetector()
    for i, x in enumerate(_noise(50)):
        detector.update({"cpu": (float(i), float(x))})
    state = dict(detector.__dict__)
    del state["_last_times"]
    restored = AnomalyDetector.__new__(AnomalyDetector)
    restored.__setstate__(state)
    assert math.isnan(restored.update({"cpu": (10.0, 50.0)})["cpu"])
    assert not math.isnan(restored.update({"cpu": (50.0, 10.0)})["cpu"])


# --- README's Errors: a bad argument is a ValueError or TypeError saying what to give ----------


def test_detector_observers_bad_arguments_are_a_type_or_value_error() -> None:
    """README: a bad argument to the Python API is a `UsageError` or `UsageTypeError`, also
    the ValueError or TypeError it replaces. Metric names where the detector goes, or no
    metrics, were a `ConfigError`, neither."""
    with pytest.raises(TypeError, match=r"detector.*DetectorObserver\(desired_metrics=\{'x'\}\)"):
        DetectorObserver({"x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"desires no metrics.*DetectorObserver\(desired_metr"):
        DetectorObserver(desired_metrics=set())


def test_updating_one_detector_by_key_and_as_arrays_is_refused_not_aliased() -> None:
    """`update({"cpu": ...})` then `update(np.array([5.0, 6.0]))` updated "cpu" with 5.0 (the
    first key is row 0), silently; the other way round, a key took over row 0's series."""
    by_key = AnomalyDetector()
    by_key.update({"cpu": (0.0, 1.0)})
    with pytest.raises(ValueError, match=r"given by key, such as 'cpu': give .* by key again"):
        by_key.update(np.array([5.0, 6.0]), times=60.0)
    assert by_key.explain("cpu").observed == 1.0 and by_key.n_series_ == 1  # as it was
    as_arrays = AnomalyDetector()
    as_arrays.update(np.array([5.0, 6.0]), times=0.0)
    with pytest.raises(ValueError, match=r"2 series given as arrays.* as an array again"):
        as_arrays.update({"cpu": (60.0, 1.0)})
    assert as_arrays.n_series_ == 2 and not as_arrays.__dict__.get("rows_")
    assert not np.isnan(as_arrays.update(np.array([5.0, 6.0]), times=60.0)).any()


def test_update_of_none_and_a_bool_budget_are_refused() -> None:
    """`update(None)` returned NaN for every series, and `AnomalyDetector(budget=True)` was a
    budget of 1 (True is the int 1): both silently."""
    with pytest.raises(ValueError, match=r"update: values=None: give this cycle's values"):
        AnomalyDetector().update(None)
    for flag in (True, False):
        with pytest.raises(ValueError, match=r"budget=(True|False): a bool is not a budget"):
            AnomalyDetector(budget=flag)
    with pytest.raises(ValueError, match=r"a bool is not a budget"):
        DetectorObserver(desired_metrics={"x"}, budget=True)


@pytest.mark.parametrize("interval", [-15, -15.0, "-15", math.inf, 0])
def test_budget_per_day_says_what_interval_to_give(interval: object) -> None:
    """`budget_per_day(2, interval=-15)` said only "a duration cannot be negative: -15"."""
    with pytest.raises(
        ValueError,
        match=r"interval=.*[:;] give the scrape interval, a positive duration such as 15s",
    ):
        AnomalyDetector.budget_per_day(2, interval=interval)  # type: ignore[arg-type]


def test_explain_of_a_series_not_scored_yet_says_so() -> None:
    """`explain` of a series in its warm-up named it a `spike`, band -inf .. inf, score 0:
    README's 0 in warm-up means "not scored yet", and so does its explanation now."""
    detector = AnomalyDetector()
    values = _noise(40)
    for i, x in enumerate(values[:10]):
        detector.update({"cpu": (float(i), float(x))})
    why = detector.explain("cpu")
    assert (why.kind, why.score, why.observed, why.time) == ("not_scored_yet", 0.0, values[9], 9)
    assert math.isnan(why.expected_low) and math.isnan(why.expected_high)
    for i, x in enumerate(values[10:], start=10):
        detector.update({"cpu": (float(i), float(x))})
    scored = detector.explain("cpu")  # its 40th value, scored from its 32nd
    assert scored.kind in KINDS and scored.expected_low < scored.observed < scored.expected_high


def test_a_numpy_number_is_a_budget() -> None:
    """A budget computed with NumPy (np.int64, np.float32) is a number like any other: it was
    refused as "not a number above 0"."""
    for budget in (np.int64(2), np.float32(2.0), np.float64(2.0)):
        assert AnomalyDetector(budget=budget).threshold == pytest.approx(math.log10(5_000))


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda: RangeObserver({"up"}, windw=100), "RangeObserver() takes no keyword 'windw'; "),
        (lambda: DetectorObserver(None, {"up"}, budgt=1), "DetectorObserver() takes no keyword"),
        (lambda: AnomalyDetector(budgt=1), "AnomalyDetector() takes no keyword 'budgt'; "),
        (lambda: RangeDetector(windw=3), "RangeDetector() takes no keyword 'windw'; "),
        (lambda: AlertPolicy(6.0, for_cycle=2), "AlertPolicy() takes no keyword 'for_cycle'; "),
    ],
    ids=["RangeObserver", "DetectorObserver", "AnomalyDetector", "RangeDetector", "AlertPolicy"],
)
def test_a_misspelt_keyword_is_named_with_the_one_meant(call: Any, said: str) -> None:
    """`RangeObserver({...}, windw=100)` raised Python's "RangeDetector.__init__() got an
    unexpected keyword argument 'windw'": a class the user never called, and no word of
    `window`. A UsageTypeError (still a TypeError) names the class and the keyword meant."""
    with pytest.raises(UsageTypeError) as info:
        call()
    meant = {"windw": "window", "budgt": "budget", "for_cycle": "for_cycles"}
    wrong = next(key for key in meant if repr(key) in str(info.value))
    assert said in str(info.value)
    assert f"did you mean {meant[wrong]!r}?" in str(info.value)


@pytest.mark.parametrize(
    "name", [n for n in detectors.__all__ if n not in ("Detector", "Explanation")]
)
def test_every_constructor_of_the_detectors_refuses_an_unknown_keyword_by_name(name: str) -> None:
    """Each public class of deucalion.detectors (a new one too) says which keyword it does not
    take, before it reads its other arguments."""
    with pytest.raises(UsageTypeError, match=rf"^{name}\(\) takes no keyword 'nonsense'"):
        getattr(detectors, name)(nonsense=1)


def test_a_detector_of_ones_own_names_its_class_and_keywords() -> None:
    """A subclass's constructor is checked too, in its own name and with its own keywords;
    one that takes any keyword (``**options``) is left to do what it does with them."""

    class Wide(RobustZScore):
        def __init__(self, *, width: int = 3) -> None:
            super().__init__(window=width)

    class Same(Threshold):
        pass

    class Open(RobustZScore):
        def __init__(self, **options: Any) -> None:
            self.options = options
            super().__init__()

    with pytest.raises(
        UsageTypeError, match=r"Wide\(\) takes no keyword 'widht'; did you mean 'width'"
    ):
        Wide(widht=5)
    with pytest.raises(
        UsageTypeError, match=r"Same\(\) takes no keyword 'abov'; did you mean 'above'"
    ):
        Same(abov=1.0)
    assert Open(anything=1).options == {"anything": 1}
    assert Wide(width=5).window == 5
