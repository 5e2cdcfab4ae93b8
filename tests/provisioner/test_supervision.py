"""Supervised tasks: a task that dies of a bug is logged, restarted, and reported."""

from __future__ import annotations

import asyncio

import pytest

from deucalion import _supervision
from deucalion._supervision import CRASH_LOOP, Supervised
from tests.helpers import wait_for


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_supervision, "FIRST_BACKOFF", 0.01)
    monkeypatch.setattr(_supervision, "MAX_BACKOFF", 0.02)


async def test_a_task_that_dies_of_a_bug_is_logged_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two deaths are logged with their tracebacks; the third run goes on, and the task is
    healthy and running again."""
    runs: list[int] = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) <= 2:
            raise RuntimeError(f"bug number {len(runs)}")
        await forever.wait()

    supervised = Supervised(flaky, name="the flaky task")
    try:
        await wait_for(lambda: len(runs) == 3)
        await wait_for(lambda: supervised.running)
        assert supervised.deaths == 2 and supervised.healthy
    finally:
        await supervised.stop()
    assert "the flaky task failed" in caplog.text
    assert "bug number 2" in caplog.text and "Traceback" in caplog.text
    assert supervised.task.cancelled()


async def test_a_task_in_a_crash_loop_is_unhealthy() -> None:
    """A task that keeps dying is reported unhealthy, so /healthz can fail."""

    async def broken() -> None:
        raise ValueError("always")

    supervised = Supervised(broken, name="the broken task")
    try:
        await wait_for(lambda: supervised.deaths >= CRASH_LOOP)
        assert not supervised.healthy
    finally:
        await supervised.stop()


async def test_a_task_that_returns_has_finished_and_is_not_restarted() -> None:
    """Returning is how a told-to-stop task ends: no restart, no error."""
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    supervised = Supervised(once, name="the one-off task")
    await asyncio.wait({supervised.task})
    await asyncio.sleep(0.05)
    assert runs == [1] and supervised.deaths == 0
