"""Content capture shared by the integrations.

Prompts, messages, tool inputs/outputs and documents are recorded only when the tracer's
``config.capture_content`` is on (default off;
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` honoured), truncated to
``config.max_content_length``. Secrets (api keys, tokens, authorization headers,
passwords, credential-shaped text) are never recorded, whatever the setting: captured
content goes through the one serialiser (:mod:`agentos_obs._internal.jsonsafe`) with the one
redactor (:mod:`agentos_obs._internal.redact`), before it is truncated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

from agentos_obs._internal.jsonsafe import dumps, safe_text
from agentos_obs._internal.redact import REDACTED, is_secret_key, redact, scrub
from agentos_obs.integrations._messages import tool_call_id_of, tool_calls_of

# REDACTED, is_secret_key and redact are the redactor's own, re-exported for the
# integrations that import them from here.
__all__ = ["REDACTED", "is_secret_key", "redact", "to_text", "truncate"]

_MAX_DEPTH = 8
# Values the serialiser renders by their value (never a repr that might hold a key).
_BY_VALUE = (datetime, date, time, timedelta, Decimal, UUID, PurePath, Enum, bytes, BaseException)


def truncate(text: str, max_length: int) -> str:
    if max_length <= 0:
        return ""
    if len(text) <= max_length:
        return text
    return text[:max_length] + f"…[{len(text) - max_length} more chars]"


def to_text(value: Any, max_length: int) -> str:
    """Captured content as text: strings as they are, the rest as JSON; redacted, truncated."""
    if isinstance(value, str):
        text = scrub(safe_text(str(value)))
    else:
        text = dumps(_content(value), redact=True)
    return truncate(text, max_length)


def _content(value: Any, depth: int = 0) -> Any:
    """``value`` with framework objects replaced by what they say: a message by its role,
    content and tool calls, a document by its text and metadata, anything unknown by its
    type name (never its repr: a client's repr may hold its key). The serialiser does the
    rest (JSON safety, redaction by key and by shape)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return REDACTED
    if depth > _MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {k: _content(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_content(v, depth + 1) for v in value]
    if isinstance(value, _BY_VALUE):
        return value
    # LangChain and LlamaIndex messages and documents: their content and role, the tool
    # calls an assistant turn makes and the call a tool message answers; not internals.
    content = getattr(value, "content", None)
    if content is not None:
        role = getattr(value, "type", None) or getattr(value, "role", None)
        item: dict[str, Any] = {"content": _content(content, depth + 1)}
        if role is not None:
            item["role"] = str(getattr(role, "value", role))
        tool_calls = tool_calls_of(value)
        if tool_calls:
            item["tool_calls"] = _content(tool_calls, depth + 1)
        call_id = tool_call_id_of(value)
        if call_id is not None:
            item["tool_call_id"] = call_id
        return item
    page_content = getattr(value, "page_content", None)
    if page_content is not None:
        return {
            "page_content": page_content,
            "metadata": _content(getattr(value, "metadata", {}), depth + 1),
        }
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    return f"<{type(value).__name__}>"
