"""The web dashboard (extra ``ui``): ``agentos-obs ui`` or :func:`create_app` in an ASGI server.

Importing this package needs nothing optional; :mod:`agentos_obs.ui.server` needs Starlette
and uvicorn (``pip install 'agentos-obs[ui]'``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"
