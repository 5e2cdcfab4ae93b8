"""Test-wide settings: with DEUCALION_REQUIRE_INTEGRATION=1 an integration test may not skip."""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Generator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import BUSY_MACHINE, TargetServer

REQUIRE_INTEGRATION = os.environ.get("DEUCALION_REQUIRE_INTEGRATION", "") not in ("", "0")

# No per-example deadline: on a loaded 2-core CI machine a slow example is not a bug, and
# timing is never what these tests check.
settings.register_profile("deucalion", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("deucalion")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Turn the skip of an integration test into a failure when integration is required,
    unless the test skipped because it measured the machine too busy for what it checks."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_INTEGRATION and report.skipped and item.get_closest_marker("integration"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        if str(reason).startswith(("Skipped: " + BUSY_MACHINE, BUSY_MACHINE)):
            return
        report.outcome = "failed"
        report.longrepr = f"integration test skipped with DEUCALION_REQUIRE_INTEGRATION=1: {reason}"


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 omits ``stream_writer``, required since aiohttp 3.14
    (pnuckowski/aioresponses#289); an already-sent request needs only its ``output_size``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


# Older aiohttp has no such parameter and would refuse it: patch only where it is required.
_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters


@pytest.fixture(autouse=True)
def _aioresponses_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let aioresponses build responses with the installed aiohttp, in every test.

    Remove once aioresponses passes ``stream_writer`` itself (pnuckowski/aioresponses#289).
    """
    if _NEEDS_STREAM_WRITER:
        monkeypatch.setattr("aioresponses.core.ClientResponse", _CompatResponse)


@pytest.fixture
async def target_server() -> AsyncIterator[TargetServer]:
    """A loopback HTTP server: add endpoints with ``add()``, then ``await start()``."""

    server = TargetServer()
    yield server
    await server.close()
