"""``Alert``, and how whatever ``new_data`` returns becomes alerts.

The return contract of ``new_data``:

- ``None``, ``False``, ``0`` or an empty collection: nothing is anomalous.
- An ``Alert``, or an iterable of them: sent as they are.
- A dict whose keys are all targets of the data passed in: one alert per target whose value is
  not ``None``/``False`` (nor ``0``, ``""`` or empty), labelled with that target. A value may be
  an ``Alert``, a dict (its annotations), a string (its ``description``), ``True``, or a number.
  A number is the target's anomaly *score*: it is always exported as the gauge
  ``deucalion_anomaly_score``, and alerts (with annotation ``value``) only when it is not 0
  and not NaN, so returning ``{target: score}`` for every target plots every score and alerts
  on the non-zero ones.
- Any other dict: the annotations of one alert.
- A string (annotation ``description``) or a number (annotation ``value``; 0 and NaN are no
  alert, as above): one alert.
- A function (a lambda, a method: a call forgotten, say) is no result: no alert, a problem.
- ``Scores``: per-series scores, exported as the gauge ``deucalion_series_anomaly_score``
  with the series' labels, which alert by themselves never; its ``alerts`` are sent as they
  are. (``deucalion.detectors.AlertPolicy`` turns scores held past a threshold into them.)

The interpretation is pure and never raises: problems (a list holding something that is not an
``Alert``) are returned as messages for the caller to log. ``label_result`` goes one step
further: the label set and annotations of every alert, as sent to Alertmanager, with the target
labels of the targets the data came from.

This module is imported in worker processes (observers create alerts there), so it imports
the standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

from deucalion._redact import redact_url
from deucalion.history.labels import LABEL_NAME

__all__ = [
    "Alert",
    "Interpretation",
    "LabelledResult",
    "Scores",
    "SeriesScore",
    "TargetLike",
    "alert_labels",
    "alerts_from_result",
    "cheap_to_label",
    "interpret_result",
    "label_problems",
    "label_result",
    "merge_advice",
]

#: Results with more alerts than this are labelled off the event loop (see ``cheap_to_label``).
CHEAP_RESULT = 1000
_NOT_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class Alert:
    """An anomaly to report to Alertmanager.

    ``labels`` identify the alert (as in Alertmanager: the same labels are the same alert);
    ``annotations`` describe it. ``target`` names the target it concerns (its URL, as in the
    data passed to ``new_data``), so that the target's labels are added; ``score`` is exported
    as the gauge ``deucalion_anomaly_score``.
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    target: str | None = field(default=None, kw_only=True)
    score: float | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class SeriesScore:
    """The anomaly score of one series: ``metric`` (a sample name) and ``series`` (its series
    key, ``'{cpu="0"}'``) of ``target`` (its URL; ``None`` when not about a target).

    ``value``, ``lower`` and ``upper``, when given, are the observed value and the band the
    detector expected it in, exported beside the score (NaN: not exported)."""

    target: str | None
    metric: str
    series: str
    score: float
    value: float = field(default=math.nan, kw_only=True)
    lower: float = field(default=math.nan, kw_only=True)
    upper: float = field(default=math.nan, kw_only=True)


@dataclass(frozen=True)
class Scores:
    """A ``new_data`` result that exports per-series scores without alerting on them.

    Every score is exported as the gauge ``deucalion_series_anomaly_score`` (labelled with the
    observer, the target and the series' own labels), and the highest per target as
    ``deucalion_anomaly_score``; only ``alerts`` are sent to Alertmanager, so a dashboard can
    plot scores below any threshold. NaN scores are not exported.
    """

    scores: Iterable[SeriesScore] = ()
    alerts: Iterable[Alert] = ()


