"""deucalion's parser against prometheus_client's, on several kinds of bodies, in one run.

Run with ``python -m benchmarks.bench_parse`` from the repository root. Repetitions of both
contenders are interleaved, so a slow moment of the (shared) machine hits them alike; medians
are reported, and only ratios mean much. deucalion parses bytes, as a scrape receives them;
prometheus_client gets the decoded text. Each ExpositionParser is built once and reused, as the
Scraper does; "cold" is the first parse in a fresh process.
"""

from __future__ import annotations

import itertools
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import bodies
from deucalion.errors import ParseError
from deucalion.exposition import ExpositionParser

ROOT = Path(__file__).resolve().parents[1]
FILTER = ["node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes"]


def prometheus_client_full(text: str, openmetrics: bool = False) -> int:
    """prometheus_client's full parse, consumed fully: the number of samples."""
    families = om_families(text) if openmetrics else text_string_to_metric_families(text)
    return sum(len(family.samples) for family in families)


def measure(contenders: dict[str, Callable[[], object]], repetitions: int) -> dict[str, float]:
    """Median seconds per call of each contender, repetitions interleaved."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repetitions):
        for name, call in contenders.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _first_three(text: str) -> list[str]:
    names = sorted(
        {
            line.split("{")[0].split(" ")[0]
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
    )
    return names[:: max(1, len(names) // 3)][:3]


Case = tuple[str, str | list[str], bool, list[str] | None, float | None]
"""(case, body, openmetrics, desired metrics, target ratio); a list of bodies is parsed one
after the other, each once (or as seldom as the repetitions allow)."""


def ratio_cases(quick: bool) -> tuple[list[list[str]], dict[str, dict[str, float]], str]:
    """Full and filtered parses of every body, against prometheus_client's full parse."""
    node, source = bodies.node_exporter_text()
    cases: list[Case] = [
        ("node_exporter, full", node, False, None, 10.0),
        ("node_exporter, 3 names", node, False, FILTER, 100.0),
        ("node_exporter, `node_.*`", node, False, ["node_.*"], None),
    ]
    others = {
        "unsorted, varying label sets": bodies.unsorted_labels(),
        "3% timestamps, escapes, UTF-8": bodies.timestamps_escapes_utf8(),
    }
    for name, text in others.items():
        cases.append((f"{name}, full", text, False, None, 10.0))
        cases.append((f"{name}, 3 names", text, False, _first_three(text), None))
    om = bodies.openmetrics()
    cases.append(("OpenMetrics, full", om, True, None, 10.0))
    cases.append(("OpenMetrics, 3 names", om, True, _first_three(om), None))
    modern = bodies.openmetrics_modern()
    cases.append(("OpenMetrics as clients write it, full", modern, True, None, 10.0))
    cases.append(
        ("OpenMetrics as clients write it, 3 names", modern, True, _first_three(modern), None)
    )
    # Every parse of a body whose label values are all new (label churn): what a first parse
    # costs, with the parser kept as the Scraper keeps it.
    churn = [
        bodies.unsorted_labels(seed=seed).replace("/item", f"/r{seed}/item") for seed in range(30)
    ]
    cases.append(("label churn, every value new, full", churn, False, None, 5.0))
    big = bodies.many_series(100_000)
    cases.append(("100,000 series, unsorted labels, full", big, False, None, 10.0))
    rows, results = compare(cases, quick)
    return rows, results, source


