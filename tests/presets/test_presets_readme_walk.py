"""Defects in ``deucalion/presets/`` found by following README's "Watching a service without
code" as a new user, on targets of one's own making, each shown fixed."""

from __future__ import annotations

import pytest

from tests.presets.test_presets import APP, NODE, _signal_values


def _histogram_only(i: int) -> dict[str, dict[str, float]]:
    """Cycle ``i`` of a Python service instrumented with prometheus_client's
    ``Histogram("http_request_duration_seconds", ..., ["method", "route", "status"])`` and no
    request counter: 30 requests a second on one route, 3 of them answered 500."""
    sample: dict[str, float] = {}
    for status, per_s in (("200", 27.0), ("500", 3.0)):
        labels = f'method="GET",route="/a",status="{status}"'
        for le, share in (("0.1", 0.5), ("1", 1.0), ("+Inf", 1.0)):
            sample[f'{{le="{le}",{labels}}}'] = per_s * share * i
    counts = {
        f'{{method="GET",route="/a",status="{s}"}}': per_s * i
        for s, per_s in (("200", 27.0), ("500", 3.0))
    }
    return {
        "http_request_duration_seconds_bucket": sample,
        "http_request_duration_seconds_count": counts,
    }


def test_a_duration_histogram_alone_gives_the_http_signals() -> None:
    """README: the preset finds its signals from "the Prometheus client libraries' ...
    conventions (`http_requests_total`, `http_request_duration_seconds`, ...)". The histogram's
    `_count` is the requests (as OpenTelemetry's and Micrometer's are read), its `status` the
    errors, its buckets the latency."""
    cycles = [_histogram_only(i) for i in range(10)]
    for signal, expected in (("request_rate", 30.0), ("error_ratio", 0.1), ("latency_p50", 0.1)):
        values = _signal_values("http-service", signal, cycles, APP)
        assert values.get("{}") == pytest.approx(expected), (signal, values)


def test_memory_available_is_not_zero_when_mem_available_is_not_served() -> None:
    """A target serving `node_memory_MemTotal_bytes` without `node_memory_MemAvailable_bytes`
    (`deucalion presets show node-exporter --target URL` printed `memory_available 0 ratio`):
    an absent metric is no signal (README: "what it looked for"), not an empty memory."""
    cycles = [
        {"node_load1": {"{}": 0.5}, "node_memory_MemTotal_bytes": {"{}": 1e9}} for _ in range(10)
    ]
    assert _signal_values("node-exporter", "memory_available", cycles, NODE) == {}
    assert _signal_values("node-exporter", "memory_anonymous", cycles, NODE) == {}
