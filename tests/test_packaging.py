"""What pyproject.toml promises about installs holds together.

* ``.ci/lower-bounds.txt`` pins exactly the floor each core and extra dependency declares, so
  ``make test-lower-bounds`` tests the versions the package admits (and under
  ``AGENTOS_OBS_LOWER_BOUNDS=1``, which that target sets, the venv really holds them);
* ``all`` is the union of the other user extras, with the same floors;
* the Python range, the linters' target version and the classifiers name the same versions.
"""

from __future__ import annotations

import os
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
USER_EXTRAS = ("langchain", "llama-index", "otel", "ui", "cli")  # framework floors tested
# Extras of optional helpers (tokenizer, provider SDK layer, Redis ledger): in ``all``; their
# floors are not pinned in the lower-bounds venv (nothing there imports them).
HELPER_EXTRAS = ("tokenizers", "openai", "anthropic", "redis")
# Dev tools pinned in the lower-bounds venv because they must match a floor (the OTLP test
# receiver decodes with the protobuf classes of the exporter's own version).
PINNED_DEV_TOOLS = ("opentelemetry-proto",)


def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    return data


def floor(requirement: Requirement) -> Version:
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{requirement} must declare one >= floor"
    return floors[0]


def declared_floors() -> dict[str, Version]:
    meta = project()["project"]
    extras = meta["optional-dependencies"]
    requirements = [Requirement(r) for r in meta["dependencies"]]
    for extra in USER_EXTRAS:
        requirements += [Requirement(r) for r in extras[extra]]
    requirements += [
        Requirement(r)
        for r in extras["dev"]
        if canonicalize_name(Requirement(r).name) in PINNED_DEV_TOOLS
    ]
    floors: dict[str, Version] = {}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        value = floor(requirement)
        assert floors.setdefault(name, value) == value, f"two floors for {name}"
    return floors


def lower_bound_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / ".ci" / "lower-bounds.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_lower_bounds_file_pins_exactly_the_declared_floors() -> None:
    floors = declared_floors()
    pins = lower_bound_pins()
    assert set(pins) == set(floors)
    for name, version in floors.items():
        # `>=3.0` admits 3.0.0; the pin may only be a longer spelling of the same release.
        assert pins[name] == version, f"{name}: floor {version}, pinned {pins[name]}"


def test_all_is_the_union_of_the_user_extras() -> None:
    extras = project()["project"]["optional-dependencies"]
    union = {str(Requirement(r)) for extra in USER_EXTRAS + HELPER_EXTRAS for r in extras[extra]}
    assert {str(Requirement(r)) for r in extras["all"]} == union


@pytest.mark.skipif(
    os.environ.get("AGENTOS_OBS_LOWER_BOUNDS") != "1", reason="only in make test-lower-bounds"
)
def test_the_lower_bounds_venv_holds_the_pins() -> None:
    installed = {name: Version(metadata.version(name)) for name in lower_bound_pins()}
    assert installed == lower_bound_pins()


def test_the_python_floor_is_the_one_the_linters_check() -> None:
    data = project()
    requires = data["project"]["requires-python"]
    assert requires.startswith(">=")
    lowest = Version(requires.removeprefix(">="))
    assert data["tool"]["ruff"]["target-version"] == f"py{lowest.major}{lowest.minor}"
    assert data["tool"]["mypy"]["python_version"] == f"{lowest.major}.{lowest.minor}"


def test_the_python_classifiers_start_at_the_floor() -> None:
    meta = project()["project"]
    lowest = Version(meta["requires-python"].removeprefix(">="))
    prefix = "Programming Language :: Python :: 3."
    listed = sorted(Version(c.rsplit(" :: ", 1)[1]) for c in meta["classifiers"] if prefix in c)
    assert listed and listed[0] == lowest
    assert "Programming Language :: Python :: 3 :: Only" in meta["classifiers"]


def test_the_license_file_is_the_apache_2_license_the_metadata_names() -> None:
    meta = project()["project"]
    assert meta["license"] == "Apache-2.0"
    assert meta["license-files"] == ["LICENSE"]
    assert not [c for c in meta["classifiers"] if c.startswith("License ::")]  # PEP 639
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text.splitlines()) == 202  # the full text, appendix included
