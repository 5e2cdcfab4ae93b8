"""Record a real node_exporter and a real instrumented HTTP service under ordinary, varying
load, with labelled incidents injected on a schedule (the recording ``bench_liveops`` backtests).

    python -m benchmarks.liveops_harness record --minutes 66 --out /work/recordings/liveops
    python -m benchmarks.liveops_harness record --minutes 67 --seed 2 --out .../liveops2

(``--seed`` other than 0: the incidents in a shuffled order, the load generator seeded with it)

starts, all on loopback:

- Debian's ``prometheus-node-exporter`` on a free port;
- the HTTP service: a small aiohttp app instrumented with prometheus_client the way its
  documentation shows (``http_requests_total``, ``http_request_duration_seconds`` histogram,
  ``http_requests_in_progress``), with a control endpoint that adds latency or errors;
- a load generator whose request rate varies (a slow wave, a faster wave and random bursts);
- ``deucalion record --all`` at a 1 s scrape interval, writing ``recording.om.gz``;

and injects real incidents, each in a process of its own that ends by itself: a CPU burn, a
memory hog (3 GB allocated and touched), a disk write storm (4 MB writes with fsync into a
temporary directory), a loopback network flood, a fork storm of short processes, a latency
regression and an error burst in the HTTP app. Each incident's window is written to
``incidents.json`` (kind, target, start, end) as it ends, and ``labels.json`` holds the same
windows keyed by target in the form ``deucalion evaluate --labels`` reads. Every loop is bounded
in time; everything stops when the recording's time is up (or on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The incidents, in the order injected: kind -> (the target it hits, seconds it lasts).
INCIDENTS: dict[str, tuple[str, float]] = {
    "cpu_saturation": ("node", 120.0),
    "latency_regression": ("http", 150.0),
    "memory_hog": ("node", 120.0),
    "disk_write_storm": ("node", 120.0),
    "error_burst": ("http", 120.0),
    "network_flood": ("node", 120.0),
    "process_storm": ("node", 120.0),
}
#: Ordinary load before the first incident (detectors learn what ordinary looks like).
WARMUP = 11 * 60.0
#: Time between the starts of two incidents.
SPACING = 7 * 60.0

ROUTES = ("/api/items", "/api/items/{id}", "/api/users/{id}", "/api/search", "/health")


# --- the HTTP service --------------------------------------------------------------------------


def serve_app(port: int, seconds: float) -> None:
    """The instrumented HTTP service, for ``seconds`` at most."""
    from aiohttp import web
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry()
    requests = Counter(
        "http_requests", "Requests handled.", ["method", "route", "status"], registry=registry
    )
    duration = Histogram(
        "http_request_duration_seconds",
        "Time to handle a request.",
        ["method", "route"],
        registry=registry,
    )
    in_progress = Gauge(
        "http_requests_in_progress", "Requests being handled.", ["method"], registry=registry
    )
    fault = {"latency": 0.0, "errors": 0.0}
    rng = random.Random(7)

    async def handle(request: web.Request) -> web.Response:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "other"
        started = time.perf_counter()
        status = 500
        in_progress.labels(request.method).inc()
        try:
            base = 0.002 if route == "/health" else rng.lognormvariate(-4.3, 0.6)  # ~15 ms
            if route == "/api/search":
                base *= 3
            await asyncio.sleep(base + fault["latency"] * rng.uniform(0.7, 1.3))
            if rng.random() < 0.002 + fault["errors"]:
                status = 500 if rng.random() < 0.8 else 503
            elif route != "/health" and rng.random() < 0.01:
                status = 404
            else:
                status = 200
            return web.Response(status=status, text="ok\n")
        finally:
            in_progress.labels(request.method).dec()
            duration.labels(request.method, route).observe(time.perf_counter() - started)
            requests.labels(request.method, route, str(status)).inc()

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def control(request: web.Request) -> web.Response:
        for key in fault:
            if key in request.query:
                fault[key] = float(request.query[key])
        return web.json_response(fault)

    app = web.Application()
    for route in ROUTES:
        app.router.add_get(route, handle)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/control", control)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await asyncio.sleep(seconds)
        finally:
            await runner.cleanup()

    asyncio.run(main())


# --- the load generator ------------------------------------------------------------------------


def generate_load(url: str, seconds: float, seed: int = 11) -> None:
    """Requests to the service at a rate that varies: 8 to ~60 per second, for ``seconds``."""
    import math

    import aiohttp

    rng = random.Random(seed)
    paths = (
        ["/api/items"] * 5
        + ["/api/items/{n}"] * 6
        + ["/api/users/{n}"] * 3
        + ["/api/search"] * 2
        + ["/health"]
    )

    async def one(session: aiohttp.ClientSession) -> None:
        path = rng.choice(paths).replace("{n}", str(rng.randrange(1000)))
        try:
            async with session.get(url + path, timeout=aiohttp.ClientTimeout(total=10)) as r:
                await r.read()
        except (aiohttp.ClientError, TimeoutError):
            pass

    async def main() -> None:
        started = time.monotonic()
        ends = started + seconds
        burst_until = 0.0
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession() as session:
            while (now := time.monotonic()) < ends:
                t = now - started
                rate = (
                    25 + 12 * math.sin(2 * math.pi * t / 1200) + 5 * math.sin(2 * math.pi * t / 170)
                )
                if now < burst_until:
                    rate *= 1.6
                elif rng.random() < 1 / 600:  # about one burst each ten minutes
                    burst_until = now + rng.uniform(10, 40)
                if len(tasks) < 500:
                    task = asyncio.create_task(one(session))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.sleep(rng.expovariate(max(rate, 1.0)))
            for task in list(tasks):
                task.cancel()

    asyncio.run(main())


# --- incidents ---------------------------------------------------------------------------------


def _burn(seconds: float) -> None:
    ends = time.monotonic() + seconds
    x = 0
    while time.monotonic() < ends:
        for i in range(10_000):
            x ^= i * i


def incident(kind: str, seconds: float, app_url: str) -> None:
    """Inject ``kind`` for ``seconds`` (this process ends when it is over)."""
    ends = time.monotonic() + seconds
    if kind == "cpu_saturation":
        burners = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from benchmarks.liveops_harness import _burn; _burn({seconds})",
                ]
            )
            for _ in range(os.cpu_count() or 2)
        ]
        for p in burners:
            p.wait(timeout=seconds + 30)
    elif kind == "memory_hog":
        hog = bytearray(3 * 1024**3)
        for i in range(0, len(hog), 4096):  # touch every page, so it is resident
            hog[i] = 1
        while time.monotonic() < ends:
            time.sleep(1)
        del hog
    elif kind == "disk_write_storm":
        block = os.urandom(4 * 1024**2)
        with tempfile.TemporaryDirectory(prefix="liveops-disk-", dir="/var/tmp") as tmp:
            path = Path(tmp) / "storm"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                written = 0
                while time.monotonic() < ends:
                    if written >= 1024**3:  # rewrite the same GiB over and over
                        os.lseek(fd, 0, os.SEEK_SET)
                        written = 0
                    written += os.write(fd, block)
                    os.fsync(fd)
            finally:
                os.close(fd)
    elif kind == "network_flood":
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        receiver = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import socket,sys,time\n"
                    "s=socket.socket(); s.connect(('127.0.0.1', int(sys.argv[1])))\n"
                    f"end=time.monotonic()+{seconds}\n"
                    "buf=bytes(1<<20)\n"
                    "while time.monotonic()<end: s.sendall(buf)\n"
                ),
                str(server.getsockname()[1]),
            ]
        )
        conn, _ = server.accept()
        conn.settimeout(5)
        try:
            while time.monotonic() < ends + 5:
                if not conn.recv(1 << 20):
                    break
        except OSError:
            pass
        conn.close()
        server.close()
        receiver.wait(timeout=30)
    elif kind == "process_storm":
        while time.monotonic() < ends:
            subprocess.run(["/bin/true"], check=False)
    elif kind in ("latency_regression", "error_burst"):
        import urllib.request

        query = "latency=0.25" if kind == "latency_regression" else "errors=0.3"
        reset = "latency=0" if kind == "latency_regression" else "errors=0"
        urllib.request.urlopen(
            urllib.request.Request(f"{app_url}/control?{query}", method="POST"), timeout=5
        ).read()
        try:
            while time.monotonic() < ends:
                time.sleep(1)
        finally:
            urllib.request.urlopen(
                urllib.request.Request(f"{app_url}/control?{reset}", method="POST"), timeout=5
            ).read()
    else:
        raise SystemExit(f"unknown incident {kind!r}: one of {', '.join(INCIDENTS)}")


# --- the recording -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, seconds: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds:g}s")


def record(
    out: Path,
    minutes: float,
    *,
    warmup: float = WARMUP,
    spacing: float = SPACING,
    scale: float = 1.0,
    seed: int = 0,
) -> None:
    """Record for ``minutes`` into ``out`` (see the module's docstring); ``warmup``, ``spacing``
    and ``scale`` (of each incident's length) shorten a trial run. ``seed`` 0 injects the
    incidents in :data:`INCIDENTS`' order under the load generator's default seed; any other
    seed shuffles the order and seeds the load generator with it, for a second recording that
    differs from the first in more than noise."""
    from tests.integration.servers import start_node_exporter

    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    seconds = minutes * 60.0
    node = start_node_exporter()
    children: list[subprocess.Popen[bytes]] = []
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    here = [sys.executable, "-m", "benchmarks.liveops_harness"]
    try:
        app_port = _free_port()
        app_url = f"http://127.0.0.1:{app_port}"
        children.append(
            subprocess.Popen(
                [*here, "app", "--port", str(app_port), "--seconds", str(seconds + 120)]
            )
        )
        _wait_http(app_url + "/metrics")
        children.append(
            subprocess.Popen(
                [*here, "load", "--url", app_url, "--seconds", str(seconds + 60)]
                + (["--seed", str(seed)] if seed else [])
            )
        )
        targets = {"node": node.url + "/metrics", "http": app_url + "/metrics"}
        config = out / "deucalion.yaml"
        config.write_text(
            f"scrape_interval: 1s\ntargets:\n  - {targets['node']}\n  - {targets['http']}\n"
        )
        deucalion = str(Path(sys.executable).with_name("deucalion"))
        recorder = subprocess.Popen(
            [
                deucalion,
                "record",
                "--config",
                str(config),
                "--all",
                "--output",
                str(out / "recording.om.gz"),
                "--duration",
                str(seconds),
            ]
        )
        children.append(recorder)
        order = list(INCIDENTS)
        if seed:
            random.Random(seed).shuffle(order)
        started = time.time()
        (out / "run.json").write_text(
            json.dumps(
                {
                    "started": started,
                    "minutes": minutes,
                    "targets": targets,
                    "warmup": warmup,
                    "spacing": spacing,
                    "seed": seed,
                    "order": order,
                },
                indent=1,
            )
        )
        incidents: list[dict[str, Any]] = []
        for n, kind in enumerate(order):
            target, length = INCIDENTS[kind]
            begin = started + warmup + n * spacing
            length *= scale
            while not stop and time.time() < begin and recorder.poll() is None:
                time.sleep(0.5)
            if recorder.poll() is not None:
                # A recorder that died must end the run: incidents injected with nothing
                # recording them would land, unlabelled, in the next attempt's recording.
                raise SystemExit(f"the recorder exited ({recorder.returncode}); stopping")
            if stop or begin + length > started + seconds:
                break
            start = time.time()
            proc = subprocess.Popen(
                [*here, "incident", kind, "--seconds", str(length), "--app-url", app_url]
            )
            try:
                proc.wait(timeout=length + 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            incidents.append(
                {"kind": kind, "target": targets[target], "start": start, "end": time.time()}
            )
            _write_labels(out, incidents)
        recorder.wait(timeout=max(0.0, started + seconds - time.time()) + 120)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        node.stop()


def _write_labels(out: Path, incidents: list[dict[str, Any]]) -> None:
    (out / "incidents.json").write_text(json.dumps(incidents, indent=1))
    labels: dict[str, list[list[float]]] = {}
    for item in incidents:
        labels.setdefault(item["target"], []).append([item["start"], item["end"]])
    (out / "labels.json").write_text(json.dumps(labels, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.liveops_harness")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--minutes", type=float, default=66.0)
    rec.add_argument("--warmup", type=float, default=WARMUP, help="seconds before the first")
    rec.add_argument("--spacing", type=float, default=SPACING, help="seconds between incidents")
    rec.add_argument("--scale", type=float, default=1.0, help="of each incident's length")
    rec.add_argument(
        "--seed", type=int, default=0, help="0: the fixed order; else shuffle it, seed the load"
    )
    app = sub.add_parser("app")
    app.add_argument("--port", type=int, required=True)
    app.add_argument("--seconds", type=float, required=True)
    load = sub.add_parser("load")
    load.add_argument("--url", required=True)
    load.add_argument("--seconds", type=float, required=True)
    load.add_argument("--seed", type=int, default=11)
    inc = sub.add_parser("incident")
    inc.add_argument("kind", choices=sorted(INCIDENTS))
    inc.add_argument("--seconds", type=float, required=True)
    inc.add_argument("--app-url", default="")
    args = parser.parse_args(argv)
    if args.command == "record":
        record(
            args.out,
            args.minutes,
            warmup=args.warmup,
            spacing=args.spacing,
            scale=args.scale,
            seed=args.seed,
        )
    elif args.command == "app":
        serve_app(args.port, args.seconds)
    elif args.command == "load":
        generate_load(args.url, args.seconds, seed=args.seed)
    else:
        incident(args.kind, args.seconds, args.app_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
