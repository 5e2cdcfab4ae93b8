"""deucalion as typed for users: the README's snippets pass mypy --strict."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[1]

USER_CODE = textwrap.dedent("""
    import deucalion as dc


    class Quiet(dc.MetricsObserver):
        def new_data(self, targets_data_dict: dict[str, dict[str, dict[str, float]]]) -> None:
            return None


    async def main() -> None:
        provisioner = dc.MetricsProvisioner(targets=["localhost:9100"])
        provisioner.register(Quiet({"up"}))
        await provisioner.run()


    def script() -> None:
        provisioner = dc.MetricsProvisioner(targets=["localhost:9100"])
        provisioner.register(metricsObserver=Quiet({"up"}))
        provisioner.run()
""")


def test_await_provisioner_run_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    """`await provisioner.run()` in a coroutine and plain `provisioner.run()` in a script both
    pass mypy --strict in user code."""
    snippet = tmp_path / "user_app.py"
    snippet.write_text(USER_CODE)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--follow-imports=silent",
            str(snippet),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
