"""``python -m benchmarks [--quick] [name ...]``: run the benchmarks and write the report.

Every ``benchmarks/bench_*.py`` module with a ``main(quick)`` (or a plain ``main()``) returning
``{"markdown": str, ...}`` is run in turn; its markdown becomes a section of
``benchmarks/results.md`` and the rest goes under its name in ``benchmarks/results.json``, with
the run's date (UTC) and machine. ``python -m benchmarks.report`` then writes README's tables.
One failing benchmark is reported and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
import time
import traceback
from typing import Any

from benchmarks.report import HERE, machine, write_json, write_section

ORDER = ["bench_parse", "bench_cycle", "bench_dispatch", "bench_footprint", "bench_alert_latency"]


def available() -> list[str]:
    """The benchmark modules present, in report order (unknown ones last)."""
    present = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [n for n in ORDER if n in present] + [n for n in present if n not in ORDER]


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Import and run one benchmark; a failure becomes a result saying so."""
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        main = module.main
        # bench_parse is written elsewhere and may not take the quick flag.
        takes_quick = "quick" in inspect.signature(main).parameters
        result = main(quick=quick) if takes_quick else main()
    except Exception:
        error = traceback.format_exc()
        print(error, file=sys.stderr)
        return {"markdown": f"## {name}\n\nfailed:\n\n```\n{error}```\n", "error": error}
    if not isinstance(result, dict):
        result = {"result": result}
    if "markdown" not in result:
        result["markdown"] = f"## {name}\n\n```\n{result}\n```\n"
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks (all by default)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few repetitions and short runs: checks the harness, noisy numbers",
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run, e.g. bench_cycle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = args.names or available()
    failed = 0
    for name in names:
        name = name if name.startswith("bench_") else f"bench_{name}"
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        result = run_one(name, args.quick)
        took = time.monotonic() - started
        failed += "error" in result
        markdown = result.pop("markdown")
        # UTC, in both files: README's tables (python -m benchmarks.report) give each figure
        # the date and machine of its run from results.json.
        date, where = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), machine()
        stamp = (
            f"\n_{date} UTC, {'quick' if args.quick else 'full'} run in {took:.0f}s, {where}._\n"
        )
        write_section(name, markdown.rstrip() + "\n" + stamp)
        write_json(
            name,
            {
                **result,
                "quick": args.quick,
                "seconds": round(took, 1),
                "date": date,
                "machine": where,
            },
        )
        print(markdown, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
