"""node-exporter's filesystem_time_to_full pages on a fill kept up, not on one write.

A new user's walk (walk27b): on a quiet disk with 75 GB free, scraped every second, one
400 MB file written 60 s into a watch raised a critical "full in 7 h" (the slope over the
ten minutes was read from the minute seen so far), and so did the same file deleted 30 s
later; past ten minutes one 4 GB write (5 % of the free space) still paged. A steady fill
that would fill the disk in 4 h, meanwhile, never alerted (its time to full fell from a
week as a ramp, which the detector took for the series' range).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from deucalion.history.window import Window
from deucalion.observer import handing_data
from deucalion.presets import preset_observer
from deucalion.presets.node_exporter import TIME_TO_FULL_CAP, filesystem_time_to_full
from deucalion.presets.signals import Query

NODE = "http://node/metrics"
T0 = 1_796_660_000.0
ROOT = '{device="/dev/vda",fstype="ext4",mountpoint="/"}'
FREE = 75e9
GB = 1e9
MB = 1e6


def _quiet(seed: int = 1) -> Callable[[int], float]:
    """A quiet disk's free space: 75 GB, moving by a few pages a second either way."""
    rng = random.Random(seed)
    walk = [FREE]

    def free(i: int) -> float:
        while len(walk) <= i:
            walk.append(walk[-1] + rng.choice((-4096, 0, 0, 4096)) * rng.randint(0, 5))
        return walk[i]

    return free


def _alerts(cycles: int, written: Callable[[int], float]) -> list[tuple[int, str, str]]:
    """node-exporter over ``/`` alone, scraped every second, with ``written(i)`` bytes taken
    from a quiet disk's free space at cycle ``i``: the cycles its alerts fired at, with their
    signal and severity."""
    observer = preset_observer("node-exporter")
    free = _quiet()
    fired = []
    for i in range(cycles):
        samples = {
            "node_filesystem_avail_bytes": {ROOT: free(i) - written(i)},
            "node_filesystem_size_bytes": {ROOT: 270.5e9},
            "up": {"{}": 1.0},
        }
        with handing_data(T0 + i, {NODE: T0 + i}):
            result = observer.new_data({NODE: samples})
        fired += [
            (i, a.labels["signal"], a.labels["severity"])
            for a in result.alerts
            if "ended" not in a.annotations
        ]
    return fired


def _written(at: int, size: float, deleted: int | None = None) -> Callable[[int], float]:
    return lambda i: size if at <= i < (deleted if deleted is not None else math.inf) else 0.0


@pytest.mark.parametrize(
    ("cycles", "written"),
    [
        (900, _written(60, 0.4 * GB)),  # 60 s into the watch
        (900, _written(60, 0.4 * GB, deleted=90)),  # and deleted 30 s later
        (1300, _written(1000, 4 * GB)),  # on a watch older than ten minutes
        (1600, lambda i: 4 * GB * sum(i >= at for at in (1000, 1200, 1400))),  # three of them
    ],
    ids=["400MB-young", "400MB-written-then-deleted", "4GB-past-10min", "three-4GB-writes"],
)
def test_one_write_is_no_fill(cycles: int, written: Callable[[int], float]) -> None:
    assert _alerts(cycles, written) == []


def test_writes_and_deletes_that_leave_the_disk_as_it_was_are_no_fill() -> None:
    """A 1 GB file written and deleted 90 s later, every 150 s, for 20 minutes."""
    assert _alerts(1900, lambda i: GB if i >= 700 and (i - 700) % 150 < 90 else 0.0) == []


def test_a_fill_kept_up_that_would_fill_the_disk_within_hours_pages() -> None:
    """5 MB/s from cycle 700 (full in about 4 h): one critical filesystem_time_to_full alert,
    within 8 minutes of the fill's start."""
    fired = _alerts(1300, lambda i: 5 * MB * max(0, i - 700))
    assert fired, "no alert for a disk filling in 4 h"
    first = fired[0][0]
    assert 700 + 300 < first < 700 + 480
    assert {(s, sev) for _, s, sev in fired} == {("filesystem_time_to_full", "critical")}


