"""The one detector interface: keyed and array updates, alerts, explanations, forgetting, for
online and window detectors alike; and the one ready observer over it."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from deucalion.alerting.alerts import Scores
from deucalion.detectors import (
    AnomalyDetector,
    Detector,
    DetectorObserver,
    RangeDetector,
    RobustZScore,
    Threshold,
)
from deucalion.history.promql import CounterRates
from deucalion.observer import handing_data


def _noise(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(10.0, 1.0, n)


@pytest.mark.parametrize(
    "make", [AnomalyDetector, RangeDetector, lambda: RobustZScore(threshold=6.0)]
)
def test_every_detector_takes_time_value_pairs_per_series_and_explains_its_alerts(make) -> None:  # type: ignore[no-untyped-def]
    """Two named series: quiet noise, then a spike of 40 sigma in one of them alerts, named by
    its key, with the observed value outside the expected band."""
    detector: Detector = make()
    calm, other = _noise(1, 700), _noise(2, 701)
    for i, (a, b) in enumerate(zip(calm, other, strict=False)):
        scores = detector.update({"calm": (60.0 * i, a), "other": (60.0 * i, b)})
        assert set(scores) == {"calm", "other"}
    scores = detector.update({"calm": (60.0 * 700, 10.0), "other": (60.0 * 700, 50.0)})
    assert scores["other"] >= detector.threshold > scores["calm"]
    [why] = detector.alerts()
    assert why.series == "other" and why.observed == 50.0
    assert not why.expected_low <= 50.0 <= why.expected_high
    assert why.expected_low < 10.0 < why.expected_high
    assert detector.explain("calm").series == "calm"


@pytest.mark.parametrize("bad", [5.0, (1.0, 2.0, 3.0), (1.0, "high"), None])
def test_a_bad_pair_is_refused_saying_the_form_and_leaves_the_detector_as_it_was(
    bad: object,
) -> None:
    """README: `update({"cpu": (t, cpu), ...})`. `{"b": 5}` said "cannot reshape array of size
    3 into shape (2)" and kept "b" as a series, so every later update failed ("unhashable
    type: 'slice'")."""
    detector = AnomalyDetector()
    detector.update({"a": (0.0, 1.0)})
    with pytest.raises(
        ValueError,
        match=r"AnomalyDetector.update: give each series as key: "
        r"\(time, value\)",
    ):
        detector.update({"a": (60.0, 1.0), "b": bad})  # type: ignore[dict-item]
    scores = detector.update({"a": (60.0, 1.0), "c": (60.0, math.nan)})
    assert scores["a"] == 0.0 and math.isnan(scores["c"]) and "b" not in detector.rows_


def test_array_updates_add_rows_and_a_missing_value_scores_nan() -> None:
    """Rows are series in the caller's order; NaN is no value; a longer array adds a series."""
    detector = AnomalyDetector(warmup=20)
    for i in range(30):
        detector.update([1.0 + 0.1 * (i % 3), 5.0 + 0.1 * (i % 5)])
    scores = detector.update([1.0, math.nan, 3.0])
    assert math.isnan(scores[1]) and not math.isnan(scores[0]) and len(scores) == 3
    assert detector.n_series_ == 3


def test_forget_drops_series_and_keeps_the_others_state() -> None:
    """After forgetting one key, the other still alerts on a spike from what it learned."""
    detector = AnomalyDetector(warmup=50)
    for i, (a, b) in enumerate(zip(_noise(3, 400), _noise(4, 400), strict=True)):
        detector.update({"a": (i, a), "b": (i, b)})
    detector.forget(["a"])
    assert detector.n_series_ == 1
    scores = detector.update({"b": (400.0, 60.0)})
    assert scores["b"] >= detector.threshold
    with pytest.raises(KeyError):
        detector.explain("a")


def test_score_series_scores_every_point_of_one_series() -> None:
    """The notebook helper: an online detector gives one score per value, the spike highest."""
    values = _noise(5, 500)
    values[450] = 40.0
    scores = AnomalyDetector(warmup=100).score_series(values)
    assert len(scores) == 500 and int(np.argmax(scores)) == 450


