"""Content capture and secret redaction shared by the integrations.

Prompts, messages, tool inputs/outputs and documents are recorded only when the tracer's
``config.capture_content`` is on (default off;
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` honoured), truncated to
``config.max_content_length``. Secrets in parameters (api keys, tokens, authorization
headers, passwords) are never recorded, whatever the setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from agentos_obs._internal.redact import SECRET_VALUE as _SECRET_VALUE
from agentos_obs.integrations._messages import tool_call_id_of, tool_calls_of

__all__ = ["REDACTED", "is_secret_key", "redact", "to_text", "truncate"]

REDACTED = "[REDACTED]"

# Key names that carry credentials. Matched on the normalised key (lower case, no -/_).
_SECRET_KEY = re.compile(
    r"(apikey|api_key|secret|password|passwd|token|authorization|auth|credential|"
    r"privatekey|accesskey|sessionkey|cookie|bearer|signature)",
)
# Keys that contain "token" but are counts or settings, not credentials.
_NOT_SECRET = frozenset(
    {
        "maxtokens",
        "maxnewtokens",
        "maxoutputtokens",
        "maxcompletiontokens",
        "maxtokenstosample",
        "numtokens",
        "tokencount",
        "totaltokens",
        "inputtokens",
        "outputtokens",
        "prompttokens",
        "completiontokens",
        "tokenusage",
        "logprobs",
        "toplogprobs",
        "stoptokens",
        "tokenizer",
        "authormode",
    }
)
_MAX_DEPTH = 8


def is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    norm = key.lower().replace("-", "").replace("_", "")
    if norm in _NOT_SECRET:
        return False
    return bool(_SECRET_KEY.search(key.lower()) or _SECRET_KEY.search(norm))


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` (mappings, sequences, scalars) with credentials replaced.

    Keys that name a secret have their value replaced; string values that look like a
    credential are replaced wherever they are. Pydantic ``SecretStr`` is always redacted.
    Unknown objects become their type name, never their repr (a repr may hold a key).
    """
    if _depth > _MAX_DEPTH:
        return "…"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return REDACTED
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            out[key] = REDACTED if is_secret_key(key) else redact(v, _depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v, _depth + 1) for v in value]
    return f"<{type(value).__name__}>"


def truncate(text: str, max_length: int) -> str:
    if max_length <= 0:
        return ""
    if len(text) <= max_length:
        return text
    return text[:max_length] + f"…[{len(text) - max_length} more chars]"


def to_text(value: Any, max_length: int) -> str:
    """Captured content as text: strings as they are, the rest as JSON; redacted, truncated."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(_jsonable(value), ensure_ascii=False, default=str)
    return truncate(_SECRET_VALUE.sub(REDACTED, text), max_length)


def _jsonable(value: Any, _depth: int = 0) -> Any:
    if _depth > _MAX_DEPTH:
        return "…"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return REDACTED
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if is_secret_key(k) else _jsonable(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, _depth + 1) for v in value]
    # LangChain and LlamaIndex messages and documents: their content and role, the tool
    # calls an assistant turn makes and the call a tool message answers; not internals.
    content = getattr(value, "content", None)
    if content is not None:
        role = getattr(value, "type", None) or getattr(value, "role", None)
        item: dict[str, Any] = {"content": _jsonable(content, _depth + 1)}
        if role is not None:
            item["role"] = str(getattr(role, "value", role))
        tool_calls = tool_calls_of(value)
        if tool_calls:
            item["tool_calls"] = _jsonable(tool_calls, _depth + 1)
        call_id = tool_call_id_of(value)
        if call_id is not None:
            item["tool_call_id"] = call_id
        return item
    page_content = getattr(value, "page_content", None)
    if page_content is not None:
        return {
            "page_content": page_content,
            "metadata": _jsonable(getattr(value, "metadata", {}), _depth + 1),
        }
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    return f"<{type(value).__name__}>"
