"""Presets: derived signals as PromQL computes them, instrumentations found from what a target
serves, one alert per target per incident with the value and band, and the ways to select one
(config, CLI, injector annotation)."""

from __future__ import annotations

import json
import logging
import math
import random
from typing import Any

import pytest

from deucalion.alerting.alerts import Scores
from deucalion.detectors.base import Detector, Explanation
from deucalion.errors import ConfigError
from deucalion.history import Window
from deucalion.history.promql import bucket_quantile, rate
from deucalion.observer import handing_data
from deucalion.presets import PRESETS, preset_observer, preset_signals
from deucalion.presets.http_service import INSTRUMENTATIONS, MAX_ROUTES
from deucalion.presets.incidents import beyond
from deucalion.presets.observer import PresetObserver
from deucalion.presets.signals import Query, Signal, SignalValues

NODE = "http://node:9100/metrics"
APP = "http://app:8080/metrics"
T0 = 1_700_000_000.0


def _window(cycles: list[dict[str, dict[str, float]]], target: str = NODE) -> Window:
    window = Window(seconds=600.0)
    for i, samples in enumerate(cycles):
        window.add({target: samples}, T0 + i)
    return window


# --- Query: PromQL over one target -----------------------------------------------------------


def test_query_rate_is_prometheus_rate_summed_by_labels() -> None:
    """sum by (mode) (rate(x[5s])) equals the sum of history.rate of each series."""
    rng = random.Random(3)
    counters = {("0", "idle"): 0.0, ("1", "idle"): 0.0, ("0", "user"): 0.0}
    cycles, series = [], {k: ([], []) for k in counters}
    for i in range(12):
        sample = {}
        for (cpu, mode), value in counters.items():
            counters[cpu, mode] = value + rng.uniform(0.1, 0.9)
            sample[f'{{cpu="{cpu}",mode="{mode}"}}'] = counters[cpu, mode]
            series[cpu, mode][0].append(T0 + i)
            series[cpu, mode][1].append(counters[cpu, mode])
        cycles.append({"node_cpu_seconds_total": sample})
    query = Query(_window(cycles), NODE, 5.5)
    got = query.rate("node_cpu_seconds_total", by=("mode",))
    idle = sum(rate(*series[k], 5.5) for k in (("0", "idle"), ("1", "idle")))
    assert got['{mode="idle"}'] == pytest.approx(idle)
    assert got['{mode="user"}'] == pytest.approx(rate(*series["0", "user"], 5.5))
    only_idle = query.rate("node_cpu_seconds_total", where={"mode": "idle"})
    assert only_idle == {"{}": pytest.approx(idle)}
    not_idle = query.rate("node_cpu_seconds_total", where={"!mode": "idle"})
    assert not_idle == {"{}": pytest.approx(got['{mode="user"}'])}


def test_query_deriv_is_the_least_squares_slope() -> None:
    """deriv of a gauge falling 1000 per second (with noise around the line) is about -1000."""
    cycles = [{"g": {'{m="/"}': 1e6 - 1000 * i + (7 if i % 2 else -7)}} for i in range(30)]
    slope = Query(_window(cycles), NODE, 5.0).deriv("g", 600.0, by=("m",))
    assert slope['{m="/"}'] == pytest.approx(-1000, rel=1e-3)


def test_query_mean_averages_the_last_seconds_only() -> None:
    """avg_over_time(g[3.5s]) at the newest point: the last 4 values of the 10 (6, 7, 8, 9)."""
    cycles = [{"g": {'{d="a"}': float(i), '{d="b"}': 1.0}} for i in range(10)]
    query = Query(_window(cycles), NODE, 2.0)
    assert query.mean("g", 3.5, by=("d",)) == {'{d="a"}': 7.5, '{d="b"}': 1.0}
    assert query.mean("g", 3.5) == {"{}": 8.5}
    assert query.mean("absent", 3.5) == {}


def test_query_quantile_sums_buckets_by_route_before_the_quantile() -> None:
    """histogram_quantile(0.5, sum by (le, route) (rate(b[5s]))), methods summed first."""
    bounds = ("0.1", "0.5", "+Inf")
    per_second = {"GET": (2.0, 8.0, 10.0), "POST": (0.0, 2.0, 10.0)}
    cycles = []
    for i in range(8):
        sample = {}
        for method, counts in per_second.items():
            for le, c in zip(bounds, counts, strict=True):
                sample[f'{{le="{le}",method="{method}",route="/a"}}'] = c * i
        cycles.append({"h_bucket": sample})
    got = Query(_window(cycles, APP), APP, 5.5).quantile(0.5, "h_bucket", by=("route",))
    expected = bucket_quantile(0.5, [(0.1, 2.0), (0.5, 10.0), (math.inf, 20.0)])
    assert got == {'{route="/a"}': pytest.approx(expected)}


# --- node-exporter signals ---------------------------------------------------------------------


