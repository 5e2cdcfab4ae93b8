"""Fixtures that start real servers from Debian's packages on free loopback ports.

Without the packages the tests skip with a message naming what to install; with
DEUCALION_REQUIRE_INTEGRATION=1 that skip is a failure (see tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration import servers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


def _start_or_skip(start: Callable[[], servers.Server]) -> servers.Server:
    try:
        return start()
    except servers.ServerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def node_exporter() -> Iterator[servers.Server]:
    """One real node_exporter for the whole session."""
    server = _start_or_skip(servers.start_node_exporter)
    yield server
    server.stop()


@pytest.fixture
def alertmanager() -> Iterator[servers.Server]:
    """A fresh real Alertmanager for one test."""
    server = _start_or_skip(servers.start_alertmanager)
    yield server
    server.stop()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., servers.Server]]:
    """Start any server with ``server_factory(servers.start_x, ...)``; all are stopped after."""
    started: list[servers.Server] = []

    def start(
        starter: Callable[..., servers.Server], *args: object, **kwargs: object
    ) -> servers.Server:
        server = _start_or_skip(lambda: starter(*args, **kwargs))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