def test_counter_rates_and_their_resolution() -> None:
    """The one counter-rate helper: the rate between samples, the counter's quantum (what its
    increases are multiples of) over the interval as resolution, no rate at first sight, after
    a reset or with no time between."""
    rates = CounterRates()
    assert math.isnan(rates.update("k", 0.0, 10.0)[0])
    assert rates.update("k", 2.0, 14.0) == (2.0, 2.0)
    assert rates.update("k", 4.0, 15.0) == (0.5, 0.5)
    assert math.isnan(rates.update("k", 6.0, 1.0)[0])  # a reset
    assert rates.update("k", 8.0, 3.0) == (1.0, 0.5)
    assert math.isnan(rates.update("k", 8.0, 4.0)[0])  # no time between: no rate


def _resolutions(values: np.ndarray, interval: float = 15.0) -> list[float]:
    rates = CounterRates()
    return [rates.update("k", interval * i, float(v))[1] for i, v in enumerate(values)]


def test_a_busy_integer_counter_has_a_resolution_of_one_count() -> None:
    """About 200 requests a scrape: the smallest increase (about 160) is no resolution (it
    was taken for one, about 10 requests/s against a noise of 0.9); the increases' common
    divisor is, one request over the interval, within a few samples."""
    rng = np.random.default_rng(3)
    counter = 1e6 + np.cumsum(rng.poisson(200, 30))
    resolutions = _resolutions(counter)
    assert resolutions[10:] == [1 / 15] * 20


def test_cpu_seconds_have_a_resolution_of_a_tick() -> None:
    """CPU seconds count in ticks of 0.01 s (a year's idle seconds: float round-off in every
    value): the resolution is a tick over the interval, not the smallest increase (~1.2 s)."""
    rng = np.random.default_rng(4)
    ticks = 3_000_000_000 + np.cumsum(rng.poisson(150, 30))
    resolutions = _resolutions(ticks / 100)
    assert resolutions[10:] == pytest.approx([0.01 / 15] * 20, rel=1e-3)


def test_a_float_sum_has_a_resolution_far_below_its_noise() -> None:
    """A histogram's ``_sum`` (seconds spent on requests) is no count of anything: its rate
    moves by any amount, and its resolution falls far below its noise."""
    rng = np.random.default_rng(5)
    total = 1234.5 + np.cumsum(rng.gamma(200.0, 0.01, 30))
    noise = float(np.std(np.diff(total) / 15))
    assert max(_resolutions(total)[10:]) < noise / 1000


def test_a_burst_of_a_busy_counter_is_a_spike() -> None:
    """A user's case: 20 busy counters (Poisson, 200 requests a scrape), each with one scrape
    of four times the requests after 2,000 scrapes, through DetectorObserver. With the
    smallest increase for resolution, its floor on the usual step (~5/s against a noise of
    0.9/s) named the burst a level shift or a variance in all 20; with the quantum, a spike."""
    observer = DetectorObserver(desired_metrics={"http_requests_total"})
    rngs = [np.random.default_rng(seed) for seed in range(20)]
    counters = np.full(20, 1e6)
    kinds: dict[str, str] = {}
    for cycle in range(2004):
        increase = np.array([rng.poisson(200) for rng in rngs])
        counters += increase * (4 if cycle == 2000 else 1)
        series = {f'{{s="{s}"}}': float(counters[s]) for s in range(20)}
        with handing_data(1.7e9 + 15 * cycle, {}):
            result = observer.new_data({"http://app:8080/metrics": {"http_requests_total": series}})
        for alert in result.alerts:
            if cycle >= 2000 and alert.score is not None:
                kinds.setdefault(alert.labels["series"], alert.annotations["kind"])
    assert list(kinds.values()).count("spike") >= 15, kinds


