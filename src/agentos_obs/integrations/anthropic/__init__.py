"""The thin provider-SDK layer for ``anthropic`` (extra ``anthropic``): exact usage from the
SDK's own ``Message`` objects and stream events, cache reads and writes included.

::

    from agentos_obs.integrations import anthropic as obs_anthropic

    obs_anthropic.instrument()       # tracer=None: the default stack

Wrapped (sync and async, ``messages`` and ``beta.messages``): ``create`` (JSON, ``stream=True``
and through ``with_raw_response``) and the ``stream()`` helper. Inside a LangChain or
LlamaIndex model call the usage goes on that call's span without being counted twice;
elsewhere each request records its own LLM span, started before the request is sent. See
:mod:`agentos_obs.integrations._sdk`. Call :func:`instrument` before a client's first request.
"""

from __future__ import annotations

try:
    import anthropic as _anthropic  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError(
        "agentos_obs.integrations.anthropic needs the anthropic SDK: "
        "pip install 'agentos-obs[anthropic]'"
    ) from exc

from agentos_obs.integrations._sdk import SdkLayer
from agentos_obs.integrations.anthropic._patch import LAYER, patch_all
from agentos_obs.tracing._tracer import Tracer

__all__ = ["instrument", "instrumented", "layer", "uninstrument"]


def instrument(tracer: Tracer | None = None) -> None:
    """Record every ``anthropic`` SDK request from now on. Idempotent; a second call with a
    tracer switches to it."""
    if tracer is not None or not LAYER.active:
        LAYER.set_tracer(tracer)
    patch_all()
    LAYER.active = True


def uninstrument() -> None:
    """Restore the SDK's methods (a wrapper some client kept passes calls straight on)."""
    LAYER.active = False
    LAYER.unpatch_all()


def instrumented() -> bool:
    return LAYER.active


def layer() -> SdkLayer:
    """The layer's state (tracer, what is patched), for tests and health checks."""
    return LAYER
