"""The web dashboard (extra ``ui``): :func:`create_app`, an ASGI app for any server (``agentos-obs
ui`` serves it with uvicorn), and the ``--budget`` spec it shows (:func:`parse_budget`).

Importing this package needs nothing optional; :func:`create_app` needs Starlette
(``pip install 'agentos-obs[ui]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = ["STATIC_DIR", "Budget", "create_app", "parse_budget"]

STATIC_DIR = Path(__file__).parent / "static"

if TYPE_CHECKING:
    from agentos_obs.ui._app import create_app
    from agentos_obs.ui._budgets import Budget, parse_budget


def __getattr__(name: str) -> Any:
    # Loaded on first use: the app needs Starlette, the budgets the store.
    if name == "create_app":
        from agentos_obs.ui._app import create_app

        return create_app
    if name in ("Budget", "parse_budget"):
        from agentos_obs.ui import _budgets

        return getattr(_budgets, name)
    raise AttributeError(f"module 'agentos_obs.ui' has no attribute {name!r}")
