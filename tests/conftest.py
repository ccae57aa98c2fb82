"""Shared fixtures. Strict mode is on for the whole suite: an internal failure of agentos_obs
raises instead of being swallowed, so bugs surface. Tests of fault handling ask for
``lenient`` to get the production behaviour (swallow, log once, count).

``tracer`` is a tracer whose finished traces land in ``exporter`` (an
``agentos_obs.testing.InMemoryExporter``), priced by ``pricing``: flat test prices unless a
test module or directory overrides that fixture. ``traced(...)`` builds another such pair
inline, for tests that need a tracer configured otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from agentos_obs import testing
from agentos_obs.integrations._current import clear_marks
from agentos_obs.pricing import PriceCatalog
from agentos_obs.testing import FlatPricing, InMemoryExporter
from agentos_obs.tracing import Tracer, TracerConfig
from replay_server import ReplayServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

SERVICE = "svc"
# Flat test prices: $1 per 1k input tokens and $2 per 1k output, for every model but these.
UNPRICED_MODELS = ("mystery", "unknown-model")


def flat_pricing() -> FlatPricing:
    return FlatPricing(1000.0, 2000.0, unpriced=UNPRICED_MODELS)


def traced(
    *, pricing: PriceCatalog | None = None, service_name: str = SERVICE, **config: Any
) -> tuple[Tracer, InMemoryExporter]:
    """A new tracer (flat test prices unless ``pricing``; ``config`` goes to
    ``TracerConfig``) and the exporter its finished traces land in."""
    tracer = Tracer(
        config=TracerConfig(service_name=service_name, **config),
        pricing=pricing if pricing is not None else flat_pricing(),
    )
    exporter = InMemoryExporter()
    tracer.add_exporter(exporter)
    return tracer, exporter


@pytest.fixture
def exporter() -> InMemoryExporter:
    return InMemoryExporter()


@pytest.fixture
def pricing() -> PriceCatalog:
    """The ``tracer`` fixture's prices (override this fixture to price otherwise)."""
    return flat_pricing()


@pytest.fixture
def tracer(pricing: PriceCatalog, exporter: InMemoryExporter) -> Tracer:
    """Service ``svc``, priced by ``pricing``; finished traces land in ``exporter``."""
    tracer = Tracer(SERVICE, pricing=pricing)
    tracer.add_exporter(exporter)
    return tracer


@pytest.fixture(autouse=True)
def _strict_mode() -> Iterator[None]:
    testing.reset_counts()
    # Every test starts with no framework span left in its context by an earlier one (tests
    # that open runs and never end them on purpose would otherwise hold the SDK layer's
    # requests).
    clear_marks()
    with testing.strict_mode():
        yield
    testing.reset_counts()


@pytest.fixture
def lenient() -> Iterator[None]:
    """Production behaviour: internal failures are swallowed, logged once and counted."""
    with testing.strict_mode(False):
        yield


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
