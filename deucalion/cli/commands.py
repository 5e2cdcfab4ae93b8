"""The ``deucalion`` command: a thin layer over the library."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from deucalion._extras import MissingExtraError
from deucalion._version import __version__
from deucalion.cli.shared import (
    add_budget_option,
    build_observers,
    check_preset,
    configured_budget,
    configured_in,
    duration_seconds,
    load_object,
    metric_list,
    metrics_of_a_preset,
    needs_metrics_option,
    preset_source,
    settings_from,
    settings_running,
)
from deucalion.errors import ConfigError, DeucalionError
from deucalion.runner import LOG_LEVELS, run_main

if TYPE_CHECKING:
    from deucalion.collection import ScrapeResult
    from deucalion.config.loading import Settings
    from deucalion.targets import Target, TargetProvider

__all__ = ["build_parser", "load_object", "main"]


def _demo(args: argparse.Namespace) -> int:
    from deucalion._extras import MissingExtraError, missing_extra

    try:
        from deucalion.demo import run_demo
    except MissingExtraError as exc:
        # Said for the command the user typed, not for the module that needs it.
        raise missing_extra(exc.name or "numpy", "deucalion demo", exc.extra) from None

    if args.preset:
        check_preset(args.preset, "deucalion demo --preset")
        if args.metrics:
            raise ConfigError(metrics_of_a_preset("deucalion demo", args.preset))
    elif args.budget is not None:
        raise ConfigError("deucalion demo --budget: it is a preset's budget; give --preset too")
    _check_demo_urls(args)
    metrics = metric_list(args.metrics)
    return run_main(
        run_demo(
            target=args.target,
            alertmanager=args.alertmanager,
            duration=args.duration,
            interval=args.interval,
            metrics=metrics,
            preset=args.preset,
            budget=args.budget,
        )
    )


def _check_demo_urls(args: argparse.Namespace) -> None:
    """Refuse a --target or --alertmanager that is no URL, naming the option: the demo passes
    them on as keyword arguments, which an error would otherwise name ("keyword arguments:
    targets.0.url")."""
    from deucalion.config.settings import AlertmanagerSettings, normalize_target_url

    option = "--target"
    try:
        if args.target is not None:
            normalize_target_url(args.target)
        option = "--alertmanager"
        if args.alertmanager is not None:
            AlertmanagerSettings._check_urls([args.alertmanager])
    except ValueError as exc:
        # Not quoted back: the message quotes what it may (a password whose / ended the host
        # early cannot be told apart from the rest of the URL, so it shows none of it).
        raise ConfigError(f"deucalion demo {option}: {exc}") from None


# --- check-config -------------------------------------------------------------------------


def _check_config(args: argparse.Namespace) -> int:
    from deucalion._http import redact_url
    from deucalion.config.loading import (
        load_settings,
        not_a_setting,
        unknown_variables,
        variables_that_set,
    )

    # The names of this shell's DEUCALION_* variables, for typos that would pass in silence
    # (never their values: they may be secrets); warnings, which leave the exit code alone.
    for name, closest in unknown_variables(os.environ):
        print(f"deucalion: warning: {not_a_setting(name, closest)}", file=sys.stderr)
    # The file with this shell's DEUCALION_* variables, which override it as they do for `run`
    # (DEUCALION_KUBERNETES=true, DEUCALION_SCRAPE_INTERVAL=1s), but not another file.
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEUCALION_CONFIG", "DEUCALION_CONFIG_OPTIONAL")
    }
    from deucalion.presets import PRESETS

    # The preset's name is checked with every other problem, not after them (a run would
    # refuse it next): the file's name, as `run` without --preset would take it.
    settings = load_settings(args.file, environ=environ, default_file=None, known_presets=PRESETS)
    if settings.prometheus is not None:
        sources = [f"federated from {redact_url(settings.prometheus.url)}"]
    else:
        sources = []
        if settings.targets:
            sources.append(f"{len(settings.targets)} static target(s)")
        if settings.file_sd is not None:
            sources.append(f"file_sd ({', '.join(settings.file_sd.files)})")
        if settings.kubernetes is not None:
            sources.append("kubernetes pod annotations")
    # deucalion's own ready observers (DetectorObserver, RangeObserver) are built, so a kwarg
    # they refuse (budget: 1d) fails here, not in the running sidecar; a user's module is not
    # imported by a check (importing runs its code). Every entry is built: each problem listed.
    problems: list[str] = []
    for path in settings.observers:
        if path.startswith("deucalion."):
            try:
                if needs_metrics_option(path, settings):
                    # `run -c FILE --metrics a,b` runs it: built here with a stand-in for them.
                    print(
                        f"deucalion: warning: observers: {path!r}: no desired_metrics: "
                        "`deucalion run` will need --metrics a,b for it (or add "
                        "desired_metrics: [name, ...] to the entry)",
                        file=sys.stderr,
                    )
                    build_observers([path], settings, ["up"])
                else:
                    build_observers([path], settings, None)
            except (ImportError, MissingExtraError):
                pass  # the ml extra is not installed here: `run` says so where it runs
            except ConfigError as exc:
                problems.append(f"{args.file}: {exc}")
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    observers = f", {len(settings.observers)} observer(s)" if settings.observers else ""
    if settings.preset and settings.preset.name is None:
        observers += f", preset budget {settings.preset.budget:g} (for --preset NAME)"
    elif settings.preset and settings.preset.name is not None:
        observers += f", preset {settings.preset.name} (budget {settings.preset.budget:g})"
    variables = variables_that_set(environ)
    with_environment = f"; with this shell's {', '.join(variables)}" if variables else ""
    print(
        f"{args.file}: OK: {', '.join(sources) or 'no targets'}, scrape every "
        f"{settings.scrape_interval:g}s{observers}{with_environment}"
    )
    return 0


