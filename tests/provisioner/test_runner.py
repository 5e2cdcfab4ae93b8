"""runner: signals stop the program once, and a later second signal insists."""

from __future__ import annotations

import asyncio
import os
import signal

import deucalion.runner as runner
from deucalion.runner import stopping_on_signals
from tests.helpers import wait_for


async def test_a_signal_stops_once_and_a_twin_signal_does_not_insist() -> None:
    """Two SIGTERMs at once (process-group delivery) stop once and do not force."""
    calls: list[str] = []
    with stopping_on_signals(lambda: calls.append("stop"), lambda: calls.append("insist")):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(lambda: calls)
        await asyncio.sleep(0.1)
    assert calls == ["stop"]


async def test_a_later_signal_insists() -> None:
    """A second signal after the first has settled calls the insisting handler."""
    calls: list[str] = []
    runner.INSIST_AFTER = 0.05
    try:
        with stopping_on_signals(lambda: calls.append("stop"), lambda: calls.append("insist")):
            os.kill(os.getpid(), signal.SIGINT)
            await wait_for(lambda: calls)
            await asyncio.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
            await wait_for(lambda: len(calls) == 2)
    finally:
        runner.INSIST_AFTER = 1.0
    assert calls == ["stop", "insist"]


async def test_handlers_are_removed_after_the_block() -> None:
    """Outside the block the loop has no handler of ours for SIGTERM."""
    loop = asyncio.get_running_loop()
    with stopping_on_signals(lambda: None):
        pass
    assert not loop.remove_signal_handler(signal.SIGTERM)


def test_a_script_without_logging_takes_its_level_from_deucalion_log_level() -> None:
    """provisioner.run() in a script that configured no logging honours DEUCALION_LOG_LEVEL."""
    import subprocess
    import sys

    code = (
        "import asyncio, logging; from deucalion.runner import run_main\n"
        "async def main(): return logging.getLevelName(logging.getLogger().level)\n"
        "print(run_main(main()))"
    )
    for value, level in [("debug", "DEBUG"), ("nonsense", "INFO")]:
        run = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "DEUCALION_LOG_LEVEL": value},
            check=True,
        )
        assert run.stdout.strip() == level, run.stderr
