"""LangChain integration: every LangChain / LangGraph run becomes an AgentOS span.

Per runnable::

    from agentos_obs.integrations.langchain import AgentOSCallbackHandler

    handler = AgentOSCallbackHandler()            # the default stack; or tracer=my_tracer
    chain.invoke(inputs, config={"callbacks": [handler]})

Or once for the whole process (every thread, every task, no callbacks to pass)::

    from agentos_obs.integrations.langchain import instrument
    instrument()                                  # see the ``_global`` module

How runs map to spans:

* Parents come only from LangChain's own ``parent_run_id`` (a ``run_id -> span`` map), never
  from an ambient stack, so ``batch``, ``asyncio.gather`` of hundreds of chains and LangGraph's
  thread pools all give correct trees. The handler never sets a context variable.
* A run whose parent the handler does not know is a root: it nests under the AgentOS span
  active in the caller's context (``tracer.start_span("planner", SpanKind.AGENT)``) when
  there is one, else it starts a new trace, exported when its root span ends.
* Per-run state is freed at end or error; runs LangChain never ends are swept (ended as
  TIMEOUT) after ``stale_run_timeout_s``, checked when new root runs start — no thread.
* No failure inside the handler reaches the app (each is reported through ``_guard``);
  the one exception let through on purpose is :class:`~agentos_obs.errors.BudgetExceeded`
  from a budget in ``raise`` mode, so the app sees it at its next LLM call.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any
from uuid import UUID

try:
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError(
        "agentos_obs.integrations.langchain needs LangChain: pip install 'agentos-obs[langchain]'"
    ) from exc

import agentos_obs._internal.guard as _guard
import agentos_obs.attributes as attr
import agentos_obs.integrations.langchain._extract as lx
from agentos_obs.errors import BudgetExceeded
from agentos_obs.integrations._content import to_text
from agentos_obs.integrations._messages import tool_definitions
from agentos_obs.integrations._options import usage_options
from agentos_obs.integrations.langchain._runs import RunRecorder, end_unless_ended
from agentos_obs.tracing._spans import SpanKind, SpanStatus

if TYPE_CHECKING:
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["AgentOSCallbackHandler"]

_report = _guard.report
_LLM = SpanKind.LLM


class AgentOSCallbackHandler(RunRecorder, BaseCallbackHandler):
    """A LangChain callback handler that records every run as an AgentOS span.

    One class for sync and async code. ``tracer=None`` reports to the default stack
    (resolved when each root run starts, so a later ``agentos_obs.configure()`` applies).
    """

    # Called directly in the caller's thread or task instead of through LangChain's thread
    # pool: the handler never touches ambient context, so this is safe, and with hundreds of
    # concurrent async chains it saves the executor hop on every event.
    run_inline = True

    def __init__(
        self,
        tracer: Tracer | None = None,
        *,
        stale_run_timeout_s: float = 600.0,
        sweep_interval_s: float = 30.0,
        run_inline: bool = True,
    ) -> None:
        """``run_inline=False`` sends async events through LangChain's thread pool like other
        sync handlers. Use it when a non-inline handler of yours must see ``on_llm_start``
        of async *completion* (non-chat) models: in langchain-core 1.x
        ``AsyncCallbackManager.on_llm_start`` skips non-inline handlers whenever an inline
        one (this handler, or LangSmith's tracer) is present."""
        super().__init__(tracer, stale_run_timeout_s, sweep_interval_s)
        self.run_inline = bool(run_inline)
        self._raise_all = False

    # -- LangChain's knobs ---------------------------------------------------------------
    @property  # type: ignore[override]
    def raise_error(self) -> bool:
        """Read by LangChain inside its ``except`` block around our callback: True lets the
        exception through. Only a BudgetExceeded does (or anything in strict mode, so the
        test suite sees our bugs); every other failure was already reported by us."""
        return (
            self._raise_all or isinstance(sys.exc_info()[1], BudgetExceeded) or _guard.is_strict()
        )

    @raise_error.setter
    def raise_error(self, value: bool) -> None:
        self._raise_all = bool(value)

    # -- chains (also prompts, parsers, lambdas, LangGraph graphs and nodes) ---------------
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None = None,
        inputs: Any = None,
        *,
        run_id: UUID | None = None,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = lx.run_name(serialized, kwargs.get("name"))
            attributes: dict[str, Any] = {}
            run_type = kwargs.get("run_type")
            if isinstance(run_type, str):
                attributes["langchain.run_type"] = run_type
            self._start(
                run_id,
                parent_run_id,
                name,
                None,
                tags,
                metadata,
                attributes,
                attr.INPUT_VALUE,
                inputs,
            )
        except BudgetExceeded:
            raise
        except Exception as exc:
            _report("langchain.on_chain_start", exc)

    def on_chain_end(
        self, outputs: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        state = None
        try:
            state = self._runs.pop(run_id, None) if run_id is not None else None
            if state is None:
                return
            span = state.span
            self._capture(state, attr.OUTPUT_VALUE, outputs)
            status = None
            if span.children and any(not child.ended for child in span.children):
                # Ending while its children still run: the consumer stopped reading a sync
                # stream (LangChain reports that as a normal end). The children finish later.
                status = SpanStatus.CANCELLED
                span.attributes["agentos.abandoned"] = True
            state.tracer.end_span(span, status=status)
        except Exception as exc:
            _report("langchain.on_chain_end", exc)
        finally:
            end_unless_ended(state)

    def on_chain_error(
        self, error: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            self._fail(run_id, error)
        except Exception as exc:
            _report("langchain.on_chain_error", exc)

    # -- models ------------------------------------------------------------------------------
    def _start_model(
        self,
        serialized: Any,
        run_id: Any,
        parent_run_id: Any,
        tags: Any,
        metadata: Any,
        kwargs: dict[str, Any],
        content_key: str,
        content: Any,
    ) -> None:
        params = kwargs.get("invocation_params")
        name = lx.run_name(serialized, kwargs.get("name"))
        model = lx.request_model(metadata, params, serialized)
        provider = metadata.get("ls_provider") if isinstance(metadata, dict) else None
        attributes: dict[str, Any] = {}
        if model:
            attributes[attr.LLM_REQUEST_MODEL] = model
        params_json = lx.invocation_params_json(params)
        if params_json is not None:
            attributes[attr.LLM_INVOCATION_PARAMS] = params_json
        tools = params.get("tools") or params.get("functions") if isinstance(params, dict) else None
        state = self._start(
            run_id, parent_run_id, name, _LLM, tags, metadata, attributes, content_key, content
        )
        if state is not None:
            span = state.span
            if model:
                span.model_name = model
            if isinstance(provider, str) and provider:
                span.provider = provider
            if usage_options().estimate:
                state.request = (content, tools)
            config = state.tracer.config
            if tools and config.capture_content:
                span.attributes[attr.LLM_TOOLS] = to_text(
                    tool_definitions(tools), config.max_content_length
                )

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None = None,
        messages: Any = None,
        *,
        run_id: UUID | None = None,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            # LangChain starts one run per message list: a list of one is the usual case.
            if isinstance(messages, list) and len(messages) == 1:
                messages = messages[0]
            self._start_model(
                serialized, run_id, parent_run_id, tags, metadata, kwargs,
                attr.LLM_INPUT_MESSAGES, messages,
            )  # fmt: skip
        except BudgetExceeded:
            raise
        except Exception as exc:
            _report("langchain.on_chat_model_start", exc)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None = None,
        prompts: Any = None,
        *,
        run_id: UUID | None = None,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if isinstance(prompts, list) and len(prompts) == 1:
                prompts = prompts[0]
            self._start_model(
                serialized, run_id, parent_run_id, tags, metadata, kwargs,
                attr.LLM_INPUT_MESSAGES, prompts,
            )  # fmt: skip
        except BudgetExceeded:
            raise
        except Exception as exc:
            _report("langchain.on_llm_start", exc)

    def on_llm_new_token(
        self,
        token: Any = None,
        *,
        chunk: Any = None,
        run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        # Sync LangChain passes ``token`` by keyword, async positionally: both land here.
        try:
            state = self._runs.get(run_id) if run_id is not None else None
            if state is None:
                return
            if not state.streamed:
                state.streamed = True
                state.span.attributes[attr.LLM_STREAMING] = True
            if not state.first_delta and lx.has_delta(token, chunk):
                # Time to the first content or tool-call delta, not to the content-less
                # chunk that opens a stream (OpenAI's role chunk, Anthropic's message_start).
                state.first_delta = True
                span = state.span
                span.attributes[attr.LLM_TIME_TO_FIRST_TOKEN_MS] = span.duration_ms
            # Most chunks carry no usage (OpenAI: only the last one): keep the raw dict only.
            raw = getattr(getattr(chunk, "message", None), "usage_metadata", None)
            if raw:
                if state.chunk_usages is None:
                    state.chunk_usages = [raw]
                else:
                    state.chunk_usages.append(raw)
        except Exception as exc:
            _report("langchain.on_llm_new_token", exc)

    def on_llm_end(
        self, response: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        state = None
        try:
            state = self._runs.pop(run_id, None) if run_id is not None else None
            if state is None:
                return
            span = state.span
            outcome = lx.read_llm_result(response, span.provider)
            # The merged message at the end already holds what the chunks carried: the
            # chunks' own sum is only the fallback, so streamed usage is counted once.
            usage = outcome.usage
            if usage is None and state.chunk_usages:
                usage = state.streamed_usage()
            if outcome.finish_reason is not None:
                span.attributes[attr.LLM_FINISH_REASON] = outcome.finish_reason
            if usage is not None:
                self._record_usage(state, usage, outcome.model)
            else:
                if outcome.model:
                    span.model_name = outcome.model
                self._estimate(state, lx.answer_message(response))
            if state.tracer.config.capture_content:
                self._capture(state, attr.LLM_OUTPUT_MESSAGES, lx.generations_content(response))
            state.tracer.end_span(span)
        except Exception as exc:
            _report("langchain.on_llm_end", exc)
        finally:
            end_unless_ended(state)

    def on_llm_error(self, error: Any = None, *, run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            # LangChain passes what a stream produced before it failed as ``response``.
            self._fail(run_id, error, lx.answer_message(kwargs.get("response")))
        except Exception as exc:
            _report("langchain.on_llm_error", exc)

    # -- tools -------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None = None,
        input_str: Any = None,
        *,
        run_id: UUID | None = None,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: Any = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = lx.run_name(serialized, kwargs.get("name"))
            attributes: dict[str, Any] = {attr.TOOL_NAME: name}
            call_id = kwargs.get("tool_call_id")
            if isinstance(call_id, str) and call_id:
                attributes[attr.TOOL_CALL_ID] = call_id
            self._start(
                run_id, parent_run_id, name, SpanKind.TOOL, tags, metadata, attributes,
                attr.INPUT_VALUE, inputs if inputs is not None else input_str,
            )  # fmt: skip
        except BudgetExceeded:
            raise
        except Exception as exc:
            _report("langchain.on_tool_start", exc)

    def on_tool_end(self, output: Any = None, *, run_id: UUID | None = None, **kwargs: Any) -> None:
        state = None
        try:
            state = self._runs.pop(run_id, None) if run_id is not None else None
            if state is None:
                return
            span = state.span
            status = None
            # A ToolMessage: the tool's error handled by LangChain comes back as status="error".
            if getattr(output, "status", None) == "error":
                status = SpanStatus.ERROR
                span.attributes[attr.ERROR_TYPE] = "ToolError"
                span.attributes["error"] = "tool returned an error"
            call_id = getattr(output, "tool_call_id", None)
            if isinstance(call_id, str) and call_id:
                span.attributes.setdefault(attr.TOOL_CALL_ID, call_id)
            if state.tracer.config.capture_content:
                content = getattr(output, "content", output)
                self._capture(state, attr.OUTPUT_VALUE, content)
            state.tracer.end_span(span, status=status)
        except Exception as exc:
            _report("langchain.on_tool_end", exc)
        finally:
            end_unless_ended(state)

    def on_tool_error(
        self, error: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            self._fail(run_id, error)
        except Exception as exc:
            _report("langchain.on_tool_error", exc)

    # -- retrievers --------------------------------------------------------------------------
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None = None,
        query: Any = None,
        *,
        run_id: UUID | None = None,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = lx.run_name(serialized, kwargs.get("name"), default="Retriever")
            self._start(
                run_id, parent_run_id, name, SpanKind.RETRIEVAL, tags, metadata, {},
                attr.RETRIEVAL_QUERY, query,
            )  # fmt: skip
        except BudgetExceeded:
            raise
        except Exception as exc:
            _report("langchain.on_retriever_start", exc)

    def on_retriever_end(
        self, documents: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        state = None
        try:
            state = self._runs.pop(run_id, None) if run_id is not None else None
            if state is None:
                return
            span = state.span
            count = lx.document_count(documents)
            if count is not None:
                span.attributes[attr.RETRIEVAL_DOCUMENT_COUNT] = count
                scores = lx.top_scores(documents)
                if scores:
                    span.attributes[attr.RETRIEVAL_TOP_SCORES] = scores
            self._capture(state, attr.RETRIEVAL_DOCUMENTS, documents)
            state.tracer.end_span(span)
        except Exception as exc:
            _report("langchain.on_retriever_end", exc)
        finally:
            end_unless_ended(state)

    def on_retriever_error(
        self, error: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            self._fail(run_id, error)
        except Exception as exc:
            _report("langchain.on_retriever_error", exc)

    # -- events on an open run ---------------------------------------------------------------
    def on_retry(
        self, retry_state: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            attempt = getattr(retry_state, "attempt_number", None)
            self._event(run_id, "retry", {"attempt": attempt} if isinstance(attempt, int) else {})
        except Exception as exc:
            _report("langchain.on_retry", exc)

    def on_custom_event(
        self, name: Any = None, data: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            # The payload is the app's data (content): only the event's name is kept.
            self._event(run_id, str(name), {})
        except Exception as exc:
            _report("langchain.on_custom_event", exc)

    def on_agent_action(
        self, action: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            tool = getattr(action, "tool", None)
            self._event(run_id, "agent_action", {"tool": tool} if isinstance(tool, str) else {})
        except Exception as exc:
            _report("langchain.on_agent_action", exc)

    def on_agent_finish(
        self, finish: Any = None, *, run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            self._event(run_id, "agent_finish", {})
        except Exception as exc:
            _report("langchain.on_agent_finish", exc)

    def __repr__(self) -> str:
        target = "default stack" if self._tracer is None else self._tracer.service_name
        return f"AgentOSCallbackHandler({target}, open_runs={len(self._runs)})"
