"""Labelled windows as users give them: a labels file's path, or a mapping with times as a
labels file has them (Unix seconds, ISO 8601) or as datetimes, to ``evaluate`` and ``plot``
alike; ``deucalion.replay.load_windows`` reads a labels file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deucalion.errors import ConfigError
from deucalion.replay import load_windows
from deucalion.replay.evaluate import as_windows, evaluate
from deucalion.replay.results import AlertSpan, BacktestResult

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
START, END = T0 + 600, T0 + 900
ISO = ("2023-11-14T22:23:20Z", "2023-11-14T22:28:20Z")


def _result() -> BacktestResult:
    times = [T0 + 60.0 * i for i in range(30)]
    result = BacktestResult(
        "X", values={"a.csv value{}": [(t, float(i)) for i, t in enumerate(times)]}
    )
    result.alerts.append(
        AlertSpan({"metric": "value", "series": "{}"}, {}, "a.csv", T0 + 660, T0 + 720)
    )
    result.first_time, result.last_time, result.steps = times[0], times[-1], len(times)
    return result


def test_windows_as_iso_strings_datetimes_numbers_or_a_path_are_the_same(tmp_path: Path) -> None:
    """Every form a labels file or a caller gives reads as the same Unix seconds."""
    labels = tmp_path / "w.json"
    labels.write_text(json.dumps({"a.csv": [list(ISO)]}))
    naive = datetime(2023, 11, 14, 22, 23, 20)  # UTC, as a naive ISO string is
    aware = datetime(2023, 11, 14, 22, 28, 20, tzinfo=UTC)
    expected = {"a.csv": [(START, END)]}
    assert load_windows(labels) == expected
    assert as_windows(labels) == as_windows(str(labels)) == expected
    assert as_windows({"a.csv": [ISO]}) == expected
    assert as_windows({"a.csv": [(naive, aware)]}) == expected
    assert as_windows({"a.csv": [[int(START), END]]}) == expected


def test_evaluate_takes_windows_in_iso_8601_or_a_labels_file(tmp_path: Path) -> None:
    labels = tmp_path / "w.json"
    labels.write_text(json.dumps({"a.csv": [list(ISO)]}))
    for windows in ({"a.csv": [ISO]}, labels, {"a.csv": [(START, END)]}):
        report = evaluate(_result(), windows)
        assert (report.total.windows, report.total.detected) == (1, 1), windows
        assert report.total.detection_delays == [60.0]


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ({"a.csv": [("yesterday", ISO[1])]}, r"windows: a\.csv: timestamp 'yesterday' is neither"),
        ({"a.csv": [(object(), END)]}, r"windows: a\.csv: time .* is a object: give Unix seconds"),
        ({"a.csv": [(True, END)]}, r"is a bool"),
        ({"a.csv": [(START,)]}, r"a\.csv: windows must be a list of \[start, end\] pairs"),
        ({"a.csv": ISO}, r"a\.csv: windows must be a list of \[start, end\] pairs"),
        ({"a.csv": [(END, START)]}, r"ends before it starts"),
        ([("a.csv", [(START, END)])], r"a list is not labelled windows: give a labels file's path"),
    ],
)
def test_windows_that_are_none_are_refused_clearly(windows: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        as_windows(windows)  # type: ignore[arg-type]


def test_plot_takes_windows_as_a_labels_file_has_them(tmp_path: Path) -> None:
    """plot(windows=) took only Unix seconds: ISO strings raised "TypeError: 'str' object
    cannot be interpreted as an integer", a labels file's path an AttributeError. Each form
    now draws the same picture as the windows in seconds."""
    pytest.importorskip("matplotlib")
    import matplotlib.image
    import numpy as np

    from deucalion.replay.plot import plot

    labels = tmp_path / "w.json"
    labels.write_text(json.dumps({"a.csv": [list(ISO)]}))
    drawn = matplotlib.image.imread(
        plot(_result(), tmp_path / "seconds.png", windows={"a.csv": [(START, END)]})
    )
    bare = matplotlib.image.imread(plot(_result(), tmp_path / "bare.png"))
    assert not np.array_equal(drawn, bare)  # the window is drawn
    forms: dict[str, object] = {
        "iso": {"a.csv": [ISO]},
        "datetime": {"a.csv": [tuple(datetime.fromtimestamp(t, UTC) for t in (START, END))]},
        "path": labels,
        "loaded": load_windows(labels),
    }
    for name, windows in forms.items():
        picture = plot(_result(), tmp_path / f"{name}.png", windows=windows)  # type: ignore[arg-type]
        assert np.array_equal(matplotlib.image.imread(picture), drawn), name
    with pytest.raises(ConfigError, match=r"timestamp 'soon' is neither"):
        plot(_result(), tmp_path / "bad.png", windows={"a.csv": [("soon", END)]})