def _node_cycle(
    i: int, *, busy: float = 0.25, avail: float = 6e9, filling: float = 1e5
) -> dict[str, dict[str, float]]:
    """A node's samples at cycle ``i``; its disk fills at ``filling`` bytes a second (by
    default slowly: 40 GB free last over four days)."""
    idle_per_s = 1.0 - busy
    cpu = {}
    for n in range(2):
        cpu[f'{{cpu="{n}",mode="idle"}}'] = 1000 + idle_per_s * i
        cpu[f'{{cpu="{n}",mode="user"}}'] = 500 + busy * i
        cpu[f'{{cpu="{n}",mode="iowait"}}'] = 10.0
    return {
        "node_cpu_seconds_total": cpu,
        "node_load1": {"{}": 1.0},
        "node_procs_running": {"{}": (3.0, 5.0)[i % 2]},
        "node_pressure_cpu_waiting_seconds_total": {"{}": 100.0 + 0.4 * i},
        "node_memory_MemAvailable_bytes": {"{}": avail},
        "node_memory_MemTotal_bytes": {"{}": 8e9},
        "node_memory_AnonPages_bytes": {"{}": 2e9},
        "node_disk_io_time_seconds_total": {'{device="sda"}': 0.2 * i, '{device="loop0"}': 0.5 * i},
        "node_filesystem_avail_bytes": {
            '{device="/dev/sda1",fstype="ext4",mountpoint="/"}': 40e9 - filling * i,
            '{device="tmpfs",fstype="tmpfs",mountpoint="/run"}': 1e9,
        },
        "node_filesystem_size_bytes": {
            '{device="/dev/sda1",fstype="ext4",mountpoint="/"}': 100e9,
            '{device="tmpfs",fstype="tmpfs",mountpoint="/run"}': 2e9,
        },
    }


def _signal_values(
    name: str, signal: str, cycles: list[dict[str, dict[str, float]]], target: str = NODE
) -> SignalValues:
    [found] = [s for s in preset_signals(name) if s.name == signal]
    return found.compute(Query(_window(cycles, target), target, 5.5))


def test_node_signals_follow_the_node_mixin() -> None:
    """CPU busy leaves idle and iowait out, per CPU averaged; disks skip loop devices; file
    systems skip tmpfs; memory and load are fractions; time to full follows the fill rate."""
    cycles = [_node_cycle(i) for i in range(10)]
    assert _signal_values("node-exporter", "cpu_busy", cycles) == {"{}": pytest.approx(0.25)}
    assert _signal_values("node-exporter", "load_per_core", cycles) == {"{}": 0.5}
    assert _signal_values("node-exporter", "memory_available", cycles) == {"{}": 0.75}
    # What processes hold, which a memory hog grows (MemAvailable moves with the kernel's too).
    assert _signal_values("node-exporter", "memory_anonymous", cycles) == {"{}": 0.25}
    # The run queue averaged over seconds (3 and 5 tasks in turn), per CPU; the pressure is
    # the fraction of each second some task waited for a CPU.
    assert _signal_values("node-exporter", "runnable_per_core", cycles) == {
        "{}": pytest.approx(2.0, abs=0.11)
    }
    assert _signal_values("node-exporter", "cpu_pressure", cycles) == {"{}": pytest.approx(0.4)}
    assert _signal_values("node-exporter", "disk_busy", cycles) == {
        '{device="sda"}': pytest.approx(0.2)
    }
    free = _signal_values("node-exporter", "filesystem_free", cycles)
    assert list(free) == ['{mountpoint="/"}']
    # Not known to be filling (a week) before 8 minutes of history; then avail / fill rate
    # (1 MB/s: full in 11 h), or a week when that is 12 h or more (100 KB/s: four days).
    filling = [_node_cycle(i, filling=1e6) for i in range(600)]
    full = _signal_values("node-exporter", "filesystem_time_to_full", filling[:10])
    assert full == {'{mountpoint="/"}': 7 * 86400.0}
    full = _signal_values("node-exporter", "filesystem_time_to_full", filling)
    assert full == {'{mountpoint="/"}': pytest.approx((40e9 - 599e6) / 1e6, rel=1e-3)}
    slowly = [_node_cycle(i) for i in range(600)]
    full = _signal_values("node-exporter", "filesystem_time_to_full", slowly)
    assert full == {'{mountpoint="/"}': 7 * 86400.0}


# --- http-service: the instrumentations --------------------------------------------------------


