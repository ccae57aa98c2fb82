"""``python -m agentos_obs`` runs the ``agentos-obs`` command."""

from __future__ import annotations

from agentos_obs.cli._main import main

if __name__ == "__main__":
    raise SystemExit(main())
