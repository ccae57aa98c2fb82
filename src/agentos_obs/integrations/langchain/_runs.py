"""Per-run state of the LangChain handler: the ``run_id -> span`` table, span start and
end, and the sweep of runs LangChain never ends. Independent of LangChain's callback API
(the handler in :mod:`agentos_obs.integrations.langchain._handler` translates callbacks into these
calls), and imports nothing from LangChain.

The table is a plain dict used with single operations (get, set, pop, copy), each atomic
under the GIL, so callbacks from many threads need no lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import agentos_obs._internal.guard as _guard
import agentos_obs.attributes as attr
import agentos_obs.integrations.langchain._extract as lx
from agentos_obs.errors import ConfigurationError
from agentos_obs.integrations._content import to_text
from agentos_obs.integrations._current import FrameworkMark, mark_framework_span
from agentos_obs.integrations._estimation import has_exact_usage, record_estimate
from agentos_obs.pricing._usage import Usage, usage_from_langchain
from agentos_obs.tracing._spans import Span, SpanKind, SpanStatus

if TYPE_CHECKING:
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["RunRecorder", "end_unless_ended", "set_process_wide"]

_FRAMEWORK = "langchain"
_report = _guard.report
_LLM = SpanKind.LLM
_perf = time.perf_counter
_get_default_tracer: Callable[[], Tracer] | None = None
# Ends that mean "stopped from outside" (the tracer records them as CANCELLED, not ERROR).
_CANCELLATIONS = (GeneratorExit, asyncio.CancelledError)
# The recorder global mode installed last (None before that). Any other recorder leaves a
# run alone when this one traces the run's parent to the same tracer: see ``_start``.
_process_wide: RunRecorder | None = None


def set_process_wide(recorder: RunRecorder | None) -> None:
    """Make ``recorder`` the one global mode installed (called by global mode only)."""
    global _process_wide
    _process_wide = recorder


def _default_tracer() -> Tracer:
    # Imported on first use: the default stack pulls in metrics, logs and the dashboard,
    # which a handler given its own tracer never needs.
    global _get_default_tracer
    if _get_default_tracer is None:
        from agentos_obs.stack import get_tracer

        _get_default_tracer = get_tracer
    return _get_default_tracer()


class _Run:
    """What the handler keeps per open run (freed when the run ends)."""

    __slots__ = (
        "chunk_usages",
        "first_delta",
        "mark",
        "markers",
        "request",
        "span",
        "streamed",
        "tracer",
    )

    def __init__(self, span: Span, tracer: Tracer, markers: frozenset[SpanKind]) -> None:
        self.span = span
        self.tracer = tracer
        self.markers = markers  # agentos_kind markers seen on this run (children inherit them)
        self.streamed = False
        self.first_delta = False  # a chunk with content or a tool call was seen
        # Raw usage_metadata of streamed chunks, read only if the end has none (or never comes).
        self.chunk_usages: list[Any] | None = None
        # A model run's (messages or prompts, tool definitions): references, kept only to
        # estimate the usage of a call that ends without any; never recorded.
        self.request: tuple[Any, Any] | None = None
        self.mark: FrameworkMark | None = None  # this span, left in the caller's context

    def forget(self) -> None:
        """The run ended: drop what it held for the SDK layer and the estimate."""
        self.request = None
        if self.mark is not None:
            self.mark.release()

    def streamed_usage(self) -> Usage | None:
        total: Usage | None = None
        for raw in self.chunk_usages or ():
            usage = usage_from_langchain(raw)
            if usage is not None:
                total = usage if total is None else total + usage
        return total


class RunRecorder:
    """Spans for LangChain runs, keyed by run id; parents found by ``parent_run_id``."""

    def __init__(
        self,
        tracer: Tracer | None,
        stale_run_timeout_s: float,
        sweep_interval_s: float,
    ) -> None:
        from agentos_obs.tracing._tracer import Tracer

        if tracer is not None and not isinstance(tracer, Tracer):
            raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
        for label, value in (
            ("stale_run_timeout_s", stale_run_timeout_s),
            ("sweep_interval_s", sweep_interval_s),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"{label} must be a positive number, got {value!r}")
        self._tracer = tracer
        self.stale_run_timeout_s = float(stale_run_timeout_s)
        self.sweep_interval_s = float(sweep_interval_s)
        self._runs: dict[Any, _Run] = {}
        self._next_sweep = _perf() + self.sweep_interval_s
        self._enabled = True  # False once uninstrumented: new root runs are not traced

    # -- public ------------------------------------------------------------------
    @property
    def tracer(self) -> Tracer:
        """The tracer spans go to (the default stack's when none was given)."""
        return self._tracer if self._tracer is not None else _default_tracer()

    def set_tracer(self, tracer: Tracer) -> None:
        """Send the traces of root runs started from now on to ``tracer`` (runs already
        open stay with the tracer they started on)."""
        from agentos_obs.tracing._tracer import Tracer

        if not isinstance(tracer, Tracer):
            raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
        self._tracer = tracer

    def stop_new_runs(self) -> None:
        """Trace no new root run from now on; runs already open (and the runs they start)
        finish normally. Used when global mode is undone: managers LangChain built while it
        was on still hold this handler."""
        self._enabled = False

    @property
    def open_run_count(self) -> int:
        """Runs started and not yet ended (0 when idle: nothing is kept after a run)."""
        return len(self._runs)

    def sweep(self, max_age_s: float | None = None) -> int:
        """End runs open for longer than ``max_age_s`` (default ``stale_run_timeout_s``) as
        TIMEOUT and forget them. Returns how many were ended."""
        limit_ms = (self.stale_run_timeout_s if max_age_s is None else max_age_s) * 1000.0
        stale = [
            (run_id, state)
            for run_id, state in self._runs.copy().items()
            if state.span.ended or state.span.duration_ms >= limit_ms
        ]
        # Youngest first: children end before the parents they belong to.
        stale.sort(key=lambda item: item[1].span.duration_ms)
        ended = 0
        for run_id, state in stale:
            if self._runs.pop(run_id, None) is not state:
                continue
            state.forget()
            try:
                state.span.attributes["agentos.swept"] = True
                state.tracer.end_span(state.span, status=SpanStatus.TIMEOUT)
                ended += 1
            except Exception as exc:
                _report("langchain.sweep", exc)
        return ended

    def _maybe_sweep(self) -> None:
        now = _perf()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_interval_s
            if self._runs:
                self.sweep()

    # -- shared start / end ----------------------------------------------------------------
    def _start(
        self,
        run_id: Any,
        parent_run_id: Any,
        name: str,
        kind: SpanKind | None,
        tags: Any,
        metadata: Any,
        attributes: dict[str, Any],
        content_key: str | None = None,
        content: Any = None,
    ) -> _Run | None:
        """Open a span for ``run_id``. ``kind=None``: a chain, kind read from its metadata."""
        runs = self._runs
        if run_id is None or run_id in runs:
            return None  # no id to end it by, or a duplicate start: keep the first
        parent = runs.get(parent_run_id) if parent_run_id is not None else None
        if parent is None:
            if not self._enabled:
                return None  # uninstrumented: runs already open finish, new ones are not traced
            if parent_run_id is not None and self._parent_traced_globally(parent_run_id):
                return None
        tracer = parent.tracer if parent is not None else self.tracer

        has_metadata = isinstance(metadata, dict) and bool(metadata)
        # Kind markers, from tags ("agentos_kind:memory") and metadata ({"agentos_kind": …}).
        kept_tags, markers = lx.scan_tags(tags) if tags else (None, lx.NO_MARKERS)
        if has_metadata and "agentos_kind" in metadata:
            marked = lx.metadata_marker(metadata)
            if marked is not None:
                markers = markers | {marked}
        if kind is not _LLM:
            # Markers are inherited by every descendant: one the parent has is the parent's.
            marker = None
            if markers:
                inherited = parent.markers if parent is not None else lx.NO_MARKERS
                marker = lx.own_marker(markers, inherited)
            if marker is not None:
                kind = marker
            elif kind is None:
                kind = lx.chain_kind(name, metadata)

        attributes[attr.FRAMEWORK] = _FRAMEWORK
        attributes[attr.RUN_ID] = str(run_id)
        if kept_tags:
            attributes[attr.TAGS] = kept_tags
        user_id = session_id = None
        if has_metadata:
            node = metadata.get("langgraph_node")
            if node is not None:
                attributes[attr.LANGGRAPH_NODE] = str(node)
                step = metadata.get("langgraph_step")
                if isinstance(step, int):
                    attributes[attr.LANGGRAPH_STEP] = step
            if parent is None:
                user_id = metadata.get("user_id")
                session_id = metadata.get("session_id")
                if session_id is None:
                    # LangGraph's conversation key (`config["configurable"]["thread_id"]`,
                    # which LangChain copies into the run's metadata).
                    session_id = metadata.get("thread_id")
                if user_id is not None:
                    attributes[attr.USER_ID] = user_id = str(user_id)
                if session_id is not None:
                    attributes[attr.SESSION_ID] = session_id = str(session_id)
        config = tracer.config
        if content_key is not None and content is not None and config.capture_content:
            attributes[content_key] = to_text(content, config.max_content_length)

        if parent is not None:
            span = tracer.begin_span(name, kind, parent=parent.span, attributes=attributes)
        else:
            self._maybe_sweep()
            span = tracer.begin_span(name, kind, use_context=True, attributes=attributes)
            trace = span.trace
            if trace is not None:
                if user_id is not None:
                    trace.attributes.setdefault(attr.USER_ID, user_id)
                if session_id is not None:
                    trace.attributes.setdefault(attr.SESSION_ID, session_id)
        state = _Run(span, tracer, markers)
        # Seen by the provider-SDK layer when this callback runs in the caller's context
        # (inline handlers); a harmless no-op in a thread-pool copy of it.
        state.mark = mark_framework_span(span, parent.mark if parent is not None else None)
        runs[run_id] = state
        return state

    def _parent_traced_globally(self, parent_run_id: Any) -> bool:
        """True when global mode's recorder traces the parent to the tracer this recorder
        would use. Then this run (and each of its descendants, whose parents this recorder
        never knew) is left to it: a handler the app passes to an inner call of a run that
        global mode already traces would otherwise record that call a second time, as a new
        trace. Only reached for a run whose parent this recorder does not know."""
        owner = _process_wide
        if owner is None or owner is self:
            return False
        traced = owner._runs.get(parent_run_id)
        return traced is not None and traced.tracer is self.tracer

    def _fail(self, run_id: Any, error: Any, partial: Any = None) -> None:
        """End a run that failed. ``partial``: what a model streamed before failing."""
        state = self._runs.pop(run_id, None) if run_id is not None else None
        if state is None:
            return
        if isinstance(error, _CANCELLATIONS):
            # A cancelled task or a closed async stream: LangChain does not always report
            # the runs below (a cancelled model call never gets on_llm_error), so they are
            # cancelled with it; a late event for them finds nothing and changes nothing.
            self._cancel_descendants(state.span, error)
        self._end_failed(state, error, partial)

    def _end_failed(self, state: _Run, error: Any, partial: Any = None) -> None:
        span = state.span
        request = state.request
        state.forget()
        if state.chunk_usages:
            # Tokens streamed before the failure were produced (and billed) all the same.
            usage = state.streamed_usage()
            if usage is not None:
                self._record_usage(state, usage, None)
        elif state.streamed and partial is not None and not span.usage_recorded:
            # A stream that broke off without usage: the prompt and what came back were
            # processed all the same. (A call that failed before streaming is left without
            # usage: providers do not bill a request they rejected.)
            self._estimate(state, partial, request)
        if not isinstance(error, BaseException):
            span.attributes[attr.ERROR_MESSAGE] = "unknown error"
            state.tracer.end_span(span, status=SpanStatus.ERROR)
        elif lx.is_interrupt(error):
            # LangGraph pausing for a human or handing control to a parent: not a failure.
            kind = type(error).__name__
            span.attributes["langgraph.interrupt"] = kind
            span.add_event("langgraph.interrupt", {"type": kind})
            graph = span.parent.ancestor(SpanKind.AGENT) if span.parent is not None else None
            if graph is not None and kind != "ParentCommand":
                graph.attributes["langgraph.interrupted"] = True
            state.tracer.end_span(span)
        else:
            state.tracer.end_span(span, error=error)

    def _cancel_descendants(self, span: Span, error: BaseException) -> None:
        below: list[tuple[int, Any, _Run]] = []
        for run_id, state in self._runs.copy().items():
            depth, node = 0, state.span.parent
            while node is not None and node is not span:
                depth, node = depth + 1, node.parent
            if node is span:
                below.append((depth, run_id, state))
        below.sort(key=lambda item: item[0], reverse=True)  # innermost first
        for _, run_id, state in below:
            if self._runs.pop(run_id, None) is state:
                self._end_failed(state, error)

    def _capture(self, state: _Run, key: str, value: Any) -> None:
        config = state.tracer.config
        if config.capture_content and value is not None:
            state.span.attributes[key] = to_text(value, config.max_content_length)

    def _record_usage(self, state: _Run, usage: Usage, model: str | None) -> None:
        span = state.span
        if has_exact_usage(span):
            # The SDK layer already put the provider's own counts on this span: kept (the
            # framework's are the same numbers; recording them again would change nothing
            # or, for a framework that sums differently, count twice).
            if model and not span.model_name:
                span.model_name = model
            return
        state.tracer.record_usage_from(
            span, usage, model=model or span.model_name or None, provider=span.provider
        )

    def _estimate(self, state: _Run, answer: Any, request: tuple[Any, Any] | None = None) -> None:
        """Tokens of a call that ended without usage, estimated from its text."""
        request = request if request is not None else state.request
        if request is None:
            return
        inputs, tools = request
        span = state.span
        messages = prompt = None
        if isinstance(inputs, str):
            prompt = inputs
        else:
            messages = inputs
        record_estimate(
            state.tracer,
            span,
            model=span.model_name or None,
            provider=span.provider,
            messages=messages,
            prompt=prompt,
            tools=tools,
            answer=answer,
        )

    # -- events on an open run ---------------------------------------------------------------
    def _event(self, run_id: Any, name: str, attributes: dict[str, Any]) -> None:
        state = self._runs.get(run_id) if run_id is not None else None
        if state is not None:
            state.span.add_event(name, attributes)


def end_unless_ended(state: _Run | None) -> None:
    """End a run's span that reading its end payload failed to end (a payload that raised):
    it was already forgotten by the handler, so nothing else would ever end it."""
    if state is None:
        return
    state.forget()
    if state.span.ended:
        return
    try:
        state.span.attributes["agentos.end_payload_unreadable"] = True
        state.tracer.end_span(state.span)
    except Exception as exc:
        _report("langchain.end", exc)