def _http_cycles(
    requests: str,
    status: str,
    route: tuple[str, ...],
    buckets: str | None,
    *,
    error: str = "500",
    errors_per_s: float = 3.0,
) -> list[dict[str, dict[str, float]]]:
    cycles = []
    for i in range(10):

        def key(code: str) -> str:
            labels = {status: code}
            labels.update({name: f"/r{j}" for j, name in enumerate(route)})
            return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"

        sample: dict[str, dict[str, float]] = {
            requests: {
                key("200" if error == "500" else "OK"): 27.0 * i,
                key(error): errors_per_s * i,
            }
        }
        if buckets:
            labels = {name: f"/r{j}" for j, name in enumerate(route)}
            sample[buckets] = {
                "{"
                + ",".join(f'{k}="{v}"' for k, v in sorted({**labels, "le": le}.items()))
                + "}": c * i
                for le, c in (("0.1", 15.0), ("1", 30.0), ("+Inf", 30.0))
            }
        cycles.append(sample)
    return cycles


@pytest.mark.parametrize("inst", INSTRUMENTATIONS, ids=lambda i: i.name)
def test_each_instrumentation_gives_rate_and_error_ratio(inst: Any) -> None:
    """Request rate and 5xx (gRPC: server codes) ratio from each instrumentation's names."""
    route = inst.routes[0] if inst.routes else ()
    error = "Internal" if inst.name == "grpc" else "500"
    cycles = _http_cycles(
        inst.requests, inst.status_labels[0], route, inst.duration_bucket, error=error
    )
    rates = _signal_values("http-service", "request_rate", cycles, APP)
    series = (
        "{}"
        if not route
        else "{"
        + ",".join(f'{name}="/r{j}"' for j, name in sorted(enumerate(route), key=lambda p: p[1]))
        + "}"
    )
    # The service as a whole, and its one route when the instrumentation names routes.
    assert rates == {"{}": pytest.approx(30.0), series: pytest.approx(30.0)}
    ratio = _signal_values("http-service", "error_ratio", cycles, APP)
    assert ratio == {"{}": pytest.approx(0.1), series: pytest.approx(0.1)}
    p50 = _signal_values("http-service", "latency_p50", cycles, APP)
    if inst.duration_bucket:  # bounds in the histogram's unit, the quantile in seconds
        p = 0.1 * inst.duration_unit
        assert p50 == {"{}": pytest.approx(p), series: pytest.approx(p)}
    else:
        assert p50 == {}


@pytest.mark.parametrize(
    "inst", [i for i in INSTRUMENTATIONS if i.in_flight or i.started], ids=lambda i: i.name
)
def test_each_instrumentation_gives_requests_in_flight(inst: Any) -> None:
    """In flight from each instrumentation's gauge, summed over its series; gRPC's from its
    started counter less its handled one, over every method and code."""
    route = inst.routes[0] if inst.routes else ()
    cycles = _http_cycles(inst.requests, inst.status_labels[0], route, None)
    for i, sample in enumerate(cycles):
        handled = sum(sample[inst.requests].values())
        if inst.started:
            sample[inst.started] = {
                '{grpc_method="Get",grpc_service="s"}': handled * 0.5 + 3.0,
                '{grpc_method="Put",grpc_service="s"}': handled * 0.5 + 4.0 + i,
            }
            if inst.handled:  # its own counter of handled requests (django-prometheus)
                sample[inst.handled] = {"{}": handled}
        else:
            sample[inst.in_flight[-1]] = {'{a="1"}': 3.0, '{a="2"}': 4.0 + i}
    expected = 7.0 + len(cycles) - 1
    assert _signal_values("http-service", "in_flight", cycles, APP) == {"{}": expected}


def test_few_errors_are_chance_not_a_ratio() -> None:
    """Under MIN_ERRORS errors within the rate's range, the error ratio is no more than the
    usual one: that of the counters' totals (0.2 of every 27.2 requests fail)."""
    cycles = _http_cycles("http_requests_total", "code", ("handler",), None, errors_per_s=0.2)
    usual = pytest.approx(0.2 / 27.2)
    assert _signal_values("http-service", "error_ratio", cycles, APP) == {
        "{}": usual,
        '{handler="/r0"}': usual,
    }


def test_routes_beyond_the_bound_are_one_other_route() -> None:
    """A service with more routes than MAX_ROUTES gets MAX_ROUTES + 1 route series (and one of
    the service as a whole)."""
    cycles = [
        {
            "http_requests_total": {
                f'{{code="200",route="/p{r}"}}': (r + 1) * i for r in range(MAX_ROUTES + 15)
            }
        }
        for i in range(8)
    ]
    rates = _signal_values("http-service", "request_rate", cycles, APP)
    assert len(rates) == MAX_ROUTES + 2 and "{}" in rates
    assert '{route="other"}' in rates and f'{{route="/p{MAX_ROUTES + 14}"}}' in rates
    assert '{route="/p0"}' not in rates  # the least busy route is summed into "other"


