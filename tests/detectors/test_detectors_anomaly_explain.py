"""``AnomalyDetector``'s explanations: an alert's observed value lies outside its expected
band, for every kind, and the band is where the series would not have alerted (found by
scoring candidates as the update does)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from deucalion.detectors import AnomalyDetector, Explanation
from deucalion.detectors.anomaly import KINDS

SERIES, POINTS, AT = 12, 2600, 2000  # series, points each, the anomaly's start
STEP = 300.0  # 5-minute points: a day is 288 of them


def _series(kind: str, seed: int) -> np.ndarray:
    """``SERIES`` Gaussian series with an anomaly of ``kind`` from point ``AT``."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, (SERIES, POINTS))
    t = np.arange(POINTS)
    if kind == "spike":
        values[:, AT] += rng.choice([-1.0, 1.0], SERIES) * rng.uniform(5, 10, SERIES)
    elif kind == "level_shift":
        values[:, AT:] += 3.0
    elif kind == "variance":
        values[:, AT:] *= 5.0
    elif kind == "trend":
        values[:, AT:] += 0.05 * (t[AT:] - AT)
    elif kind == "seasonal":
        wave = 5 * np.sin(2 * np.pi * t * STEP / 86400)
        values += wave
        values[:, AT : AT + 36] -= 2 * wave[AT : AT + 36]  # the wave upside down for 3 hours
    elif kind == "stuck":
        values[:, AT : AT + 300] = values[:, AT : AT + 1]
    elif kind == "out_of_range":
        values[:, AT] = values.max(axis=1) + 3.0
    return values


def _alerts(detector: AnomalyDetector, values: np.ndarray) -> list:
    explained = []
    for i in range(values.shape[1]):
        detector.update(values[:, i], times=STEP * i)
        explained += detector.alerts()
    return explained


@pytest.mark.parametrize(
    "kind", ["spike", "level_shift", "variance", "trend", "seasonal", "stuck", "out_of_range"]
)
def test_an_alert_s_observed_value_lies_outside_its_band_for_every_kind(kind: str) -> None:
    """Each component alone (``kinds=(kind,)``), on an anomaly of its kind: every alert's
    observed (the value, the recent level, step or slope, the run of repeats) is outside
    the band it is said to have been expected in, which is a band (low under high)."""
    explained = _alerts(AnomalyDetector(kinds=(kind,)), _series(kind, 900 + len(kind)))
    assert len(explained) >= SERIES // 4, explained
    assert {why.kind for why in explained} == {kind}
    for why in explained:
        assert why.expected_low <= why.expected_high, why
        assert not why.expected_low <= why.observed <= why.expected_high, why


def test_every_alert_of_the_full_detector_lies_outside_its_band() -> None:
    """All components together, on anomalies of every kind: no alert's observed lies
    inside its band, whichever component named it."""
    inside, kinds = [], set()
    for seed, kind in enumerate(("spike", "level_shift", "variance", "stuck", "seasonal", "trend")):
        for why in _alerts(AnomalyDetector(), _series(kind, 700 + seed)):
            kinds.add(why.kind)
            if why.expected_low <= why.observed <= why.expected_high:
                inside.append(why)
    assert {"spike", "level_shift", "stuck", "seasonal", "trend"} <= kinds, kinds
    assert inside == []


def _learned(kinds: tuple[str, ...]) -> tuple[AnomalyDetector, float]:
    """A detector of ``kinds`` that learned 1,500 points of Gaussian noise in one series,
    and the time of its next point."""
    rng = np.random.default_rng(4242)
    detector = AnomalyDetector(kinds=kinds)
    for i in range(1500):
        detector.update(np.array([rng.normal()]), times=15.0 * i)
    return detector, 15.0 * 1500


@pytest.mark.parametrize("kind", ["spike", "out_of_range"])
def test_the_band_is_where_the_next_value_would_not_alert(kind: str) -> None:
    """The band of a series as it stands is where its next value scores under the
    threshold: a value 1 % of the band's width inside either edge does not alert, one 1 %
    outside does (a spike's band takes in the recent extremes, where no value is a spike)."""
    detector, now = _learned((kind,))
    why = detector.explain(0)
    low, high = why.expected_low, why.expected_high
    assert math.isfinite(low) and low < high
    margin = 0.01 * (high - low)
    for value, alerts in (
        (low + margin, False),
        (high - margin, False),
        (low - margin, True),
        (high + margin, True),
    ):
        probe = copy.deepcopy(detector)
        probe.update(np.array([value]), times=now)
        assert bool(probe.alerting_[0]) == alerts, (value, low, high)


