"""The integrations import one way: no cycle between their modules, counting imports made
inside functions (grimp, the graph builder behind import-linter, counts those too)."""

from __future__ import annotations

import pytest

from conftest import IN_CI

try:
    import grimp
except ImportError:  # pragma: no cover - a dev dependency
    if IN_CI:
        raise
    pytest.skip("grimp (from import-linter) is not installed", allow_module_level=True)

LLAMA = "agentos_obs.integrations.llama_index"
LANGCHAIN = "agentos_obs.integrations.langchain"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("agentos_obs")


@pytest.mark.parametrize(
    ("upper", "lower"),
    [
        (f"{LLAMA}._bridge", f"{LLAMA}._events"),
        (f"{LLAMA}._events", f"{LLAMA}._state"),
        (f"{LLAMA}._bridge", f"{LLAMA}._state"),
        (f"{LLAMA}._handlers", f"{LLAMA}._bridge"),
        (f"{LANGCHAIN}._global", f"{LANGCHAIN}._handler"),
        (f"{LANGCHAIN}._handler", f"{LANGCHAIN}._runs"),
        (f"{LANGCHAIN}._global", f"{LANGCHAIN}._runs"),
    ],
)
def test_dependency_goes_one_way(graph: grimp.ImportGraph, upper: str, lower: str) -> None:
    assert graph.find_shortest_chain(upper, lower) is not None  # the pair is still real
    assert graph.find_shortest_chain(lower, upper) is None


def test_no_module_of_an_integration_is_in_an_import_cycle(graph: grimp.ImportGraph) -> None:
    cycles = []
    for module in sorted(m for m in graph.modules if m.startswith("agentos_obs.integrations")):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(imported, module)
            if back is not None:
                cycles.append((module, *back))
    assert cycles == []
