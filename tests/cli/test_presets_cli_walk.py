"""README's "Watching a service without code", walked as a new user: the commands as written,
and the slips a user makes with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from deucalion.cli import main
from tests.helpers import TargetServer, text


@pytest.mark.parametrize(
    ("given", "meant", "target"),
    [
        ("http-servce", "http-service", []),
        ("http-servce", "http-service", ["--target", "127.0.0.1:1"]),
        ("NODE-EXPORTER", "node-exporter", ["--target", "127.0.0.1:1"]),
    ],
)
def test_presets_show_tells_a_misspelt_preset_the_one_meant(
    capsys: pytest.CaptureFixture[str], given: str, meant: str, target: list[str]
) -> None:
    """`deucalion presets show http-servce` said only "choose one of ...", where `run
    --preset http-servce` says "did you mean 'http-service'?"; a name in capitals was told of
    no preset at all. The name is checked before the target is scraped."""
    assert main(["presets", "show", given, *target]) == 1
    err = capsys.readouterr().err
    assert f"presets show: unknown preset {given!r}: did you mean {meant!r}?" in err
    assert "is down" not in err


def test_run_tells_a_preset_in_capitals_the_one_meant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--preset", "HTTP-SERVICE"]) == 1
    assert "did you mean 'http-service'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["presets", "show", "node-exporter", "--target"],
        ["demo", "--preset", "node-exporter", "--target"],
        ["demo", "--target"],
        ["scrape"],
    ],
)
def test_a_port_alone_as_target_is_refused_saying_host_port(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """`--target 9100` was taken for host 9100 and reported down at every scrape ("9100 - is
    not a canonical IPv4 address")."""
    assert main([*command, "9100"]) == 1
    err = capsys.readouterr().err
    assert "has a number for its host: write host:port (localhost:9100)" in err
    assert "is down" not in err and "canonical" not in err


def test_a_target_number_in_a_config_file_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "deucalion.yaml"
    config.write_text('targets: ["9100"]\n')
    assert main(["check-config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"config file {config}: targets.0.url" in err and "localhost:9100" in err


@pytest.mark.parametrize(
    ("option", "url", "says"),
    [
        ("--target", "ftp://example.com/metrics", "is not a scrape URL"),
        ("--alertmanager", "ftp://example.com:9093", "is not an Alertmanager URL"),
    ],
)
def test_demo_names_the_option_of_a_url_it_refuses(
    capsys: pytest.CaptureFixture[str], option: str, url: str, says: str
) -> None:
    """The demo's options are passed on as keyword arguments, and a bad one was reported as
    `keyword arguments: targets.0.url: ...`, an option the user never gave."""
    assert main(["demo", option, url, "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert f"deucalion demo {option}: " in err and says in err
    assert "keyword arguments" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["presets", "show", "http-service", "--target"],
        ["demo", "--target"],
        ["demo", "--alertmanager"],
    ],
)
def test_a_password_that_ends_the_host_early_is_never_shown(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """`--target http://u:s3cr/et@host:9100/metrics`: the / in the password ends the host, so
    the URL's "port" is the password's start and redact_url sees no password to hide: the
    error quoted the URL whole."""
    assert main([*command, "http://u:s3cr/et@example.com:9100/metrics"]) == 1
    err = capsys.readouterr().err
    assert "s3cr" not in err and "et@" not in err
    assert "percent-encoded" in err


async def test_presets_show_on_an_idle_service_says_it_serves_what_a_signal_needs(
    target_server: TargetServer,
) -> None:
    """A service that had no request between the two scrapes: error_ratio and the latencies
    said "not found (looks for http_requests_total)" of a target serving just that, which
    reads as the wrong instrumentation."""
    from deucalion.presets.cli import show

    idle = target_server.add(
        "/metrics",
        text(
            "# TYPE http_requests_total counter\n"
            'http_requests_total{code="200",handler="/x"} 7\n'
            "# TYPE http_request_duration_seconds histogram\n"
            'http_request_duration_seconds_bucket{handler="/x",le="0.1"} 7\n'
            'http_request_duration_seconds_bucket{handler="/x",le="+Inf"} 7\n'
            'http_request_duration_seconds_count{handler="/x"} 7\n'
            'http_request_duration_seconds_sum{handler="/x"} 0.2\n'
        ),
    )
    await target_server.start()
    printed = await show("http-service", idle, interval=0.1)
    lines = {line.split()[0]: line for line in printed.splitlines()[1:]}
    assert "error_ratio                no value: it serves http_requests_total," in printed
    assert (
        "latency_p99                no value: it serves http_request_duration_seconds_bucket"
        in (printed)
    )
    assert "0.1s between the two scrapes" in lines["latency_p50"]
    assert "not found" not in lines["error_ratio"] + lines["latency_p50"]
    # What it does not serve is still "not found", with what it looks for.
    assert lines["in_flight"].split()[1:3] == ["not", "found"]


def test_the_incident_bounds_readme_names_are_options_of_preset_observer() -> None:
    """README names `quiet_cycles`, `settle_cycles`, `max_cycles` and now says where they are
    set; the config file's preset takes only name and budget."""
    from deucalion.presets import preset_observer

    observer = preset_observer("http-service", quiet_cycles=10, settle_cycles=100, max_cycles=500)
    assert (observer.quiet_cycles, observer.settle_cycles, observer.max_cycles) == (10, 100, 500)


async def test_presets_show_says_what_a_signal_lacks_beyond_its_metrics(
    target_server: TargetServer,
) -> None:
    """A prometheus_client Histogram alone (no status label) has no error ratio however many
    requests it serves, and promhttp counts requests in no duration histogram: `presets show`
    said "no value: ... none came in the 5s between the two scrapes (too few requests?)" of
    a service doing 50 a second, and listed all 16 latency metrics it knows of promhttp."""
    from deucalion.presets.cli import show

    histogram = target_server.add(
        "/histogram",
        text(
            "# TYPE http_request_duration_seconds histogram\n"
            'http_request_duration_seconds_bucket{handler="/x",le="0.1"} 7\n'
            'http_request_duration_seconds_bucket{handler="/x",le="+Inf"} 7\n'
            'http_request_duration_seconds_count{handler="/x"} 7\n'
            'http_request_duration_seconds_sum{handler="/x"} 0.2\n'
        ),
    )
    promhttp = target_server.add(
        "/promhttp",
        text(
            "# TYPE promhttp_metric_handler_requests_total counter\n"
            'promhttp_metric_handler_requests_total{code="200"} 7\n'
        ),
    )
    await target_server.start()
    lines = {
        line.split()[0]: line
        for line in (await show("http-service", histogram, interval=0.1)).splitlines()[1:]
    }
    assert lines["error_ratio"].endswith(
        "no value: its http_request_duration_seconds_count has no status label (status, code, "
        "status_code) to tell server errors by"
    )
    assert "too few requests" in lines["latency_p50"]  # it has a histogram: none came
    lines = {
        line.split()[0]: line
        for line in (await show("http-service", promhttp, interval=0.1)).splitlines()[1:]
    }
    assert lines["latency_p99"].endswith(
        "no value: the promhttp instrumentation it serves "
        "(promhttp_metric_handler_requests_total) has no request duration histogram"
    )
    assert "too few requests" in lines["error_ratio"]  # a status label: no request came
    assert lines["in_flight"].endswith(
        "no value: the promhttp instrumentation it serves "
        "(promhttp_metric_handler_requests_total) has no in-flight gauge"
    )


async def test_presets_show_names_the_requests_a_latency_needs_and_the_interval_that_gives_them(
    target_server: TargetServer,
) -> None:
    """On a service at 7 requests/s, `presets show --interval 1s` said of its p99 only "none
    came in the 1s between the two scrapes (too few requests in them? a longer --interval
    waits longer)": how many requests, and how much longer, it did not say (README: a p99
    needs 150 requests)."""
    import re

    from aiohttp import web

    from deucalion.presets.cli import show

    served = [1000]

    async def metrics(request: web.Request) -> web.Response:
        n = served[0]
        served[0] += 7  # 7 requests between two scrapes 1 s apart
        return web.Response(
            text="# TYPE http_request_duration_seconds histogram\n"
            f'http_request_duration_seconds_bucket{{handler="/a",le="0.1"}} {n}\n'
            f'http_request_duration_seconds_bucket{{handler="/a",le="+Inf"}} {n}\n'
            f'http_request_duration_seconds_count{{handler="/a"}} {n}\n'
            f'http_request_duration_seconds_sum{{handler="/a"}} {n * 0.05}\n'
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{handler="/a",status="200"}} {n}\n'
        )

    url = target_server.add("/metrics", metrics)
    await target_server.start()
    lines = {
        line.split()[0]: line
        for line in (await show("http-service", url, interval=1.0)).splitlines()[1:]
    }
    assert 'latency_p50{handler="/a"}' in lines  # 14 requests in its range: a median
    p99 = lines["latency_p99"]
    assert "too few requests came in the 1s between the two scrapes" in p99, p99
    assert "a p99 needs 150 within its range (2 scrape intervals)" in p99, p99
    # About 7 a second over a range of 2 s: 14, and 150 in 2 intervals of 15 s at least
    # (a tenth more than 150 / 14 s).
    assert re.search(r"at [67]\.\d+ requests/s there were about 14: --interval 15s or more", p99)


def test_a_target_that_refuses_says_so_without_aiohttps_tls_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`presets show` on a plain http:// target that is down said "Cannot connect to host
    127.0.0.1:19999 ssl:default [Connect call failed ('127.0.0.1', 19999)]": no TLS was
    tried, and "Connection refused" is what the user would recognise."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/metrics"
    assert main(["presets", "show", "node-exporter", "--target", url]) == 1
    err = capsys.readouterr().err
    assert f"{url} is down: ClientConnectorError: Cannot connect to host 127.0.0.1:{port} " in err
    assert "[Connection refused]" in err, err
    assert "ssl:" not in err and "Connect call failed" not in err


async def test_presets_show_lines_up_the_values_of_labelled_series(
    target_server: TargetServer,
) -> None:
    """The value column was 26 characters wide: `request_rate{handler="/api/items/{id}"}`
    (and node-exporter's `filesystem_free{mountpoint="/"}`) pushed its value out of line."""
    from deucalion.presets.cli import show

    served = [100]

    async def metrics(request: web.Request) -> web.Response:
        served[0] += 3
        n = served[0]
        return web.Response(
            text="# TYPE http_requests_total counter\n"
            f'http_requests_total{{handler="/api/items/{{id}}",status="200"}} {n}\n'
            f'http_requests_total{{handler="/",status="200"}} {n}\n'
        )

    url = target_server.add("/metrics", metrics)
    await target_server.start()
    rows = (await show("http-service", url, interval=0.1)).splitlines()[1:]
    assert any('request_rate{handler="/api/items/{id}"}' in row for row in rows), rows
    starts = set()
    for row in rows:
        label = row.split()[0]
        rest = row[row.index(label) + len(label) :]
        starts.add(row.index(label) + len(label) + len(rest) - len(rest.lstrip()))
    assert len(starts) == 1, "\n".join(rows)
