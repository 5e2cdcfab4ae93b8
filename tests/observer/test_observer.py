"""MetricsObserver: desired metrics are checked, and families match their samples."""

from __future__ import annotations

import pytest

from deucalion.errors import ConfigError
from deucalion.exposition.naming import family_selects
from deucalion.observer import MetricsObserver, Selection, TargetsData, select_data
from deucalion.targets import Target


class Observer(MetricsObserver):
    def new_data(self, targets_data_dict: TargetsData) -> None:
        return None


def test_a_family_name_matches_its_samples() -> None:
    """Desiring a histogram or counter family gives its _bucket/_sum/_count/_total samples."""
    observer = Observer({"http_request_duration_seconds", "requests", "go_goroutines"})
    for name in (
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count",
        "requests_total",
        "go_goroutines",
    ):
        assert family_selects(observer.desired_metrics, name), name
    for name in ("http_request_duration_seconds_max", "go_goroutines_x", "go_threads"):
        assert not family_selects(observer.desired_metrics, name), name


def test_a_sample_name_matches_only_itself() -> None:
    """Desiring x_bucket does not bring in x_sum."""
    observer = Observer({"latency_bucket"})
    assert family_selects(observer.desired_metrics, "latency_bucket")
    assert not family_selects(observer.desired_metrics, "latency_sum")


def test_a_single_string_is_one_name() -> None:
    """desired_metrics='up' means {'up'}, not {'u', 'p'}."""
    assert Observer("up").desired_metrics == frozenset({"up"})


@pytest.mark.parametrize("desired", [set(), {"not a name"}, {"1abc"}, {3}])
def test_bad_desired_metrics_name_the_observer(desired: set[object]) -> None:
    """Empty or invalid desired metrics are a ConfigError naming the observer class."""
    with pytest.raises(ConfigError, match="Observer"):
        Observer(desired)  # type: ignore[arg-type]


def test_new_data_is_abstract() -> None:
    """A subclass without new_data cannot be instantiated."""

    class Incomplete(MetricsObserver):
        pass

    with pytest.raises(TypeError, match="new_data"):
        Incomplete({"up"})  # type: ignore[abstract]


def test_data_time_answers_only_while_data_is_handed() -> None:
    """data_time() gives the handed data's scrape times inside the call and refuses outside."""
    import pytest

    import deucalion as dc
    from deucalion.observer import handing_data

    with pytest.raises(RuntimeError, match="inside new_data"):
        dc.data_time()
    with handing_data(100.0, {"http://a/metrics": 100.25}):
        assert dc.data_time() == 100.0
        assert dc.data_time("http://a/metrics") == 100.25
        assert dc.data_time("http://unknown/metrics") == 100.0
        assert dict(dc.data_times()) == {"http://a/metrics": 100.25}
    with pytest.raises(RuntimeError):
        dc.data_times()


class _Result:
    """A scrape result as replay might build it: only what selection reads."""

    def __init__(self, url: str, samples: dict[str, dict[str, float]], up: bool = True) -> None:
        self.target = Target(url, {"job": "j"})
        self.samples = samples
        self.up = up

    def with_synthetic(self) -> dict[str, dict[str, float]]:
        return {**self.samples, "up": {"{}": 1.0 if self.up else 0.0}}


def test_selection_keeps_desired_names_families_and_synthetic_up() -> None:
    """A family name selects its samples, other names are left out, up is added when desired."""
    results = [
        _Result(
            "http://a/metrics",
            {"x_bucket": {'{le="1"}': 1.0}, "x_sum": {"{}": 2.0}, "other": {"{}": 3.0}},
        ),
        _Result("http://b/metrics", {}, up=False),
    ]
    data, targets = select_data({"x", "up"}, results)
    assert data == {
        "http://a/metrics": {
            "x_bucket": {'{le="1"}': 1.0},
            "x_sum": {"{}": 2.0},
            "up": {"{}": 1.0},
        },
        "http://b/metrics": {"up": {"{}": 0.0}},
    }
    assert targets == {r.target.url: r.target for r in results}


def test_a_selection_answers_the_same_every_cycle() -> None:
    """A Selection reused across cycles gives what a fresh one gives: it is a pure function."""
    selection = Selection({"x_total"})
    first = [_Result("http://a/metrics", {"x_total": {"{}": 1.0}, "y": {"{}": 1.0}})]
    second = [_Result("http://a/metrics", {"x_total": {"{}": 2.0}, "x": {"{}": 5.0}})]
    assert selection(first).data == select_data({"x_total"}, first).data
    assert selection(second).data == {"http://a/metrics": {"x_total": {"{}": 2.0}}}
