"""The LangChain tests price with the real catalogue plus round-number overrides
(``lc_fakes.PRICES``), as an app would configure it."""

from __future__ import annotations

import pytest

from agentos_obs.pricing import PriceCatalog
from lc_fakes import catalog


@pytest.fixture
def pricing() -> PriceCatalog:
    return catalog()
