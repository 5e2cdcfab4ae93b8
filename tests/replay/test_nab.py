"""NAB scoring on cases small enough to compute by hand."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from deucalion.replay import nab

S_MINUS_1 = 2 / (1 + math.exp(-5)) - 1  # 0.98661: NAB's weight at a window's first point


def _file(detections: dict[int, float], rows: int = 100) -> nab.LabelledSeries:
    """100 points at t = 0..99, one window [50, 59], the given scores elsewhere 0."""
    scores = [detections.get(i, 0.0) for i in range(rows)]
    return nab.LabelledSeries("f.csv", list(range(rows)), scores, [(50, 59)])


def test_scaled_sigmoid_matches_the_published_values() -> None:
    """S(-1) = 0.98661, S(-0.5) = 0.84828, S(0) = 0, S(1) = -0.98661, S(>=3) = -1."""
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == -1.0


def test_probationary_period_is_15_percent_capped_at_750() -> None:
    """15 % of the rows, never more than 750."""
    assert nab.probationary_length(100) == 15
    assert nab.probationary_length(4032) == 604
    assert nab.probationary_length(20000) == 750


def test_perfect_detector_scores_100_and_null_0_under_every_profile() -> None:
    """Firing at the window's first point is 100; never firing is 0."""
    for profile in nab.PROFILES:
        assert nab.sweep([_file({50: 1.0})], profile).score == pytest.approx(100.0)
        assert nab.sweep([_file({})], profile).score == pytest.approx(0.0)


def test_late_detection_false_positives_and_probation_by_hand() -> None:
    """A detection at the window's last point, an FP after it, one before it, one in probation."""
    late = (2 / (1 + math.exp(-0.5)) - 1) / S_MINUS_1  # position -0.1: 0.24823
    after = (2 / (1 + math.exp(5 * 11 / 9)) - 1) * 0.11  # 11 points past, width 10: -0.10950
    series = [_file({59: 0.9, 70: 0.8, 20: 0.7, 10: 1.0})]

    at_09 = nab.score_at_threshold(series, 0.9)
    assert at_09.raw == pytest.approx(late)
    assert (at_09.detected, at_09.false_positives) == (1, 0)
    at_07 = nab.score_at_threshold(series, 0.7)
    assert at_07.raw == pytest.approx(late + after - 0.11)
    assert at_07.false_positives == 2
    # The point in the probationary period (score 1.0) is not scored at all.
    assert nab.score_at_threshold(series, 1.0).raw == pytest.approx(-1.0)

    best = nab.sweep(series)
    assert best.threshold == 0.9
    assert best.score == pytest.approx(100 * (late + 1) / 2)
    # reward_low_FP_rate doubles the cost of each false positive.
    low_fp = nab.score_at_threshold(series, 0.7, "reward_low_FP_rate")
    assert low_fp.raw == pytest.approx(late + 2 * after - 0.22)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    """Three detections in one window earn what the earliest alone earns."""
    earliest = (2 / (1 + math.exp(-5 * 0.8)) - 1) / S_MINUS_1  # at 52: position -0.8
    result = nab.score_at_threshold([_file({52: 1.0, 55: 1.0, 58: 1.0})], 0.5)
    assert result.raw == pytest.approx(earliest)
    assert result.detected == 1


def test_one_threshold_is_chosen_for_the_whole_set() -> None:
    """Two files whose own best thresholds differ share the one best for their sum."""
    a = _file({50: 0.9, 30: 0.95})  # alone: 0.9 (one FP at 0.95 is cheaper than a miss)
    b = _file({50: 0.6, 30: 0.8, 31: 0.8})  # alone: 0.6
    best = nab.sweep([a, b])
    assert best.threshold == 0.6
    assert best.windows == 2
    assert best.raw == pytest.approx(2 - 0.11 * 3)


def test_file_scores_split_the_set_score_by_file() -> None:
    """Per-file raw scores at the set's threshold add up to the set's raw score."""
    a = _file({50: 0.9, 30: 0.95})
    b = nab.LabelledSeries("g.csv", list(range(100)), [0.0] * 100, [(50, 59)])
    per_file = nab.file_scores([a, b], 0.9)
    assert set(per_file) == {"f.csv", "g.csv"}
    assert per_file["g.csv"].raw == pytest.approx(-1.0)
    total = nab.score_at_threshold([a, b], 0.9).raw
    assert sum(r.raw for r in per_file.values()) == pytest.approx(total)


def test_window_inside_the_probationary_period_does_not_count() -> None:
    """A window over points 5-9 of 100 is in probation: the set has no window to score."""
    series = nab.LabelledSeries("p.csv", list(range(100)), [0.0] * 100, [(5, 9)])
    assert nab.sweep([series]).windows == 0


def test_random_detector_scores_far_below_perfect_on_a_generated_set() -> None:
    """Uniform random scores on a generated labelled set land well between 0-ish and 100."""
    rng = random.Random(3)
    files = [
        nab.LabelledSeries(
            f"g{k}.csv",
            list(range(2000)),
            [rng.random() for _ in range(2000)],
            [(800 + 300 * k, 900 + 300 * k)],
        )
        for k in range(4)
    ]
    result = nab.sweep(files)
    assert -20 < result.score < 70


def test_mismatched_lengths_and_overlapping_windows_are_clear_errors() -> None:
    """A score missing or overlapping windows name the file and what to do."""
    with pytest.raises(ValueError, match=r"x.csv: 3 timestamps but 2 scores"):
        nab.LabelledSeries("x.csv", [0, 1, 2], [0.0, 0.0])
    overlapping = nab.LabelledSeries("y.csv", list(range(10)), [0.0] * 10, [(1, 5), (4, 8)])
    with pytest.raises(ValueError, match=r"y.csv: labelled windows overlap"):
        nab.sweep([overlapping])


def test_load_labelled_directory_reads_csvs_and_windows(tmp_path: Path) -> None:
    """A NAB-style folder is read into timestamps, values and windows in seconds."""
    folder = tmp_path
    (folder / "a.csv").write_text(
        "timestamp,value\n2014-02-14 14:30:00,1.5\n2014-02-14 14:35:00,2\n"
    )
    (folder / "windows.json").write_text(
        '{"a.csv": [["2014-02-14 14:35:00.000000", "2014-02-14 14:35:00.000000"]]}'
    )
    times, values, windows = nab.load_labelled_directory(folder)["a.csv"]
    assert values == [1.5, 2.0]
    assert times[1] - times[0] == 300
    assert windows == [(times[1], times[1])]
    (folder / "b.csv").write_text("timestamp,value\n")
    with pytest.raises(ValueError, match=r"b.csv has no entry"):
        nab.load_labelled_directory(folder)
