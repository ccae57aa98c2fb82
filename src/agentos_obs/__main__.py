"""``python -m agentos_obs`` runs the ``agentos-obs`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