def test_the_observer_exports_every_score_and_explains_alerts_in_words() -> None:
    """DetectorObserver with the default detector: Scores for every series each cycle; a
    spike alerts once, naming the series, its kind, observed value and expected band."""
    observer = DetectorObserver(desired_metrics={"queue_depth"})
    target = "http://a:9100/metrics"
    rng = np.random.default_rng(6)
    fired = []
    for cycle in range(500):
        value = 400.0 if cycle == 450 else 40.0 + rng.normal()
        with handing_data(1000.0 + 15 * cycle, {}):
            result = observer.new_data({target: {"queue_depth": {'{q="x"}': value}}})
        assert isinstance(result, Scores)
        assert [s.series for s in result.scores] == ['{q="x"}']
        raised = [alert for alert in result.alerts if alert.score is not None]
        fired += [(cycle, alert) for alert in raised]
        for alert in raised:
            # The alert's score is the series' own, unrounded: a backtest takes the higher of
            # the two at a step, and a rounded-up one moved NAB's threshold.
            assert alert.score == result.scores[0].score
    assert [cycle for cycle, _ in fired] == [450]
    alert = fired[0][1]
    assert alert.labels == {"metric": "queue_depth", "series": '{q="x"}'}
    notes = alert.annotations
    assert notes["kind"] in {"spike", "out_of_range"} and notes["observed"] == "400"
    low, high = (float(v) for v in notes["expected_range"].split(" .. "))
    assert low < 40 < high < 400
    assert "queue_depth" in notes["summary"] and "expected" in notes["description"]


class _Drift(Detector):
    """A user's own online detector, as README says to write one: update_rows only."""

    threshold = 5.0

    def update_rows(
        self, times: np.ndarray, values: np.ndarray, resolution: np.ndarray
    ) -> np.ndarray:
        mean = self.__dict__.setdefault("mean_", np.zeros(len(values)))
        scores: np.ndarray = np.abs(values - mean)
        self.mean_ = 0.9 * mean + 0.1 * np.nan_to_num(values)
        self.alerting_ = scores > self.threshold
        return scores


def test_an_online_detector_of_ones_own_alerts_through_the_ready_observer() -> None:
    """A Detector implementing update_rows alone raised IndexError in alerts() (explained as
    a window detector it is not) on every cycle it alerted; its alert has no made-up band."""
    observer = DetectorObserver(_Drift(), {"queue_depth"})
    target = "http://a:9100/metrics"
    with handing_data(1000.0, {}):
        result = observer.new_data({target: {"queue_depth": {"{}": 40.0}}})
    [alert] = result.alerts
    assert alert.annotations["observed"] == "40" and alert.annotations["score"] == "40"
    assert "expected_range" not in alert.annotations
    assert "nan" not in alert.annotations["description"]
    detector = _Drift()
    detector.update(np.array([1.0, 9.0]), times=7.0)
    assert [(why.series, why.observed, why.time) for why in detector.alerts()] == [(1, 9.0, 7.0)]


def test_the_base_class_claims_no_attribute_name_of_a_detector_of_ones_own() -> None:
    """A user's online detector with an attribute ``last_update_`` keeps it: the base class
    kept its last update for ``explain_row`` under that very name. Detectors that explain
    themselves (AnomalyDetector, RangeDetector) have no last update kept at all."""

    class Mine(_Drift):
        def __init__(self) -> None:
            self.last_update_ = "the user's own"

    mine = Mine()
    mine.update({"a": (1.0, 50.0), "b": (1.0, 2.0)})
    assert mine.last_update_ == "the user's own"
    assert (mine.explain("a").observed, mine.explain("a").score) == (50.0, 50.0)
    for detector in (AnomalyDetector(), RangeDetector()):
        detector.update({"a": (1.0, 50.0), "b": (1.0, 2.0)})
        before = set(vars(detector))
        detector.update({"a": (2.0, 51.0), "b": (2.0, 2.0)})
        assert set(vars(detector)) == before
        assert not [name for name in vars(detector) if "last_update" in name]