class TargetLike(Protocol):
    """What labelling needs of a target (``deucalion.targets.Target`` is one)."""

    @property
    def url(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def instance(self) -> str: ...

    @property
    def job(self) -> str: ...


@dataclass
class Interpretation:
    """What one ``new_data`` result means."""

    alerts: list[Alert] = field(default_factory=list)
    scores: dict[str | None, float] = field(default_factory=dict)
    """Anomaly score per target URL (``None``: a score not about one target)."""
    problems: list[str] = field(default_factory=list)
    """What could not be understood, one message each, for the log."""
    series_scores: list[SeriesScore] = field(default_factory=list)
    """Per-series scores (from a ``Scores`` result), NaN ones left out."""


def _is_number(value: object) -> bool:
    # numbers.Real covers numpy's scalars too; bool is a separate case everywhere.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value: object) -> object:
    """NumPy's booleans as Python's: ``score > threshold`` on an array element gives one, and
    it is neither ``bool`` nor a number. Its type is ``numpy.bool_`` in NumPy 1 and
    ``numpy.bool`` in NumPy 2 (NumPy is not imported here: workers may not have it)."""
    kind = type(value)
    if kind is not bool and kind.__name__ in ("bool", "bool_") and hasattr(value, "__bool__"):
        return bool(value)
    return value


def _no_anomaly(value: object) -> bool:
    """None, False, 0, NaN, or an empty string or collection."""
    if value is None or value is False:
        return True
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
        return number == 0 or math.isnan(number)
    if isinstance(value, str | bytes | Mapping | list | tuple | set | frozenset):
        return len(value) == 0
    return False


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def _annotations_from_dict(value: Mapping[Any, Any]) -> dict[str, str]:
    """Any dict as annotations; keys become valid annotation names, values strings."""
    annotations: dict[str, str] = {}
    for key, item in value.items():
        name = _NOT_LABEL_CHAR.sub("_", str(key)) or "_"
        if name[0].isdigit():
            name = "_" + name
        annotations[name] = _text(item)
    return annotations


def _add_score(scores: dict[str | None, float], target: str | None, score: float) -> None:
    # Several alerts about one target: the worst score is the one to plot.
    previous = scores.get(target)
    scores[target] = score if previous is None or not score <= previous else previous


def interpret_result(result: object, data: Mapping[str, Any]) -> Interpretation:
    """The alerts and scores that ``result``, returned for ``data``, stands for."""
    out = Interpretation()
    result = _plain(result)
    if callable(result) and not isinstance(result, Alert | Scores | Mapping):
        out.problems.append(_not_a_result(result, "new_data"))
    elif isinstance(result, Alert):
        _take_alert(out, result, None)
    elif isinstance(result, Scores):
        _take_scores(out, result)
    elif isinstance(result, Mapping):
        if result and data and all(isinstance(k, str) and k in data for k in result):
            for url, value in result.items():
                _take_target_value(out, url, value)
        elif result:
            out.alerts.append(Alert(annotations=_annotations_from_dict(result)))
    elif _is_number(result):
        number = float(result)  # type: ignore[arg-type]
        out.scores[None] = number
        if not _no_anomaly(number):
            out.alerts.append(Alert(annotations={"value": str(result)}, score=number))
    elif result is True:
        out.alerts.append(Alert())
    elif _no_anomaly(result):
        pass
    elif isinstance(result, str):
        out.alerts.append(Alert(annotations={"description": result}))
    elif isinstance(result, Iterable) and not isinstance(result, bytes):
        for index, item in enumerate(result):
            if isinstance(item, Alert):
                _take_alert(out, item, None)
            else:
                out.problems.append(
                    f"item {index} of the returned {type(result).__name__} is a "
                    f"{type(item).__name__}, not a deucalion.Alert: ignored"
                )
    else:
        out.alerts.append(Alert(annotations={"description": _text(result)}))
    return out


def _not_a_result(value: object, where: str) -> str:
    """The problem of a callable returned where a result belongs (a forgotten call, say)."""
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    return (
        f"{where} returned the callable {name}, not a result: no alert (call it, or return "
        "None, an Alert, a dict, a string or a number)"
    )


def _take_alert(out: Interpretation, alert: Alert, target: str | None) -> None:
    if target is not None and alert.target is None:
        alert = dataclasses.replace(alert, target=target)
    out.alerts.append(alert)
    if alert.score is not None:
        try:
            _add_score(out.scores, alert.target, float(alert.score))
        except (TypeError, ValueError):
            out.problems.append(f"the score of {alert!r} is not a number: not exported")


def _take_scores(out: Interpretation, result: Scores) -> None:
    for index, item in enumerate(result.scores):
        if not isinstance(item, SeriesScore) or not _is_number(item.score):
            out.problems.append(
                f"score {index} of the returned Scores is {item!r}, not a "
                "SeriesScore with a number: not exported"
            )
            continue
        score = float(item.score)
        if math.isnan(score):
            continue
        out.series_scores.append(
            item if type(item.score) is float else dataclasses.replace(item, score=score)
        )
        _add_score(out.scores, item.target, score)
    for index, alert in enumerate(result.alerts):
        if isinstance(alert, Alert):
            _take_alert(out, alert, None)
        else:
            out.problems.append(
                f"alert {index} of the returned Scores is a "
                f"{type(alert).__name__}, not a deucalion.Alert: ignored"
            )


def _take_target_value(out: Interpretation, url: str, value: object) -> None:
    value = _plain(value)
    if callable(value) and not isinstance(value, Alert | Mapping):
        out.problems.append(_not_a_result(value, f"new_data, for target {url},"))
    elif _is_number(value):
        number = float(value)  # type: ignore[arg-type]
        _add_score(out.scores, url, number)
        if not _no_anomaly(number):
            out.alerts.append(Alert(annotations={"value": str(value)}, target=url, score=number))
    elif _no_anomaly(value):
        pass
    elif value is True:
        out.alerts.append(Alert(target=url))
    elif isinstance(value, Alert):
        _take_alert(out, value, url)
    elif isinstance(value, Mapping):
        out.alerts.append(Alert(annotations=_annotations_from_dict(value), target=url))
    elif isinstance(value, str):
        out.alerts.append(Alert(annotations={"description": value}, target=url))
    elif isinstance(value, Iterable) and all(isinstance(v, Alert) for v in value):
        for item in value:
            _take_alert(out, item, url)
    else:
        out.alerts.append(Alert(annotations={"description": _text(value)}, target=url))


def alerts_from_result(result: object, data: Mapping[str, Any]) -> list[Alert]:
    """Just the alerts of ``interpret_result`` (problems are dropped: use it to log them)."""
    return interpret_result(result, data).alerts


def alert_labels(
    alert: Alert,
    *,
    alert_name: str,
    observer: str,
    external_labels: Mapping[str, str] | None = None,
    target: TargetLike | None = None,
) -> dict[str, str]:
    """The full label set deucalion sends for ``alert``, which identifies it.

    Later wins: ``external_labels``, the target's configured labels, its ``instance`` and
    ``job``, ``alertname``, the alert's own labels (so an alert may set its own ``alertname``
    or ``severity``), and ``observer``, always the observer's class name so that observers
    never resolve each other's alerts.
    """
    labels: dict[str, str] = dict(external_labels or {})
    if target is not None:
        labels.update(target.labels)
        labels["instance"] = target.instance
        labels["job"] = target.job
    labels["alertname"] = alert_name
    labels.update(alert.labels)
    labels["observer"] = observer
    return labels


def label_problems(labels: Mapping[Any, Any], kind: str = "label") -> list[str]:
    """What makes ``labels`` (or annotations) unacceptable to Alertmanager; empty when valid."""
    problems: list[str] = []
    for name, value in labels.items():
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
            problems.append(
                f"{kind} name {name!r} is invalid: use letters, digits and underscores, "
                "not starting with a digit"
            )
        elif not isinstance(value, str):
            problems.append(f"{kind} {name} has the value {value!r}, not a string")
        else:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"{kind} {name} has a value that is not valid UTF-8")
    return problems