# --- targets and scrape: one cycle, without observers -------------------------------------


async def _collect(
    settings: Settings,
    provider: TargetProvider,
    targets: Sequence[Target],
    metrics: Iterable[str] | None,
) -> list[ScrapeResult]:
    """What ``MetricsProvisioner.cycle`` gets for ``targets``: the collector the settings and
    the provider call for (a scrape, or federation), with every sample counted."""
    from deucalion.collection import build_collector

    collector = build_collector(settings, provider, metrics, count_samples=True)
    try:
        return await collector.collect(targets)
    finally:
        await collector.close()


async def _targets(args: argparse.Namespace) -> int:
    from deucalion.targets import build_provider

    settings = settings_from(args.config)
    provider = build_provider(settings)
    try:
        targets = list(await provider.discover())
        problem = getattr(provider, "last_error", None)
        if problem:
            print(f"discovery problem: {problem}")
        if not targets:
            print("no targets discovered")
            return 1
        # Only the synthetic samples are kept: the question is whether each target answers.
        results = await _collect(settings, provider, targets, frozenset())
    finally:
        await provider.close()
    for result in results:
        labels = ",".join(f"{k}={v}" for k, v in sorted(result.target.labels.items()))
        state = (
            f"up    ({result.samples_scraped} samples in {result.duration:.3f}s)"
            if result.up
            else f"down  ({result.error})"
        )
        print(f"{result.target.shown}  {{{labels}}}  {state}")
    return 0 if all(r.up for r in results) else 1


