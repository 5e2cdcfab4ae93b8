"""A Prometheus range source facing answers a real Prometheus does not give on demand:
malformed ones and partial ones (aioresponses; the real server is in tests/integration)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aioresponses import aioresponses

from deucalion.cli import main
from deucalion.replay import PrometheusRangeSource
from deucalion.replay.sources import HistoryError

URL = "http://prometheus.test:9090"
TARGETS = re.compile(r"^http://prometheus\.test:9090/api/v1/targets.*$")
RANGE = re.compile(r"^http://prometheus\.test:9090/api/v1/query_range.*$")
ACTIVE = {
    "status": "success",
    "data": {
        "activeTargets": [
            {"labels": {"job": "node", "instance": "a:9100"}, "scrapeUrl": "http://a:9100/metrics"}
        ]
    },
}


def _series(name: str, points: list[list[Any]]) -> dict[str, Any]:
    return {"metric": {"__name__": name, "job": "node", "instance": "a:9100"}, "values": points}


def _matrix(*series: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": list(series)}, **extra}


def _serve(
    m: aioresponses,
    answer: dict[str, Any] | None = None,
    *,
    status: int = 200,
    body: str | None = None,
) -> None:
    m.get(TARGETS, payload=ACTIVE, repeat=True)
    if body is not None:
        m.get(RANGE, status=status, body=body, repeat=True)
    else:
        m.get(RANGE, status=status, payload=answer, repeat=True)


async def _read(source: PrometheusRangeSource) -> list[Any]:
    return [c async for c in source.cycles({"load"}, 0.0, 60.0, 15.0)]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_matrix({"values": [[0, "1"]]}), r"a series without its labels \('metric'\)"),
        (_matrix(_series("load", [[0, "n/a"]])), r"\[0, 'n/a'\] for load\{\}: not a \[time"),
        ({"status": "success", "data": None}, r"its data is None, not an object"),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}},
            r"a 'scalar' result, not the matrix of a range query",
        ),
        (_matrix(_series("load", [[0]])), r"not a \[time, \"value\"\] pair"),
    ],
)
async def test_malformed_range_answers_are_named(answer: dict[str, Any], message: str) -> None:
    """Answers no Prometheus gives are a HistoryError naming the server, the query and what
    is wrong, never a raw KeyError or ValueError."""
    with aioresponses() as m:
        _serve(m, answer)
        with pytest.raises(HistoryError, match=message) as caught:
            await _read(PrometheusRangeSource(URL))
    assert "Prometheus at http://prometheus.test:9090" in str(caught.value)


def test_cli_shows_prometheus_reason_for_an_error_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 422 is shown with Prometheus's own reason, as one line, with no traceback."""
    reason = {
        "status": "error",
        "errorType": "execution",
        "error": "query processing would load too many samples into memory",
    }
    with aioresponses() as m:
        _serve(m, status=422, body=json.dumps(reason))
        code = main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "load",
                "--from",
                URL,
                "--start",
                "0",
                "--end",
                "60",
            ]
        )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "HTTP 422" in err and "execution: query processing would load too many" in err


def _partial_run(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    points = [[15 * i, str(1.0 + i % 3)] for i in range(5)]
    answer = _matrix(
        _series("load", points),
        _series("up", [[15 * i, "1"] for i in range(5)]),
        warnings=["remote store eu-1 did not answer: context deadline exceeded"],
    )
    with aioresponses() as m:
        _serve(m, answer)
        code = main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "load",
                "--from",
                URL,
                "--start",
                "0",
                "--end",
                "60",
                *options,
            ]
        )
    return code, capsys.readouterr().out