def test_past_the_route_bound_the_busiest_routes_keep_their_latency() -> None:
    """Past MAX_ROUTES routes, the MAX_ROUTES with the most requests still have a latency of
    their own (their buckets summed over methods, as for fewer routes), the rest none, and the
    service as a whole keeps its."""
    routes = MAX_ROUTES + 5
    cycles = []
    for i in range(8):
        requests, buckets = {}, {}
        for r in range(routes):
            count = (r + 1) * 10 * i  # /p{routes - 1} is the busiest
            requests[f'{{code="200",handler="/p{r}",method="GET"}}'] = count
            # Route r's requests all take between 0.1 and 1 s: its median is within them.
            for le in ("0.1", "1", "+Inf"):
                buckets[f'{{handler="/p{r}",le="{le}",method="GET"}}'] = 0 if le == "0.1" else count
        cycles.append(
            {"http_requests_total": requests, "http_request_duration_seconds_bucket": buckets}
        )
    p50 = _signal_values("http-service", "latency_p50", cycles, APP)
    busiest = {f'{{handler="/p{r}"}}' for r in range(routes - MAX_ROUTES, routes)}
    assert set(p50) == busiest | {"{}"}
    assert all(0.1 < value <= 1 for value in p50.values())


def test_time_to_full_moves_under_twelve_hours_whatever_its_usual_time() -> None:
    """A file system that usually fills in three days moves when its time to full falls under
    12 h, and not at 13 h: the limit is a value, not a distance below its usual time (which
    put the limit below zero for any file system filling in under 6.5 days)."""
    signal = next(s for s in preset_signals("node-exporter") if s.name == "filesystem_time_to_full")
    for usual_days in (7, 3, 1):
        usual = usual_days * 86400.0
        low, high = 0.9 * usual, 1.1 * usual
        assert beyond(signal, 6 * 3600.0, low, high, 0.0)
        assert not beyond(signal, 13 * 3600.0, low, high, 0.0)
    # Under 12 h, but inside a file system's usual band: it always fills that fast; and one
    # usually filling in 3 h is not critical at 2.9 h, only under half its usual time.
    assert not beyond(signal, 6 * 3600.0, 5 * 3600.0, 7 * 3600.0, 0.0)
    for value, moved in ((2.9, False), (1.4, True)):
        least = signal.relative * 3.1 * 3600
        assert beyond(signal, value * 3600, 3.0 * 3600, 3.2 * 3600, least) is moved, value


def test_a_checkpoint_takes_this_version_s_signals_of_a_built_in_preset() -> None:
    """An observer of the built-in signals pickled with another version's (a floor since
    changed) is restored with this version's: a signal's definition is code, not what was
    learned."""
    import dataclasses
    import pickle

    observer = preset_observer("node-exporter")
    observer.signals = tuple(
        dataclasses.replace(s, floor=561_600.0, limit=None)
        if s.name == "filesystem_time_to_full"
        else s
        for s in observer.signals
    )
    restored = pickle.loads(pickle.dumps(observer))
    [full] = [s for s in restored.signals if s.name == "filesystem_time_to_full"]
    assert (full.floor, full.limit) == (0.0, 12 * 3600.0)
    assert restored.by_name["filesystem_time_to_full"] is full


def test_a_checkpoint_takes_this_version_s_defaults_of_a_built_in_preset() -> None:
    """A node-exporter checkpoint made when its for_cycles defaulted to 3 is restored with the
    preset's 6 (a default is code, not what was learned); one whose user gave for_cycles
    keeps it, and so does a checkpoint from before the preset knew which options were
    given, where its value is not the old default."""
    import pickle

    old = preset_observer("node-exporter")
    old.for_cycles = 3  # as made by the version before
    assert pickle.loads(pickle.dumps(old)).for_cycles == 6
    given = preset_observer("node-exporter", for_cycles=4)
    assert pickle.loads(pickle.dumps(given)).for_cycles == 4
    given = preset_observer("node-exporter", for_cycles=3)
    assert pickle.loads(pickle.dumps(given)).for_cycles == 3
    for for_cycles, restored in ((3, 6), (4, 4)):
        before = preset_observer("node-exporter", for_cycles=for_cycles)
        del before.__dict__["given_"]  # a checkpoint from before given_
        assert pickle.loads(pickle.dumps(before)).for_cycles == restored
    import cloudpickle  # (http-service's signals hold local functions)

    assert cloudpickle.loads(cloudpickle.dumps(preset_observer("http-service"))).for_cycles == 3


def test_a_checkpoint_keeps_signals_of_the_user_s() -> None:
    """Signals a user changed (time to full under an hour, not 12) are theirs: a checkpoint
    restores them as they were."""
    import dataclasses
    import pickle

    signals = tuple(
        dataclasses.replace(s, limit=3600.0) if s.name == "filesystem_time_to_full" else s
        for s in preset_signals("node-exporter")
    )
    observer = PresetObserver("node-exporter", signals)
    restored = pickle.loads(pickle.dumps(observer))
    assert restored.by_name["filesystem_time_to_full"].limit == 3600.0


# --- the observer: scores, incidents, alerts ---------------------------------------------------


