"""Attribute keys shared by the tracer, the integrations, the store and the exporters.

Our own short vocabulary; the OTLP exporter maps it onto the OpenTelemetry GenAI and
OpenInference conventions.
"""

from __future__ import annotations

__all__ = [
    "AGENT_NAME",
    "BUDGET_NOT_ENFORCED",
    "ERROR_MESSAGE",
    "ERROR_TYPE",
    "FRAMEWORK",
    "INPUT_VALUE",
    "LANGGRAPH_NODE",
    "LANGGRAPH_STEP",
    "LLM_FINISH_REASON",
    "LLM_INPUT_MESSAGES",
    "LLM_INVOCATION_PARAMS",
    "LLM_LATENCY_MS",
    "LLM_OUTPUT_MESSAGES",
    "LLM_REQUEST_MODEL",
    "LLM_STREAMING",
    "LLM_TIME_TO_FIRST_TOKEN_MS",
    "LLM_TOOLS",
    "LLM_UNPRICED",
    "LLM_USAGE_ESTIMATED",
    "LLM_USAGE_ESTIMATE_METHOD",
    "LLM_USAGE_SOURCE",
    "LLM_WRAPPER",
    "OUTPUT_VALUE",
    "RETRIEVAL_DOCUMENTS",
    "RETRIEVAL_DOCUMENT_COUNT",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_TOP_SCORES",
    "RUN_ID",
    "SESSION_ID",
    "TAGS",
    "TOOL_CALL_ID",
    "TOOL_NAME",
    "USER_ID",
]

USER_ID = "user.id"
SESSION_ID = "session.id"
TAGS = "tags"
FRAMEWORK = "agentos.framework"  # "langchain" | "llama_index" | absent for manual spans
RUN_ID = "agentos.run_id"  # the framework's own id of the run / span
AGENT_NAME = "agent.name"
# True on a call a budget refused but whose framework went ahead anyway (LlamaIndex)
BUDGET_NOT_ENFORCED = "agentos.budget.not_enforced"

ERROR_TYPE = "error.type"
ERROR_MESSAGE = "error.message"

LLM_REQUEST_MODEL = "llm.request_model"  # what was asked for; Span.model_name is what answered
LLM_INVOCATION_PARAMS = "llm.invocation_parameters"  # redacted JSON
LLM_FINISH_REASON = "llm.finish_reason"
LLM_STREAMING = "llm.streaming"
LLM_TIME_TO_FIRST_TOKEN_MS = "llm.time_to_first_token_ms"
LLM_LATENCY_MS = "llm.latency_ms"  # caller-measured latency given to record_llm_call
LLM_UNPRICED = "llm.cost.unpriced"  # True when no price was known for the model
LLM_USAGE_ESTIMATED = "llm.usage.estimated"  # True when tokens were estimated, not reported
# True on an LLM span that wraps a call counted on another span (not a call of its own)
LLM_WRAPPER = "agentos.llm.wrapper"
# How estimated tokens were counted: "o200k_base" / "cl100k_base" (the model's tokenizer) or
# "chars/4" / "chars/3.5" (approximation); see agentos_obs.pricing.estimate_usage.
LLM_USAGE_ESTIMATE_METHOD = "llm.usage.estimate_method"
# "sdk" when the usage was read from the provider SDK's response by the SDK layer
# (agentos_obs.integrations.openai / .anthropic); absent when the framework reported it.
LLM_USAGE_SOURCE = "llm.usage.source"
# Content capture only. JSON: one message or a list of messages, each
# {"role", "content", "tool_calls"?: [{"id", "name", "arguments"}], "tool_call_id"?, "name"?}
# (an assistant turn's tool calls; the call id a tool message answers).
LLM_INPUT_MESSAGES = "llm.input_messages"
LLM_OUTPUT_MESSAGES = "llm.output_messages"
# Content capture only. JSON list of the tool definitions offered to the model:
# [{"name", "description"?, "parameters"?: <JSON schema>}].
LLM_TOOLS = "llm.tools"

INPUT_VALUE = "input.value"  # content capture only
OUTPUT_VALUE = "output.value"  # content capture only

TOOL_NAME = "tool.name"
TOOL_CALL_ID = "tool.call_id"

RETRIEVAL_QUERY = "retrieval.query"  # content capture only
RETRIEVAL_DOCUMENT_COUNT = "retrieval.document_count"
RETRIEVAL_TOP_SCORES = "retrieval.top_scores"
RETRIEVAL_DOCUMENTS = "retrieval.documents"  # content capture only

LANGGRAPH_NODE = "langgraph.node"
LANGGRAPH_STEP = "langgraph.step"