async def _scrape(args: argparse.Namespace) -> int:
    from deucalion.config.loading import normalize_target_url
    from deucalion.observer import check_desired_metrics, select_data
    from deucalion.targets import Target, build_provider

    metrics = metric_list(args.metrics)
    if metrics is not None:
        check_desired_metrics(metrics, "deucalion scrape --metrics")
    try:
        url = normalize_target_url(args.url)
    except ValueError as exc:
        raise ConfigError(f"deucalion scrape URL: {exc}") from None
    settings = settings_from(args.config)
    provider: TargetProvider
    target = Target(url)
    try:
        provider = build_provider(settings)
    except ConfigError:
        from deucalion.targets import StaticTargets

        provider = StaticTargets([target])  # no targets configured: scrape the URL as given
    try:
        # A configured target brings its labels, credentials and TLS settings along.
        known = {t.url: t for t in await provider.discover()}
        target = known.get(url, target)
        if target.url not in known:
            from deucalion.targets import StaticTargets

            await provider.close()
            provider = StaticTargets([target])
        scrape_metrics = None if metrics is None else frozenset(metrics)
        results = await _collect(settings, provider, [target], scrape_metrics)
    finally:
        await provider.close()
    result = results[0]
    # With --metrics, the very selection an observer desiring them gets its data from.
    data = {url: result.with_synthetic()} if metrics is None else select_data(metrics, results).data
    from deucalion._http import redact_url

    # Keyed by the URL as logs show it: a ?token= in it is a secret, and this output is pasted.
    shown = {redact_url(key): samples for key, samples in data.items()}
    print(json.dumps(shown, indent=2, sort_keys=True))
    if not result.up:
        print(f"deucalion: {result.target.shown} is down: {result.error}", file=sys.stderr)
        return 1
    return 0


# --- run ----------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from deucalion.provisioner import MetricsProvisioner

    settings = settings_running(args.config, args.preset)
    provisioner: MetricsProvisioner
    if args.record:
        from deucalion.replay.recording import RecordingProvisioner

        provisioner = RecordingProvisioner(settings, record_path=args.record)
    else:
        provisioner = MetricsProvisioner(settings)
    metrics = metric_list(args.metrics)
    configured = provisioner.settings.preset
    preset = args.preset or (configured.name if configured else None)
    if not preset and args.budget is not None:
        raise ConfigError(
            "--budget: it is a preset's budget, and no preset is named: add --preset NAME "
            "(or preset: {name: NAME} in the config)"
        )
    if not preset and configured is not None:
        # A budget alone is that of the preset --preset names (README): set for every pod
        # (the injector's extra_env, a shared ConfigMap), it reaches sidecars that run an
        # observer, which it must not stop.
        where = (
            "DEUCALION_PRESET__BUDGET"
            if os.environ.get("DEUCALION_PRESET__BUDGET")
            else "the configuration's preset.budget"
        )
        logging.getLogger("deucalion.cli").info(
            "%s (%g) is a preset's budget and no preset runs here: it is not used",
            where,
            configured.budget,
        )
    if args.observers or provisioner.settings.observers or not preset:
        built = build_observers(
            args.observers, provisioner.settings, metrics, config_file=configured_in(args.config)
        )
        for observer in built:
            provisioner.register(observer)
    elif metrics is not None:
        raise ConfigError(metrics_of_a_preset("deucalion run", preset))
    if preset:
        from deucalion.presets import preset_observer

        if args.preset and configured is not None and configured.name not in (None, preset):
            # One preset a run; the command line wins over the file, as --budget does.
            logging.getLogger("deucalion.cli").warning(
                "--preset %s replaces the preset %s (%s), and its budget %g with it: one "
                "preset a run; run another deucalion for the other",
                preset,
                configured.name,
                preset_source(args.config),
                configured.budget,
            )
        # --budget wins over the configuration's, as a command line argument does.
        budget = args.budget if args.budget is not None else configured_budget(configured, preset)
        provisioner.register(preset_observer(preset, budget=budget))
        # What a pod's sidecar runs is set in three places (the annotation, a ConfigMap, the
        # injector's environment): its log says what came of them.
        logging.getLogger("deucalion.cli").info(
            "preset %s, budget %g (false alerts per target per 10,000 cycles%s)",
            preset,
            budget,
            "; --budget" if args.budget is not None else "",
        )
    provisioner.run()
    return 0


