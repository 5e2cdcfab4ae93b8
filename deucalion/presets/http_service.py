"""The ``http-service`` preset: request rate, error ratio, latency and requests in flight of a
service, found from what the target actually exposes.

Each ``Instrumentation`` is one common way of instrumenting a service; the first whose request
counter the target serves is used for it:

- the Prometheus client libraries' conventions and Go's ``promhttp.InstrumentHandler*``
  (``http_requests_total``, ``http_request_duration_seconds``, ``http_requests_in_progress``
  or ``_in_flight``), or where there is no request counter, the duration histogram's
  ``_count``;
- OpenTelemetry's semantic conventions through its Prometheus exporter
  (``http_server_request_duration_seconds``, ``http_server_active_requests``), and its older
  HTTP conventions, still the default of opentelemetry-python's instrumentations
  (``http_server_duration_milliseconds``, in milliseconds, read as seconds);
- Spring Boot / Micrometer (``http_server_requests_seconds``);
- gRPC's go-grpc-prometheus and its ports (``grpc_server_handled_total``,
  ``grpc_server_handling_seconds``);
- Python web frameworks' exporters with their default names: starlette_exporter
  (``starlette_requests_total``), prometheus-flask-exporter
  (``flask_http_request_duration_seconds``), django-prometheus
  (``django_http_responses_total_by_status_view_method_total``);
- as a last resort, Go's ``promhttp_metric_handler_requests_total`` (the metrics endpoint's
  own requests: a service that exposes nothing else still shows whether it is scraped).

Signals are of the service as a whole (series ``{}``) and, where the instrumentation has a
route label, per route: the ``MAX_ROUTES`` routes with the most requests counted (the request
counter's totals: since the service started) and the rest as one ``route="other"`` (its
request rate and error ratio; a latency is of those routes and the whole service only), so a
service with thousands of paths cannot make thousands of signals. (An error ratio or a
latency quantile of a service or route with fewer than ``RATIO_REQUESTS`` or ``MIN_REQUESTS``
requests within the rate's range is read over a wider range, up to the observer's widest: see
``_request_ranges``.) The metrics endpoint that is scraped is no route: its requests
(deucalion's own) are left out of every signal but ``in_flight``, where a route label names
it.
The service's quantiles come from a finer histogram without route labels where one is served
(prometheus-fastapi-instrumentator's ``http_request_duration_highr_seconds``, which does
count the scrapes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from deucalion.presets.signals import Matchers, Query, Signal, SignalValues, labels_of

__all__ = ["INSTRUMENTATIONS", "SIGNALS", "Instrumentation", "instrumentation_of"]

#: Routes watched one by one per target; the others are summed into ``route="other"``.
MAX_ROUTES = 20
#: Fewer errors than this within the range an error ratio is read over is chance, not an
#: error ratio (it reads 0).
MIN_ERRORS = 2.0
#: Fewer requests than this make no latency quantile: a series with fewer within the rate's
#: range reads its latency over a wider one (see ``_request_ranges``).
MIN_REQUESTS = 5.0
#: Requests an error ratio is read from: a series with fewer within the rate's range reads
#: it over a wider one (see ``_request_ranges``), where ``MIN_ERRORS`` errors are a fifth of
#: its requests at most. A route at a request a second has 2 within the rate's range at 1 s
#: scrapes: half of them failing for a minute made a ratio on 28 to 53 % of the cycles, and
#: no alert in 3 of 10 runs. Over the range holding 10 to 20 requests (16 s), a ratio of
#: 0.2 or more on 81 to 100 % of them and an alert in every run, back at 0 within 13 s after
#: it. (Holding ``MIN_REQUESTS``, as a latency: 62 to 95 %, no alert in 1 run of 10.)
RATIO_REQUESTS = 10.0
#: Routes of a metrics endpoint by name rather than path: django-prometheus's view.
METRICS_ROUTES = ("prometheus-django-metrics",)


@dataclass(frozen=True)
class Instrumentation:
    """Where one instrumentation keeps its request count, status, route, latency, in flight."""

    name: str
    requests: str
    """A counter of handled requests (or a duration histogram's ``_count``)."""
    status_labels: tuple[str, ...]
    """Label names of the response status, first present wins."""
    error: str
    """A regular expression matching the statuses that are the server's errors."""
    routes: tuple[tuple[str, ...], ...] = ()
    """Label names that together name a route, first present wins."""
    duration_bucket: str | None = None
    """The ``_bucket`` samples of the request duration histogram, in seconds."""
    in_flight: tuple[str, ...] = ()
    """Gauges of the requests being handled, first present wins."""
    started: str | None = None
    """A counter of started requests: in flight = started - handled (gRPC)."""
    handled: str | None = None
    """A counter of handled requests, for in flight = started - handled (None: ``requests``)."""
    service_duration_bucket: str | None = None
    """A duration histogram of every request, without route labels, with finer buckets than
    ``duration_bucket``'s: the service's quantiles where the target serves it."""
    duration_unit: float = 1.0
    """Seconds per unit of the duration histogram's bounds (0.001 for milliseconds)."""

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names it reads."""
        names = [self.requests, *self.in_flight]
        if self.duration_bucket:
            names.append(self.duration_bucket)
        if self.service_duration_bucket:
            names.append(self.service_duration_bucket)
        if self.started:
            names.append(self.started)
        if self.handled:
            names.append(self.handled)
        return tuple(names)


_HTTP_5XX = r"5.."
# gRPC's codes as go-grpc-prometheus names them (DeadlineExceeded) and as py-grpc-prometheus
# does (grpc.StatusCode's names: DEADLINE_EXCEEDED, INTERNAL): in any case.
_GRPC_SERVER_ERRORS = (
    r"(?i)unknown|deadline_?exceeded|unimplemented|internal|unavailable|data_?loss"
)
# prometheus-fastapi-instrumentator's: its per-handler histogram's default buckets (0.1, 0.5,
# 1) put every quantile under 100 ms at 0.05 or 0.099 s.
_HIGHR = "http_request_duration_highr_seconds_bucket"
_ROUTE_LABELS = (
    ("route",),
    ("handler",),
    ("endpoint",),
    ("path",),
    ("uri",),
    ("url",),
    ("url_rule",),  # prometheus-flask-exporter's group_by="url_rule"
)

#: The instrumentations looked for, in order.
INSTRUMENTATIONS: tuple[Instrumentation, ...] = (
    Instrumentation(
        "prometheus-client",
        "http_requests_total",
        ("status", "code", "status_code"),
        _HTTP_5XX,
        _ROUTE_LABELS,
        "http_request_duration_seconds_bucket",
        ("http_requests_in_progress", "http_requests_in_flight", "http_requests_inprogress"),
        service_duration_bucket=_HIGHR,
    ),
    # The same conventions where the service counts its requests only in the duration
    # histogram (prometheus_client's Histogram alone): its _count is the request counter.
    Instrumentation(
        "prometheus-client histogram",
        "http_request_duration_seconds_count",
        ("status", "code", "status_code"),
        _HTTP_5XX,
        _ROUTE_LABELS,
        "http_request_duration_seconds_bucket",
        ("http_requests_in_progress", "http_requests_in_flight", "http_requests_inprogress"),
        service_duration_bucket=_HIGHR,
    ),
    Instrumentation(
        "opentelemetry",
        "http_server_request_duration_seconds_count",
        ("http_response_status_code",),
        _HTTP_5XX,
        (("http_route",),),
        "http_server_request_duration_seconds_bucket",
        ("http_server_active_requests",),
    ),
    # OpenTelemetry's HTTP conventions before 1.21 (opentelemetry-python's instrumentations
    # without OTEL_SEMCONV_STABILITY_OPT_IN=http): a histogram in milliseconds. After the new
    # one: a service serving both (OTEL_SEMCONV_STABILITY_OPT_IN=http/dup) is read in seconds.
    Instrumentation(
        "opentelemetry (old conventions)",
        "http_server_duration_milliseconds_count",
        ("http_status_code",),
        _HTTP_5XX,
        (("http_route",), ("http_target",)),
        "http_server_duration_milliseconds_bucket",
        ("http_server_active_requests",),
        duration_unit=0.001,
    ),
    Instrumentation(
        "micrometer",
        "http_server_requests_seconds_count",
        ("status",),
        _HTTP_5XX,
        (("uri",),),
        "http_server_requests_seconds_bucket",
        ("http_server_requests_active_seconds_active_count",),
    ),
    Instrumentation(
        "grpc",
        "grpc_server_handled_total",
        ("grpc_code",),
        _GRPC_SERVER_ERRORS,
        (("grpc_service", "grpc_method"),),
        "grpc_server_handling_seconds_bucket",
        started="grpc_server_started_total",
    ),
    Instrumentation(
        "starlette_exporter",
        "starlette_requests_total",
        ("status_code",),
        _HTTP_5XX,
        (("path",),),
        "starlette_request_duration_seconds_bucket",
        ("starlette_requests_in_progress",),
    ),
    # Its flask_http_request_total has no route label; its histogram's _count has the route
    # (group_by: the path by default, or url_rule, endpoint, url). No in-flight gauge.
    Instrumentation(
        "prometheus-flask-exporter",
        "flask_http_request_duration_seconds_count",
        ("status",),
        _HTTP_5XX,
        (("url_rule",), ("path",), ("endpoint",), ("url",)),
        "flask_http_request_duration_seconds_bucket",
    ),
    # Responses by status and view (the view's name, or "<unnamed view>"); in flight between
    # its outermost middleware's request and response counters.
    Instrumentation(
        "django-prometheus",
        "django_http_responses_total_by_status_view_method_total",
        ("status",),
        _HTTP_5XX,
        (("view",),),
        "django_http_requests_latency_seconds_by_view_method_bucket",
        started="django_http_requests_before_middlewares_total",
        handled="django_http_responses_before_middlewares_total",
    ),
    # The metrics handler's own requests: Go's promhttp serves them (its in-flight gauge
    # counts scrapes of the metrics endpoint, not the service's requests).
    Instrumentation("promhttp", "promhttp_metric_handler_requests_total", ("code",), _HTTP_5XX),
)


def instrumentation_of(q: Query) -> Instrumentation | None:
    """The first instrumentation whose request counter the target serves."""
    found = q.memo.get("instrumentation", False)
    if found is False:
        found = next((i for i in INSTRUMENTATIONS if q.has(i.requests)), None)
        q.memo["instrumentation"] = found
    return found  # type: ignore[return-value]


def _route_labels(q: Query, inst: Instrumentation) -> tuple[str, ...]:
    """The label names that name a route on this target (none: the service as a whole)."""
    cached = q.memo.get("route_labels")
    if cached is None:
        present: set[str] = set()
        for (_, key), _value in q.window.latest(inst.requests, q.target).items():
            present.update(labels_of(key))
        cached = next((c for c in inst.routes if set(c) <= present), ())
        q.memo["route_labels"] = cached
    return cast("tuple[str, ...]", cached)


def _served(q: Query, inst: Instrumentation) -> Matchers:
    """Matchers leaving out the requests of the metrics endpoint that is scraped (a route
    named as the target's path, or ``METRICS_ROUTES``): deucalion's own scrapes, a request a
    second that would be most of a quiet service's rate and keep it from falling to 0."""
    cached = q.memo.get("served")
    if cached is None:
        path = urlsplit(q.target).path or "/"
        pattern = "|".join(re.escape(route) for route in (path, *METRICS_ROUTES))
        cached = {f"!{label}": pattern for label in _route_labels(q, inst)}
        q.memo["served"] = cached
    return cast("Matchers", cached)


def _route_of(q: Query, inst: Instrumentation) -> dict[str, str]:
    """Route series key (of the route labels) -> the series key the signal uses: itself for
    the busiest ``MAX_ROUTES``, ``{route="other"}`` for the rest."""
    cached = q.memo.get("routes")
    if cached is None:
        by = _route_labels(q, inst)
        totals = q.gauge(inst.requests, by, _served(q, inst))
        busiest = sorted(totals, key=lambda k: -totals[k])
        cached = {k: k for k in busiest[:MAX_ROUTES]}
        cached.update((k, '{route="other"}') for k in busiest[MAX_ROUTES:])
        q.memo["routes"] = cached
    return cast("dict[str, str]", cached)


def _by_route(q: Query, inst: Instrumentation, values: SignalValues) -> SignalValues:
    """``values`` per route, the routes past ``MAX_ROUTES`` summed into ``route="other"``.
    A route the target no longer serves (gone in a restart, still in a widened range's
    older scrapes) is left out: counted as ``other``, it made one of a service that never
    had more than ``MAX_ROUTES``."""
    routes = _route_of(q, inst)
    out: SignalValues = {}
    for key, value in values.items():
        route = routes.get(key)
        if route is not None:
            out[route] = out.get(route, 0.0) + value
    return out


def _status_label(q: Query, inst: Instrumentation) -> str | None:
    cached = q.memo.get("status_label", False)
    if cached is False:
        present: set[str] = set()
        for (_, key), _value in q.window.latest(inst.requests, q.target).items():
            present.update(labels_of(key))
        cached = next((s for s in inst.status_labels if s in present), None)
        q.memo["status_label"] = cached
    return cached  # type: ignore[return-value]


def request_rate(q: Query) -> SignalValues:
    """Requests handled per second: the service's (``{}``) and, with routes, each route's."""
    inst = instrumentation_of(q)
    if inst is None:
        return {}
    by, served = _route_labels(q, inst), _served(q, inst)
    out = q.rate(inst.requests, (), served)
    if by:
        out.update(_by_route(q, inst, q.rate(inst.requests, by, served)))
    return out


def _ratio(
    total: SignalValues, errors: SignalValues, range_seconds: float, keys: Collection[str]
) -> SignalValues:
    """The error ratio of each series in ``keys`` with requests, its rates read over
    ``range_seconds``: 0 while fewer than ``MIN_ERRORS`` errors fall within it."""
    out: SignalValues = {}
    for key in keys:
        rate = total.get(key, 0.0)
        if rate <= 0:
            continue
        failed = errors.get(key, 0.0)
        out[key] = failed / rate if failed * range_seconds >= MIN_ERRORS else 0.0
    return out


def error_ratio(q: Query) -> SignalValues:
    """The fraction of requests answered with a server error (5xx; gRPC's server codes), of
    the service (``{}``) and of each route, over the shortest range from the rate's holding
    ``RATIO_REQUESTS`` requests (none for a series with fewer even in the widest: two failed
    requests of four are no error ratio to page on); 0 while fewer than ``MIN_ERRORS``
    errors fall within it."""
    inst = instrumentation_of(q)
    status = None if inst is None else _status_label(q, inst)
    if inst is None or status is None:
        return {}
    served = _served(q, inst)
    failing = {status: inst.error, **served}
    by = _route_labels(q, inst)
    out: SignalValues = {}
    for grouping in ((), by) if by else ((),):
        ranges = _request_ranges(q, inst, grouping, served, least=RATIO_REQUESTS, routed=True)
        for seconds, keys in ranges.items():
            total = q.rate(inst.requests, grouping, served, range_seconds=seconds)
            errors = q.rate(inst.requests, grouping, failing, range_seconds=seconds)
            if grouping:
                total, errors = _by_route(q, inst, total), _by_route(q, inst, errors)
            out.update(_ratio(total, errors, seconds, keys))
    return out


def _request_ranges(
    q: Query,
    inst: Instrumentation,
    grouping: tuple[str, ...],
    served: Matchers,
    *,
    least: float = MIN_REQUESTS,
    routed: bool = False,
) -> dict[float, set[str]]:
    """The range each series of ``grouping`` (the service's ``{}``, or each route) reads its
    latency or error ratio over, ``{range: series keys}``: the shortest holding ``least``
    requests (a latency's ``MIN_REQUESTS``), from the rate's range doubling up to
    ``q.widest``. A series with fewer within the widest has none. ``routed``: the routes
    past ``MAX_ROUTES`` count as one ``route="other"``, as the error ratio sums them.
    Computed once a cycle per kind; a wider range is read only while some series lacks
    requests (the request counter's rates, a few series, then the histogram's buckets or the
    error counts of those lacking only): a service whose routes are all busy reads the
    rate's range alone, as before; one quiet route widens it every cycle."""
    memo = ("request_ranges", grouping, least, routed)
    cached = q.memo.get(memo)
    if cached is None:
        ranges: dict[float, set[str]] = {}
        found: set[str] = set()
        seconds = q.range_seconds
        while True:
            counted = q.rate(inst.requests, grouping, served, range_seconds=seconds)
            if routed and grouping:
                counted = _by_route(q, inst, counted)
            enough = {
                k for k, rate in counted.items() if k not in found and rate * seconds >= least
            }
            if enough:
                ranges[seconds] = enough
                found |= enough
            if found >= counted.keys() or seconds >= q.widest:
                break
            # Doubling: a handful of ranges at most (2 s to 60 s at 1 s scrapes: 5 more), the
            # one found at most twice as long as the shortest holding the requests.
            seconds = min(seconds * 2, q.widest)
        cached = q.memo[memo] = ranges
    return cast("dict[float, set[str]]", cached)


def _latency(q: Query, quantile: float) -> SignalValues:
    inst = instrumentation_of(q)
    if inst is None or inst.duration_bucket is None:
        return {}
    by = _route_labels(q, inst)
    # The service as a whole (its buckets summed) and each of the MAX_ROUTES routes with the
    # most requests; the rest have no latency of their own (one of route="other" would mix
    # routes hundreds of times apart: the whole service's holds their requests).
    groupings: list[tuple[str, ...]] = [(), by] if by else [()]
    out: SignalValues = {}
    served = _served(q, inst)
    routes = _route_of(q, inst) if by else {}
    for grouping in groupings:
        for seconds, keys in _request_ranges(q, inst, grouping, served).items():
            bucket = inst.duration_bucket
            # A finer histogram of the whole service (fastapi-instrumentator's) counts the
            # metrics scrapes too: only over the rate's range, where the service's requests
            # outnumber them; a widened range's requests are few, and would be the scrapes'.
            if (
                not grouping
                and seconds == q.range_seconds
                and inst.service_duration_bucket
                and q.has(inst.service_duration_bucket)
            ):
                bucket = inst.service_duration_bucket
            if grouping:
                keys = {key for key in keys if routes.get(key) == key}
            values = q.quantile(
                quantile, bucket, grouping, served, range_seconds=seconds, only=keys
            )
            for key, value in values.items():
                if not math.isnan(value):
                    out[key] = value * inst.duration_unit
    return out


def latency_p50(q: Query) -> SignalValues:
    """Median request duration in seconds, from the duration histogram (the service's
    and each route's), over the shortest range from the rate's holding ``MIN_REQUESTS``."""
    return _latency(q, 0.5)


def latency_p99(q: Query) -> SignalValues:
    """99th percentile request duration in seconds (the service's and each route's)."""
    return _latency(q, 0.99)


def in_flight(q: Query) -> SignalValues:
    """Requests being handled now."""
    inst = instrumentation_of(q)
    if inst is None:
        return {}
    for gauge in inst.in_flight:
        values = q.gauge(gauge)
        if values:
            return values
    if inst.started:
        started, handled = q.gauge(inst.started), q.gauge(inst.handled or inst.requests)
        if "{}" in started and "{}" in handled:
            return {"{}": max(0.0, started["{}"] - handled["{}"])}
    return {}


_ALL = tuple(dict.fromkeys(m for i in INSTRUMENTATIONS for m in i.metrics))
_REQUESTS = tuple(dict.fromkeys(i.requests for i in INSTRUMENTATIONS))


def _metrics_of(field: str) -> set[str]:
    """Every instrumentation's metrics in its ``field`` (``in_flight``, ``duration_bucket``)."""
    names: set[str] = set()
    for inst in INSTRUMENTATIONS:
        value = getattr(inst, field)
        names.update(value if isinstance(value, tuple) else [value] if value else [])
    return names


def _of_instrumentation(*fields: str) -> Callable[[Collection[str]], tuple[str, ...]]:
    """``Signal.narrow`` of a signal reading these ``Instrumentation`` fields: on a target
    that serves an instrumentation's requests, that instrumentation's metrics in them (a gRPC
    service without its started counter is told to serve that, not every gauge of in-flight
    requests there is); on another, none (then the signal looks for all of them)."""

    def names(served: Collection[str]) -> tuple[str, ...]:
        inst = next((i for i in INSTRUMENTATIONS if i.requests in served), None)
        if inst is None:
            return ()
        found: list[str] = []
        for field in fields:
            value = getattr(inst, field)
            found += value if isinstance(value, tuple) else [value] if value else []
        return tuple(found)

    return names


def _lacking(field: str) -> Callable[[Mapping[str, Mapping[str, float]]], str | None]:
    """``Signal.lacking`` of a signal needing the instrumentation's ``field``: on a target
    serving an instrumentation's requests, why the signal has no value whatever the requests
    (a request counter without a status label has no error ratio; promhttp counts requests in
    no duration histogram); on a target serving no instrumentation's requests but some of the
    metrics in ``field`` (an in-flight gauge), that it reads them only beside a request
    counter it knows; None otherwise."""

    def why(samples: Mapping[str, Mapping[str, float]]) -> str | None:
        inst = next((i for i in INSTRUMENTATIONS if i.requests in samples), None)
        if inst is None:
            # Served, yet read only beside the request counter that says whose metric it is
            # ("not found" named the gauge the target serves among those looked for).
            served = [m for m in _ALL if m in samples and m in _metrics_of(field)]
            if not served:
                return None
            return (
                f"it serves {', '.join(served)}, but no request counter of an instrumentation "
                f"the preset knows ({', '.join(_REQUESTS)}), which says whose it is"
            )
        if field == "status_labels":
            present = {name for key in samples[inst.requests] for name in labels_of(key)}
            if present & set(inst.status_labels):
                return None
            return (
                f"its {inst.requests} has no status label ({', '.join(inst.status_labels)}) "
                "to tell server errors by"
            )
        if getattr(inst, field) or (field == "in_flight" and inst.started):
            return None
        what = "request duration histogram" if field == "duration_bucket" else "in-flight gauge"
        return f"the {inst.name} instrumentation it serves ({inst.requests}) has no {what}"

    return why


#: The http-service preset's signals.
SIGNALS: tuple[Signal, ...] = (
    Signal(
        "request_rate",
        "Requests per second, of the service and per route",
        "requests/s",
        request_rate,
        _ALL,
        "both",
        floor=5.0,
        relative=0.9,
        narrow=_of_instrumentation("requests"),
    ),
    Signal(
        "error_ratio",
        "Fraction of requests failing with a server error, of the service and per route",
        "ratio",
        error_ratio,
        _ALL,
        "up",
        floor=0.05,
        severity="critical",
        back_cycles=2,
        widens=True,
        narrow=_of_instrumentation("requests"),
        lacking=_lacking("status_labels"),
    ),
    Signal(
        "latency_p50",
        "Median request duration, of the service and per route",
        "seconds",
        latency_p50,
        _ALL,
        "up",
        floor=0.05,
        relative=1.0,
        back_cycles=2,
        widens=True,
        narrow=_of_instrumentation("duration_bucket"),
        lacking=_lacking("duration_bucket"),
    ),
    Signal(
        "latency_p99",
        "99th percentile request duration, of the service and per route",
        "seconds",
        latency_p99,
        _ALL,
        "up",
        floor=0.2,
        relative=1.5,
        back_cycles=2,
        widens=True,
        narrow=_of_instrumentation("duration_bucket"),
        lacking=_lacking("duration_bucket"),
    ),
    Signal(
        "in_flight",
        "Requests being handled",
        "requests",
        in_flight,
        _ALL,
        "up",
        floor=20.0,
        relative=2.0,
        narrow=_of_instrumentation("in_flight", "started", "handled"),
        lacking=_lacking("in_flight"),
    ),
)