def cheap_to_label(result: object) -> bool:
    """Whether ``result`` is cheap enough to label on the event loop: anything but a large (or
    unsized, a generator say) collection."""
    if result is None or isinstance(result, str | bytes | int | float | Alert):
        return True
    if isinstance(result, Scores):
        return cheap_to_label(result.scores) and cheap_to_label(result.alerts)
    if isinstance(result, Sized):
        return len(result) <= CHEAP_RESULT
    return not isinstance(result, Iterable)


@dataclass
class LabelledResult:
    """One ``new_data`` result as alerts ready for Alertmanager, and its scores."""

    alerts: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)
    """``(labels, annotations)`` of every alert that can be sent."""
    scores: dict[str | None, float] = field(default_factory=dict)
    """Anomaly score per target URL (``None``: a score not about one target)."""
    series_scores: list[SeriesScore] = field(default_factory=list)
    """Per-series scores (from a ``Scores`` result), NaN ones left out."""
    merged: int = 0
    """How many alerts had the label set of another alert in the result: each label set is
    one alert in Alertmanager, so they were merged into it (the last one wins)."""
    merged_targets: list[str] = field(default_factory=list)
    """The targets whose alerts were merged with another target's: their labels (``instance``,
    ``job``, ...) do not tell them apart, which no observer can mend."""
    errors: list[str] = field(default_factory=list)
    """What could not be understood or sent, one message each (an alert was lost)."""
    warnings: list[str] = field(default_factory=list)
    """What was sent, but not as the observer may have meant it."""


