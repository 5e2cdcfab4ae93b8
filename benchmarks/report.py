"""Statistics and the results files shared by the benchmarks and the soak test.

``benchmarks/results.md`` is made of sections, each between ``<!-- section: name -->`` markers,
so that ``python -m benchmarks`` and ``make soak`` each rewrite their own and keep the others.

``python -m benchmarks.report`` (``make results``) writes README's performance, detection
quality and soak figures from ``results.json`` and ``soak.json`` (see ``benchmarks/readme.py``);
with ``--check`` it changes nothing and exits 1 when README disagrees with them.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "results.md"
RESULTS_JSON = HERE / "results.json"
TITLE = "# deucalion benchmark results\n"


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank, or NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> str:
    """Seconds shown as milliseconds, with precision where it matters."""
    value = seconds * 1000
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """One line about where the numbers were taken: CPUs and load at the time."""
    import os
    import platform

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, load average {load}, Python {platform.python_version()}, "
        f"{platform.machine()}"
    )


_SECTION = re.compile(r"<!-- section: (\S+) -->\n.*?<!-- end: \1 -->\n", re.DOTALL)


def write_section(name: str, markdown: str, path: Path = RESULTS_MD) -> None:
    """Replace (or append) section ``name`` of the markdown report, keeping the others."""
    block = f"<!-- section: {name} -->\n{markdown.rstrip()}\n<!-- end: {name} -->\n"
    text = path.read_text() if path.exists() else TITLE
    if not text.startswith(TITLE):
        text = TITLE + text
    sections = {m.group(1): m.group(0) for m in _SECTION.finditer(text)}
    if name in sections:
        text = text.replace(sections[name], block)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def write_json(key: str, value: Any, path: Path = RESULTS_JSON) -> None:
    """Set ``key`` of the JSON results, keeping the other keys."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Regenerate README's figures from the results, or with ``--check`` only compare."""
    import argparse

    from benchmarks import readme

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 when README and the results disagree",
    )
    args = parser.parse_args(argv)
    text = readme.README.read_text(encoding="utf-8")
    try:
        wanted = readme.update(text, readme.render(*readme.load()))
    except readme.ReadmeError as exc:
        print(f"README.md: {exc}", file=sys.stderr)
        return 1
    if wanted == text:
        print("README.md agrees with benchmarks/results.json")
        return 0
    if args.check:
        print(
            "README.md's figures differ from benchmarks/results.json: run `make results`",
            file=sys.stderr,
        )
        return 1
    readme.README.write_text(wanted, encoding="utf-8")
    print("README.md: figures written from benchmarks/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
