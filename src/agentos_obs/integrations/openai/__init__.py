"""The thin provider-SDK layer for ``openai`` (extra ``openai``): exact usage from the SDK's
own response objects, for the calls frameworks do not report (LangChain embeddings emit no
callbacks; LlamaIndex's ``OpenAIEmbedding`` discards the usage) and for apps that call the
SDK directly.

::

    from agentos_obs.integrations import openai as obs_openai

    obs_openai.instrument()          # tracer=None: the default stack
    client = openai.OpenAI()
    client.embeddings.create(model="text-embedding-3-small", input=["..."])   # traced

Wrapped (on the SDK classes, so every client, sync and async, including ``AzureOpenAI``):
``chat.completions.create`` / ``parse``, ``embeddings.create``, ``responses.create``. Inside
a LangChain or LlamaIndex model call the usage goes on that call's span, without being
counted twice; elsewhere each request records its own LLM or EMBEDDING span, which starts
before the request is sent (a budget in raise mode refuses it there). Calls whose response
has no usage (a stream that did not ask for it) are estimated; see
:mod:`agentos_obs.integrations._sdk` for the details, and
:func:`agentos_obs.integrations.set_usage_options` for ``stream_usage``.

Call :func:`instrument` before the first request of a client: a client's
``with_raw_response`` helper, once used, keeps the method it found.
"""

from __future__ import annotations

try:
    import openai as _openai  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError(
        "agentos_obs.integrations.openai needs the openai SDK: pip install 'agentos-obs[openai]'"
    ) from exc

from agentos_obs.integrations._sdk import SdkLayer
from agentos_obs.integrations.openai._patch import LAYER, patch_all
from agentos_obs.tracing._tracer import Tracer

__all__ = ["instrument", "instrumented", "layer", "uninstrument"]


def instrument(tracer: Tracer | None = None) -> None:
    """Record every ``openai`` SDK request from now on. Idempotent; a second call with a
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
