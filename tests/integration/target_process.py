"""Many metrics targets served by a separate process, so their CPU is not the caller's.

``python -m tests.integration.target_process --paths 200 --latency 0.05 --body FILE`` serves
the body at ``/t/0/metrics`` ... ``/t/199/metrics`` on one loopback port, each response after
``latency`` seconds, and prints the port once it listens. Used by the scrape-cycle benchmark and
the soak test; ``TargetProcess`` starts and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from aiohttp import web

from tests.integration.servers import terminate

ROOT = Path(__file__).resolve().parents[2]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TargetProcess:
    """A running target server process; ``urls`` lists its targets. Use as a context manager."""

    def __init__(
        self,
        paths: int,
        body: bytes,
        latency: float = 0.0,
        workdir: Path | None = None,
    ) -> None:
        self.paths = paths
        self.latency = latency
        self._body_file = (workdir or Path("/tmp")) / f"deucalion-targets-{os.getpid()}.prom"
        self._body_file.write_bytes(body)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.target_process",
                "--paths",
                str(paths),
                "--latency",
                str(latency),
                "--body",
                str(self._body_file),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the target process did not start: {line!r}")
        self.port = int(line)

    @property
    def urls(self) -> list[str]:
        """Every target's scrape URL."""
        return [f"http://127.0.0.1:{self.port}/t/{i}/metrics" for i in range(self.paths)]

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove the body file."""
        terminate(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._body_file.unlink(missing_ok=True)

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _serve(paths: int, latency: float, body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        if latency:
            await asyncio.sleep(latency)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    for i in range(paths):
        app.router.add_get(f"/t/{i}/metrics", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    # Every target is scraped at once: the default backlog (128) would make some of them wait.
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--body", type=Path, required=True)
    args = parser.parse_args()
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop does not exist on every platform
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(args.paths, args.latency, args.body.read_bytes()))


if __name__ == "__main__":
    main()
