"""Ready observers: any ``Detector`` watching metrics, with scores exported and alerts held.

``AlertPolicy`` turns per-series scores into alerts once a score has stayed past a threshold
for a number of consecutive cycles; ``DetectorObserver`` keeps a ``Window``, scores every
series each cycle (counters as per-second rates) and returns ``Scores``: every score is
exported as a metric, and only the held ones alert.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from deucalion.alerting.alerts import Alert, Scores, SeriesScore
from deucalion.detectors.base import Detector
from deucalion.history.vectors import Block
from deucalion.history.window import Window
from deucalion.observer import MetricsObserver, TargetsData

__all__ = ["COUNTER_SUFFIXES", "AlertPolicy", "DetectorObserver"]

#: Sample names with these endings are counters: detectors see their per-second rate.
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")

_Key = tuple[str | None, str, str]


class AlertPolicy:
    """Alerts on a series whose score has been above ``threshold`` for ``for_cycles``
    consecutive cycles; the alert resolves the first cycle its score is not (or it has none).

    Alerts carry the labels ``metric`` and ``series`` (the series key) besides ``labels``, so
    two series never share a label set; the target's labels are added by deucalion.
    """

    def __init__(
        self,
        threshold: float,
        for_cycles: int = 3,
        *,
        labels: Mapping[str, str] | None = None,
        detector: str = "",
    ) -> None:
        if not isinstance(for_cycles, int) or for_cycles < 1:
            raise ValueError(
                f"AlertPolicy: for_cycles must be a positive integer, not {for_cycles!r}"
            )
        if not (isinstance(threshold, int | float) and not math.isnan(threshold)):
            raise ValueError(f"AlertPolicy: threshold must be a number, not {threshold!r}")
        self.threshold = float(threshold)
        self.for_cycles = for_cycles
        self.labels = dict(labels or {})
        self.detector = detector
        self.held_: dict[_Key, int] = {}

    def evaluate(self, scores: Iterable[SeriesScore]) -> Scores:
        """This cycle's ``Scores``: all of ``scores``, and an alert for each series held past
        the threshold."""
        scores = list(scores)
        held: dict[_Key, int] = {}
        alerts = []
        for item in scores:
            if not item.score > self.threshold:
                continue
            key = (item.target, item.metric, item.series)
            count = held[key] = self.held_.get(key, 0) + 1
            if count >= self.for_cycles:
                alerts.append(self._alert(item, count))
        self.held_ = held  # series below the threshold, or absent, start again from zero
        return Scores(scores=tuple(scores), alerts=tuple(alerts))

    def _alert(self, item: SeriesScore, cycles: int) -> Alert:
        name = item.metric + ("" if item.series == "{}" else item.series)
        where = f" on {item.target}" if item.target else ""
        annotations = {
            "summary": f"{name}{where} is anomalous",
            "description": f"score {item.score:.4g} above {self.threshold:g} for {cycles} "
            f"cycles" + (f" ({self.detector})" if self.detector else ""),
            "score": f"{item.score:.6g}",
        }
        return Alert(
            labels={**self.labels, "metric": item.metric, "series": item.series},
            annotations=annotations,
            target=item.target,
            score=item.score,
        )


class DetectorObserver(MetricsObserver):
    """A ready observer: ``detector`` scores every series of ``desired_metrics`` each cycle.

    It keeps a ``Window`` of ``points`` cycles (or ``seconds``), hands the detector each
    metric's series (a counter as its per-second rate between scrapes, judged by the name:
    ``COUNTER_SUFFIXES``, or listed in ``counters``) and returns ``Scores``: every score is
    exported as ``deucalion_series_anomaly_score``; a series alerts once its score stays above
    ``threshold`` (default: the detector's) for ``for_cycles`` cycles in a row.
    """

    def __init__(
        self,
        detector: Detector,
        desired_metrics: Iterable[str],
        *,
        threshold: float | None = None,
        for_cycles: int = 3,
        points: int | None = 120,
        seconds: float | None = None,
        counters: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(desired_metrics)
        if not isinstance(detector, Detector):
            raise TypeError(
                f"DetectorObserver needs a deucalion.detectors.Detector, not "
                f"{type(detector).__name__}; wrap a scikit-learn estimator in "
                "SklearnDetector or a River model in RiverDetector"
            )
        self.detector = detector
        self.window = Window(points, seconds=seconds)
        self.counters = frozenset(counters)
        self.policy = AlertPolicy(
            detector.threshold if threshold is None else threshold,
            for_cycles,
            labels=labels,
            detector=type(detector).__name__,
        )

    def is_counter(self, metric: str) -> bool:
        """Whether ``metric`` is scored as a per-second rate."""
        return metric in self.counters or metric.endswith(COUNTER_SUFFIXES)

    def block(self, metric: str) -> Block:
        """What the detector is handed for ``metric`` (rates for counters)."""
        if self.is_counter(metric):
            return self.window.interval_rates(metric)
        return self.window.block(metric)

    def new_data(self, targets_data_dict: TargetsData) -> Scores:
        """Add the cycle to the window, score every series, alert on the held ones."""
        self.window.add(targets_data_dict)
        metrics = dict.fromkeys(m for samples in targets_data_dict.values() for m in samples)
        scores: list[SeriesScore] = []
        for metric in metrics:
            block = self.block(metric)
            if not len(block):
                continue
            values = self.detector.score(block)
            for (target, series), value in zip(block.keys, values.tolist(), strict=True):
                if not math.isnan(value):
                    scores.append(SeriesScore(target, metric, series, value))
        return self.policy.evaluate(scores)