def _first_kinds(kind: str, seed: int) -> dict[int, str]:
    """The kind of each series' first alert from ``AT`` on, by the full detector."""
    values = _series(kind, seed)
    detector = AnomalyDetector()
    first: dict[int, str] = {}
    for i in range(values.shape[1]):
        detector.update(values[:, i], times=STEP * i)
        if i >= AT:
            for why in detector.alerts():
                first.setdefault(int(why.series), why.kind)
    return first


def test_a_single_large_value_is_named_spike_and_a_step_level_shift() -> None:
    """The name goes to the most persistent component past the threshold: a single large
    value in Gaussian noise moves the averages too little to take it (every first alert is
    a spike); a step of three standard deviations is named for its level, not for the slope
    or the first large value it makes."""
    spikes = _first_kinds("spike", 31)
    assert len(spikes) >= SERIES - 2 and set(spikes.values()) == {"spike"}, spikes
    steps = list(_first_kinds("level_shift", 32).values())
    assert steps.count("level_shift") > len(steps) / 2, steps


def _first_alerts(slope: float, step: float, seed: int, kinds: tuple[str, ...] = KINDS) -> list:
    """The first alert from ``AT`` on of each of ``SERIES`` Gaussian series that ramp from
    there by ``slope`` noise units per point, or step by ``step``, up or down at random."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, (SERIES, POINTS))
    sign = rng.choice([-1.0, 1.0], (SERIES, 1))
    values[:, AT:] += sign * (step + slope * np.arange(POINTS - AT))
    detector = AnomalyDetector(kinds=kinds)
    first: dict[int, Explanation] = {}
    for i in range(POINTS):
        detector.update(values[:, i], times=STEP * i)
        if i >= AT:
            for why in detector.alerts():
                first.setdefault(int(why.series), why)
    return list(first.values())


def test_a_ramp_is_named_trend_and_a_step_level_shift() -> None:
    """A ramp (0.03 noise units per point, the corpus' trend) alerts when its recent level
    has left the long-run one, as a step's does: it is named for its slope, as its
    departure has been growing for longer than the recent level takes to catch up with a
    step; a step (2 noise units) is named for its level, though its slope may alert first.
    Each observed lies outside its band; a ramp's is the rate at which its level left."""
    ramps = _first_alerts(0.03, 0.0, 6101)
    named = [why.kind for why in ramps]
    assert len(ramps) >= SERIES - 2 and named.count("trend") > len(ramps) / 2, named
    steps = [why.kind for why in _first_alerts(0.0, 2.0, 6102)]
    assert len(steps) >= SERIES - 2 and steps.count("level_shift") > len(steps) / 2, steps
    for why in ramps:
        assert not why.expected_low <= why.observed <= why.expected_high, why
        if why.kind == "trend":
            assert 0.01 < abs(why.observed) < 0.1, why  # about the ramp's 0.03 per point


def test_a_detector_without_trend_names_a_ramp_for_its_level() -> None:
    """The slope renames a level shift only when the trend is looked for."""
    named = {why.kind for why in _first_alerts(0.03, 0.0, 6101, ("spike", "level_shift"))}
    assert named == {"level_shift"}, named


def test_a_kept_row_is_explained_by_its_own_band() -> None:
    """The bands found for the series as they stand are forgotten when rows are kept in a
    new order: a series explained after ``keep`` gets its own band, not its old row's."""
    rng = np.random.default_rng(77)
    detector = AnomalyDetector(kinds=("spike",))
    for i in range(600):
        detector.update(rng.normal(0.0, [1.0, 100.0]), times=15.0 * i)
    narrow, wide = detector.explain(0), detector.explain(1)
    detector.keep([1, 0])
    again = detector.explain(0)
    assert (again.expected_low, again.expected_high) == (wide.expected_low, wide.expected_high)
    assert wide.expected_high - wide.expected_low > 50 * (
        narrow.expected_high - narrow.expected_low
    )


def test_a_stuck_alert_says_how_long_the_value_repeated() -> None:
    """The ready observer's annotations of a stuck alert read its run: the points at one
    value, against the longest run that would not have alerted."""
    from deucalion.detectors import DetectorObserver, Explanation

    observer = DetectorObserver(AnomalyDetector(), {"queue_depth"})
    why = Explanation("stuck", 1.0, 6.0, 7.0, 5.2, ("http://a:9100/metrics", "queue_depth", "{}"))
    alert = observer.explained_alert(why)
    assert (
        "The run of points at one value is 7, expected 1 .. 6" in alert.annotations["description"]
    )
    assert alert.annotations["kind"] == "stuck" and alert.annotations["expected_range"] == "1 .. 6"


def test_a_seasonal_alert_says_its_observed_is_the_recent_level() -> None:
    """A seasonal break is judged by the recent level against the time of day's value, not
    by the last value: the annotations say so (they read "The value is", and a reader took
    a level the series never had for a value it had)."""
    from deucalion.detectors import DetectorObserver

    observer = DetectorObserver(AnomalyDetector(), {"requests"})
    why = Explanation(
        "seasonal", 40.0, 60.0, 12.5, 4.4, ("http://a:8080/metrics", "requests", "{}")
    )
    description = observer.explained_alert(why).annotations["description"]
    assert "The recent level is 12.5, expected 40 .. 60" in description, description


@pytest.mark.parametrize(
    ("metric", "kind", "words"),
    [
        ("app_requests_total", "spike", "The per-second rate is 41.6"),
        ("app_requests_total", "level_shift", "The recent per-second rate is 41.6"),
        ("app_requests_total", "stuck", "The run of points at one per-second rate is 41.6"),
        ("app_queue_depth", "spike", "The value is 41.6"),
    ],
)
def test_a_counter_s_alert_says_its_value_is_a_per_second_rate(
    metric: str, kind: str, words: str
) -> None:
    """The ready observer scores a counter by its per-second rate: its alert says so (it
    read "The value is 41.6" beside the name ``app_requests_total``, a total it never had);
    a gauge's keeps its value."""
    from deucalion.detectors import DetectorObserver

    observer = DetectorObserver(AnomalyDetector(), {metric})
    why = Explanation(kind, 10.0, 20.0, 41.6, 4.4, ("http://a:8080/metrics", metric, "{}"))
    description = observer.explained_alert(why).annotations["description"]
    assert f"{words}, expected 10 .. 20" in description, description


def test_the_quick_explanation_names_a_spike_against_the_level_it_left() -> None:
    """``explain_quickly`` (what the presets judge every series against, every cycle, with
    no search) names a spike, its value and a band around the level it left; it takes a
    key or a row number, as ``explain`` does, and a series it never held is a KeyError
    naming it."""
    rng = np.random.default_rng(71)
    detector = AnomalyDetector()
    for i in range(3000):
        detector.update({"a": (i * STEP, rng.normal(10.0, 1.0)), "b": (i * STEP, 5.0 + i % 2)})
    detector.update({"a": (3000 * STEP, 60.0), "b": (3000 * STEP, 5.0)})
    assert [why.series for why in detector.alerts()] == ["a"]
    quick = detector.explain_quickly("a")
    assert (quick.series, quick.kind, quick.observed) == ("a", "spike", 60.0)
    assert quick.expected_low < 10.0 < quick.expected_high < 60.0
    assert detector.explain_quickly(1).series == 1  # a row number, as explain takes
    with pytest.raises(KeyError, match="'c'"):
        detector.explain_quickly("c")


def _after(values: list[float], value: float, kinds: tuple[str, ...] = KINDS) -> Explanation:
    """The explanation of a detector of ``kinds`` that learned 1,500 points of Gaussian
    noise, then ``values`` (none alerting), then ``value`` (which alerts)."""
    rng = np.random.default_rng(5150)
    detector = AnomalyDetector(kinds=kinds)
    for i, x in enumerate([*rng.normal(0.0, 1.0, 1500), *values, value]):
        detector.update(np.array([x]), times=15.0 * i)
        assert detector.alerting_[0] == (i == 1500 + len(values)), (i, x)
    return detector.explain(0)


def test_a_large_value_after_grown_steps_is_named_variance() -> None:
    """A value far from the level is a spike after ordinary steps, and a change of variance
    after a run of steps several times the usual size (none alerting): named for the grown
    steps, it is explained by their typical change against the highest that would not have
    named it (so its observed lies outside its band, above it)."""
    alone = _after([], 8.0)
    assert alone.kind == "spike", alone
    grown = _after([1.75, -1.75] * 6, 8.0)  # steps of 3.5 noise units
    assert grown.kind == "variance", grown
    assert 0 <= grown.expected_low < grown.expected_high < grown.observed, grown
    # The steps of 3.5 noise units are about 3 usual steps (a usual step is about 1.13).
    assert 2.0 < grown.observed < 4.0, grown


def test_a_detector_without_variance_never_names_it() -> None:
    """Grown steps rename an alert only when the variance is looked for."""
    assert _after([1.75, -1.75] * 6, 8.0, ("spike", "level_shift")).kind == "spike"


@pytest.mark.parametrize(
    ("state", "shape"),
    [("growth_", (2, 3)), ("departure_", (3,))],
    ids=["evidence of grown steps", "level's recent departure"],
)
def test_a_checkpoint_from_before_a_piece_of_naming_state_loads(
    state: str, shape: tuple[int, ...]
) -> None:
    """A detector pickled before a piece of state was added (the evidence of grown steps;
    the level's recent departure, which tells a ramp from a step) loads with that state
    fresh, and updates, explains and keeps its series."""
    import pickle

    rng = np.random.default_rng(61)
    detector = AnomalyDetector()
    for i in range(300):
        detector.update(rng.normal(0.0, 1.0, 3), times=15.0 * i)
    old = copy.copy(detector)
    del old.__dict__[state]
    loaded = pickle.loads(pickle.dumps(old))
    assert getattr(loaded, state).shape == shape and not getattr(loaded, state).any()
    loaded.update(np.array([0.0, 50.0, 0.0]), times=15.0 * 300)
    assert loaded.explain(1).kind == "spike"
    loaded.keep([2, 1])
    assert getattr(loaded, state).shape[-1] == 2


def test_a_checkpoint_from_before_the_weekly_profile_loads_and_starts_one() -> None:
    """A detector pickled before the weekly profile loads with an empty one (its series
    expect what their daily profile says, as before) and updates, keeps its series and
    starts learning the week, which it uses once it has learned one (from the series' age, a
    bin learned minutes after loading had stood for a week's knowledge)."""
    import pickle

    from deucalion.detectors.anomaly import WEEK_BINS

    rng = np.random.default_rng(63)
    detector = AnomalyDetector()
    for i in range(2100):  # a week and more at 5-minute steps
        detector.update(rng.normal(0.0, 1.0, 3), times=np.full(3, 300.0 * i))
    old = copy.copy(detector)
    for name in ("week_profile_", "week_visits_", "week_error_", "day_week_error_", "weekly_"):
        del old.__dict__[name]
    del old.__dict__["week_start_"], old.__dict__["week_compared_"]
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.week_profile_.shape == (3, WEEK_BINS) and np.isnan(loaded.week_profile_).all()
    assert not loaded.week_visits_.any() and not loaded.weekly_.any()
    loaded.update(np.array([0.0, 50.0, 0.0]), times=np.full(3, 300.0 * 2100))
    assert loaded.alerting_.tolist() == [False, True, False]
    assert np.isfinite(loaded.week_profile_).sum() == 3  # one half hour of the week, learned
    for i in range(2101, 2103):  # the same half hour again: learned twice, a week not yet
        loaded.update(rng.normal(0.0, 1.0, 3), times=np.full(3, 300.0 * i))
    assert np.isnan(loaded._profiles[1]).all()
    assert (loaded.week_start_ == 300.0 * 2100).all()
    loaded.keep([2, 1])
    assert loaded.week_profile_.shape == (2, WEEK_BINS) and loaded.weekly_.shape == (2,)


def test_a_checkpoint_from_before_the_spread_loads_and_learns_one() -> None:
    """A detector pickled before the spread of departures by time of day loads with an empty
    one (its seasonal departures measured by the usual step, as before), updates, explains a
    seasonal alert and learns the spread, keeping its series."""
    import pickle

    from deucalion.detectors.anomaly import BINS

    rng = np.random.default_rng(71)
    times = 300.0 * np.arange(6 * 288)
    wave = 10 * np.sin(2 * np.pi * times / 86_400)
    detector = AnomalyDetector()
    for i in range(5 * 288):
        detector.update(wave[i] + rng.normal(0.0, 1.0, 3), times=np.full(3, times[i]))
    old = copy.copy(detector)
    del old.__dict__["spread_"]
    old.__dict__["_scale"] = old.__dict__["_scale"][:2]  # (its units then: step and floor)
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.spread_.shape == (3, BINS) and np.isnan(loaded.spread_).all()
    assert math.isfinite(loaded.explain(0).expected_high)  # explained before an update
    assert math.isfinite(loaded.explain_quickly(0).expected_high)
    kinds = []
    for i in range(5 * 288, 6 * 288):  # a day gone flat
        loaded.update(rng.normal(0.0, 1.0, 3), times=np.full(3, times[i]))
        kinds += [why.kind for why in loaded.alerts()]
    assert "seasonal" in kinds, kinds
    assert np.isfinite(loaded.spread_).all()
    loaded.keep([2, 0])
    assert loaded.spread_.shape == (2, BINS)


def test_a_checkpoint_with_a_weekly_profile_but_not_its_start_keeps_using_it() -> None:
    """A detector pickled when the weekly profile was counted from the series' start (before
    ``week_start_``) loads with its week as learned: it predicts at once (it had been set
    aside for a week after loading), and its visits count past one byte."""
    import pickle

    from deucalion.detectors.anomaly import _seasonal

    rng = np.random.default_rng(64)
    detector = AnomalyDetector()
    for i in range(2100):  # a week and more at 5-minute steps
        detector.update(rng.normal(0.0, 1.0, 3), times=np.full(3, 300.0 * i))
    old = copy.copy(detector)
    del old.__dict__["week_start_"], old.__dict__["week_compared_"]
    old.week_visits_ = detector.week_visits_.astype(np.uint8)
    loaded = pickle.loads(pickle.dumps(old))
    _seasonal(loaded, np.full(3, 300.0 * 2100))
    assert np.isfinite(loaded._profiles[1]).all()
    assert loaded.week_visits_.dtype == np.uint16


def test_a_checkpoint_from_before_the_anchored_profile_expects_what_it_did() -> None:
    """A detector pickled before the daily profile was kept relative to the series' first
    value (its profile holds the values themselves) loads expecting the same values of the
    day: its anchor is 0."""
    import pickle

    from deucalion.detectors.anomaly import _seasonal

    rng = np.random.default_rng(62)
    detector = AnomalyDetector()
    for i in range(700):  # two days and more at 5-minute steps, a daily wave about 1000
        wave = 1000 + 4 * np.sin(2 * np.pi * i / 288 + np.arange(3))
        detector.update(wave + rng.normal(0.0, 1.0, 3), times=np.full(3, 300.0 * i))
    at = np.full(3, 300.0 * 700)
    expected = _seasonal(detector, at)
    assert np.isfinite(expected).all()
    old = copy.copy(detector)
    old.profile_ = (detector.profile_ + detector.anchor_[:, None]).astype(np.float32)
    del old.__dict__["anchor_"]
    loaded = pickle.loads(pickle.dumps(old))
    assert not loaded.anchor_.any()
    assert np.allclose(_seasonal(loaded, at), expected, rtol=1e-6)


def test_every_series_alerting_at_once_is_explained_in_bounded_memory() -> None:
    """5,000 series alerting in one update (every gauge of a restarted target moving) are
    explained with a few MB of copies: the band search copied every row's state 32 times at
    once (280 MB here, 550 MB at 10,000). Measured in a process of its own, by its VmHWM."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import numpy as np\n"
        "from deucalion.detectors import AnomalyDetector\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(status.split('VmHWM:')[1].split()[0]) // 1024\n"
        "rng = np.random.default_rng(1)\n"
        "d = AnomalyDetector()\n"
        "for i in range(300):\n"
        "    d.update(rng.normal(0, 1, 5000), times=15.0 * i)\n"
        "before = peak()\n"
        "d.update(rng.normal(0, 1, 5000) + 1e4, times=15.0 * 300)\n"
        "bands = [(w.observed, w.expected_high) for w in d.alerts()]\n"
        "print(len(bands), sum(o > h for o, h in bands), peak() - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    alerts, outside, grown_mb = map(int, done.stdout.split())
    assert alerts == outside == 5000
    assert grown_mb < 100, f"{grown_mb} MB to explain 5,000 alerts"


def test_a_kept_series_is_explained_by_its_own_averages_before_the_next_update() -> None:
    """After ``keep``, the last update's averages move with their rows: a kept series was
    explained by another's recent level until the next update."""
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, (2, 600)) + np.array([[1000.0], [5.0]])
    detector = AnomalyDetector()
    for i in range(600):
        detector.update(values[:, i], times=np.full(2, 60.0 * i))
    before = detector.explain_row(1)
    detector.keep([1])
    after = detector.explain_row(0)
    assert (after.kind, after.observed) == (before.kind, before.observed)
    assert (after.expected_low, after.expected_high) == (before.expected_low, before.expected_high)