def _signal(name: str, direction: str = "up", floor: float = 0.1) -> Signal:
    def compute(q: Query) -> SignalValues:
        return q.gauge(name)

    return Signal(
        name,
        f"the {name}",
        "ratio",
        compute,
        (name,),
        direction,  # type: ignore[arg-type]
        floor=floor,
    )


def _run(
    observer: PresetObserver, cycles: list[dict[str, dict[str, dict[str, float]]]], start: int = 0
) -> list[Scores]:
    results = []
    for i, data in enumerate(cycles, start):
        with handing_data(T0 + i, dict.fromkeys(data, T0 + i)):
            results.append(observer.new_data(data))
    return results


_NOISE = random.Random(5)


def _steady(i: int, **moved: float) -> dict[str, dict[str, dict[str, float]]]:
    def ordinary() -> float:
        return 0.3 + _NOISE.gauss(0, 0.01)

    return {
        NODE: {name: {"{}": moved.get(name, ordinary())} for name in ("a", "b", "c")},
        APP: {"a": {"{}": ordinary()}},
    }


WARM = 400  # cycles of ordinary values: the default detector learns for 300


def _observer(**options: Any) -> PresetObserver:
    signals = [_signal("a"), _signal("b"), _signal("c", direction="down")]
    return PresetObserver("test", signals, **options)


def test_an_incident_is_one_alert_naming_what_moved_most() -> None:
    """Two signals moving together on one target make one alert, labelled for routing, that
    names the bigger move with its value, band and start; the other target stays quiet."""
    observer = _observer(for_cycles=3)
    _run(observer, [_steady(i) for i in range(WARM)])
    results = _run(observer, [_steady(i, a=0.9, b=0.6) for i in range(WARM, WARM + 6)], WARM)
    assert [len(r.alerts) for r in results] == [0, 0, 1, 1, 1, 1]
    alert = next(iter(results[-1].alerts))
    assert alert.target == NODE
    assert alert.labels == {"severity": "warning", "preset": "test", "signal": "a"}
    notes = alert.annotations
    assert notes["signal"] == "a" and notes["signals"] == "a,b"
    assert float(notes["value"]) == 0.9
    assert float(notes["expected_lower"]) < 0.31 < float(notes["expected_upper"]) < 0.9
    assert notes["started"] == "2023-11-14T22:20:00+00:00"  # T0 + WARM
    scores = {(s.target, s.metric): s for s in results[-1].scores}
    threshold = observer.detector.threshold
    assert scores[NODE, "a"].value == 0.9 and scores[NODE, "a"].score >= threshold
    assert scores[APP, "a"].score < threshold


class _BurstyDetector(Detector):
    """Scores as the default detector scores a large move of a series that has had ordinary
    bursts: no higher than their rate makes it (here once in 1,000 cycles, score 3), however
    far past them it goes. Its threshold follows its budget as ``AnomalyDetector``'s does."""

    def __init__(self, budget: float) -> None:
        self.threshold = math.log10(10_000 / budget)
        self.values: dict[Any, float] = {}

    def update(self, values: Any, resolution: Any = None, *, times: Any = None) -> Any:
        self.values = {key: value for key, (_, value) in values.items()}
        return {key: 3.0 if value > 0.5 else 0.0 for key, value in self.values.items()}

    def explain(self, key: Any) -> Explanation:
        value = self.values[key]
        return Explanation("spike", 0.25, 0.35, value, 3.0 if value > 0.5 else 0.0, key)

    def forget(self, keys: Any) -> None:
        pass


def test_a_large_move_scored_once_in_a_thousand_cycles_alerts_at_the_default_budget() -> None:
    """A bursty series' record caps the default detector's score of a far larger move near
    -log10 of the bursts' rate (a fork storm six times every ordinary fork rate scored 3.46 on
    a shared machine): at the default budget, such a move past the floors opens an incident
    (the floors, not the threshold, keep ordinary bursts out)."""
    observer = PresetObserver("test", [_signal("a")], for_cycles=3, detector=_BurstyDetector)
    assert observer.detector.threshold <= 3.0
    cycles = [{NODE: {"a": {"{}": 0.3}}}] * 5 + [{NODE: {"a": {"{}": 0.9}}}] * 5
    assert [len(r.alerts) for r in _run(observer, cycles)] == [0] * 7 + [1] * 3


def test_a_move_in_the_harmless_direction_or_under_the_floor_never_alerts() -> None:
    """c only hurts when it falls, and a move smaller than a signal's floor is ordinary: both
    export a score of 0 (a rule on the exported score agrees), a move past the floor does not."""
    observer = _observer(for_cycles=2)
    _run(observer, [_steady(i) for i in range(WARM)])
    results = _run(observer, [_steady(i, c=0.9, a=0.38) for i in range(WARM, WARM + 10)], WARM)
    assert all(not r.alerts for r in results)
    assert {s.score for r in results for s in r.scores if s.metric in ("a", "c")} == {0.0}
    moved = _run(observer, [_steady(i, a=0.9) for i in range(WARM + 10, WARM + 13)], WARM + 10)
    assert max(s.score for r in moved for s in r.scores if s.metric == "a") > 0


