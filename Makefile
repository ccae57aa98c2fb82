# Two entry points that work on a fresh machine with only python3:
#   make demo   - sets up .venv and runs the offline demo pipeline, traced
#   make test   - sets up .venv and runs the whole test suite
# and for CI (.ci/run):
#   make test-lower-bounds - the integration tests at the lowest versions pyproject.toml admits
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-lower-bounds lint typecheck bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/agentos-obs demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)  # the layer rules (lint-imports) also run in `make test`
# -- lower bounds -------------------------------------------------------------------------------
# A venv of its own where the core and every framework extra sit at the floor pyproject.toml
# declares (pinned exactly in .ci/lower-bounds.txt), then the tests of what those packages
# serve: integrations, OTLP export, metrics, store, dashboard, CLI and UI API. 1 to 2.5 min
# to install, 2.5 to 5.5 min to run on the 2-core machine (2m20s of CPU in all). Deselected,
# each for a reason outside agentos-obs's code:
#   the real-client tests (test_*_real_clients.py, test_provider_sdk.py): the provider client
#     packages are dev tools pinned by nothing here, and need frameworks far above the floors.
#     Budgets (tests/cost) do not depend on framework versions: `make test` covers them.
#   test_langchain_langgraph.py, test_langgraph_is_traced_globally, test_langgraph_agent_example:
#     LangGraph (a test tool, not an extra) >= 0.2.5x and langchain >= 1 refuse
#     langchain-core 0.3.0; pip picks langgraph 0.2.40, which lacks Command/interrupt and
#     reports its __start__ node as a run. `make test` covers LangGraph.
#   test_function_agent_with_a_tool, test_agent_example, the planner tests of cost and metrics:
#     LlamaIndex's MockFunctionCallingLLM,
#     the test's stand-in model, exists from llama-index-core 0.14.10.
#   test_workflow_run_is_an_agent_span: llama-index-workflows 1.x (what 0.12.44 admits) resolves
#     a step's annotations in the module's globals, where the test's local events are not.
#   test_held_stream_is_swept_after_the_timeout: reading a swept stream later is recorded as a
#     trace of its own from llama-index-core 0.14.25 on (README: "Python versions...").
LB_VENV  := .venv-lower-bounds
LB_BIN   := $(LB_VENV)/bin
LB_STAMP := $(LB_VENV)/.installed
LB_TOOLS := pytest pytest-asyncio pytest-timeout pytest-mock hypothesis httpx langgraph import-linter
LB_TESTS := tests/integrations tests/exporters tests/tracing tests/metrics tests/store \
	tests/pricing tests/cli tests/ui/test_ui_api.py tests/test_dashboard.py \
	tests/test_stack.py tests/test_logs.py
LB_SKIP  := --ignore=tests/integrations/langchain/test_langchain_langgraph.py \
	--ignore=tests/integrations/langchain/test_langchain_real_clients.py \
	--ignore=tests/integrations/llama_index/test_llama_index_real_clients.py \
	--ignore=tests/integrations/test_provider_sdk.py \
	--deselect=tests/integrations/langchain/test_langchain_global.py::test_langgraph_is_traced_globally \
	--deselect=tests/integrations/langchain/test_langchain_examples.py::test_langgraph_agent_example \
	--deselect=tests/integrations/llama_index/test_llama_index.py::test_function_agent_with_a_tool \
	--deselect=tests/integrations/llama_index/test_llama_index_examples.py::test_agent_example \
	--deselect=tests/integrations/llama_index/test_llama_index.py::test_workflow_run_is_an_agent_span \
	--deselect=tests/integrations/llama_index/test_llama_index_streaming.py::test_held_stream_is_swept_after_the_timeout \
	--deselect=tests/cost/test_consumers_agree.py::test_function_agent_named_planner_is_planner_everywhere \
	--deselect=tests/metrics/test_span_metrics_records.py::test_a_llama_index_function_agent_is_labelled_by_its_name \
	--deselect=tests/integrations/langchain/test_langchain_global.py::test_explicit_handler_in_a_langgraph_node_gives_no_duplicates

$(LB_STAMP): pyproject.toml .ci/lower-bounds.txt
	rm -rf $(LB_VENV)
	$(PYTHON) -m venv $(LB_VENV)
	$(LB_BIN)/python -m pip install --quiet --upgrade pip
	$(LB_BIN)/python -m pip install --quiet -c .ci/lower-bounds.txt -e '.[all]' $(LB_TOOLS)
	touch $(LB_STAMP)

# tests/test_packaging.py first: with AGENTOS_OBS_LOWER_BOUNDS=1 it checks the venv holds the pins.
test-lower-bounds: $(LB_STAMP)
	AGENTOS_OBS_LOWER_BOUNDS=1 $(LB_BIN)/python -m pytest tests/test_packaging.py $(LB_TESTS) $(LB_SKIP) $(ARGS)

lint: $(STAMP)  # the layer rules (lint-imports) also run in `make test`
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(ARGS)

screenshots: $(STAMP)  # refresh the README's screenshots from the browser tests
	AGENTOS_OBS_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/ui/test_ui_browser.py

clean:
	rm -rf $(VENV) $(LB_VENV) .pytest_cache .mypy_cache .ruff_cache artifacts
