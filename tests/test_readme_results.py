"""README's performance and quality figures are the ones benchmarks/results.json holds.

The regions between ``<!-- results:begin NAME -->`` and ``<!-- results:end NAME -->`` are written
by ``make results`` (``python -m benchmarks.report``); a README edited by hand, or results rerun
without regenerating README, fails here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from benchmarks import readme
from benchmarks.report import main as report_main


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    loaded, _ = readme.load()
    return dict(loaded)


def test_readme_figures_are_the_ones_results_json_holds() -> None:
    text = readme.README.read_text(encoding="utf-8")
    rendered = readme.render(*readme.load())
    present = readme.regions(text)
    assert set(present) == set(rendered), "README lacks a generated region (or has a stray one)"
    for name, body in rendered.items():
        assert present[name] == body, (
            f"README's {name!r} figures differ from benchmarks/results.json: run `make results`")


def test_the_check_command_fails_on_a_readme_that_disagrees(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = readme.README.read_text(encoding="utf-8").replace("| `bench_cycle`, 20", "| `x`, 20", 1)
    copy_ = tmp_path / "README.md"
    copy_.write_text(stale, encoding="utf-8")
    monkeypatch.setattr(readme, "README", copy_)
    assert report_main(["--check"]) == 1
    assert "make results" in capsys.readouterr().err
    assert copy_.read_text(encoding="utf-8") == stale
    assert report_main([]) == 0
    assert report_main(["--check"]) == 0


def test_a_target_the_last_run_missed_is_printed_as_missed(results: dict[str, Any]) -> None:
    changed = copy.deepcopy(results)
    changed["bench_footprint"]["pss_bytes"]["deucalion"] = 70 * 2**20
    table = readme.performance(changed)
    row = next(line for line in table.splitlines() if line.startswith("| memory"))
    assert "< 64 MB PSS: **missed**" in row
    assert "memory, every process deucalion starts (peak)" in table.split("Targets missed")[1]
    changed["bench_footprint"]["pss_bytes"]["deucalion"] = 60 * 2**20
    row = next(line for line in readme.performance(changed).splitlines()
               if line.startswith("| memory"))
    assert "< 64 MB PSS: met" in row


def test_each_row_names_its_run_and_each_run_its_date_and_machine(
        results: dict[str, Any]) -> None:
    changed = copy.deepcopy(results)
    changed["bench_cycle"].update(date="2031-01-02 03:04", machine="9 CPUs, a test machine")
    table = readme.performance(changed)
    cycle_rows = [line for line in table.splitlines() if line.startswith("| scrape cycle")]
    assert cycle_rows and cycle_rows[0].endswith("| `bench_cycle`, 2031-01-02 |")
    assert "- `bench_cycle`: 2031-01-02 03:04 UTC, full run, 9 CPUs, a test machine" in table


def test_the_fair_floor_stands_beside_sequential_requests(results: dict[str, Any]) -> None:
    table = readme.performance(results)
    cycle = results["bench_cycle"]["sizes"]["200"]
    assert "sequential `requests`" in table
    floor = next(line for line in table.splitlines() if "bare aiohttp client" in line)
    assert f"aiohttp alone {readme.seconds(cycle['bare_fetch_s'])}" in floor
    assert f"{readme.times(cycle['cycle_s'] / cycle['bare_fetch_s'])} the floor" in floor


def test_sections_the_report_does_not_know_are_shown_or_named(results: dict[str, Any]) -> None:
    changed = copy.deepcopy(results)
    changed["bench_liveops"] = {
        "date": "2031-01-02 03:04", "machine": "m",
        "readme_rows": [{"what": "preset switch", "deucalion": "3 ms", "target": "< 5 ms",
                         "met": False}]}
    changed["bench_new"] = {"date": "2031-01-02 03:04", "machine": "m", "figure": 1}
    table = readme.performance(changed)
    row = next(line for line in table.splitlines() if line.startswith("| preset switch"))
    assert "< 5 ms: **missed**" in row and row.endswith("| `bench_liveops`, 2031-01-02 |")
    assert "not tabled here" in table and "`bench_new`" in table


def test_a_figure_gone_from_a_known_section_is_reported_not_raised(
        results: dict[str, Any]) -> None:
    changed = copy.deepcopy(results)
    del changed["bench_parse"]["cases"]["node_exporter, full"]
    del changed["bench_dispatch"]
    changed["bench_alert_latency"] = {"error": "Traceback ...", "quick": True, "date": "d"}
    table = readme.performance(changed)
    assert "| `bench_parse` | figure missing from its last run (KeyError" in table
    assert "| `bench_dispatch` | not measured" in table
    assert "| `bench_alert_latency` | the last run failed" in table
    assert "| `bench_alert_latency`, d, quick |" in table
    assert "| scrape cycle" in table  # the other sections are still tabled


def test_regions_are_rewritten_and_the_prose_around_them_kept() -> None:
    text = ("prose before\n<!-- results:begin soak -->\nold figures\n<!-- results:end soak -->\n"
            "prose after\n")
    assert readme.update(text, {"soak": "new figures\n"}) == (
        "prose before\n<!-- results:begin soak -->\nnew figures\n<!-- results:end soak -->\n"
        "prose after\n")
    with pytest.raises(readme.ReadmeError, match="no matching"):
        readme.update("<!-- results:begin soak -->\nfigures\n", {"soak": ""})
    with pytest.raises(readme.ReadmeError, match="not generated"):
        readme.update("<!-- results:begin other -->\n<!-- results:end other -->\n", {})


def test_the_soak_sentence_comes_from_soak_json() -> None:
    _, soak = readme.load()
    assert soak is not None, "benchmarks/soak.json is missing: run `make soak`"
    sentence = readme.soak(soak)
    assert f"{soak['samples'][-1]['cycles']:,} cycles" in sentence
    assert soak["verdicts"]["worker RSS MB"] in sentence
    assert readme.soak(None).startswith("No soak recorded")