def test_an_incident_ends_after_its_quiet_cycles_and_a_new_one_is_a_new_alert() -> None:
    """While quiet it still fires (one alert per incident); its fifth quiet cycle says it
    ended and why, then it is resolved."""
    observer = _observer(for_cycles=2, quiet_cycles=5)
    _run(observer, [_steady(i) for i in range(WARM)])
    moving = _run(observer, [_steady(i, b=0.9) for i in range(WARM, WARM + 4)], WARM)
    quiet = _run(observer, [_steady(i) for i in range(WARM + 4, WARM + 12)], WARM + 4)
    assert [len(r.alerts) for r in moving + quiet] == [0, 1, 1, 1] + [1] * 5 + [0] * 3
    assert next(iter(quiet[4].alerts)).annotations["ended"].startswith("back")
    again = _run(observer, [_steady(i, a=0.9) for i in range(WARM + 12, WARM + 15)], WARM + 12)
    assert next(iter(again[-1].alerts)).labels["signal"] == "a"


def test_a_target_without_the_signals_is_named_once(caplog: pytest.LogCaptureFixture) -> None:
    """One warning per target that serves none of the preset's metrics, naming them."""
    observer = preset_observer("node-exporter")
    data = {APP: {"up": {"{}": 1.0}}}
    with caplog.at_level(logging.WARNING, "deucalion.presets"):
        _run(observer, [data, data, data])
    [record] = caplog.records
    assert APP in record.getMessage() and "node_cpu_seconds_total" in record.getMessage()


def test_a_cpu_burn_on_a_quiet_machine_is_one_alert_on_cpu_saturation() -> None:
    """node-exporter, fed the counters of a machine already busy (90 %, some noise) but rarely
    waiting for a CPU, then one CPU burner per CPU: busy goes to 100 % (less than cpu_busy's
    floor), tasks wait for a CPU about half the time and the run queue grows by one per CPU.
    One alert comes, from a saturation signal, within 10 cycles of the burn's start."""
    rng = random.Random(3)
    observer = preset_observer("node-exporter")
    waited = running = busy_s = 0.0
    alerts: list[tuple[int, str]] = []
    burn_from = 1500  # past the default detector's learning
    for i in range(burn_from + 20):
        burning = i >= burn_from
        waited += (0.5 if burning else 0.02) + rng.uniform(0, 0.02)
        running = (3.0 if burning else 1.0) + rng.choice((0.0, 1.0))
        busy = 1.0 if burning else 0.85 + rng.uniform(0, 0.1)
        busy_s += busy
        cycle = _node_cycle(i)
        cycle["node_cpu_seconds_total"] = {  # counters, per CPU, growing by the busy share
            f'{{cpu="{n}",mode="{mode}"}}': value
            for n in range(2)
            for mode, value in (("user", busy_s), ("idle", i - busy_s), ("iowait", 0.0))
        }
        cycle["node_pressure_cpu_waiting_seconds_total"] = {"{}": waited}
        cycle["node_procs_running"] = {"{}": running}
        with handing_data(T0 + i, {NODE: T0 + i}):
            result = observer.new_data({NODE: cycle})
        alerts += [(i, a.labels["signal"]) for a in result.alerts]
    assert alerts, "no alert for the burn"
    first, signal = alerts[0]
    assert burn_from <= first < burn_from + 10
    assert signal in {"cpu_pressure", "runnable_per_core"}
    assert {s for _, s in alerts} == {signal}  # one incident, one alert identity


def test_a_cpu_burn_on_a_kernel_without_pressure_stall_information_is_found() -> None:
    """The same burn on a kernel that serves no ``node_pressure_*`` (PSI off, or before 4.20):
    the preset watches what there is, and the run queue finds the burn within 10 cycles."""
    rng = random.Random(3)
    observer = preset_observer("node-exporter")
    running = busy_s = 0.0
    alerts: list[tuple[int, str]] = []
    burn_from = 1500
    for i in range(burn_from + 20):
        burning = i >= burn_from
        running = (3.0 if burning else 1.0) + rng.choice((0.0, 1.0))
        busy_s += 1.0 if burning else 0.85 + rng.uniform(0, 0.1)
        cycle = _node_cycle(i)
        del cycle["node_pressure_cpu_waiting_seconds_total"]
        cycle["node_cpu_seconds_total"] = {
            f'{{cpu="{n}",mode="{mode}"}}': value
            for n in range(2)
            for mode, value in (("user", busy_s), ("idle", i - busy_s), ("iowait", 0.0))
        }
        cycle["node_procs_running"] = {"{}": running}
        with handing_data(T0 + i, {NODE: T0 + i}):
            result = observer.new_data({NODE: cycle})
        alerts += [(i, a.labels["signal"]) for a in result.alerts]
    assert alerts, "no alert for the burn"
    assert burn_from <= alerts[0][0] < burn_from + 10
    assert {s for _, s in alerts} == {"runnable_per_core"}


