"""The http-service preset on what real instrumentation libraries serve: each fixture in
``data/`` is a /metrics page captured from a small app using the library with its defaults
(load with about a third of the requests failing), trimmed to the families the preset reads.

A page is one instant; ``_cycles`` makes scrapes of it one second apart in which every counter
(and histogram sample) grew by the value captured, gauges staying as captured: a rate is then
the captured value per second, an error ratio the captured errors over the captured requests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deucalion.exposition import parse_exposition
from tests.presets.test_presets import APP, _signal_values

DATA = Path(__file__).parent / "data"


def _cycles(page: str, n: int = 10) -> list[dict[str, dict[str, float]]]:
    text = (DATA / page).read_text()
    types = [line.split() for line in text.splitlines() if line.startswith("# TYPE ")]
    gauges = {words[2] for words in types if words[3] == "gauge"}
    samples = parse_exposition(text)
    return [
        {
            metric: {key: value if metric in gauges else value * i for key, value in series.items()}
            for metric, series in samples.items()
        }
        for i in range(n)
    ]


def _values(page: str, signal: str) -> dict[str, float]:
    return _signal_values("http-service", signal, _cycles(page), APP)


def test_py_grpc_prometheus_upper_case_codes_are_errors() -> None:
    """py-grpc-prometheus names codes as grpc.StatusCode does (INTERNAL, OK): 21 of its 60
    calls failed INTERNAL, and the error ratio read 0 (the codes were matched as
    go-grpc-prometheus's Internal only)."""
    ratio = _values("py_grpc_prometheus.txt", "error_ratio")
    assert ratio["{}"] == pytest.approx(21 / 60)
    assert ratio['{grpc_method="Fast",grpc_service="demo.Svc"}'] == pytest.approx(9 / 25)
    assert _values("py_grpc_prometheus.txt", "request_rate")["{}"] == pytest.approx(60.0)


def test_grpc_server_codes_match_in_any_spelling() -> None:
    """go-grpc-prometheus's CamelCase and grpc.StatusCode's names; client errors are not."""
    import re

    from deucalion.presets.http_service import INSTRUMENTATIONS

    [grpc] = [i for i in INSTRUMENTATIONS if i.name == "grpc"]
    for code in ("DeadlineExceeded", "DEADLINE_EXCEEDED", "DataLoss", "DATA_LOSS", "UNKNOWN"):
        assert re.fullmatch(grpc.error, code), code
    for code in ("OK", "NotFound", "NOT_FOUND", "INVALID_ARGUMENT", "Canceled"):
        assert not re.fullmatch(grpc.error, code), code
