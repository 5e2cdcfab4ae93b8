"""Start real Prometheus-ecosystem servers from Debian's packages on free loopback ports.

Used by the integration fixtures and the benchmarks. Each server is a subprocess owned by a
``Server`` handle that stops it (SIGTERM, then SIGKILL) on ``stop()``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Binary name -> the Debian package that provides it.
PACKAGES = {
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
}


class ServerUnavailable(RuntimeError):
    """The server's binary is not installed; the message says which package to install."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reserve_port() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1, not listening.

    Connections to the port are refused, as by a server that is down, and no other process can
    take the port while the socket is open. ``start_alertmanager(listen_socket=...)`` starts an
    Alertmanager on it later, so a test can hand out the URL of a server that is not up yet.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def terminate(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Stop ``process``: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServerUnavailable(
            f"{name} is not installed: run `apt-get install {PACKAGES[name]}` (or `make test` as "
            "root, which installs it)"
        )
    return path


@dataclass
class Server:
    """A running server process listening on 127.0.0.1:port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    ready_path: str = "/"
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        terminate(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


# argv: the socket's fd, then the server's command line.
_ACTIVATE = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
"""


def _start(
    name: str,
    args: list[str],
    port: int,
    workdir: Path,
    ready_path: str,
    listen_socket: socket.socket | None = None,
) -> Server:
    """Start the server; with ``listen_socket`` it serves on that socket, which it takes over
    (systemd socket activation; the server needs ``--web.systemd-socket``)."""
    log = workdir / "server.log"
    command = [find_binary(name), *args]
    pass_fds: tuple[int, ...] = ()
    if listen_socket is not None:
        listen_socket.listen(128)
        fd = listen_socket.fileno()
        pass_fds = (fd,)
        # Socket activation wants the socket on fd 3 and LISTEN_PID = the server's own pid,
        # known only in the child: a small Python trampoline moves the socket, sets the pid
        # and execs the server in its own process. (sh cannot: dash takes one-digit fds only.)
        command = [sys.executable, "-c", _ACTIVATE, str(fd), *command]
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, pass_fds=pass_fds
            )
    finally:
        if listen_socket is not None:
            listen_socket.close()  # the server holds its own copy now
    server = Server(name, port, process, workdir, log, ready_path)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def start_node_exporter(port: int | None = None) -> Server:
    """node_exporter serving this machine's metrics."""
    find_binary("prometheus-node-exporter")
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="deucalion-node-exporter-"))
    args = [f"--web.listen-address=127.0.0.1:{port}"]
    return _start("prometheus-node-exporter", args, port, workdir, "/metrics")


ALERTMANAGER_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
"""


def start_alertmanager(
    port: int | None = None, *, listen_socket: socket.socket | None = None
) -> Server:
    """A single Alertmanager with no cluster and a receiver that delivers nowhere.

    It serves on ``listen_socket`` (from ``reserve_port()``, closed here) when given, else on
    ``port``, else on a socket of its own bound here.
    """
    find_binary("prometheus-alertmanager")
    if listen_socket is None and port is None:
        # Bound here and handed over, never looked up free and bound later by the server:
        # another process could take the port in between.
        listen_socket = reserve_port()
    if listen_socket is not None:
        port = int(listen_socket.getsockname()[1])
    assert port is not None
    workdir = Path(tempfile.mkdtemp(prefix="deucalion-alertmanager-"))
    (workdir / "alertmanager.yml").write_text(ALERTMANAGER_CONFIG)
    args = [
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        # With a socket handed over, this still sets the URL Alertmanager gives for itself.
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    if listen_socket is not None:
        args.append("--web.systemd-socket")
    return _start("prometheus-alertmanager", args, port, workdir, "/-/ready", listen_socket)


def start_prometheus(
    scrape_targets: list[str],
    port: int | None = None,
    scrape_interval: str = "1s",
    labels: dict[str, str] | None = None,
    external_labels: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """Prometheus scraping ``scrape_targets`` (host:port) under job ``node``; ``labels`` are
    the static group's target labels (an ``instance`` among them replaces host:port);
    ``external_labels`` the server's own (``global.external_labels``); ``extra_args`` more
    command-line flags (``--query.max-samples=1``)."""
    find_binary("prometheus")
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="deucalion-prometheus-"))
    targets = ", ".join(f'"{t}"' for t in scrape_targets)
    group = f"      - targets: [{targets}]\n"
    if labels:
        group += "        labels: {" + ", ".join(f'{k}: "{v}"' for k, v in labels.items()) + "}\n"
    external = ""
    if external_labels:
        external = (
            "  external_labels: {"
            + ", ".join(f'{k}: "{v}"' for k, v in external_labels.items())
            + "}\n"
        )
    (workdir / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        f"{external}scrape_configs:\n  - job_name: node\n    static_configs:\n{group}"
    )
    args = [
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *extra_args,
    ]
    return _start("prometheus", args, port, workdir, "/-/ready")