def test_the_run_queue_is_averaged_over_ten_seconds_beyond_the_raw_scrapes_kept() -> None:
    """runnable_per_core averages node_procs_running over its last 10 s, which the observer
    keeps for it (the raw window keeps 8 scrapes: their mean would be 7.5 tasks, 3.75 per
    CPU)."""
    observer = preset_observer("node-exporter")
    for i in range(12):
        cycle = _node_cycle(i)
        cycle["node_procs_running"] = {"{}": float(i)}
        with handing_data(T0 + i, {NODE: T0 + i}):
            values = observer.compute({NODE: cycle})
    assert values[NODE]["runnable_per_core"] == {"{}": pytest.approx((2 + 11) / 2 / 2)}


def test_a_cpu_burn_on_a_saturated_machine_is_found_by_its_run_queue() -> None:
    """A machine whose other work already keeps both CPUs busy and a task waiting most of the
    time (pressure near 1, busy stuck at 1, 4 to 8 tasks runnable), then one burner per CPU:
    busy and pressure cannot rise, the run queue grows by one task per CPU. One alert comes,
    from runnable_per_core, within 30 cycles of the burn's start."""
    rng = random.Random(5)
    observer = preset_observer("node-exporter")
    waited = 0.0
    alerts: list[tuple[int, str]] = []
    burn_from = 1500
    for i in range(burn_from + 40):
        burning = i >= burn_from
        waited += 0.9 + rng.uniform(0, 0.1)
        running = 4.0 + rng.choice((0.0, 1.0, 2.0)) + (2.0 if burning else 0.0)
        cycle = _node_cycle(i, busy=1.0)
        cycle["node_pressure_cpu_waiting_seconds_total"] = {"{}": waited}
        cycle["node_procs_running"] = {"{}": running}
        with handing_data(T0 + i, {NODE: T0 + i}):
            result = observer.new_data({NODE: cycle})
        alerts += [(i, a.labels["signal"]) for a in result.alerts]
    assert alerts, "no alert for the burn"
    first = alerts[0][0]
    assert burn_from <= first < burn_from + 30
    assert {s for _, s in alerts} == {"runnable_per_core"}


def test_every_preset_builds_and_an_unknown_one_is_named() -> None:
    for name in PRESETS:
        observer = preset_observer(name)
        assert observer.observer_name == f"preset-{name}"
        assert "up" in observer.desired_metrics
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*node-exporter"):
        preset_observer("nope")
    with pytest.raises(ConfigError, match="for_cycles"):
        preset_observer("node-exporter", for_cycles=0)


def test_the_observer_survives_pickling_with_its_state() -> None:
    """Workers receive the observer pickled (and checkpoints pickle it): the signals' functions
    are module-level, so it pickles with its windows and incidents."""
    import pickle

    observer = preset_observer("node-exporter")
    _run(observer, [{NODE: _node_cycle(i)} for i in range(5)])
    copy = pickle.loads(pickle.dumps(observer))
    assert copy.raw is not None and copy.raw.targets() == [NODE]


# --- selecting a preset ------------------------------------------------------------------------


