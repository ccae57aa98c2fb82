"""The web dashboard (extra ``ui``): :func:`create_app` for any ASGI server, or ``agentos-obs ui``.

Importing this package needs nothing optional; :func:`create_app` needs Starlette
(``pip install 'agentos-obs[ui]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"

if TYPE_CHECKING:
    from agentos_obs.ui._app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from agentos_obs.ui._app import create_app

        return create_app
    raise AttributeError(f"module 'agentos_obs.ui' has no attribute {name!r}")
