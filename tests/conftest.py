"""Test-wide settings: with DEUCALION_REQUIRE_INTEGRATION=1 an integration test may not skip."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import TargetServer

REQUIRE_INTEGRATION = os.environ.get("DEUCALION_REQUIRE_INTEGRATION", "") not in ("", "0")

# No per-example deadline: on a loaded 2-core CI machine a slow example is not a bug, and
# timing is never what these tests check.
settings.register_profile("deucalion", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("deucalion")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Turn the skip of an integration test into a failure when integration is required."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_INTEGRATION and report.skipped and item.get_closest_marker("integration"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"integration test skipped with DEUCALION_REQUIRE_INTEGRATION=1: {reason}"


@pytest.fixture
async def target_server() -> AsyncIterator[TargetServer]:
    """A loopback HTTP server: add endpoints with ``add()``, then ``await start()``."""

    server = TargetServer()
    yield server
    await server.close()
