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
  (``http_server_duration_milliseconds``, in milliseconds, read as seconds), and as
  OpenTelemetry JS's exporter names them, without the unit (``http_server_duration``, in
  milliseconds too);
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
latency quantile of a service or route with fewer than ``RATIO_REQUESTS`` requests, or than
its quantile needs (``_requests_for``: 5 for the median, 150 for the 99th percentile), within
the rate's range is read over a wider range, up to the observer's widest: see
``_request_ranges``.) The metrics endpoint that is scraped is no route: its requests
(deucalion's own) are left out of every signal but ``in_flight``, where a route label names
it (or, with OpenTelemetry JS, the exporter's own port: ``_scrape_port``).
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

import numpy as np

from deucalion.history.labels import series_key
from deucalion.presets.signals import Matchers, Query, Signal, SignalValues, labels_of

__all__ = [
    "INSTRUMENTATIONS",
    "REQUESTS_NEEDED",
    "SIGNALS",
    "Instrumentation",
    "instrumentation_of",
]

#: Routes watched one by one per target; the others are summed into ``route="other"``.
MAX_ROUTES = 20
#: Fewer errors than this within the range an error ratio is read over is chance, not an
#: error ratio (it reads no more than the series' usual ratio: 0 for a service that never
#: failed).
MIN_ERRORS = 2.0
#: How rare the errors within an error ratio's range must be, at the series' usual ratio (its
#: counters' totals: since the service started), for the ratio to be news: a binomial tail
#: under this, else it reads the usual ratio. A service failing 1 % of its requests had made
#: 2 failures of the 10 to 20 requests a quiet route's ratio is read over (a ratio of 0.1 to
#: 0.2, past the 0.05 floor) on about 1 % of its cycles: 5 to 11 alerts an hour on a
#: service at 12 requests a second over 4 routes, in synthetic hours of 1 % and 2 % failing
#: (45 in 8 hours with one at 0.4 %; 3 now). At 1 in 1,000 as many as at 1 in 10,000, and an
#: error burst's route (half its requests failing at one a second) read as news on more of
#: its cycles (3 failures of 10 requests are news at a usual 0.5 %, not at 1 in 10,000), its
#: alert 4 to 13 cycles in, not 12 to 27 (at 1 in 10,000 with 20 requests to a ratio).
#: Errors chance explains read no more than the usual ratio.
CHANCE = 1e-3
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
#: How long the counters' totals an error ratio's usual ratio is read from are kept, in
#: seconds, and how often they are taken: a burst shorter than 10 minutes is no part of its
#: own usual ratio (from the totals as they are now, a service 40 s old whose route began
#: failing half its requests had a usual ratio of a fifth within 20 s, and the burst read as
#: chance).
USUAL_SECONDS = 600.0
USUAL_EVERY = 60.0
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
    port_label: str | None = None
    """The label of the port a request came to, where the metrics endpoint may be a server of
    its own whose requests the instrumentation counts (see ``_scrape_port``)."""
    without_histogram: str | None = None
    """Why a service may serve no ``duration_bucket`` by default, and how to serve it."""

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
    # OpenTelemetry JS's HTTP instrumentation before the stable conventions, through its
    # Prometheus exporter, which gives a name no unit suffix: http.server.duration, in ms (its
    # page says "# UNIT http_server_duration ms"), http_route where a framework's
    # instrumentation names the route. The exporter's own server (port 9464) is an HTTP
    # server too: its requests, the scrapes, are counted, on its port and with no route.
    Instrumentation(
        "opentelemetry-js (old conventions)",
        "http_server_duration_count",
        ("http_status_code",),
        _HTTP_5XX,
        (("http_route",),),
        "http_server_duration_bucket",
        duration_unit=0.001,
        port_label="net_host_port",
    ),
    Instrumentation(
        "micrometer",
        "http_server_requests_seconds_count",
        ("status",),
        _HTTP_5XX,
        (("uri",),),
        "http_server_requests_seconds_bucket",
        ("http_server_requests_active_seconds_active_count",),
        without_histogram=(
            "Spring Boot serves http_server_requests_seconds as a summary, without the "
            "histogram a latency is read from, unless "
            "management.metrics.distribution.percentiles-histogram.http.server.requests=true"
        ),
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
    named as the target's path or as its end, ``/actuator/prometheus`` of a Spring Boot
    service served under ``/app``, or ``METRICS_ROUTES``): deucalion's own scrapes, a request
    a second that would be most of a quiet service's rate and keep it from falling to 0."""
    cached = q.memo.get("served")
    if cached is None:
        path = urlsplit(q.target).path or "/"
        # A framework names a route without the prefix the service is served under.
        ends = [path[i:] for i in range(1, len(path)) if path[i] == "/" and path[i + 1 :]]
        pattern = "|".join(re.escape(route) for route in (path, *ends, *METRICS_ROUTES))
        cached = {f"!{label}": pattern for label in _route_labels(q, inst)}
        port = _scrape_port(q, inst)
        if port is not None and inst.port_label:
            cached[f"!{inst.port_label}"] = re.escape(port)
        q.memo["served"] = cached
    return cast("Matchers", cached)


def _scrape_port(q: Query, inst: Instrumentation) -> str | None:
    """The port of the target's URL where the metrics endpoint is a server of its own that
    the instrumentation counts the requests of (OpenTelemetry JS's exporter on 9464): the
    service's requests came to other ports too, and none to this one has a route (the
    scrapes have none: a route on it is the service's, which serves its metrics there, and
    its scrapes are the route named as the target's path). Where no request has a route, the
    scrapes cannot be told from the service's requests by it: the port is the exporter's
    when another port has served more requests (an app serving its metrics on its own port,
    beside a health port, is that busier port). None otherwise, or without ``port_label``."""
    label = inst.port_label
    if label is None:
        return None
    url = urlsplit(q.target)
    try:
        port = str(url.port or (443 if url.scheme == "https" else 80))
    except ValueError:  # a port out of range: no request came to it
        return None
    routed = _route_labels(q, inst)
    served: dict[str, float] = {}
    any_route = False
    for (_, key), value in q.window.latest(inst.requests, q.target).items():
        labels = labels_of(key)
        has_route = any(labels.get(r) for r in routed)
        if labels.get(label) == port and has_route:
            return None
        any_route = any_route or has_route
        at = labels.get(label, "")
        served[at] = served.get(at, 0.0) + (value if math.isfinite(value) else 0.0)
    if port not in served or len(served) < 2:
        return None
    if not any_route and served[port] >= max(v for p, v in served.items() if p != port):
        return None
    return port


def _route_of(q: Query, inst: Instrumentation) -> dict[str, str]:
    """Route series key (of the route labels) -> the series key the signal uses: itself for
    the busiest ``MAX_ROUTES``, ``{route="other"}`` for the rest. Requests with no route
    (OpenTelemetry's unmatched ones, a 404, have no ``http_route``) are the service's only:
    as a route of empty labels, exported, they were the service's own series to Prometheus,
    for which an empty label is no label."""
    cached = q.memo.get("routes")
    if cached is None:
        by = _route_labels(q, inst)
        totals = _requests(q, inst, by, _served(q, inst), totals=True)
        routed = [key for key in totals if any(labels_of(key).values())]
        busiest = sorted(routed, key=lambda k: -totals[k])
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
    out = _requests(q, inst, (), served)
    if by:
        out.update(_by_route(q, inst, _requests(q, inst, by, served)))
    return out


def _requests(
    q: Query,
    inst: Instrumentation,
    grouping: tuple[str, ...],
    where: Matchers,
    *,
    seconds: float | None = None,
    totals: bool = False,
) -> SignalValues:
    """``sum by (grouping) (rate(requests{where}[seconds]))`` of the request counter (by
    default over the rate's range), or with ``totals`` its newest values summed, ``grouping``
    the route labels or none (the service): without each route that has a broken series
    (``_broken``), the service's summed from the other routes. A series whose sample is
    +Inf had made its route's and the service's rate infinite (the error ratio's chance test
    raised on it, and the target had none), and one whose rate is NaN (+Inf less +Inf) was
    summed as no requests: its route's rate fell to that of its other series, its error
    ratio to 1 if those were its failures. The route is left out whatever ``where`` selects:
    a route's failures counted without its requests were as wrong."""
    by = _route_labels(q, inst)
    seconds = None if totals else seconds or q.range_seconds
    broken = _broken(q, inst, seconds)
    # Nothing broken (every cycle but a rare one): summed as asked, without a route grouping
    # for the service's total (a fifth of the preset's cost a cycle).
    group = by if broken else grouping
    if seconds is None:
        values = q.gauge(inst.requests, group, where)
    else:
        values = q.rate(inst.requests, group, where, range_seconds=seconds)
    kept = {k: v for k, v in values.items() if math.isfinite(v) and k not in broken}
    if group == grouping:
        return kept
    return {"{}": sum(kept.values())} if kept else {}


def _broken(
    q: Query, inst: Instrumentation, seconds: float | None, metric: str | None = None
) -> frozenset[str]:
    """The routes (series keys of the route labels; ``{}``, the service, where there are
    none) with a series of the request counter (or of ``metric``, a duration histogram's
    buckets) that has an infinite sample within the last ``seconds`` (None: the newest
    scrape): its rate over them is no count of requests. Left out for as long as the sample
    is within the range read: its route only, the service counted from the others."""
    metric = metric or inst.requests
    memo = ("broken", metric, seconds)
    cached = q.memo.get(memo)
    if cached is None:
        block = q.window.block(metric, q.target)
        by = _route_labels(q, inst)
        found: set[str] = set()
        if len(block) and np.isinf(block.values).any():
            if seconds is None:
                bad = np.isinf(block.values[:, -1:])
            else:
                newest = np.nanmax(block.times)
                with np.errstate(invalid="ignore"):
                    bad = np.isinf(block.values) & (block.times > newest - seconds)
            for i in np.flatnonzero(bad.any(axis=1)).tolist():
                labels = labels_of(block.keys[i][1])
                found.add(series_key({k: labels.get(k, "") for k in by}) if by else "{}")
        cached = q.memo[memo] = frozenset(found)
    return cast("frozenset[str]", cached)


def _ratio(
    counts: tuple[SignalValues, SignalValues],
    usual: Mapping[str, tuple[float, float]],
    sampled: float,
    keys: Collection[str],
) -> SignalValues:
    """The error ratio of each series in ``keys`` with requests, from the rates of its
    requests and errors (``counts``) over a range whose samples span ``sampled`` seconds; at
    most its usual ratio (``usual``: its errors and requests counted before) while the
    failures counted in the range are as many as chance makes at that ratio: fewer than
    ``MIN_ERRORS``, or as many as one range in 1 / ``CHANCE`` has at least
    (``_chance_of_errors``)."""
    total, errors = counts
    out: SignalValues = {}
    for key in keys:
        rate = total.get(key, 0.0)
        if rate <= 0:
            continue
        failed = errors.get(key, 0.0)
        before = usual.get(key, (0.0, 0.0))
        requests, failures = rate * sampled, failed * sampled
        news = failures >= MIN_ERRORS and _chance_of_errors(requests, failures, before) < CHANCE
        # Chance's ratio is no higher than the usual one: a quiet route's pair of failures
        # reads as its usual ratio, no failures as 0 (after a burst, the usual ratio, its
        # failures counted in, would hold the ratio up as if it went on).
        ratio = failed / rate
        out[key] = ratio if news else min(ratio, before[0] / before[1] if before[1] else 0.0)
    return out


def _chance_of_errors(requests: float, failures: float, before: tuple[float, float]) -> float:
    """The probability of ``failures`` or more failed requests of ``requests`` (each rounded;
    a rate's count is extrapolated) at a ratio known from ``before``'s errors of requests:
    the beta-binomial upper tail, the ratio's uncertainty counted (``_PRIOR``: a service
    that has served few requests is taken to fail about 1 % of them)."""
    n = max(round(requests), 0)
    k = min(round(failures), n)
    a, b = _beta(before)
    if k <= n * a / (a + b):
        return 1.0
    # log P(X = k) = log C(n, k) + log B(k + a, n - k + b) - log B(a, b)
    term = _log_choose(n, k) + _log_beta(k + a, n - k + b) - _log_beta(a, b)
    tail = 0.0
    # The terms fall from k on (k is past the mean): sum them until they no longer count.
    for j in range(k, n + 1):
        value = math.exp(term)
        tail += value
        if value < tail * 1e-12 or j == n:
            break
        term += math.log((n - j) / (j + 1) * (j + a) / (n - j - 1 + b))
    return min(tail, 1.0)


#: What an error ratio is taken to be before its requests say, as requests served and
#: errors among them (a beta prior): about 1 % of 50. A service that has served none reads
#: a burst of 8 failures in 16 requests as news (1 in 1.9 million), 2 in 16 as chance (1 in
#: 43); one that served 10,000 with 100 failures, 4 in 16 as news (1 in 57,000).
_PRIOR = (0.5, 50.0)


def _beta(before: tuple[float, float]) -> tuple[float, float]:
    """The beta distribution of a ratio after ``before``'s errors of requests."""
    errors, requests = before
    return errors + _PRIOR[0], max(requests - errors, 0.0) + _PRIOR[1] - _PRIOR[0]


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def error_ratio(q: Query) -> SignalValues:
    """The fraction of requests answered with a server error (5xx; gRPC's server codes), of
    the service (``{}``) and of each route, over the shortest range from the rate's holding
    ``RATIO_REQUESTS`` requests (none for a series with fewer even in the widest: two failed
    requests of four are no error ratio to page on); no more than the series' usual ratio
    (its counters' totals) while the errors within that range are as many as chance makes at
    it (fewer than ``MIN_ERRORS``, or a binomial tail of ``CHANCE`` or more)."""
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
        usual = _usual_ratio(q, inst, grouping, failing)
        for seconds, keys in ranges.items():
            out.update(_ratios_over(q, (inst, grouping, failing), usual, seconds, keys))
    return out


def _ratios_over(
    q: Query,
    of: tuple[Instrumentation, tuple[str, ...], Matchers],
    usual: Mapping[str, tuple[float, float]],
    seconds: float,
    keys: Collection[str],
) -> SignalValues:
    """``_ratio`` of ``keys`` over ``seconds``, ``of`` an instrumentation's requests grouped
    by ``grouping`` and its ``failing`` ones (routes past ``MAX_ROUTES`` as ``other``)."""
    inst, grouping, failing = of
    served = _served(q, inst)
    total = _requests(q, inst, grouping, served, seconds=seconds)
    errors = _requests(q, inst, grouping, failing, seconds=seconds)
    if grouping:
        total, errors = _by_route(q, inst, total), _by_route(q, inst, errors)
    return _ratio((total, errors), usual, q.sampled(seconds), keys)


def _usual_ratio(
    q: Query, inst: Instrumentation, grouping: tuple[str, ...], failing: Matchers
) -> dict[str, tuple[float, float]]:
    """Each series' usual error ratio, as the errors and requests it is known from: its
    counters' totals (since the service started) as they were ``USUAL_SECONDS`` to
    ``USUAL_SECONDS`` + ``USUAL_EVERY`` ago (snapshots kept in ``q.state``, one every
    ``USUAL_EVERY``), so that a burst of errors is not its own usual ratio for its first 10
    minutes; on a younger watch, a minute or two ago (the newest snapshot a minute old; the
    first cycle's in the first minute, whose few requests leave the ratio to ``_PRIOR``); a
    series that snapshot lacks, at the oldest snapshot a minute old that has it. Routes past
    ``MAX_ROUTES`` are ``other``."""
    now = q.window.newest_time
    snapshots = cast(
        "list[tuple[float, SignalValues, SignalValues]]",
        q.state.setdefault(("usual ratio", grouping), []),
    )
    if not snapshots or now - snapshots[-1][0] >= USUAL_EVERY:
        total = _requests(q, inst, grouping, _served(q, inst), totals=True)
        errors = _requests(q, inst, grouping, failing, totals=True)
        if grouping:
            total, errors = _by_route(q, inst, total), _by_route(q, inst, errors)
        snapshots.append((now, total, errors))
    while len(snapshots) > 1 and now - snapshots[1][0] >= USUAL_SECONDS:
        del snapshots[0]
    old = [s for s in snapshots if now - s[0] >= USUAL_EVERY] or snapshots[:1]
    # (a watch of 400 s read its first cycle's: a route's 1 request, no ratio known)
    first = old[0] if now - old[0][0] >= USUAL_SECONDS else old[-1]
    usual: dict[str, tuple[float, float]] = {}
    # A series the chosen snapshot lacks (a route served since) is known from the oldest
    # that has it: read with the prior alone, its burst had waited 10 minutes to be news.
    for _, total, errors in (first, *old):
        for key, n in total.items():
            usual.setdefault(key, (errors.get(key, 0.0), n))
    return usual


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
            counted = _requests(q, inst, grouping, served, seconds=seconds)
            if routed and grouping:
                counted = _by_route(q, inst, counted)
            elif grouping:  # a latency: only of the routes watched one by one
                routes = _route_of(q, inst)
                counted = {k: v for k, v in counted.items() if routes.get(k) == k}
            # An error ratio's requests are counted between the range's scrapes, as its
            # failures are (at 1 s scrapes, the rate's range extrapolated 5 of them to 10).
            span = q.sampled(seconds) if routed else seconds
            enough = {k for k, rate in counted.items() if k not in found and rate * span >= least}
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
        ranges = _request_ranges(q, inst, grouping, served, least=_requests_for(quantile))
        for seconds, keys in ranges.items():
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
            broken = _broken(q, inst, seconds, bucket)
            if grouping:
                keys = {key for key in keys if routes.get(key) == key and key not in broken}
            values = q.quantile(
                quantile,
                bucket,
                grouping,
                _without(served, broken, by),
                range_seconds=seconds,
                only=keys,
            )
            for key, value in values.items():
                if not math.isnan(value):
                    out[key] = value * inst.duration_unit
    return out


def _without(served: Matchers, broken: frozenset[str], by: tuple[str, ...]) -> Matchers:
    """``served`` with the ``broken`` routes' series left out too, where one route label
    names a route (a bucket at +Inf had made the service's quantile NaN: no latency while
    it was within the range read). Routes of two labels (gRPC's service and method) cannot
    be left out label by label: the service's quantile is then missing while one is broken."""
    if not broken or len(by) != 1:
        return served
    label = f"!{by[0]}"
    routes = "|".join(re.escape(labels_of(key).get(by[0], "")) for key in sorted(broken))
    return {**served, label: f"{served[label]}|{routes}" if label in served else routes}


def _requests_for(quantile: float) -> float:
    """The requests a latency ``quantile`` is read from: ``MIN_REQUESTS``, and enough that a
    single request cannot be it: ``1 / (1 - quantile)``, and half again as the count is a
    rate's, extrapolated to its range's ends (150 for the 99th percentile; of 10 requests,
    one slow one was the p99 of its range, 0.48 s against a band to 0.25 s; of a range
    counting 100, 95 of them within it, too)."""
    return max(MIN_REQUESTS, round(1.5 / (1 - quantile)))


#: The signals read from a number of requests within their range, for ``presets show`` to
#: name it when one has no value: ``{signal: (what it is, requests, counted between scrapes)}``
#: (an error ratio counts its requests between its range's scrapes, a quantile over the
#: rate's whole range, extrapolated to its ends).
REQUESTS_NEEDED: dict[str, tuple[str, float, bool]] = {
    "error_ratio": ("an error ratio", RATIO_REQUESTS, True),
    "latency_p50": ("a median", _requests_for(0.5), False),
    "latency_p99": ("a p99", _requests_for(0.99), False),
}


def latency_p50(q: Query) -> SignalValues:
    """Median request duration in seconds, from the duration histogram (the service's
    and each route's), over the shortest range from the rate's holding ``MIN_REQUESTS``."""
    return _latency(q, 0.5)


def latency_p99(q: Query) -> SignalValues:
    """99th percentile request duration in seconds (the service's and each route's), over the
    shortest range from the rate's holding 150 requests (``_requests_for``)."""
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
        if field == "duration_bucket" and inst.without_histogram:
            # (served by default as a summary: "not found" named the bucket, not the setting)
            return None if inst.duration_bucket in samples else inst.without_histogram
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
        # A stop is judged from the band's centre, the detector's recent level, which the
        # stop's first cycle (not yet news) has pulled down by a tenth and Poisson noise moves
        # by a tenth more: at 5/s a service of 6/s stopping alerted in 9 of 12 runs, at 4/s
        # in 12 of 12 (in 3 to 9 cycles; 5/s in 6 of 6), no alert in hours of 2 to 10/s.
        floor=4.0,
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
