"""The ``deucalion`` command: a thin layer over the library."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from deucalion._version import __version__
from deucalion.errors import DeucalionError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from deucalion.demo import run_demo

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    return asyncio.run(run_demo(target=args.target, alertmanager=args.alertmanager,
                                duration=args.duration, interval=args.interval, metrics=metrics))


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="deucalion", description="Anomaly detection beside services exposing Prometheus "
        "metrics.")
    parser.add_argument("--version", action="version", version=f"deucalion {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="watch a synthetic target with injected anomalies (or a real one)",
        description="Starts a synthetic target whose series carry an injected anomaly every few "
        "seconds and a robust z-score observer, and prints each detection.")
    demo.add_argument("--target", metavar="URL", help="watch this exporter instead")
    demo.add_argument("--alertmanager", metavar="URL", help="also send the alerts there")
    demo.add_argument("--duration", type=float, default=30.0,
                      help="seconds to run, 0 for until Ctrl-C (default: 30)")
    demo.add_argument("--interval", type=float, default=1.0, help="scrape interval in seconds")
    demo.add_argument("--metrics", help="comma-separated metric names to watch")
    demo.set_defaults(func=_demo)

    from deucalion.injector.cli import add_commands as add_injector_commands

    add_injector_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except DeucalionError as exc:
        print(f"deucalion: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
