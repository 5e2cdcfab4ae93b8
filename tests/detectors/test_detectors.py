"""deucalion.detectors: scores per series, the ready observer, and the ML adapters."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import deucalion as dc
from deucalion.alerting.alerts import Scores, interpret_result
from deucalion.detectors import (
    AlertPolicy,
    Detector,
    DetectorObserver,
    EWMAZScore,
    RiverDetector,
    RobustZScore,
    SeasonalBaseline,
    SklearnDetector,
    Threshold,
)
from deucalion.detectors.base import row_medians
from deucalion.history import Block
from deucalion.observer import handing_data

T = "http://target:9100/metrics"


def block_of(rows: list[list[float]], metric: str = "m", step: float = 1.0) -> Block:
    values = np.array(rows, dtype=np.float64)
    times = np.tile(np.arange(values.shape[1], dtype=np.float64) * step, (len(rows), 1))
    times[np.isnan(values)] = np.nan
    return Block(metric, [(T, f'{{i="{i}"}}') for i in range(len(rows))], times, values)


def test_row_medians_match_numpy_with_and_without_gaps() -> None:
    """The vectorised median equals np.nanmedian, rows with gaps and empty rows included."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(50, 31))
    values[rng.random(values.shape) < 0.1] = np.nan
    values[7] = np.nan
    expected = np.full(50, np.nan)
    filled = ~np.isnan(values).all(axis=1)
    expected[filled] = np.nanmedian(values[filled], axis=1)
    np.testing.assert_allclose(row_medians(values.copy()), expected, equal_nan=True)
    even = values[:, :30].copy()
    expected_even = np.full(50, np.nan)
    some = ~np.isnan(even).all(axis=1)
    expected_even[some] = np.nanmedian(even[some], axis=1)
    np.testing.assert_allclose(row_medians(even, overwrite=True), expected_even, equal_nan=True)


def test_robust_z_score_flags_a_spike_and_not_noise() -> None:
    """A spike of 20 sigma scores about 20; ordinary noise scores a few at most."""
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 1.0, (200, 120))
    values[0, -1] = 30.0
    scores = RobustZScore().score(block_of(values.tolist()))
    assert scores[0] > 12
    assert np.nanmax(scores[1:]) < 6


def test_a_counter_moving_in_tiny_steps_does_not_score_hundreds() -> None:
    """The demo's bug: rates quantised to 0.01 with MAD 0 gave z of 250-1100."""
    idle = [0.0, 0.01, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.02, 0.0, 0.0, 0.0] * 5
    for detector in (RobustZScore(), EWMAZScore()):
        assert detector.score_series([*idle, 0.02]) < 3, detector
        assert detector.score_series([*idle, 1.0]) > 50, detector  # a CPU burn


def test_a_series_that_never_moved_borrows_its_metrics_step() -> None:
    """The first tick of a still series is judged by the step of its metric's other series."""
    still = [0.0] * 40
    moving = [0.0, 0.01, 0.02, 0.01] * 10
    scores = RobustZScore().score(block_of([[*still, 0.01], [*moving, 0.01]]))
    assert scores[0] < 3


