"""The ``agentos-obs`` command: demo, traces, costs, prices, export, run, ui."""

from __future__ import annotations

from agentos_obs.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
