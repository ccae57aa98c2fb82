"""The layer rules (``[tool.importlinter]`` in pyproject.toml), checked by import-linter over
this checkout's source, so `make test` and CI enforce them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports() -> Path:
    path = Path(sys.executable).with_name("lint-imports")
    if not path.exists():
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    return path


def broken_contracts(output: str) -> str:
    """The part of lint-imports' report that says which imports break which contract."""
    marker = "Broken contracts"
    return output[output.index(marker) :] if marker in output else output


def test_layer_contracts_hold() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    result = subprocess.run(
        [str(lint_imports()), "--no-cache"],
        cwd=ROOT,  # where it reads pyproject.toml
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        report = broken_contracts(result.stdout + result.stderr)
        pytest.fail(f"lint-imports exit code {result.returncode}\n\n{report}", pytrace=False)
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout
