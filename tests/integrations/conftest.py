"""Fixtures for tests with the real provider client packages: a replay server on 127.0.0.1
(one per session, reset for each test) and a tracer collecting finished traces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from replay_server import ReplayServer


@pytest.fixture(scope="session")
def _replay_session() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def replay(_replay_session: ReplayServer) -> Iterator[ReplayServer]:
    _replay_session.reset()
    yield _replay_session
    _replay_session.reset()