def test_writes_flushed_every_minute_are_a_fill() -> None:
    """200 MB every 60 s from cycle 700 (3.3 MB/s, full in about 6 h): it pages."""
    fired = _alerts(1300, lambda i: 0.2 * GB * (1 + (i - 700) // 60) if i >= 700 else 0.0)
    assert fired and fired[0][1:] == ("filesystem_time_to_full", "critical")
    assert fired[0][0] < 700 + 480


def test_a_disk_filling_when_the_watch_starts_pages_once_its_rate_is_known() -> None:
    """A sidecar restarted while its disk fills at 5 MB/s: no value of the fill in its first
    8 minutes (a week: not known to be filling), then a step to 4 h, which pages."""
    fired = _alerts(700, lambda i: 5 * MB * i)
    assert fired and fired[0][1] == "filesystem_time_to_full"
    assert 480 <= fired[0][0] < 500


def test_a_fill_that_would_take_a_day_does_not_page() -> None:
    assert _alerts(1900, lambda i: 1 * MB * max(0, i - 700)) == []


def _time_to_full(seconds: int, written: Callable[[int], float]) -> float:
    window = Window(seconds=660.0)
    free = _quiet()
    for i in range(seconds):
        window.add({NODE: {"node_filesystem_avail_bytes": {ROOT: free(i) - written(i)}}}, T0 + i)
    return filesystem_time_to_full(Query(window, NODE, 2.5))['{mountpoint="/"}']


def test_time_to_full_is_the_fill_kept_up_over_most_of_ten_minutes() -> None:
    """The rate 80 % of the 2-minute spans reach: a steady fill's, not one write's; none (a
    week) before 8 minutes of history, whatever the fill."""
    assert _time_to_full(470, lambda i: 5 * MB * i) == TIME_TO_FULL_CAP
    assert _time_to_full(600, lambda i: 5 * MB * i) == pytest.approx(
        (FREE - 5 * MB * 599) / (5 * MB), rel=0.01
    )
    assert _time_to_full(1200, _written(1000, 4 * GB)) == TIME_TO_FULL_CAP

    # A fill's start is read as it comes into 80 % of the spans, 6 to 8 minutes in: a week
    # until the fill it reads would fill the disk within 12 h, then under.
    def filling(i: int) -> float:
        return 5 * MB * max(0, i - 1000)

    assert _time_to_full(1000 + 360, filling) == TIME_TO_FULL_CAP
    assert _time_to_full(1000 + 450, filling) < 12 * 3600
    assert _time_to_full(1000 + 720, filling) == pytest.approx(
        (FREE - 5 * MB * 719) / (5 * MB), rel=0.01
    )


def test_a_file_system_mounted_late_has_its_own_history() -> None:
    """A file system mounted 3 minutes ago is not known to be filling (a week), while one
    watched for 10 minutes and filling as fast is read (series read together or apart)."""
    data = '{device="/dev/vdb",fstype="xfs",mountpoint="/data"}'
    window = Window(seconds=660.0)
    for i in range(600):
        avail = {ROOT: FREE - 5 * MB * i}
        if i >= 420:
            avail[data] = FREE - 5 * MB * i
        window.add({NODE: {"node_filesystem_avail_bytes": avail}}, T0 + i)
    full = filesystem_time_to_full(Query(window, NODE, 2.5))
    assert full == {
        '{mountpoint="/"}': pytest.approx((FREE - 5 * MB * 599) / (5 * MB), rel=0.01),
        '{mountpoint="/data"}': TIME_TO_FULL_CAP,
    }


def _time_to_full_every(step: int, seconds: int, written: Callable[[int], float]) -> float:
    """``_time_to_full`` at scrapes ``step`` seconds apart."""
    window = Window(seconds=660.0)
    for i in range(0, seconds, step):
        window.add({NODE: {"node_filesystem_avail_bytes": {ROOT: FREE - written(i)}}}, T0 + i)
    return filesystem_time_to_full(Query(window, NODE, 2.5 * step))['{mountpoint="/"}']


def test_at_scrapes_minutes_apart_a_fill_is_read_and_one_write_is_not() -> None:
    """At 150 s scrapes a 10-minute range holds 450 s of samples: asked for 480 s, a disk
    filling in 4 h read a week for ever. It is read now, and one 4 GB write is still no
    fill; at 200 s (2 spans of 2 minutes) nothing can tell them apart: a week."""
    fill = FREE / (4 * 3600)
    assert _time_to_full_every(150, 3600, lambda i: fill * i) == pytest.approx(
        (FREE - fill * 3450) / fill, rel=0.01
    )
    assert _time_to_full_every(150, 3600, _written(3000, 4 * GB)) == TIME_TO_FULL_CAP
    assert _time_to_full_every(200, 3600, lambda i: fill * i) == TIME_TO_FULL_CAP