def _async(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        return int(asyncio.run(command(args)))

    return run


def add_core_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands for checking, debugging and running: check-config, targets, scrape, run."""
    check = commands.add_parser(
        "check-config",
        help="validate a config file",
        description="Validates FILE as a whole: exits 0 with a one-line summary, or 1 listing "
        "every problem with its key. Also warns (on stderr, whatever the exit code) about every "
        "DEUCALION_* environment variable that is no setting, naming the closest one.",
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=_check_config)

    targets = commands.add_parser(
        "targets",
        help="list the discovered targets and whether each answers",
        description="Discovers the targets as `run` would and scrapes each once; exits 1 when "
        "one is down.",
    )
    targets.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="config file (default: $DEUCALION_CONFIG, /etc/deucalion/config.yaml)",
    )
    targets.set_defaults(func=_async(_targets))

    scrape = commands.add_parser(
        "scrape",
        help="print as JSON what an observer would receive from one target",
        description="Scrapes URL once (with a configured target's credentials when -c names "
        "it) and prints {url: {sample: {series: value}}}, exactly what an observer desiring "
        "--metrics receives; without --metrics, every sample.",
    )
    scrape.add_argument("url", metavar="URL")
    scrape.add_argument("--metrics", help="comma-separated desired metric names")
    scrape.add_argument("-c", "--config", metavar="FILE", help="config file")
    scrape.set_defaults(func=_async(_scrape))

    run = commands.add_parser(
        "run",
        help="run observers given by import path",
        description="Constructs each observer (module:Class or file.py:Class) with its "
        "desired_metrics and kwargs from the observers: section of the config (or --metrics) "
        "and runs until SIGINT/SIGTERM. Without a path, runs every configured observer.",
    )
    run.add_argument("observers", nargs="*", metavar="MODULE:CLASS")
    run.add_argument("-c", "--config", metavar="FILE", help="config file")
    run.add_argument("--metrics", help="comma-separated desired metrics (overrides the config)")
    run.add_argument(
        "--preset", metavar="NAME", help="also run this preset (deucalion presets list)"
    )
    add_budget_option(run)
    run.add_argument(
        "--record",
        metavar="FILE.om.gz",
        help="also record every cycle, as the "
        "observers receive it, for `deucalion backtest --from FILE`",
    )
    run.set_defaults(func=_run)


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="deucalion",
        description="Anomaly detection beside services exposing Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"deucalion {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        help="default: $DEUCALION_LOG_LEVEL, else INFO",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="watch a synthetic target with injected anomalies (or a real one)",
        description="Starts a synthetic target whose series carry an injected anomaly every few "
        "seconds and a robust z-score observer, and prints each detection.",
    )
    demo.add_argument("--target", metavar="URL", help="watch this exporter instead")
    demo.add_argument("--alertmanager", metavar="URL", help="also send the alerts there")
    demo.add_argument(
        "--duration",
        type=duration_seconds(zero="until Ctrl-C"),
        default=30.0,
        help="how long to run: seconds or e.g. 2m; 0 for until Ctrl-C (default: 30s)",
    )
    demo.add_argument(
        "--interval",
        type=duration_seconds(),
        default=1.0,
        help="scrape interval: seconds or e.g. 500ms (default: 1s)",
    )
    demo.add_argument("--metrics", help="comma-separated metric names to watch")
    demo.add_argument("--preset", metavar="NAME", help="watch --target with this preset")
    add_budget_option(demo)
    demo.set_defaults(func=_demo)
    add_core_commands(commands)

    from deucalion.replay.cli import add_commands as add_replay_commands

    add_replay_commands(commands)

    from deucalion.presets.cli import add_commands as add_preset_commands

    add_preset_commands(commands)

    from deucalion.injector.cli import add_commands as add_injector_commands

    add_injector_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or os.environ.get("DEUCALION_LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        parser.error(f"DEUCALION_LOG_LEVEL={level}: choose one of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (DeucalionError, MissingExtraError) as exc:
        print(f"deucalion: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`deucalion scrape URL | head`): as a program killed by SIGPIPE
        # would, end quietly. stdout is pointed at /dev/null first, or the interpreter's own
        # flush at exit fails on the same pipe with a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


if __name__ == "__main__":
    sys.exit(main())