def compare(cases: list[Case], quick: bool) -> tuple[list[list[str]], dict[str, dict[str, float]]]:
    """Each case's parse against prometheus_client's full parse of the same body: table rows
    and figures."""
    reps = 7 if quick else 21
    rows = []
    results: dict[str, dict[str, float]] = {}
    for case, body, openmetrics, desired, target in cases:
        texts = body if isinstance(body, list) else [body]
        text = texts[0]
        datas = [t.encode() for t in texts]
        data = datas[0]
        parser = ExpositionParser(desired)
        samples = prometheus_client_full(text, openmetrics)
        # Every contender must read what the reference reads before its speed counts.
        full = ExpositionParser().parse(data, openmetrics=openmetrics)
        assert sum(map(len, full.values())) <= samples
        n = max(3, reps // 7) if len(text) > 500_000 else reps
        # Each contender takes the bodies in turn (one body: always the same).
        turns = {"prometheus_client": itertools.cycle(texts), "deucalion": itertools.cycle(datas)}
        medians = measure(
            {
                "prometheus_client": lambda t=turns["prometheus_client"], o=openmetrics: (
                    prometheus_client_full(next(t), o)
                ),
                "deucalion": lambda p=parser, d=turns["deucalion"], o=openmetrics: p.parse(
                    next(d), openmetrics=o
                ),
            },
            n,
        )
        theirs, ours = medians["prometheus_client"], medians["deucalion"]
        ratio = theirs / ours
        verdict = (
            ""
            if target is None
            else (f">= {target:g}x: **{'met' if ratio >= target else 'missed'}**")
        )
        results[case] = {
            "samples": samples,
            "bytes": len(data),
            "prometheus_client_s": theirs,
            "deucalion_s": ours,
            "ratio": ratio,
        }
        rows.append(
            [
                case,
                f"{samples:,}",
                f"{len(data) / 1000:,.0f} KB",
                f"{theirs * 1e3:.2f}",
                f"{ours * 1e3:.3f}",
                f"{ratio:.1f}x",
                verdict,
            ]
        )
    return rows, results


def brought(paths: list[str], quick: bool = False) -> str:
    """The comparison on bodies a user brings (files of text 0.0.4, or OpenMetrics when they
    end with ``# EOF``): each in full and with 3 of its metric names desired, as markdown."""
    cases: list[Case] = []
    for path in paths:
        try:
            text = Path(path).read_text()
            openmetrics = text.rstrip().endswith("# EOF")
            ExpositionParser().parse(text, openmetrics=openmetrics)
        except (OSError, UnicodeDecodeError, ParseError) as exc:
            raise SystemExit(
                f"bench_parse: {path}: {exc} (give a file of text 0.0.4 or "
                "OpenMetrics, as a target's /metrics serves it)"
            ) from None
        cases.append((f"{path}, full", text, openmetrics, None, 10.0))
        cases.append((f"{path}, 3 names", text, openmetrics, _first_three(text), None))
    rows, _ = compare(cases, quick)
    lines = [
        "| body, parse | samples | size | prometheus_client ms | deucalion ms | speed-up "
        "| target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


COLD_SCRIPT = """
import sys, time
which, path, openmetrics = sys.argv[1], sys.argv[2], sys.argv[3] == "om"
data = open(path, "rb").read()
if which == "deucalion":
    from deucalion.exposition import ExpositionParser
    if openmetrics:  # imported on first use; like prometheus_client's, before the clock
        import deucalion.exposition.openmetrics
    parser = ExpositionParser()
    start = time.perf_counter(); parser.parse(data, openmetrics=openmetrics)
else:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
    from prometheus_client.parser import text_string_to_metric_families
    text = data.decode()
    start = time.perf_counter()
    sum(len(f.samples) for f in (om if openmetrics else text_string_to_metric_families)(text))
print(time.perf_counter() - start)
"""


def cold(quick: bool) -> dict[str, dict[str, float]]:
    """The first parse of each body in a fresh process (a new target: nothing remembered, no
    pattern compiled on first use before), each side 3 (or 5) times, interleaved."""
    node, _ = bodies.node_exporter_text()
    cases = {
        "node_exporter": (node, False),
        "unsorted, varying label sets": (bodies.unsorted_labels(), False),
        "OpenMetrics as clients write it": (bodies.openmetrics_modern(), True),
    }
    found: dict[str, dict[str, float]] = {}
    for case, (text, openmetrics) in cases.items():
        path = Path("/tmp") / f"deucalion-bench-cold-{time.time_ns()}.prom"
        path.write_text(text)
        times: dict[str, list[float]] = {"deucalion": [], "prometheus_client": []}
        try:
            for _ in range(3 if quick else 5):
                for which in times:
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-c",
                            COLD_SCRIPT,
                            which,
                            str(path),
                            "om" if openmetrics else "text",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=ROOT,
                    )
                    times[which].append(float(out.stdout))
        finally:
            path.unlink()
        medians = {which: statistics.median(values) for which, values in times.items()}
        found[case] = {**medians, "ratio": medians["prometheus_client"] / medians["deucalion"]}
    return found


def selection_setup() -> dict[str, list[float]]:
    """Seconds to build an ExpositionParser for N desired names, and for N patterns."""
    counts = [1_000, 5_000, 20_000]
    found: dict[str, list[float]] = {
        "counts": [float(n) for n in counts],
        "names_s": [],
        "patterns_s": [],
    }
    for count in counts:
        names = [f"metric_{i}_{'abcdefgh'[i % 8]}" for i in range(count)]
        patterns = [f"app_{i}_.*" for i in range(count)]
        for key, desired in (("names_s", names), ("patterns_s", patterns)):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                ExpositionParser(desired)
                times.append(time.perf_counter() - start)
            found[key].append(statistics.median(times))
    return found


def scaling(quick: bool) -> tuple[list[list[str]], dict[str, object]]:
    """Parse time by series per target, in full, 3 names and all names listed one by one."""
    sizes = [1_000, 10_000, 100_000] + ([] if quick else [1_000_000])
    table: dict[str, list[float]] = {"full": [], "3 names": [], "all names": [], "`.*`": []}
    names_count = []
    for size in sizes:
        data = bodies.many_series(size).encode()
        metric_names = sorted(
            {
                f"service_metric_{m}" + ("_total" if m % 2 else "")
                for m in range(max(1, size // 100))
            }
        )
        names_count.append(len(metric_names))
        parsers = {
            "full": ExpositionParser(),
            "3 names": ExpositionParser(metric_names[:: max(1, len(metric_names) // 3)][:3]),
            "all names": ExpositionParser(metric_names),
            "`.*`": ExpositionParser([".*"]),
        }
        reps = 3 if size >= 100_000 else 9  # (one run of 1,000,000 series moved by 40 %)
        medians = measure({k: lambda p=p, d=data: p.parse(d) for k, p in parsers.items()}, reps)
        for key in table:
            table[key].append(medians[key])
    rows = []
    exponents = {}
    for key, values in table.items():
        exponent = math.log(values[-1] / values[0]) / math.log(sizes[-1] / sizes[0])
        exponents[key] = exponent
        rows.append([key] + [f"{v * 1e3:.2f}" for v in values] + [f"{exponent:.2f}"])
    all_vs_full = table["all names"][-1] / table["full"][-1]
    return rows, {
        "sizes": sizes,
        "seconds": table,
        "exponents": exponents,
        "names": names_count,
        "all_names_over_full_at_largest": all_vs_full,
    }


def garbage_collector(quick: bool) -> dict[str, float]:
    """A full parse of 100,000 series with the garbage collector on, and paused around the parse
    as the parser once did (which paused it for the whole host application meanwhile)."""
    import gc

    data = bodies.many_series(100_000).encode()
    parser = ExpositionParser()

    def paused() -> object:
        gc.disable()
        try:
            return parser.parse(data)
        finally:
            gc.enable()

    return measure({"on": lambda: parser.parse(data), "paused": paused}, 3 if quick else 7)


MEMORY_SCRIPT = """
import sys, tracemalloc
from benchmarks import bodies
from deucalion.errors import ParseError
from deucalion.exposition import ExpositionParser
series, desired = int(sys.argv[1]), sys.argv[2]
parser = ExpositionParser(None if desired == "all" else ["service_metric_1_total", "up"])
text = bodies.many_series(series)
tracemalloc.start()
data = text.encode()
del text
chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
size = len(data)
del data
tracemalloc.reset_peak()
base = tracemalloc.get_traced_memory()[0]
result = parser.parse(chunks)
current, peak = tracemalloc.get_traced_memory()
print(size, base, current, peak)
"""


def memory(quick: bool) -> dict[str, dict[str, float]]:
    """Peak memory of parsing a large body received in 64 KB chunks, against the body plus the
    parsed result (tracemalloc, in a fresh process)."""
    series = 100_000 if quick else 1_000_000
    found = {}
    for desired in ("all", "2 names"):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(series), desired],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        size, base, current, peak = map(int, out.stdout.split())
        found[desired] = {
            "series": series,
            "body_bytes": size,
            "result_bytes": current,
            "peak_bytes": peak,
            "ratio": peak / (base + current),
        }
    return found


def back_to_back(quick: bool) -> dict[str, float]:
    """node_exporter's body with 3 names desired, each contender timed in a run of its own
    (caches warm, as a parser reading many targets in a row is), against the interleaved
    figure of the table, where each parse follows the other contender's."""
    node, _ = bodies.node_exporter_text()
    data = node.encode()
    parser = ExpositionParser(FILTER)
    reps = 7 if quick else 21
    theirs = measure({"prometheus_client": lambda: prometheus_client_full(node)}, reps)
    ours = measure({"deucalion": lambda: parser.parse(data)}, reps * 20)
    return {**theirs, **ours}


def main(quick: bool = False) -> dict[str, object]:
    """Run every part, print a markdown report, and return it with the numbers."""
    rows, results, source = ratio_cases(quick)
    warm = back_to_back(quick)
    warm_ratio = warm["prometheus_client"] / warm["deucalion"]
    colds = cold(quick)
    setup = selection_setup()
    scale_rows, scale = scaling(quick)
    mem = memory(quick)
    collector = garbage_collector(quick)
    lines = [
        "## Parse (bench_parse)",
        "",
        f"node_exporter body: {source}. Against prometheus_client's parsers (text, or "
        "OpenMetrics for OpenMetrics bodies), consumed fully; medians of interleaved runs on a "
        "machine shared with other work: the ratios are the figures, the milliseconds are "
        "noisy. deucalion parses bytes with one ExpositionParser kept across runs, as the "
        'Scraper does; "3 names" keeps 3 metric families, `node_.*` a regular expression.',
        "",
        "| body, parse | samples | size | prometheus_client ms | deucalion ms | speed-up "
        "| target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        "The same 3 names of node_exporter's body, each contender timed in a run of its own "
        f"(caches warm): prometheus_client {warm['prometheus_client'] * 1e3:.2f} ms, deucalion "
        f"{warm['deucalion'] * 1e6:.0f} us: {warm_ratio:.0f}x. The table's interleaved figure, "
        "where each parse follows the other contender's, is the one the target is held to.",
        "",
        "First parse in a fresh process (a new target: nothing remembered), full:",
        "",
        "| body | prometheus_client ms | deucalion ms | speed-up | target |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {case} | {c['prometheus_client'] * 1e3:.2f} | {c['deucalion'] * 1e3:.2f} | "
        f"{c['ratio']:.1f}x | >= 5x: **{'met' if c['ratio'] >= 5 else 'missed'}** |"
        for case, c in colds.items()
    ]
    lines += [
        "",
        "Setting up a selection (`ExpositionParser(desired)`, building its matcher), by the "
        "number of desired names or regular expressions (`app_N_.*`), median of 3:",
        "",
        "| desired | " + " | ".join(f"{n:,.0f}" for n in setup["counts"]) + " |",  # type: ignore[attr-defined]
        "|---|" + "---:|" * len(setup["counts"]),  # type: ignore[arg-type]
        "| names, ms | " + " | ".join(f"{s * 1e3:.1f}" for s in setup["names_s"]) + " |",  # type: ignore[attr-defined]
        "| patterns, ms | " + " | ".join(f"{s * 1e3:.1f}" for s in setup["patterns_s"]) + " |",  # type: ignore[attr-defined]
        "",
        f"20,000 names in {setup['names_s'][-1] * 1e3:.1f} ms "  # type: ignore[index]
        f"(< 100 ms: **{'met' if setup['names_s'][-1] < 0.1 else 'missed'}**).",  # type: ignore[index]
        "",
        "### Scaling with series per target",
        "",
        "Bodies of unsorted three-label series, 100 per metric; ms per parse; the exponent is "
        "the slope of log(time) against log(series) from the smallest to the largest body "
        '(1 is linear). "all names" desires every metric name of the body, one by one '
        f"({', '.join(f'{n:,}' for n in scale['names'])} names).",  # type: ignore[attr-defined]
        "",
        "| parse | "
        + " | ".join(f"{s:,} series" for s in scale["sizes"])  # type: ignore[attr-defined]
        + " | exponent |",
        "|---|" + "---:|" * (len(scale["sizes"]) + 1),  # type: ignore[arg-type]
    ]
    lines += ["| " + " | ".join(row) + " |" for row in scale_rows]
    over = scale["all_names_over_full_at_largest"]
    lines += [
        "",
        f"Every name desired, at the largest body: {over:.2f}x the full parse "
        f"(<= 1.2x: **{'met' if over <= 1.2 else 'missed'}**).",
        "",
        "Garbage collector: a full parse of 100,000 series took "
        f"{collector['on'] * 1e3:.0f} ms with it on and {collector['paused'] * 1e3:.0f} ms with "
        f"it paused around the parse ({collector['on'] / collector['paused']:.2f}x): not worth "
        "switching a host application's collector off, so the parser leaves it alone.",
        "",
        "### Peak memory",
        "",
        "A body received as 64 KB chunks, parsed by an ExpositionParser (tracemalloc peak, "
        "fresh process), against the body plus what the parse returns:",
        "",
        "| desired | series | body MB | result MB | peak MB | peak / (body + result) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for desired, m in mem.items():
        lines.append(
            f"| {desired} | {m['series']:,.0f} | {m['body_bytes'] / 1e6:.1f} | "
            f"{m['result_bytes'] / 1e6:.1f} | {m['peak_bytes'] / 1e6:.1f} | "
            f"{m['ratio']:.2f} |"
        )
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    return {
        "markdown": markdown,
        "cases": results,
        "back_to_back": warm,
        "cold": colds["node_exporter"],
        "cold_cases": colds,
        "selection_setup": setup,
        "scaling": scale,
        "memory": mem,
        "garbage_collector": collector,
    }


if __name__ == "__main__":
    # python -m benchmarks.bench_parse [--quick] [BODY_FILE ...]: the whole benchmark, or the
    # comparison on the bodies given.
    files = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    if files:
        print(brought(files, quick="--quick" in sys.argv))
    else:
        main(quick="--quick" in sys.argv)
