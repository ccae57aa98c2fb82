"""The LlamaIndex tests: the real price catalogue, and ``handler``, our span and event
handlers on LlamaIndex's root dispatcher, reporting to the shared ``tracer``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentos_obs import testing
from agentos_obs.integrations.llama_index import AgentOSSpanHandler, instrument, uninstrument
from agentos_obs.pricing import PriceCatalog, default_catalog
from agentos_obs.tracing import Tracer


@pytest.fixture
def pricing() -> PriceCatalog:
    return default_catalog()


@pytest.fixture
def handler(tracer: Tracer) -> Iterator[AgentOSSpanHandler]:
    handler = instrument(tracer=tracer)
    yield handler
    uninstrument()
    if testing.is_strict():
        # LlamaIndex swallows handler exceptions: strict mode counts them before re-raising,
        # so a count here is a failure the test would not see otherwise.
        assert testing.failure_counts() == {}
