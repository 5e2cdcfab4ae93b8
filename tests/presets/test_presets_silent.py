"""A target on which a preset computes no signal (issue 27): one serving a few of the preset's
metrics, too few for any signal, was silent forever (the warning only named targets serving
none of them); it is named once, after a few cycles, with what it serves and what each
signal looks for, in the log of a running preset and in `deucalion presets show`."""

from __future__ import annotations

import logging

import pytest

from deucalion.observer import handing_data
from deucalion.presets import preset_observer
from deucalion.presets.observer import PresetObserver
from deucalion.presets.signals import SILENT_CYCLES
from tests.helpers import TargetServer, text

NODE = "http://node:9100/metrics"
T0 = 1_700_000_000.0
ONLY_LOAD = {"node_load1": {"{}": 1.0}, "up": {"{}": 1.0}}


def _feed(observer: PresetObserver, cycles: list[dict[str, dict[str, float]]]) -> None:
    for i, samples in enumerate(cycles):
        with handing_data(T0 + i, {NODE: T0 + i}):
            observer.new_data({NODE: samples})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_target_serving_too_few_metrics_is_named_once_with_what_each_signal_needs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's reproducer: node_load1 and up, cycle after cycle."""
    observer = preset_observer("node-exporter")
    with caplog.at_level(logging.WARNING, "deucalion.presets"):
        _feed(observer, [ONLY_LOAD] * (SILENT_CYCLES - 1))
        assert _warnings(caplog) == []  # its first cycles compute no rate yet
        _feed(observer, [ONLY_LOAD] * 20)
    [message] = _warnings(caplog)
    assert NODE in message and "serves node_load1 of the metrics it watches" in message
    assert "load_per_core looks for node_load1, node_cpu_seconds_total" in message
    assert "cpu_busy, cpu_iowait, cpu_steal look for node_cpu_seconds_total" in message


def test_a_target_whose_signals_come_in_its_first_cycles_is_not_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rate needs two scrapes: node_cpu_seconds_total served from the start gives cpu_busy
    from the second cycle, and nothing is said."""
    observer = preset_observer("node-exporter")
    cycles = [
        {
            **ONLY_LOAD,
            "node_cpu_seconds_total": {
                '{cpu="0",mode="idle"}': 100.0 + 0.8 * i,
                '{cpu="0",mode="user"}': 10.0 + 0.2 * i,
            },
        }
        for i in range(3 * SILENT_CYCLES)
    ]
    with caplog.at_level(logging.WARNING, "deucalion.presets"):
        _feed(observer, cycles)
    assert _warnings(caplog) == []


def test_a_down_target_is_not_named(caplog: pytest.LogCaptureFixture) -> None:
    observer = preset_observer("node-exporter")
    with caplog.at_level(logging.WARNING, "deucalion.presets"):
        _feed(observer, [{"up": {"{}": 0.0}}] * 3 * SILENT_CYCLES)
    assert _warnings(caplog) == []


def test_a_secret_in_the_target_url_stays_out_of_the_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = preset_observer("node-exporter")
    target = "http://node:9100/metrics?token=s3cret"
    with caplog.at_level(logging.WARNING, "deucalion.presets"):
        for i in range(SILENT_CYCLES):
            with handing_data(T0 + i, {target: T0 + i}):
                observer.new_data({target: ONLY_LOAD})
    [message] = _warnings(caplog)
    assert "s3cret" not in message and "token=***" in message


@pytest.fixture
async def load_only_target(target_server: TargetServer) -> str:
    """A real HTTP server serving node_load1 and nothing else of node_exporter's."""
    url = target_server.add("/metrics", text("# TYPE node_load1 gauge\nnode_load1 0.5\n"))
    await target_server.start()
    return url


async def test_presets_show_on_a_target_serving_too_few_says_what_it_serves(
    load_only_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`presets show` said such a target "serves none of" the metrics, node_load1 among them."""
    from deucalion.presets.cli import show

    printed = await show("node-exporter", load_only_target, interval=0.1)
    last = printed.splitlines()[-1]
    assert "serves none of" not in printed, printed
    assert last == (
        "none of the preset's signals is there: it serves node_load1, too few for "
        "any signal (each one's above)"
    )
    assert (
        "load_per_core              not found (looks for node_load1, node_cpu_seconds_total)"
        in printed
    )
    assert not _warnings(caplog)
