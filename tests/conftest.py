"""Shared fixtures. Strict mode is on for the whole suite: an internal failure of agentos_obs
raises instead of being swallowed, so bugs surface. Tests of fault handling ask for
``lenient`` to get the production behaviour (swallow, log once, count)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

import agentos_obs._internal.guard as _guard
from agentos_obs.integrations._current import clear_marks
from replay_server import ReplayServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _strict_mode() -> Iterator[None]:
    _guard.reset_counts()
    _guard.set_strict(True)
    # Every test starts with no framework span left in its context by an earlier one (tests
    # that open runs and never end them on purpose would otherwise hold the SDK layer's
    # requests).
    clear_marks()
    yield
    _guard.set_strict(False)
    _guard.reset_counts()


@pytest.fixture
def lenient() -> Iterator[None]:
    """Production behaviour: internal failures are swallowed, logged once and counted."""
    _guard.set_strict(False)
    yield
    _guard.set_strict(True)


def require_binary(name: str) -> str:
    """Path of a system binary a test starts for real. Under CI=true a missing one fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it with apt-get)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


# -- the replay server for tests with real provider clients (tests/replay_server.py) ---------


@pytest.fixture(scope="session")
def _replay_session() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def replay(_replay_session: ReplayServer) -> Iterator[ReplayServer]:
    """The replay server on 127.0.0.1 (one per session), reset for each test."""
    _replay_session.reset()
    yield _replay_session
    _replay_session.reset()
