"""`AnomalyDetector(kinds=...)`, chosen as a new user would, and refused as they would misspell
it, with the detector's other options and `score_series`' inputs as such a user gets them
wrong: a walk of issue 26's detector from README alone, with data of its own."""

from __future__ import annotations

import numpy as np
import pytest

from deucalion.detectors import AnomalyDetector
from deucalion.detectors.anomaly import KINDS
from deucalion.errors import UsageError


def test_one_kind_given_by_name_alone_is_that_kind() -> None:
    """`kinds="stuck"` was iterated as the letters s, t, u, c, k and refused as
    `kinds=['s', 't', 'u', 'c', 'k']`, which named nothing the user wrote."""
    assert AnomalyDetector(kinds="stuck").kinds == ("stuck",)


def test_no_kinds_given_as_none_is_every_kind() -> None:
    """`kinds=None` (a config's or a wrapper's "not set") raised Python's own `TypeError:
    'NoneType' object is not iterable`, naming neither the argument nor what to give."""
    assert AnomalyDetector(kinds=None).kinds == KINDS


@pytest.mark.parametrize(
    ("kinds", "named", "hint"),
    [
        (["spike", "levelshift"], "'levelshift'", "did you mean 'level_shift'"),
        (["spikes"], "'spikes'", "did you mean 'spike'"),
        (("flat",), "'flat'", "stuck"),
    ],
)
def test_a_misspelt_kind_is_named_with_the_closest_kind(
    kinds: list[str], named: str, hint: str
) -> None:
    """A misspelt kind among several was refused with the whole list and every kind, leaving
    the user to find which one was wrong; the message names it and the closest kind."""
    with pytest.raises(UsageError, match=f"{named} is no kind") as caught:
        AnomalyDetector(kinds=kinds)
    assert hint in str(caught.value)


def test_no_kind_at_all_says_to_give_one_or_leave_kinds_out() -> None:
    with pytest.raises(UsageError, match=r"selects no component.*leave kinds out"):
        AnomalyDetector(kinds=[])


def test_a_kind_given_as_a_number_is_refused_naming_it() -> None:
    with pytest.raises(UsageError, match="3 is no kind"):
        AnomalyDetector(kinds=3)  # type: ignore[arg-type]


def test_the_kinds_chosen_are_the_only_ones_that_alert() -> None:
    """A series frozen after 1,500 points of noise and, on another, a spike: with
    `kinds="spike"` only the spike alerts, with `kinds=["stuck"]` only the freeze."""
    rng = np.random.default_rng(2611)
    frozen = rng.normal(50.0, 2.0, 2000)
    frozen[1500:] = frozen[1499]
    spiky = rng.normal(50.0, 2.0, 2000)
    spiky[1700] += 40.0
    for kinds, expected in (("spike", {"spiky"}), (["stuck"], {"frozen"})):
        detector = AnomalyDetector(kinds=kinds)
        named = set()
        for i in range(2000):
            detector.update({"frozen": (60.0 * i, frozen[i]), "spiky": (60.0 * i, spiky[i])})
            named |= {(why.series, why.kind) for why in detector.alerts() if i >= 1500}
        assert {series for series, _ in named} == expected, (kinds, named)
        assert {kind for _, kind in named} <= set(detector.kinds)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"warmup": "30"}, "warmup='30' is not a number"),
        ({"quiet_for": None}, "quiet_for=None is not a number"),
        ({"fast": "0.2"}, "fast='0.2' is not a number"),
        ({"slow": [0.01]}, r"slow=\[0.01\] is not a number"),
    ],
)
def test_an_option_given_as_no_number_is_named(options: dict[str, object], named: str) -> None:
    """`AnomalyDetector(warmup="30")` (read from a text config) raised Python's "'<' not
    supported between instances of 'str' and 'int'", naming neither the option nor a fix."""
    with pytest.raises(UsageError, match=named):
        AnomalyDetector(**options)  # type: ignore[arg-type]


def test_a_budget_beside_budget_per_day_is_refused_saying_which_to_give() -> None:
    """`budget_per_day(2, interval=15, budget=3)` raised Python's "got multiple values for
    argument 'budget'", which does not say that the budget is what the two others make."""
    with pytest.raises(UsageError, match="budget=3 too: the budget is what alerts_per_day"):
        AnomalyDetector.budget_per_day(2, interval=15, budget=3)
    assert AnomalyDetector.budget_per_day(2, interval=15, kinds="spike").kinds == ("spike",)


def test_score_series_given_no_series_or_a_mapping_says_what_to_give() -> None:
    """`score_series(None)` returned `array([nan])`, one point without a value, without a
    word; a `{time: value}` dict was read as its keys and refused as "the value 'a' (at 0) is
    not a number", which names neither the mapping nor how to give one."""
    detector = AnomalyDetector()
    with pytest.raises(UsageError, match="values=None: give the series"):
        detector.score_series(None)
    with pytest.raises(UsageError, match=r"a mapping is not a series: give pandas.Series"):
        detector.score_series({"2026-01-01T00:00:00Z": 1.0, "2026-01-01T00:01:00Z": 2.0})
