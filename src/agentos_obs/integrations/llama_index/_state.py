"""What the LlamaIndex integration keeps per open span, shared by the bridge (which opens
and ends spans) and the event reactions (which fill them in). Imports neither of them, so
the dependency runs one way: ``_bridge`` -> ``_events`` -> ``_state``.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from agentos_obs.tracing._spans import Span, SpanKind

if TYPE_CHECKING:
    from agentos_obs.integrations._current import FrameworkMark
    from agentos_obs.tracing._tracer import Tracer

__all__ = [
    "EMBEDDING_INPUT_COUNT",
    "EMBEDDING_MODEL",
    "OPEN",
    "PARKED_CHILDREN",
    "PARKED_EVENT",
    "PARKED_WRAPPER",
    "SpanState",
]

# How a span's life ends (see the bridge's module docs): open until its method returns, or
# parked until its stream's end event, its wrapped stream's end, or its last child's end.
OPEN = 0
PARKED_EVENT = 1
PARKED_WRAPPER = 2
PARKED_CHILDREN = 3

EMBEDDING_MODEL = "embedding.model_name"
EMBEDDING_INPUT_COUNT = "embedding.input_count"

_perf_ns = time.perf_counter_ns


class SpanState:
    """What we remember about one LlamaIndex span until it ends (plain slots: cheap)."""

    __slots__ = (
        "finished",
        "first_token_ns",
        "kind",
        "li_id",
        "llm_call",
        "mark",
        "mode",
        "open_children",
        "parent",
        "provider",
        "ref",
        "request",
        "response_seen",
        "span",
        "start_ns",
        "tracer",
    )

    def __init__(
        self, li_id: str, span: Span, tracer: Tracer, parent: SpanState | None, kind: SpanKind
    ) -> None:
        self.li_id = li_id
        self.span = span
        self.tracer = tracer
        self.parent = parent
        self.kind = kind
        self.provider: str | None = None
        self.start_ns = _perf_ns()
        self.mode = OPEN
        self.open_children = 0
        self.llm_call = False  # an LLMChat/CompletionStartEvent was seen: an end event follows
        self.response_seen = False
        self.first_token_ns = 0
        self.finished = False
        self.ref: weakref.ref[Any] | None = None  # the parked stream, to notice it is dropped
        # An LLM call's (messages or prompt, tool definitions), held by reference only to
        # estimate the usage of a call that ends without any; never recorded.
        self.request: tuple[Any, Any] | None = None
        self.mark: FrameworkMark | None = None  # this span, left in the caller's context

    def forget(self) -> None:
        """The span ended: drop what it held for the SDK layer and the estimate."""
        self.request = None
        if self.mark is not None:
            self.mark.release()
