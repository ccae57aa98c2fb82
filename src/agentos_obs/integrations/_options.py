"""Usage settings shared by the integrations: estimation of missing usage, and asking
OpenAI-compatible streams for theirs.

``estimate`` (default on; ``AGENTOS_OBS_ESTIMATE_USAGE=0`` turns it off): a model call that
ends without usage from its provider gets tokens estimated offline from its request and
response text (see :mod:`agentos_obs.pricing._estimate`), marked ``llm.usage.estimated``.
Off, such a call is still counted, as a call without usage.

``stream_usage`` (default off; ``AGENTOS_OBS_STREAM_USAGE=1`` turns it on): the ``openai``
SDK layer (:mod:`agentos_obs.integrations.openai`) adds ``stream_options={"include_usage":
true}`` to a streaming chat completion made by LangChain or LlamaIndex that did not ask for
usage itself, so the provider's exact count replaces an estimate. What it changes for the
app: the stream ends with one more chunk that has an empty ``choices`` list and the usage
(LangChain and LlamaIndex read it; their output is unchanged), and every other chunk carries
``usage: null``. Requests made by the app's own code are left as they are: a loop that reads
``chunk.choices[0]`` would fail on that last chunk. A server that rejects ``stream_options``
(some older OpenAI-compatible servers do) answers 400: leave the setting off for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

__all__ = ["UsageOptions", "set_usage_options", "usage_options"]


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class UsageOptions:
    estimate: bool = True
    stream_usage: bool = False

    @classmethod
    def from_env(cls) -> UsageOptions:
        return cls(
            estimate=_flag("AGENTOS_OBS_ESTIMATE_USAGE", True),
            stream_usage=_flag("AGENTOS_OBS_STREAM_USAGE", False),
        )


_options = UsageOptions.from_env()


def usage_options() -> UsageOptions:
    return _options


def set_usage_options(
    *, estimate: bool | None = None, stream_usage: bool | None = None
) -> UsageOptions:
    """Change the settings process-wide; returns the previous ones (to restore them)."""
    global _options
    previous = _options
    changes: dict[str, bool] = {}
    if estimate is not None:
        changes["estimate"] = bool(estimate)
    if stream_usage is not None:
        changes["stream_usage"] = bool(stream_usage)
    _options = replace(previous, **changes)
    return previous