def test_detectors_give_nan_for_gaps_and_short_series_and_never_warn() -> None:
    """No newest point, too few points, NaN and Inf: NaN or inf, no exception, no warning."""
    rows = [
        [math.nan] * 15 + [1.0] * 5 + [2.0],  # too few points
        [1.0, 2.0] * 10 + [math.nan],  # no newest point (a gap)
        [1.0, math.nan, 2.0, 2.0] * 5 + [1.5],  # gaps in the history
        [1.0, 2.0] * 10 + [math.inf],  # an infinite value
        [math.nan] * 21,
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for detector in (
            RobustZScore(),
            EWMAZScore(),
            SeasonalBaseline(period=5.0),
            Threshold(above=1.0),
        ):
            scores = detector.score(block_of(rows))
            assert math.isnan(scores[1]) and math.isnan(scores[4]), detector
        robust = RobustZScore().score(block_of(rows))
        assert math.isnan(robust[0]) and robust[2] < 3 and robust[3] == math.inf


def test_ewma_follows_a_drift_the_robust_median_lags_behind() -> None:
    """A slow ramp: EWMA's mean keeps up, so its score for the next step stays small."""
    ramp = [float(i) for i in range(100)]
    assert EWMAZScore(alpha=0.3).score_series(ramp) < RobustZScore().score_series(ramp)


def test_seasonal_baseline_compares_with_the_same_time_a_period_ago() -> None:
    """A daily shape is normal; a value unlike yesterday's at that hour is not."""
    period = 24.0
    t = np.arange(0, 3 * period)
    shape = 10 + 5 * np.sin(2 * np.pi * t / period)
    detector = SeasonalBaseline(period=period, tolerance=0.5)
    assert detector.score_series(shape.tolist(), t.tolist()) < 3
    odd = shape.copy()
    odd[-1] += 10  # twice the amplitude, where yesterday was near its middle
    assert detector.score_series(odd.tolist(), t.tolist()) > 6
    assert math.isnan(detector.score_series(shape[:20].tolist(), t[:20].tolist()))


def test_threshold_scores_the_excess_beyond_its_bounds() -> None:
    """0 inside the bounds, the distance outside."""
    detector = Threshold(above=10.0, below=2.0)
    assert detector.score(block_of([[5.0], [12.5], [1.0]])).tolist() == [0.0, 2.5, 1.0]
    with pytest.raises(ValueError, match="above"):
        Threshold()


def test_the_alert_policy_waits_for_n_cycles_and_resolves_at_once() -> None:
    """A score must stay past the threshold for_cycles times in a row to alert."""
    from deucalion.alerting.alerts import SeriesScore

    policy = AlertPolicy(5.0, for_cycles=3)
    high = [SeriesScore(T, "m", '{a="1"}', 9.0), SeriesScore(T, "m", '{a="2"}', 9.0)]
    assert policy.evaluate(high).alerts == ()
    assert policy.evaluate(high[:1]).alerts == ()  # a="2" dropped: its count restarts
    alerts = policy.evaluate(high).alerts
    assert [a.labels["series"] for a in alerts] == ['{a="1"}']
    assert alerts[0].labels["metric"] == "m" and alerts[0].target == T
    assert policy.evaluate([SeriesScore(T, "m", '{a="1"}', 1.0)]).alerts == ()


def test_detector_observer_scores_rates_of_counters_and_exports_every_score() -> None:
    """A counter is scored as its rate; every score is exported, only held ones alert."""
    observer = DetectorObserver(RobustZScore(), {"c_total", "g"}, for_cycles=2, points=40)
    results = []
    rng = np.random.default_rng(5)
    counter = 0.0
    for i in range(40):
        # The counter's rate, about 1/s, jumps to 50/s for the last 3 cycles.
        counter += (50.0 if i >= 37 else 1.0) + rng.uniform(0, 0.2)
        data = {T: {"c_total": {"{}": counter}, "g": {'{x="1"}': 5.0 + (i % 3) * 0.1}}}
        with handing_data(float(i), {T: float(i)}):
            results.append(observer.new_data(data))
    last = results[-1]
    assert isinstance(last, Scores)
    by_metric = {s.metric: s.score for s in last.scores}
    assert by_metric["c_total"] > 6 and by_metric["g"] < 3
    assert [a.labels["metric"] for a in last.alerts] == ["c_total"]
    assert [a.labels["metric"] for a in results[-3].alerts] == []
    interpretation = interpret_result(last, {T: {}})
    assert len(interpretation.series_scores) == 2 and len(interpretation.alerts) == 1


def test_a_detector_observer_needs_a_detector() -> None:
    """Passing an estimator directly says which adapter to wrap it in."""
    from sklearn.ensemble import IsolationForest

    with pytest.raises(TypeError, match="SklearnDetector"):
        DetectorObserver(IsolationForest(), {"m"})  # type: ignore[arg-type]


# -- adapters: a dozen lines each, as a user writes them -------------------------------------


def feed(
    observer: dc.MetricsObserver, cycles: int, spike_from: int, blips_every: int = 0
) -> list[Scores]:
    """A latency about 100 (with a one-cycle blip of +30 every ``blips_every`` cycles), +40
    from cycle ``spike_from`` on."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(cycles):
        blip = 30.0 if blips_every and i % blips_every == 7 else 0.0
        value = 100.0 + rng.normal(0, 1) + (40.0 if i >= spike_from else blip)
        with handing_data(float(i), {T: float(i)}):
            out.append(observer.new_data({T: {"latency": {'{path="/"}': value}}}))
    return out


def test_an_isolation_forest_runs_as_an_observer() -> None:
    """scikit-learn's IsolationForest, trained on the first 60 cycles, alerts on a shift.

    The training data has the odd one-cycle blip, as real data has: a forest places its splits
    within the values it was trained on, and the blips show it where "far" is. The blips
    themselves never alert (they last one cycle; the policy wants three).
    """
    from sklearn.ensemble import IsolationForest

    observer = DetectorObserver(
        SklearnDetector(IsolationForest(random_state=0), fit_after=60),
        {"latency"},
        threshold=0.1,
        for_cycles=3,
        points=120,
    )
    results = feed(observer, 130, spike_from=120, blips_every=15)
    assert all(not r.alerts for r in results[:120])
    assert any(r.alerts for r in results[120:])
    assert all(not r.scores for r in results[:59])  # untrained: no score


def test_local_outlier_factor_with_novelty_runs_as_a_detector() -> None:
    """LocalOutlierFactor(novelty=True) has decision_function: it plugs in too."""
    from sklearn.neighbors import LocalOutlierFactor

    detector = SklearnDetector(LocalOutlierFactor(novelty=True), fit_after=30)
    history = list(np.random.default_rng(2).normal(5, 0.1, 40))
    assert detector.score_series([*history, 9.0]) > 0
    with pytest.raises(TypeError, match="novelty=True"):
        SklearnDetector(LocalOutlierFactor())


def test_a_river_half_space_trees_runs_as_an_observer() -> None:
    """River's HalfSpaceTrees, learning online per series, alerts on a shift."""
    from river import anomaly

    model = anomaly.HalfSpaceTrees(seed=1, limits={"value": (0.0, 200.0)})
    observer = DetectorObserver(
        RiverDetector(model, warmup=40), {"latency"}, threshold=0.9, for_cycles=2, points=10
    )
    results = feed(observer, 400, spike_from=380)
    assert all(not r.alerts for r in results[:380])
    assert any(r.alerts for r in results[380:])
    assert not results[10].scores  # warming up


def test_a_custom_detector_plugs_into_the_ready_observer() -> None:
    """The interface is one method: score(block) -> one score per series."""

    class Last(Detector):
        threshold = 1.0

        def score(self, block: Block) -> np.ndarray:
            return np.abs(block.latest)

    observer = DetectorObserver(Last(), {"g"}, for_cycles=1)
    with handing_data(0.0, {T: 0.0}):
        result = observer.new_data({T: {"g": {"{}": 3.0}}})
    assert [s.score for s in result.scores] == [3.0] and len(result.alerts) == 1


def test_scrape_jitter_is_not_a_counters_resolution() -> None:
    """A counter growing 0.03 or 0.04 a scrape, scraped at wobbling times, then one 0.01 tick
    more: its rates wobble by 2 % with the times, but it moves by 0.01 / 0.5 s at least."""
    from deucalion.history import Window

    window = Window(points=60)
    rng = np.random.default_rng(4)
    t, counter = 0.0, 0.0
    for i in range(60):
        t += 0.5 + rng.uniform(-0.01, 0.01)
        counter += 0.05 if i == 59 else 0.04 if i % 3 else 0.03
        window.add({T: {"process_cpu_seconds_total": {"{}": round(counter, 2)}}}, time=t)
    rates = window.interval_rates("process_cpu_seconds_total")
    assert rates.resolution is not None and rates.resolution[0] == pytest.approx(0.02, rel=0.05)
    for detector in (RobustZScore(), EWMAZScore()):
        assert detector.score(rates)[0] < 3, detector
    burning = rates.values.copy()
    burning[0, -1] = 1.0
    assert (
        RobustZScore().score(
            Block(rates.metric, rates.keys, rates.times, burning, rates.resolution)
        )[0]
        > 30
    )


def test_the_readme_detector_example_runs_on_recorded_cycles() -> None:
    """The README's CpuBurnObserver, fed CPU counters (idle, then one CPU burning), alerts on
    that CPU's user time only after three cycles, and exports every score meanwhile."""
    from tests.integration.test_detectors_real import readme_detector

    observer = readme_detector()()
    rng = np.random.default_rng(7)
    user = [100.0, 200.0]
    results = []
    for i in range(60):
        user[0] += 0.01 * rng.integers(0, 3)  # idle: 0 to 2 ticks a second
        user[1] += 1.0 if i >= 50 else 0.01 * rng.integers(0, 3)  # CPU 1 burns from 50 on
        data = {
            T: {
                "node_cpu_seconds_total": {
                    f'{{cpu="{c}",mode="{mode}"}}': (
                        round(user[c], 2) if mode == "user" else 5.0 * i
                    )
                    for c in (0, 1)
                    for mode in ("idle", "user")
                }
            }
        }
        with handing_data(float(i), {T: float(i)}):
            results.append(observer.new_data(data))
    assert all(not r.alerts for r in results[:52])
    firing = {a.labels["series"] for a in results[-1].alerts}
    assert firing == {'{cpu="1",mode="user"}'}
    assert len(results[-1].scores) == 2  # user time of both CPUs, scored and exported


def test_seasonal_baseline_on_an_all_nan_series_warns_nothing() -> None:
    """A series with no value at all (a target that never answered) scores NaN, without a
    RuntimeWarning that ``-W error`` would turn into an exception."""
    values = np.full((2, 30), np.nan)
    block = Block("m", [(T, "{a}"), (T, "{b}")], np.full((2, 30), np.nan), values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = SeasonalBaseline(period=10.0).score(block)
    assert np.isnan(scores).all()
