"""Every error deucalion raises on purpose is a DeucalionError (README's "Errors"), bad
arguments to its Python API included, and still the built-in exception it used to be, so
``except ValueError`` keeps working."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import deucalion as dc
from deucalion.detectors import (
    AlertPolicy,
    AnomalyDetector,
    DetectorObserver,
    RobustZScore,
    SklearnDetector,
)


def _raised(builtin: type[BaseException], call: Callable[[], Any]) -> BaseException:
    """What ``call`` raised: a ``builtin`` (as before) that is a DeucalionError too."""
    with pytest.raises(builtin) as info:
        call()
    assert isinstance(info.value, dc.DeucalionError), type(info.value).__mro__
    return info.value


def _fed() -> AnomalyDetector:
    detector = AnomalyDetector()
    detector.update({"cpu": (1_700_000_000.0, 0.5)})
    return detector


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: AnomalyDetector(budget=0), id="budget"),
        pytest.param(lambda: AnomalyDetector(kinds=["spikes"]), id="kinds"),
        pytest.param(lambda: AnomalyDetector(timezone="Mars/Olympus_Mons"), id="timezone"),
        pytest.param(lambda: AnomalyDetector(slow=0.5, fast=0.1), id="rates"),
        pytest.param(lambda: AnomalyDetector().update(np.zeros((3, 4))), id="table-to-update"),
        pytest.param(
            lambda: AnomalyDetector().score_series(np.zeros((3, 4))), id="table-to-score_series"
        ),
        pytest.param(
            lambda: AnomalyDetector().score_series([1.0, 2.0, 3.0], times=[1.0, 2.0]),
            id="values-and-times-of-two-lengths",
        ),
        pytest.param(
            lambda: AnomalyDetector().score_series([1.0, 2.0, 3.0], times=[3.0, 2.0, 1.0]),
            id="unsorted-times",
        ),
        pytest.param(lambda: AnomalyDetector().score_series(["1", "2"]), id="text-for-numbers"),
        pytest.param(lambda: AnomalyDetector().update({"cpu": ("yesterday", 1.0)}), id="bad-time"),
        pytest.param(
            lambda: AnomalyDetector.budget_per_day(2, interval="fortnightly"),
            id="budget_per_day-interval",
        ),
        pytest.param(lambda: AnomalyDetector.budget_per_day(2, interval=0), id="interval-0"),
        pytest.param(lambda: AnomalyDetector.budget_per_day(0, interval=15), id="per-day-0"),
        pytest.param(lambda: RobustZScore(window=1), id="RobustZScore-window"),
        pytest.param(lambda: AlertPolicy(threshold=6.0, for_cycles=0), id="AlertPolicy"),
        pytest.param(
            lambda: DetectorObserver(AnomalyDetector(), {"cpu"}, forget_after=0),
            id="DetectorObserver-forget_after",
        ),
    ],
)
def test_a_bad_value_given_to_a_detector_is_a_deucalion_error_and_a_value_error(
    call: Callable[[], Any],
) -> None:
    _raised(ValueError, call)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: DetectorObserver(object(), {"cpu"}), id="DetectorObserver"),
        pytest.param(lambda: SklearnDetector(object()), id="SklearnDetector"),
    ],
)
def test_an_argument_of_the_wrong_type_is_a_deucalion_error_and_a_type_error(
    call: Callable[[], Any],
) -> None:
    _raised(TypeError, call)


def test_explaining_an_unknown_series_is_a_deucalion_error_and_a_key_error() -> None:
    """A KeyError quotes its message; this one reads as written."""
    detector = _fed()
    error = _raised(KeyError, lambda: detector.explain("cpux"))
    assert str(error).startswith("AnomalyDetector holds no series 'cpux'"), str(error)
    _raised(KeyError, lambda: detector.row_of(7))


def test_bad_values_to_the_history_observer_and_exposition_apis_are_deucalion_errors() -> None:
    from deucalion.exposition import ExpositionParser
    from deucalion.history import Window, rate, series_key, series_labels
    from deucalion.replay.nab import LabelledSeries
    from deucalion.targets.file_sd import parse_file_sd
    from deucalion.targets.sharding import hashmod

    _raised(ValueError, lambda: series_labels("cpu"))
    _raised(ValueError, lambda: series_key({"1cpu": "0"}))
    _raised(ValueError, lambda: Window())
    _raised(ValueError, lambda: Window(points=4).add({"t": {}}, time={}))
    _raised(ValueError, lambda: rate([1.0, 2.0], [1.0, 2.0], range_seconds=0))
    _raised(ValueError, lambda: dc.data_at(1_700_000_000.0, {"http://t/": "soon"}).__enter__())
    _raised(ValueError, lambda: ExpositionParser(metrics=["cpu seconds"]))
    _raised(ValueError, lambda: LabelledSeries("a.csv", [1.0, 2.0], [0.5]))
    _raised(ValueError, lambda: parse_file_sd("{}"))
    _raised(ValueError, lambda: hashmod("x", 0))


def test_what_only_new_data_knows_asked_elsewhere_is_a_deucalion_error_and_a_runtime_error() -> (
    None
):
    from deucalion.history import Window

    _raised(RuntimeError, dc.data_time)
    _raised(RuntimeError, dc.data_times)
    _raised(RuntimeError, lambda: Window(points=4).add({"http://t/": {}}))


def test_the_classes_are_the_builtins_they_replace() -> None:
    from deucalion.errors import OutsideNewDataError, UnknownSeriesError, UsageError, UsageTypeError

    for cls, builtin in (
        (UsageError, ValueError),
        (UsageTypeError, TypeError),
        (UnknownSeriesError, KeyError),
        (OutsideNewDataError, RuntimeError),
    ):
        assert issubclass(cls, dc.DeucalionError) and issubclass(cls, builtin)
    assert str(UnknownSeriesError("no series 'x'")) == "no series 'x'"
    assert str(UsageError("budget=0: give more")) == "budget=0: give more"