def test_a_partial_answer_fails_the_backtest_unless_allowed(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """An answer Prometheus says is partial is replayed, said with Prometheus's warning, and
    fails the command; --allow-partial makes it a warning and the command passes."""
    code, out = _partial_run(capsys)
    assert code == 1 and "5 steps" in out and "source errors: 3 partial answers" in out
    assert "says its answer is partial: 'remote store eu-1 did not answer" in out
    assert "--allow-partial" in out
    code, out = _partial_run(capsys, "--allow-partial")
    assert code == 0 and "5 steps" in out
    assert "source: 3 partial answers" in out  # one a query: load, up, scrape_duration_seconds
    assert "replayed as allowed" in caplog.text


async def test_a_targets_address_as_history_says_it_is_no_prometheus(target_server: Any) -> None:
    """`backtest --from http://host:9100` (the exporter, not Prometheus): its landing page
    at /api/v1/targets is no JSON, and the error now says what --from takes."""
    from tests.helpers import text

    target_server.add("/api/v1/targets", text("<html>Node Exporter</html>"))
    await target_server.start()
    base = target_server.url("")
    with pytest.raises(HistoryError, match="a target's own address serves no history"):
        await _read(PrometheusRangeSource(base))


def _active(interval: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "labels": {"job": "node", "instance": "a:9100"},
        "scrapeUrl": "http://a:9100/metrics",
    }
    if interval is not None:
        entry["scrapeInterval"] = interval
    return {"status": "success", "data": {"activeTargets": [entry]}}


async def _first_cycle(
    interval: str | None, start: float, end: float, step: float
) -> PrometheusRangeSource:
    """A source that read the targets and its first piece of the range (only that)."""
    source = PrometheusRangeSource(URL)
    with aioresponses() as m:
        m.get(TARGETS, payload=_active(interval), repeat=True)
        m.get(RANGE, payload=_matrix(_series("load", [[start, "1"]])), repeat=True)
        cycles = source.cycles({"load"}, start, end, step)
        await cycles.__anext__()
        await cycles.aclose()
    return source


async def test_a_step_shorter_than_the_scrape_interval_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`--step 1ms` (for 1m) over two minutes of a 5 s scrape was replayed as 120,001 cycles of
    repeated samples without a word. It is still replayed, with a warning naming the option,
    the scrape interval and the cycles it makes."""
    source = await _first_cycle("5s", 0.0, 120.0, 0.001)
    assert source.stats.warnings == {"step_warned_of": 1} and not source.stats.errors
    assert (
        "the step (--step, step=) of 1ms is shorter than the scrape interval of the targets "
        "Prometheus scrapes (5s): each sample is replayed about 5,000 times over: the range "
        "1970-01-01T00:00:00Z .. 1970-01-01T00:02:00Z makes 120,001 cycles. Replayed as "
        "given; a step of the scrape interval reads each sample once (did you mean 1m?)"
    ) in caplog.text
    for interval, step in (("5s", 5.0), ("5s", 60.0), ("1m30s", 90.0), (None, 1.0)):
        source = await _first_cycle(interval, 0.0, 3600.0, step)
        assert not source.stats.warnings, (interval, step)


async def test_a_step_under_a_second_or_of_millions_of_cycles_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the scrape interval (an older Prometheus gives none), a step under a second
    is warned of; so, whatever the interval, is a range making millions of cycles."""
    source = await _first_cycle(None, 0.0, 60.0, 0.5)
    assert source.stats.warnings == {"step_warned_of": 1}
    assert "500ms is shorter than a second" in caplog.text and "121 cycles" in caplog.text
    year = 366 * 86_400.0
    source = await _first_cycle("1s", 0.0, year, 1.0)
    assert source.stats.warnings == {"step_warned_of": 1}
    assert "makes 31,622,401 cycles" in caplog.text
    assert "of 1s is more cycles than a backtest of any usual range" in caplog.text


def test_cli_backtest_with_a_short_step_warns_and_replays(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    points = [[15 * i, str(1.0 + i % 3)] for i in range(5)]
    with aioresponses() as m:
        m.get(TARGETS, payload=_active("15s"), repeat=True)
        m.get(RANGE, payload=_matrix(_series("load", points)), repeat=True)
        code = main(
            [
                "backtest",
                "--observer",
                "tests.replay_observers:RobustZScore",
                "--metrics",
                "load",
                "--from",
                URL,
                "--start",
                "0",
                "--end",
                "60",
                "--step",
                "5s",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0 and "5 steps" in out and "source: 1 step warned of" in out
    assert "step (--step, step=) of 5s is shorter than the scrape interval" in caplog.text
    assert "makes 13 cycles" in caplog.text
