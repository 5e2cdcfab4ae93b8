"""The deucalion command as a shell user runs it (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.integration import servers


def test_scrape_piped_into_head_ends_without_a_traceback(tmp_path: Path) -> None:
    """`deucalion scrape URL | head` past 64 KB of output ends quietly, as a reader closed."""
    (tmp_path / "metrics").write_text(
        "# TYPE requests_total counter\n"
        + "".join(f'requests_total{{path="/p{i}"}} {i}\n' for i in range(5000)))
    port = servers.free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               "--directory", str(tmp_path), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                time.sleep(0.1)
        deucalion = os.path.join(os.path.dirname(sys.executable), "deucalion")
        run = subprocess.run(
            f"'{deucalion}' scrape '{url}' | head -c 100 >/dev/null; "
            "echo \"exit ${PIPESTATUS[0]}\" >&2",
            shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60,
            env={**os.environ, "DEUCALION_CONFIG": ""}, check=False)
    finally:
        servers.terminate(server)
    assert "Traceback" not in run.stderr and "BrokenPipeError" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "exit 141", run.stderr
