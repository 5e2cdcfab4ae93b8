"""The ``deucalion record``, ``backtest`` and ``evaluate`` commands (added to ``deucalion.cli``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from deucalion.cli.shared import (
    add_budget_option,
    build_observers,
    configured_budget,
    configured_in,
    duration_seconds,
    load_object,
    metric_list,
    metrics_of_a_preset,
    settings_from,
    settings_running,
)
from deucalion.errors import ConfigError
from deucalion.observer import MetricsObserver

if TYPE_CHECKING:
    from deucalion.config.loading import Settings

__all__ = ["add_commands", "parse_when"]


def parse_when(text: str, option: str) -> float:
    """Unix seconds of ``--start``/``--end``: seconds, ISO 8601, ``now`` or ``now-7d``."""
    from deucalion.config.settings import parse_duration
    from deucalion.replay.sources import HistoryError, parse_time

    value = text.strip()
    if value.startswith("now"):
        rest = value[3:].strip()
        if not rest:
            return time.time()
        if rest[0] != "-":
            raise ConfigError(f"{option} {text!r}: write now, now-7d, seconds or an ISO date")
        try:
            return time.time() - parse_duration(rest[1:])
        except ValueError as exc:
            raise ConfigError(f"{option} {text!r}: {exc}") from None
    try:
        return parse_time(value)
    except HistoryError:
        raise ConfigError(
            f"{option} {text!r}: write Unix seconds, an ISO 8601 date and time "
            "(2024-05-01T12:00:00Z), now or now-7d"
        ) from None


def _build_observer(path: str, args: argparse.Namespace) -> MetricsObserver:
    """The observer ``--observer`` names: an instance, a MetricsObserver class (built with
    ``--metrics`` or its configured entry) or a factory called without arguments."""
    obj = load_object(path)
    if isinstance(obj, MetricsObserver):
        return obj
    if isinstance(obj, type) and issubclass(obj, MetricsObserver):
        settings, where = settings_from(args.config), configured_in(args.config)
        return build_observers([path], settings, metric_list(args.metrics), config_file=where)[0]
    if not callable(obj):
        raise ConfigError(
            f"--observer {path}: neither a MetricsObserver, its class nor a factory returning one"
        )
    built = obj()
    if not isinstance(built, MetricsObserver):
        raise ConfigError(
            f"--observer {path}: the factory returned {type(built).__name__}, not a MetricsObserver"
        )
    return built


def _configured_metrics(
    settings: Settings, config_file: str | None = None
) -> dict[str, Iterable[str]]:
    """Each configured observer's desired metrics: its entry's, else its class's default (known
    once it is built; an entry for a class without one is refused, naming it)."""
    wanted: dict[str, Iterable[str]] = {}
    for path, entry in settings.observers.items():
        if entry.desired_metrics is not None:
            wanted[path] = entry.desired_metrics
        else:
            built = build_observers([path], settings, None, config_file=config_file)
            wanted[path] = built[0].desired_metrics
    if settings.preset and settings.preset.name:
        # The configuration's preset is one of the observers `deucalion run` runs.
        from deucalion.presets import preset_observer

        try:
            preset = preset_observer(settings.preset.name)
        except ConfigError as exc:
            raise ConfigError(f"the configuration's preset: {exc}") from None
        wanted[f"preset {settings.preset.name}"] = preset.desired_metrics
    return wanted


def _record(args: argparse.Namespace) -> int:
    from deucalion.replay.recording import check_recording_path, desired_union, record

    # Before the progress line, which would show a directory's size as "4 kB written".
    check_recording_path(args.output, overwrite=args.overwrite)
    settings = settings_from(args.config)
    metrics: frozenset[str] | None
    if args.all:
        metrics = None
    elif args.metrics:
        metrics = frozenset(metric_list(args.metrics) or ())
    else:
        metrics = desired_union(_configured_metrics(settings, configured_in(args.config)))
        if not metrics:
            raise ConfigError(
                "deucalion record: which metrics? pass --metrics a,b, --all, or "
                "configure observers: with their desired_metrics (or a preset:)"
            )
    duration = args.duration
    from deucalion.targets import require_targets

    require_targets(settings)  # before the progress line of a recording that never starts

    from deucalion._progress import recording_progress
    from deucalion.runner import run_main, stopping_on_signals

    async def main() -> Any:
        # SIGINT/SIGTERM end the recording cleanly: the file is closed with # EOF.
        stop = asyncio.Event()
        with stopping_on_signals(stop.set):
            async with recording_progress(args.output, duration):
                return await record(
                    settings,
                    args.output,
                    metrics=metrics,
                    duration=duration,
                    stop=stop,
                    overwrite=args.overwrite,
                )

    started = time.monotonic()
    writer = run_main(main())
    if writer is not None:
        print(
            f"recorded {writer.cycles} cycles, {writer.samples} samples in "
            f"{time.monotonic() - started:.0f}s to {args.output}",
            file=sys.stderr,
        )
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from deucalion.replay.backtesting import backtest
    from deucalion.replay.opening import open_source

    observer: MetricsObserver
    if args.preset and args.observer:
        raise ConfigError(
            f"deucalion backtest: give --observer or --preset, not both (--observer "
            f"{args.observer}, --preset {args.preset}): one observer is backtested at a time"
        )
    preset, budget = args.preset, args.budget
    if not args.observer:
        # As `deucalion run` reads them: the configuration's preset (the file's, or
        # DEUCALION_PRESET) when --preset names none, and its budget (the file's, or
        # DEUCALION_PRESET__BUDGET) when --budget gives none, so a budget tried here is the
        # one the same configuration runs with.
        configured = settings_running(args.config, preset).preset
        preset = preset or (configured.name if configured else None)
        if preset and budget is None:
            budget = configured_budget(configured, preset)
    if preset and args.metrics:
        raise ConfigError(metrics_of_a_preset("deucalion backtest", preset))
    if preset:
        from deucalion.presets import preset_observer

        observer = preset_observer(preset, budget=budget if budget is not None else 1.0)
    elif args.budget is not None:
        raise ConfigError("deucalion backtest --budget: it is a preset's budget; give --preset")
    elif args.observer:
        observer = _build_observer(args.observer, args)
    else:
        raise ConfigError(
            "deucalion backtest: which observer? give --observer or --preset (or a preset: "
            "in the config file)"
        )
    if args.plot:
        from deucalion.replay.plot import check_plot_path

        check_plot_path(args.plot)  # before the run, not after it
    source = open_source(args.source, metric=args.csv_metric, allow_partial=args.allow_partial)
    start = parse_when(args.start, "--start") if args.start else None
    end = parse_when(args.end, "--end") if args.end else None
    if start is not None and end is not None and start > end:
        raise ConfigError(
            f"--start {args.start} is after --end {args.end}: the range would replay nothing"
        )
    step = args.step
    windows = None
    if args.labels:
        from deucalion.replay.evaluate import load_windows

        windows = load_windows(args.labels)
    series = args.series.split(";") if args.series else None
    if windows:
        # Their values count their steps for evaluation (scored or not), and draw them.
        series = [*(series or []), *(k for k in windows if k not in (series or []))]
    if not args.verbose:
        # One log line per alert fired and resolved drowns the summary of a long history.
        logging.getLogger("deucalion.alerting.lifecycle").setLevel(logging.WARNING)
    from deucalion._progress import backtest_progress

    result = backtest(
        observer,
        backtest_progress(source, start=start, end=end),
        progress=False,
        start=start,
        end=end,
        step=step,
        output=args.output,
        keep_series=series,
        observer_timeout=args.observer_timeout,
    )
    result.preset = preset or None
    print(result.summary())
    refused = False
    if preset and not result.received_nothing and not any(" " in n for n in result.scores):
        # Its metrics were there, but not enough of them for any signal (a recording made with
        # --metrics, not --all): an empty backtest would read as a quiet one.
        print(
            f"deucalion backtest --preset {preset}: none of the preset's signals could be "
            f"computed from {args.source} (it holds too few of the metrics they need; "
            f"`deucalion presets show {preset}` lists them): record with "
            "`deucalion record --all`",
            file=sys.stderr,
        )
        refused = True
    if windows is not None:
        from deucalion.replay.evaluate import evaluate

        evaluation = evaluate(result, windows, threshold=args.threshold)
        print(evaluation.report())
        refused = refused or bool(evaluation.nab_error)
    if args.plot:
        from deucalion.replay.plot import plot, top_scored

        panels = series
        if panels is None and result.scores:
            # The series worth a look are those that scored highest, known only now: their
            # values are read again.
            from deucalion.replay.backtesting import read_values

            panels = top_scored(result)
            # Those of a source's series are read again; a derived series' (a preset's
            # signal) came with its scores.
            known = {name: result.values[name] for name in panels if name in result.values}
            unread = [name for name in panels if name not in known]
            result.values = known
            if unread:
                result.values.update(
                    asyncio.run(
                        read_values(
                            source,
                            observer.desired_metrics,
                            unread,
                            start=start,
                            end=end,
                            step=step,
                        )
                    )
                )
        plot(result, args.plot, windows=windows, series=panels)
        print(f"plot: {args.plot}")
    failed = result.failure or result.source_errors or result.received_nothing
    return 1 if failed or refused else 0


def _evaluate(args: argparse.Namespace) -> int:
    from deucalion.replay.evaluate import evaluate, load_windows, read_output

    result = read_output(args.output)
    evaluation = evaluate(result, load_windows(args.labels), threshold=args.threshold)
    print(evaluation.report())
    return 1 if evaluation.nab_error else 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """record, backtest, evaluate."""
    rec = commands.add_parser(
        "record",
        help="record what the targets serve, each cycle, to a file",
        description="Scrapes the configured targets as `run` does and writes each cycle's "
        "desired samples (or --all) with their scrape times, as gzip-compressed OpenMetrics "
        "text that `deucalion backtest --from` replays and, once gunzipped (or recorded to "
        "FILE.om), `promtool tsdb create-blocks-from openmetrics` backfills into Prometheus. "
        "Stops after --duration or on SIGINT/SIGTERM; the file is always closed.",
    )
    rec.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the recording (FILE.om.gz)"
    )
    rec.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the file -o names if it exists (default: refuse it)",
    )
    rec.add_argument("-c", "--config", metavar="FILE", help="config file, as for run")
    which = rec.add_mutually_exclusive_group()
    which.add_argument(
        "--metrics",
        help="comma-separated desired metrics (default: those of the configured observers)",
    )
    which.add_argument("--all", action="store_true", help="record every sample")
    rec.add_argument(
        "--duration",
        type=duration_seconds(),
        help="how long to record: seconds or e.g. 1h (default: until stopped)",
    )
    rec.set_defaults(func=_record)

    back = commands.add_parser(
        "backtest",
        help="run an observer over history: a recording, CSV files or Prometheus",
        description="Runs the observer, unchanged, in its worker process over every cycle of "
        "the history, and prints a summary; scores, alerts and errors go to --output.",
    )
    back.add_argument(
        "--observer",
        metavar="MODULE:FACTORY",
        help="an observer class (with --metrics or configured), an instance, or "
        "a function returning one",
    )
    back.add_argument(
        "--preset",
        metavar="NAME",
        help="backtest this preset instead of an --observer (default: the config's preset:)",
    )
    add_budget_option(back)
    back.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SOURCE",
        help="a recording (.om.gz), CSV files (.csv or a directory of them) or a Prometheus URL",
    )
    back.add_argument("--start", help="seconds, ISO 8601, now or now-7d")
    back.add_argument("--end", help="as --start")
    back.add_argument(
        "--step",
        type=duration_seconds(),
        help="time between cycles read from Prometheus: seconds or e.g. 1m (default 15s)",
    )
    back.add_argument(
        "--allow-partial",
        action="store_true",
        help="replay answers Prometheus says are partial (its warnings) with a warning, "
        "instead of failing",
    )
    back.add_argument("--metrics", help="comma-separated desired metrics for an observer class")
    back.add_argument(
        "-c", "--config", metavar="FILE", help="config file (its observers: or preset: section)"
    )
    back.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="scores, alerts and errors: JSON lines, or CSV for *.csv",
    )
    back.add_argument("--labels", metavar="WINDOWS.json", help="evaluate against these windows")
    back.add_argument(
        "--threshold",
        type=float,
        help="with --labels: detections are scores >= this, not alerts; NAB of the scores "
        "is scored at it instead of swept (NAB of the alerts is printed as before)",
    )
    back.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw values, scores and alerts (needs the plot extra: pip install deucalion[plot])",
    )
    back.add_argument(
        "--series",
        help="';'-separated series to keep for --plot "
        "('target metric{labels}'; default: the labelled ones, else the six that scored "
        "highest)",
    )
    back.add_argument(
        "--csv-metric",
        default="value",
        help="the sample name of one-series-per-file CSVs (default: value)",
    )
    back.add_argument(
        "--observer-timeout",
        type=duration_seconds(),
        help="longest a new_data call may run, as observer_timeout live: seconds or e.g. 30s",
    )
    back.add_argument(
        "-v", "--verbose", action="store_true", help="log every alert as it fires and resolves"
    )
    back.set_defaults(func=_backtest)

    ev = commands.add_parser(
        "evaluate",
        help="precision, recall, F1, time to detection and NAB score of a backtest",
        description="Reads a backtest's --output and labelled windows ({series: [[start, end], "
        "...]}) and prints per-series and total numbers and NAB's scores.",
    )
    ev.add_argument("output", metavar="OUTPUT", help="a backtest's output (.jsonl or .csv)")
    ev.add_argument("--labels", required=True, metavar="WINDOWS.json")
    ev.add_argument(
        "--threshold",
        type=float,
        help="detections are scores >= this (default: the alerts); NAB of the scores is "
        "scored at it instead of swept (apply a threshold chosen on another labelled set; "
        "NAB of the alerts is printed as before)",
    )
    ev.set_defaults(func=_evaluate)