def test_an_online_detector_of_ones_own_forgets_a_series_that_went_away() -> None:
    """A user's online detector (update_rows only, no state per series) under the ready
    observer: when a series is forgotten, keep() went through window rows it has not
    (IndexError on every cycle from then on). The series left keeps its own last value."""

    class Loud(Detector):
        threshold = 3.0

        def update_rows(
            self, times: np.ndarray, values: np.ndarray, resolution: np.ndarray
        ) -> np.ndarray:
            self.alerting_ = np.abs(values) > self.threshold
            return np.abs(values)

    observer = DetectorObserver(Loud(), {"m"}, forget_after=1)
    target = "http://a:9100/metrics"
    gone, left = (target, "m", '{a="1"}'), (target, "m", '{a="2"}')
    with handing_data(0.0, {}):
        first = observer.new_data({target: {"m": {'{a="1"}': 50.0, '{a="2"}': 1.0}}})
    assert [alert.labels["series"] for alert in first.alerts] == ['{a="1"}']
    for i in range(1, 4):
        with handing_data(15.0 * i, {}):
            observer.new_data({target: {"m": {'{a="2"}': 1.0}}})
    assert observer.detector.n_series_ == 1 and set(observer.scores()) == {left}
    assert observer.detector.explain(left).observed == 1.0
    with pytest.raises(KeyError):
        observer.detector.explain(gone)
    with handing_data(60.0, {}):
        last = observer.new_data({target: {"m": {'{a="2"}': 9.0}}})
    assert [(a.labels["series"], a.annotations["observed"]) for a in last.alerts] == [
        ('{a="2"}', "9")
    ]
    detector = Loud()
    detector.update({"a": (1.0, 50.0), "b": (1.0, 2.0)})
    detector.forget(["a"])  # b moves to row 0, where a's last value was
    assert (detector.explain("b").observed, detector.alerts()) == (2.0, [])


@pytest.mark.parametrize("detector", [None, RobustZScore(threshold=6.0)])
def test_an_alert_names_its_target_without_the_secrets_of_its_url(
    detector: Detector | None,
) -> None:
    """A target URL's password and token reach no alert text: the summary and description
    name the target as logs do (secrets as ***), for explained and plain alerts alike."""
    observer = DetectorObserver(desired_metrics={"queue_depth"}, detector=detector, for_cycles=1)
    target = "http://scraper:pa55word@a:9100/metrics?token=s3cret"
    rng = np.random.default_rng(6)
    alerts = []
    for cycle in range(500):
        value = 400.0 if 450 <= cycle < 460 else 40.0 + rng.normal()
        with handing_data(1000.0 + 15 * cycle, {}):
            result = observer.new_data({target: {"queue_depth": {"{}": value}}})
        alerts += result.alerts
    assert alerts
    for alert in alerts:
        words = alert.annotations["summary"] + alert.annotations["description"]
        assert "http://scraper:***@a:9100/metrics?token=***" in alert.annotations["summary"]
        assert "pa55word" not in words and "s3cret" not in words