def label_result(
    result: object,
    data: Mapping[str, Any],
    targets: Mapping[str, TargetLike],
    *,
    observer: str,
    alert_name: str,
    external_labels: Mapping[str, str] | None = None,
) -> LabelledResult:
    """The alerts, fully labelled, and the scores of ``result``, returned by ``observer``
    (its name) for ``data``.

    ``targets`` maps the URLs in ``data`` to their targets as they were when ``data`` was
    handed to the observer: their labels label the alerts about them. Pure; never raises.
    """
    outcome = interpret_result(result, data)
    out = LabelledResult(scores=outcome.scores, series_scores=outcome.series_scores)
    out.errors.extend(
        f"observer {observer} returned something deucalion cannot send: {problem}"
        for problem in outcome.problems
    )
    targets_of: dict[frozenset[tuple[str, str]], set[str]] = {}
    for alert in outcome.alerts:
        target = targets.get(alert.target) if alert.target is not None else None
        if alert.target is not None and target is None:
            out.warnings.append(
                f"observer {observer}: alert about unknown target "
                f"{alert.target!r} is sent without target labels"
            )
        labels = alert_labels(
            alert,
            alert_name=alert_name,
            observer=observer,
            external_labels=external_labels,
            target=target,
        )
        annotations = dict(alert.annotations)
        problems = label_problems(labels) + label_problems(annotations, "annotation")
        if problems:
            out.errors.append(f"observer {observer}: alert dropped: {'; '.join(problems)}")
            continue
        out.alerts.append((labels, annotations))
        if alert.target is not None:
            targets_of.setdefault(frozenset(labels.items()), set()).add(alert.target)
    out.merged = len(out.alerts) - len({frozenset(labels.items()) for labels, _ in out.alerts})
    out.merged_targets = sorted(t for urls in targets_of.values() if len(urls) > 1 for t in urls)
    return out


def merge_advice(targets: Iterable[str]) -> str:
    """What to do about merged alerts: an observer's own labels, or, when the alerts were
    about different ``targets`` whose labels are the same (two metrics paths on one
    host:port, as a preset sees them), the targets' labels, which only the config can set."""
    targets = sorted(targets)
    if not targets:
        return "Give them labels that tell them apart"
    shown = ", ".join(redact_url(t) for t in targets[:4]) + (", ..." if len(targets) > 4 else "")
    return (
        f"The targets {shown} have the same instance and job labels: give each its own (a "
        "group with labels: {instance: NAME} under targets:, or another job)"
    )
