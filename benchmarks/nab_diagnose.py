"""Where ``AnomalyDetector`` wins and loses on nab-dev, cross-validated: a development aid.

``python -m benchmarks.nab_diagnose [--nab-dev DIR] [--budgets 1,10,100]`` runs only the NAB
cross-validation of ``bench_detection`` (the budget chosen on the training folds, the held
fold scored at it) and prints, per file: each labelled window, whether it was found and where
its first detection fell (as a share of the window's width: 0 is its start), the probationary
period's end, and each false positive with the anomaly kind that caused it. It prints the
cross-validated and in-sample scores and how long the run took. Nothing here chooses
anything: it only shows what the benchmark would.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_detection import BUDGETS, FOLDS, _labelled, _matrix, find_nab_dev
from deucalion.detectors import AnomalyDetector
from deucalion.detectors.anomaly import KINDS
from deucalion.replay import nab


def run_kinds(
    make: Any, times: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alerts, scores and the kind index of each point, ``[points, series]``."""
    detector = make()
    alerts = np.zeros(values.shape, dtype=bool)
    scores = np.zeros(values.shape)
    kinds = np.full(values.shape, -1)
    for i in range(values.shape[0]):
        scores[i] = np.nan_to_num(detector.update(values[i], None, times=times[i]))
        alerts[i] = detector.alerting_
        kinds[i] = detector.surprise_.argmax(axis=0)
    return alerts, scores, kinds


def diagnose(
    folder: Path,
    budgets: tuple[float, ...],
    options: dict[str, Any],
    grid: dict[str, list[float]] | None = None,
) -> float:
    """Print the diagnosis (see the module doc); ``grid`` adds options CV chooses among."""
    started = time.process_time()
    files = nab.load_labelled_directory(folder)
    names, times, values = _matrix(files)
    settings: list[tuple[str, dict[str, Any]]] = [(f"budget {b:g}", {"budget": b}) for b in budgets]
    for option, choices in (grid or {}).items():
        settings = [
            (f"{label}, {option}={c:g}", {**given, option: c})
            for label, given in settings
            for c in choices
        ]
    outputs = {}
    for label, given in settings:
        outputs[label] = run_kinds(
            lambda given=given: AnomalyDetector(**given, **options), times, values
        )
    ran = time.process_time() - started
    chosen: dict[str, str] = {}
    for fold in range(FOLDS):
        test = names[fold::FOLDS]
        train = [n for n in names if n not in test]
        best = max(
            outputs,
            key=lambda b: (
                nab.sweep(_labelled(files, names, outputs[b][0].astype(float), train)).raw
            ),
        )
        for name in test:
            chosen[name] = best
    detections = []
    for column, name in enumerate(names):
        alerts, scores, kinds = outputs[chosen[name]]
        one = _labelled(files, names, alerts.astype(float), [name])[0]
        detections.append(one)
        stamps = np.asarray(files[name][0])
        n = len(stamps)
        probation = nab.probationary_length(n)
        hits = np.flatnonzero(alerts[:n, column])
        inside = np.zeros(n, dtype=bool)
        lines = []
        for start, end in files[name][2]:
            lo, hi = np.searchsorted(stamps, start), np.searchsorted(stamps, end, "right") - 1
            inside[lo : hi + 1] = True
            found = hits[(hits >= lo) & (hits <= hi)]
            where = "MISSED"
            if found.size:
                first = found[0]
                where = (
                    f"first at {(first - lo) / (hi - lo + 1):.2f} "
                    f"({KINDS[kinds[first, column]]}, {scores[first, column]:.1f})"
                )
            lines.append(
                f"    window {lo}-{hi}: {where}; max score in it "
                f"{scores[lo : hi + 1, column].max():.1f}"
            )
        false = [h for h in hits if not inside[h] and h >= probation]
        print(
            f"{name} ({chosen[name]}, {n} points, probation {probation}): "
            f"{nab.score_at_threshold([one], 0.5).score:.1f}"
        )
        print("\n".join(lines))
        if false:
            print(
                "    false: "
                + ", ".join(
                    f"{h}:{KINDS[kinds[h, column]]}({scores[h, column]:.1f})" for h in false
                )
            )
    cv = nab.score_at_threshold(detections, 0.5)
    sweeps = {
        b: nab.sweep(_labelled(files, names, outputs[b][0].astype(float), names)) for b in outputs
    }
    for b, result in sweeps.items():
        print(
            f"{b}, all files: {result.score:.1f} ({result.detected}/"
            f"{result.windows} windows, {result.false_positives} FP)"
        )
    whole = max(((r, b) for b, r in sweeps.items()), key=lambda pair: pair[0].raw)
    print(
        f"\nCV standard {cv.score:.1f} ({cv.detected}/{cv.windows} windows, "
        f"{cv.false_positives} FP); in-sample {whole[0].score:.1f} at {whole[1]}; "
        f"budgets chosen {sorted(set(chosen.values()))}; detectors ran {ran:.1f} s CPU"
    )
    return cv.score


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab-dev", type=Path, default=None)
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS))
    parser.add_argument(
        "--grid", action="append", default=[], help="an option CV chooses among, NAME=V1,V2"
    )
    parser.add_argument(
        "--option", action="append", default=[], help="a detector option, NAME=VALUE (a number)"
    )
    args = parser.parse_args()
    folder = find_nab_dev(args.nab_dev)
    if folder is None:
        raise SystemExit("no nab-dev folder: give --nab-dev")
    options = {
        k: float(v) if "." in v else int(v) for k, v in (o.split("=", 1) for o in args.option)
    }
    grid = {k: [float(c) for c in v.split(",")] for k, v in (g.split("=", 1) for g in args.grid)}
    diagnose(folder, tuple(float(b) for b in args.budgets.split(",")), options, grid)