def test_the_ready_observers_load_no_http_stack() -> None:
    """The ready observer and the presets run in worker processes: what they import (their
    alert texts redact URLs) brings no aiohttp, pydantic or YAML there."""
    import subprocess
    import sys

    code = (
        "import sys, deucalion.detectors.observer, deucalion.presets.observer; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('aiohttp', 'pydantic', 'yaml')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_ready_observer_called_by_hand_works_with_a_window_detector_too() -> None:
    """`observer.new_data({...})` in a notebook, outside deucalion: the default detector took
    the wall clock, RobustZScore raised RuntimeError from its Window."""
    observer = DetectorObserver(RobustZScore(), {"queue_depth"}, for_cycles=1)
    results = [
        observer.new_data({"http://a/metrics": {"queue_depth": {"{}": 40.0 + i % 2}}})
        for i in range(20)
    ]
    spike = observer.new_data({"http://a/metrics": {"queue_depth": {"{}": 400.0}}})
    assert results[-1].scores and not results[-1].alerts and len(spike.alerts) == 1


class _Above(Detector):
    """Alerts on every value above 3, the cycle it comes."""

    threshold = 3.0

    def update_rows(
        self, times: np.ndarray, values: np.ndarray, resolution: np.ndarray
    ) -> np.ndarray:
        self.alerting_ = values > self.threshold
        return values


def _firing_cycles(observer: DetectorObserver, spikes: set[int]) -> list[tuple[int, bool]]:
    """(cycle, raised this cycle) of each cycle whose result alerts, 15 s apart."""
    out = []
    for cycle in range(60):
        with handing_data(1000.0 + 15 * cycle, {}):
            result = observer.new_data({"http://a/metrics": {"m": {"{}": 9.0 * (cycle in spikes)}}})
        for alert in result.alerts:
            assert {k: v for k, v in alert.labels.items() if k != "episode"} == {
                "metric": "m",
                "series": "{}",
            }
            out.append((cycle, alert.score is not None))
    return out


def _episodes(
    observer: DetectorObserver, values: Mapping[int, float]
) -> list[tuple[int, str | None]]:
    """(cycle, its alert's episode label) of each cycle whose result alerts, 15 s apart, over
    ``values`` (0 at the cycles not in it): one alert a cycle (a result holding two for one
    series would be two alerts in Alertmanager)."""
    out = []
    for cycle in range(80):
        with handing_data(1000.0 + 15 * cycle, {}):
            value = values.get(cycle, 0.0)
            result = observer.new_data({"http://a/metrics": {"m": {"{}": value}}})
        alerts = list(result.alerts)
        assert len(alerts) <= 1, alerts
        out += [(cycle, alert.labels.get("episode")) for alert in alerts]
    return out


def test_an_alert_keeps_firing_long_enough_for_alertmanager_to_notify() -> None:
    """A one-cycle alert (AnomalyDetector alerts on the cycle of the anomaly) was resolved on
    the next cycle, before Alertmanager's group_wait: Alertmanager notifies no receiver of a
    group whose alerts have all resolved, so no chat ever read it (seen with a real Alertmanager
    and a webhook). It keeps firing keep_firing_for seconds of the data's time (5 minutes),
    without a score (the series' own is exported), and a new alert starts the time again."""
    fired = _firing_cycles(DetectorObserver(_Above(), {"m"}), {10})
    assert fired == [(10, True)] + [(c, False) for c in range(11, 30)]  # 300 s at 15 s
    fired = _firing_cycles(DetectorObserver(_Above(), {"m"}), {10, 20})
    assert [c for c, raised in fired if raised] == [10, 20] and fired[-1] == (39, False)
    assert _firing_cycles(DetectorObserver(_Above(), {"m"}, keep_firing_for=0), {10}) == [
        (10, True)
    ]
    for bad in (-1, "5m", math.inf, True):
        with pytest.raises(ValueError, match="keep_firing_for"):
            DetectorObserver(_Above(), {"m"}, keep_firing_for=bad)  # type: ignore[arg-type]


def test_a_threshold_alert_resolves_once_its_value_is_back_within_bounds() -> None:
    """`DetectorObserver(Threshold(above=3))`: a value of 9 once, then 0 for ever, fired for
    ever. Threshold's default threshold is 0, the score of every value within bounds, and an
    alert kept firing while its series scored "at the threshold or more"; AlertPolicy alerts
    above it, and so the alert goes on only above it: 300 s (20 cycles of 15 s), then none."""
    observer = DetectorObserver(Threshold(above=3.0), {"m"}, for_cycles=1)
    assert _episodes(observer, {10: 9.0}) == [(c, None) for c in range(10, 30)]
    held = DetectorObserver(Threshold(above=3.0), {"m"}, for_cycles=1, keep_firing_for=0)
    assert _episodes(held, dict.fromkeys(range(10, 15), 9.0)) == [(c, None) for c in range(10, 15)]


class _Loud(Detector):
    """Scores each value as itself (threshold 3), alerts only on values above 8: a detector
    quiet about a score past its threshold, as one after an alert until it breaks through."""

    threshold = 3.0

    def update_rows(
        self, times: np.ndarray, values: np.ndarray, resolution: np.ndarray
    ) -> np.ndarray:
        self.alerting_ = values > 8
        return values


def test_an_anomaly_after_another_ended_is_a_new_alert_not_the_kept_one() -> None:
    """A spike, then (within keep_firing_for, the spike's alert only kept firing) a jump: the
    jump's alert had the spike's labels, so Alertmanager merged it into the alert it had told
    of, and no receiver heard of the jump (with a real Alertmanager and a webhook). It is a new
    alert, labelled ``episode`` 2 (3 for a third), and the spike's resolves as it starts; so
    is one raised within keep_firing_for of the spike's resolve. A raise while the anomaly
    goes on (the cycles before alerted too) stays the same alert, and once a run of alerts has
    ended keep_firing_for ago, the next starts again without the label."""
    spikes = {cycle: 9.0 for cycle in (10, 20, 30, 75)}
    assert _episodes(DetectorObserver(_Above(), {"m"}), spikes) == (
        [(c, None) for c in range(10, 20)]
        + [(c, "2") for c in range(20, 30)]
        + [(c, "3") for c in range(30, 50)]  # 300 s at 15 s
        + [(c, None) for c in range(75, 80)]  # 375 s after it resolved
    )
    # Resolved 75 s before: Alertmanager may not have told of the resolve yet, and would tell
    # no one of the same label set firing again.
    again = {10: 9.0, 35: 9.0}
    assert _episodes(DetectorObserver(_Above(), {"m"}), again) == [
        (c, None) for c in range(10, 30)
    ] + [(c, "2") for c in range(35, 55)]
    # Raised again on the very next cycles: one anomaly going on, one alert.
    going_on = {cycle: 9.0 for cycle in (10, 11, 12)}
    assert {e for _, e in _episodes(DetectorObserver(_Above(), {"m"}), going_on)} == {None}
    # Under the threshold after the spike, then past it without an alert (the detector quiet),
    # then alerting: the spike's anomaly had ended, and this is another.
    loud = {10: 9.0, **dict.fromkeys(range(15, 18), 5.0), 18: 9.0}
    assert _episodes(DetectorObserver(_Loud(), {"m"}), loud) == [
        (c, None) for c in range(10, 18)
    ] + [(c, "2") for c in range(18, 38)]
    # A window detector's alert, held past its threshold again after a pause, the same way.
    policy = DetectorObserver(Threshold(above=3.0, threshold=1.0), {"m"}, for_cycles=1)
    assert _episodes(policy, {40: 9.0, 50: 9.0}) == [(c, None) for c in range(40, 50)] + [
        (c, "2") for c in range(50, 70)
    ]


def test_a_flapping_series_reuses_a_few_episodes_and_never_a_label_set_too_soon() -> None:
    """A series alerting on a third of its cycles at random, for 2,000 cycles of 15 s: each
    alert's ``episode`` was its predecessor's plus one, and the run never ended, so the series
    made 250 label sets (one per alert, each a new series in Alertmanager). The smallest
    number neither firing nor resolved within keep_firing_for (300 s, 20 cycles) is taken: a
    few label sets, and none fires again less than 300 s after it resolved (Alertmanager
    would tell no one of it)."""
    flaps = np.random.default_rng(5).random(2000) < 1 / 3
    observer = DetectorObserver(_Above(), {"m"})
    last_fired: dict[str | None, int] = {}
    alerts = 0
    for cycle, flap in enumerate(flaps):
        with handing_data(1000.0 + 15 * cycle, {}):
            result = observer.new_data({"http://a/metrics": {"m": {"{}": 9.0 * flap}}})
        for alert in result.alerts:
            episode = alert.labels.get("episode")
            if episode in last_fired and last_fired[episode] < cycle - 1:
                assert cycle - last_fired[episode] > 20, (cycle, episode)
            last_fired[episode] = cycle
            alerts += alert.score is not None
    assert alerts > 600
    # At most one raised a cycle, 20 cycles a label set is held after it resolves.
    assert 3 <= len(last_fired) <= 22, sorted(last_fired, key=str)


@pytest.mark.parametrize(("draw", "jump_raised"), [(0, 1525), (3, 1532)])
def test_a_jump_after_a_spike_is_a_new_alert_at_10_s(draw: int, jump_raised: int) -> None:
    """The review's case: at 10 s scrapes, a spike, and 25 points later a lasting jump of 100
    standard deviations, which AnomalyDetector raises while the spike's alert is kept firing
    (1525), or 20 s after it resolved (1532: before Alertmanager's next group_interval)."""
    values = np.random.default_rng(909).standard_normal((draw + 1, 1700))[draw, :1600]
    values[1500] += 20
    values[1525:] += 100
    observer = DetectorObserver(desired_metrics={"g"})
    raised = []
    for i, value in enumerate(values):
        with handing_data(1.7e9 + 10 * i, {}):
            result = observer.new_data({"http://n:9100/metrics": {"g": {"{}": float(value)}}})
        alerts = list(result.alerts)
        assert len(alerts) <= 1, alerts
        raised += [(i, a.labels.get("episode")) for a in alerts if a.score is not None]
    assert raised == [(1500, None), (jump_raised, "2")]


class _Once(Detector):
    """Scores each value as itself; alerts only on the first value above 3 (as a detector
    quiet after its one alert while the anomaly goes on)."""

    threshold = 3.0

    def update_rows(
        self, times: np.ndarray, values: np.ndarray, resolution: np.ndarray
    ) -> np.ndarray:
        seen = self.__dict__.get("seen_", False)
        self.alerting_ = (values > self.threshold) & (not seen)
        self.__dict__["seen_"] = seen or bool((values > self.threshold).any())
        return values


def test_an_alert_fires_while_its_series_still_scores_past_the_threshold() -> None:
    """A detector alerts once on an anomaly that goes on (a frozen gauge: AnomalyDetector's
    one stuck alert, its score growing while the gauge stays frozen). The alert fires as long
    as the series scores at the threshold or more, then keep_firing_for seconds more: it
    resolved 300 s after the one alert while the score was still past the threshold."""
    fired = _firing_cycles(DetectorObserver(_Once(), {"m"}), set(range(10, 40)))
    assert fired[0] == (10, True)
    assert [c for c, _ in fired] == list(range(10, 59))  # 39 + 20 cycles of 15 s
    # However short keep_firing_for (0: resolve at once), it fires while the score holds.
    for keep in (0, 10):
        observer = DetectorObserver(_Once(), {"m"}, keep_firing_for=keep)
        assert [c for c, _ in _firing_cycles(observer, set(range(10, 40)))] == list(range(10, 40))
    rng = np.random.default_rng(99)
    values = 40 + rng.normal(0, 1, 1400)
    values[1200:] = values[1199]  # a sensor frozen from cycle 1200
    observer = DetectorObserver(desired_metrics={"temp_celsius"})
    firing = []
    for cycle, value in enumerate(values):
        with handing_data(1_704_067_200.0 + 15 * cycle, {}):
            result = observer.new_data({"http://a/metrics": {"temp_celsius": {"{}": value}}})
        if result.alerts:
            firing.append(cycle)
    assert firing and 1200 < firing[0] < 1220
    assert firing == list(range(firing[0], 1400)), firing


def test_called_by_hand_each_call_returns_only_its_own_alerts() -> None:
    """Without a scrape time (new_data called by hand, in a notebook or a test) there is no
    Alertmanager to hold an alert for: a call's alerts are only those it raised."""
    observer = DetectorObserver(_Above(), {"m"})
    raised = [
        len(observer.new_data({"http://a/metrics": {"m": {"{}": 9.0 * (cycle == 10)}}}).alerts)
        for cycle in range(30)
    ]
    assert raised == [int(cycle == 10) for cycle in range(30)]


@pytest.mark.parametrize("gap", ["absent", "nan", "target_down"])
def test_a_cycle_without_a_score_does_not_end_an_alert(gap: str) -> None:
    """A series past its bounds from cycle 10 on, with no score at cycle 20 (its metric
    absent, NaN, or its target down): one alert throughout, no ``episode`` label. (A cycle
    without a score counted as the anomaly's end, and cycle 21's alert became episode 2.)"""
    observer = DetectorObserver(Threshold(above=3.0, threshold=1.0), {"m"}, for_cycles=1)
    labels = set()
    for cycle in range(40):
        value = 9.0 if cycle >= 10 else 0.0
        data: dict[str, dict[str, dict[str, float]]] = {"http://a/metrics": {"m": {"{}": value}}}
        if cycle == 20:
            data = {
                "absent": {"http://a/metrics": {}},
                "nan": {"http://a/metrics": {"m": {"{}": math.nan}}},
                "target_down": {},
            }[gap]
        with handing_data(1000.0 + 15 * cycle, {}):
            result = observer.new_data(data)
        labels |= {alert.labels.get("episode") for alert in result.alerts}
    assert labels == {None}
