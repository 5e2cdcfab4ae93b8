"""deucalion's own detection corpus: labelled synthetic series of each anomaly kind, and noise.

A second corpus beside NAB's nab-dev, made here so that nothing is tuned on it by accident:
every series is generated from a seed, so the benchmarks, the tests and a reader all get the
same data. Two parts:

- ``noise(kind, series, points, seed)``: normal data only, of five kinds (``gaussian``,
  ``heavy`` (Student's t with 3 degrees of freedom), ``ticks`` (a counter's per-second rate,
  read in ticks of 0.01 s), ``seasonal`` (a daily pattern at 5-minute steps, with noise),
  ``weekly`` (the same with quieter weekends)), each at a random scale and offset per
  series. A detector's alerts on it are all false.
- ``anomalies(kind, series, points, seed)``: normal data with one labelled anomaly per series,
  of the kinds ``AnomalyDetector`` names: ``spike``, ``level_shift`` (inside the range the
  series has had), ``variance``, ``seasonal`` (the day's pattern breaks while the values stay
  in range), ``stuck``, ``trend``; and ``weekly`` (a weekend as busy as a weekday, which
  ``AnomalyDetector`` names ``seasonal`` too). Each comes with the index it starts at.

The real part of the corpus, a recording of this machine's node_exporter with incidents
injected into its series, is built by ``bench_detection`` from the recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_KINDS = ("gaussian", "heavy", "ticks", "seasonal", "weekly")
ANOMALY_KINDS = ("spike", "level_shift", "variance", "seasonal", "stuck", "trend", "weekly")
STEP = 300.0  # seconds between points: 5 minutes, as NAB's and CloudWatch's series
DAY_POINTS = int(86400 / STEP)
WEEK_POINTS = 7 * DAY_POINTS
#: The name ``AnomalyDetector`` gives each anomaly kind (a weekly pattern is a ``seasonal`` one).
NAMED = {kind: "seasonal" if kind == "weekly" else kind for kind in ANOMALY_KINDS}


@dataclass(frozen=True)
class Labelled:
    """Series as rows of ``values`` at ``times`` (shared), each with an anomaly starting at
    ``starts[row]`` (-1: none)."""

    kind: str
    times: np.ndarray
    values: np.ndarray
    starts: np.ndarray


def _times(points: int) -> np.ndarray:
    return 1_700_000_000.0 + STEP * np.arange(points)


def _weekend(points: int) -> np.ndarray:
    """Whether each point falls on a Saturday or a Sunday (UTC)."""
    days = (_times(points) // 86400).astype(np.int64)
    weekend: np.ndarray = (days + 3) % 7 >= 5  # the epoch was a Thursday
    return weekend


def _scaled(rng: np.random.Generator, unit: np.ndarray) -> np.ndarray:
    """Each row at its own scale (10^-3 .. 10^6) and offset: detectors must not care."""
    scale = 10.0 ** rng.uniform(-3, 6, (unit.shape[0], 1))
    offset = scale * rng.uniform(0, 50, (unit.shape[0], 1))
    return offset + scale * unit


#: How much quieter a weekend is than a weekday in the weekly kinds, in noise units.
WEEKEND = 3.0
_HOURS_6 = DAY_POINTS // 4


def points_for(kind: str) -> int:
    """How long a series of an anomaly ``kind`` is: long enough to learn what it breaks (four
    days; six for a daily pattern, five weeks for a weekly one)."""
    return {"seasonal": 6 * DAY_POINTS, "weekly": 5 * WEEK_POINTS}.get(kind, 4 * DAY_POINTS)


def _daily(points: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """A daily pattern per row (a busy day and a quiet night), amplitude 4 noise units."""
    phase = rng.uniform(0, 2 * np.pi, (rows, 1))
    day = 2 * np.pi * np.arange(points)[None, :] / DAY_POINTS
    return 4 * np.sin(day + phase) + 1.5 * np.sin(2 * day + 2 * phase)


def noise(kind: str, series: int, points: int, seed: int) -> Labelled:
    """Normal data of one kind (see the module doc); every alert on it is false."""
    rng = np.random.default_rng([seed, NOISE_KINDS.index(kind)])
    shape = (series, points)
    if kind == "gaussian":
        values = _scaled(rng, rng.standard_normal(shape))
    elif kind == "heavy":
        values = _scaled(rng, rng.standard_t(3, shape))
    elif kind == "ticks":
        # CPU seconds in ticks of 0.01 s, a few ticks per 15 s scrape: a rate that moves in
        # steps of 0.01 / 15 and is often exactly the same as the scrape before.
        mean = rng.uniform(0.5, 20, (series, 1))
        values = rng.poisson(mean, shape) * 0.01 / 15
    elif kind == "seasonal":
        values = _scaled(rng, _daily(points, series, rng) + rng.standard_normal(shape))
    elif kind == "weekly":
        # Weekends 3 noise units quieter, the daily wave on top: inside the week's range.
        weekly = _daily(points, series, rng) - WEEKEND * _weekend(points)[None, :]
        values = _scaled(rng, weekly + rng.standard_normal(shape))
    else:
        raise ValueError(f"noise kind {kind!r}: choose among {NOISE_KINDS}")
    return Labelled(kind, _times(points), values, np.full(series, -1))


def anomalies(kind: str, series: int, points: int, seed: int, start: int | None = None) -> Labelled:
    """Normal Gaussian data (with a daily pattern for ``seasonal``) and one anomaly of
    ``kind`` per series, starting in the last third (or at ``start``, for every series)."""
    rng = np.random.default_rng([seed, 100 + ANOMALY_KINDS.index(kind)])
    shape = (series, points)
    unit = rng.standard_normal(shape)
    if kind in ("seasonal", "weekly"):
        unit = unit * 0.5 + _daily(points, series, rng)
    weekend = _weekend(points)
    if kind == "weekly":
        unit -= WEEKEND * weekend[None, :]
    starts = rng.integers(2 * points // 3, points - points // 8, series)
    if kind == "weekly":  # on a weekend, from its start or within it
        lasting = weekend[:-_HOURS_6] & weekend[_HOURS_6:]  # six hours of weekend left, at least
        days = np.flatnonzero(lasting & (np.arange(points - _HOURS_6) >= 2 * points // 3))
        starts = rng.choice(days, series)
    if start is not None:
        starts = np.full(series, start)
    for row, start in enumerate(starts):
        after = slice(start, points)
        if kind == "spike":
            unit[row, start] += rng.choice([-1, 1]) * rng.uniform(8, 12)
        elif kind == "level_shift":
            # Inside the range: 2 noise units, where the series has ranged over about 7.
            unit[row, after] += rng.choice([-1, 1]) * 2.0
        elif kind == "variance":
            unit[row, after] *= 3.0
        elif kind == "seasonal":
            # The day's pattern stops (a job that no longer runs): the values stay in range.
            unit[row, after] -= _pattern_of(unit[row], start)[after]
        elif kind == "stuck":
            unit[row, after] = unit[row, start]
        elif kind == "trend":
            unit[row, after] += rng.choice([-1, 1]) * 0.03 * np.arange(points - start)
        elif kind == "weekly":
            # The weekends are as busy as the weekdays from then on (a job left running).
            unit[row, after] += WEEKEND * weekend[after]
        else:
            raise ValueError(f"anomaly kind {kind!r}: choose among {ANOMALY_KINDS}")
    return Labelled(kind, _times(points), _scaled(rng, unit), starts)


def _pattern_of(row: np.ndarray, start: int) -> np.ndarray:
    """The daily pattern of ``row``, estimated from its values before ``start`` (the mean of
    each time of day), repeated over the whole row."""
    points = len(row)
    slot = np.arange(points) % DAY_POINTS
    means = np.array([row[:start][slot[:start] == s].mean() for s in range(DAY_POINTS)])
    return means[slot]