def test_the_config_key_names_a_known_preset(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from deucalion.cli import main
    from deucalion.config.loading import load_settings

    good = tmp_path / "good.yaml"
    good.write_text("preset: http-service\ntargets: [http://a:1/metrics]\n")
    preset = load_settings(str(good), environ={}).preset
    assert preset is not None and preset.name == "http-service"
    assert main(["check-config", str(good)]) == 0
    assert "preset http-service" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: nginx\ntargets: [http://a:1/metrics]\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: preset.name: unknown preset 'nginx'" in err and "node-exporter" in err


def test_the_preset_annotation_runs_the_preset_in_the_generic_image() -> None:
    import jsonpatch

    from deucalion.injector.mutation import plan_injection
    from deucalion.injector.settings import InjectorSettings
    from tests.injector_reviews import app_pod, sidecars

    settings = InjectorSettings(sidecar={"image": "registry.example/deucalion:0.1"})
    pod = app_pod()
    pod["metadata"]["annotations"]["deucalion.io/preset"] = "http-service"
    plan = plan_injection(pod, settings)
    assert not [w for w in plan.warnings if "not one deucalion reads" in w]
    [sidecar] = sidecars(jsonpatch.apply_patch(pod, plan.patch))
    assert sidecar["command"] == ["deucalion", "run", "--preset", "http-service"]
    assert sidecar["image"] == "registry.example/deucalion:0.1"

    pod["metadata"]["annotations"]["deucalion.io/preset"] = "mysql"
    assert "is not a preset" in str(plan_injection(pod, settings).skipped)
    pod["metadata"]["annotations"]["deucalion.io/preset"] = "http-service"
    pod["metadata"]["annotations"]["deucalion.io/observer"] = "my.mod:Obs"
    assert "keep one" in str(plan_injection(pod, settings).skipped)


def test_presets_list_names_every_signal(capsys: pytest.CaptureFixture[str]) -> None:
    from deucalion.cli import main

    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert f"{name}:" in out
        assert all(s.name in out for s in preset_signals(name))


def test_backtest_preset_replays_a_recording(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """deucalion backtest --preset NAME --from RECORDING runs the preset unchanged and alerts
    once on a CPU step."""
    from deucalion.cli import main
    from deucalion.replay.recording import RecordingWriter
    from deucalion.replay.sources import Cycle

    recording = tmp_path / "r.om.gz"
    rng = random.Random(1)
    ordinary = 1200  # the default detector's scores reach its threshold after about 1,000
    with RecordingWriter(recording) as writer:
        idle = 0.0
        for i in range(ordinary + 20):
            # From then on, the CPUs idle 0.75 s less each second.
            idle += 0.8 + rng.gauss(0, 0.02) - (0.75 if i >= ordinary else 0.0)
            samples = _node_cycle(i)
            for key in samples["node_cpu_seconds_total"]:
                if "idle" in key:
                    samples["node_cpu_seconds_total"][key] = 1000 + idle
            data = {NODE: {**samples, "up": {"{}": 1.0}}}
            writer.write_cycle(Cycle(T0 + i, {NODE: T0 + i}, data))
    output = tmp_path / "out.jsonl"
    code = main(
        ["backtest", "--preset", "node-exporter", "--from", str(recording), "-o", str(output)]
    )
    assert code == 0, capsys.readouterr()
    alerts = [json.loads(line) for line in output.read_text().splitlines()]
    fired = [a for a in alerts if "labels" in a]
    assert {a["labels"]["signal"] for a in fired} == {"cpu_busy"}, alerts[-5:]


def test_the_value_and_band_are_exported_beside_the_score() -> None:
    """deucalion_series_value and the expected band carry the score's labels; a score without
    them exports the score alone."""
    from deucalion.alerting.alerts import SeriesScore
    from deucalion.telemetry import _SourceCollector

    families = _SourceCollector._series_families(
        {
            "preset-x": [
                SeriesScore(NODE, "cpu_busy", "{}", 9.0, value=0.9, lower=0.1, upper=0.4),
                SeriesScore(NODE, "forks", "{}", 1.0),
            ]
        },
        {},
    )
    by_name = {f.name: f.samples for f in families}
    assert [s.value for s in by_name["deucalion_series_anomaly_score"]] == [9.0, 1.0]
    [value] = by_name["deucalion_series_value"]
    assert value.value == 0.9 and value.labels["metric"] == "cpu_busy"
    assert value.labels["observer"] == "preset-x"
    assert [s.value for s in by_name["deucalion_series_expected_lower"]] == [0.1]
    assert [s.value for s in by_name["deucalion_series_expected_upper"]] == [0.4]


def test_demo_with_a_preset_needs_a_target() -> None:
    import asyncio

    from deucalion.demo import run_demo

    with pytest.raises(ConfigError, match="--target"):
        asyncio.run(run_demo(preset="node-exporter", duration=1))


def _memory_dips(lasting: int, **options: Any) -> list[int]:
    """node-exporter over a machine whose available memory wanders around 75 %, then falls to
    25 % for ``lasting`` cycles (twice, 400 cycles apart): the cycles alerts came at."""
    rng = random.Random(5)
    observer = preset_observer("node-exporter", **options)
    alerts = []
    for i in range(1900):
        dipped = any(start <= i < start + lasting for start in (1400, 1800))
        avail = 2e9 if dipped else 6e9 + rng.uniform(-1e8, 1e8)
        with handing_data(T0 + i, {NODE: T0 + i}):
            result = observer.new_data({NODE: _node_cycle(i, avail=avail)})
        alerts += [i for a in result.alerts if "ended" not in a.annotations]
    return alerts


def test_node_exporter_opens_an_incident_after_six_cycles_of_a_move() -> None:
    """A machine's move past its floors opens an incident once it has lasted 6 cycles (the
    preset's own for_cycles; a busy machine's bursts of other work last a few seconds): a
    dip of 4 cycles is no alert, one of 10 is, in its 6th cycle. Asked for 3, the 4-cycle dip
    alerts too."""
    assert preset_observer("node-exporter").for_cycles == 6
    assert preset_observer("http-service").for_cycles == 3
    assert _memory_dips(4) == []
    assert _memory_dips(10)[:1] == [1405]
    assert _memory_dips(4, for_cycles=3)[:1] == [1402]
