"""Token counts estimated offline, for model calls whose provider reported no usage.

Exact provider usage always wins: the integrations call :func:`estimate_usage` only for a
call that ended without any, and mark the span with ``llm.usage.estimated`` so every sink
shows the number as an estimate. The text is counted, never stored: estimation works with
content capture off.

How tokens are counted
----------------------
* OpenAI model families, with the ``tokenizers`` extra (``pip install
  'agentos-obs[tokenizers]'``, the ``bpe-openai`` package, whose o200k and cl100k tables are
  inside the wheel: nothing is downloaded): the family's own tokenizer, plus the chat format's
  framing as OpenAI documents it (3 tokens per message, 1 per ``name``, 3 to prime the reply;
  tool definitions and tool calls as the OpenAI cookbook counts them). Measured against the
  recorded calls in ``tests/cassettes``: within ``TOKENIZER_TOLERANCE``.
* Every other model (and OpenAI models without the extra): ``ceil(characters / 4)`` per text
  plus the same framing; Claude models ``ceil(characters / 3.5)``, plus the tool-use system
  prompt Anthropic documents (346 tokens when tools are offered) and 30 tokens per tool call
  (measured on the recorded Anthropic responses). A documented approximation, within
  ``APPROXIMATION_TOLERANCE`` on English text; code, non-Latin scripts and tool schemas that
  a provider renders verbosely stray further.

Cost, on the caller's thread where the call ends (``benchmarks/bench_estimate.py``): about
30 µs per 1,000 characters with the tokenizer, a few µs with the approximation. A text longer
than ``MAX_COUNTED_CHARS`` is counted on its first ``MAX_COUNTED_CHARS`` characters and
scaled (within 1 % on prose), so no text costs more than about 0.5 ms.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentos_obs.pricing._usage import Usage

__all__ = [
    "APPROXIMATION",
    "APPROXIMATION_TOLERANCE",
    "CLAUDE_APPROXIMATION",
    "MAX_COUNTED_CHARS",
    "TOKENIZER_TOLERANCE",
    "Estimate",
    "Tolerance",
    "count_tokens",
    "encoding_for",
    "estimate_usage",
    "tokenizer_available",
]

APPROXIMATION = "chars/4"
CLAUDE_APPROXIMATION = "chars/3.5"
MAX_COUNTED_CHARS = 16_000


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far an estimate may be from the provider's count: ``relative`` of it, or
    ``absolute`` tokens, whichever is larger (short calls are dominated by framing)."""

    relative: float
    absolute: int

    def allows(self, estimated: int, actual: int) -> bool:
        return abs(estimated - actual) <= max(self.absolute, self.relative * actual)


TOKENIZER_TOLERANCE = Tolerance(relative=0.10, absolute=6)
APPROXIMATION_TOLERANCE = Tolerance(relative=0.40, absolute=8)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Estimated usage of one call and how it was counted (``o200k_base``, ``cl100k_base``
    or :data:`APPROXIMATION`)."""

    usage: Usage
    method: str

    @property
    def exact_tokenizer(self) -> bool:
        """True when counted with the model family's own tokenizer."""
        return not self.method.startswith("chars/")

    @property
    def tolerance(self) -> Tolerance:
        return TOKENIZER_TOLERANCE if self.exact_tokenizer else APPROXIMATION_TOLERANCE


# -- model families -------------------------------------------------------------------------

# Prefixes of model ids (after any "provider/" part), longest first within each family.
_O200K = (
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
    "codex",
    "computer-use",
    "omni-moderation",
)
_CL100K = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")


def encoding_for(model: str | None) -> str | None:
    """The tokenizer table of an OpenAI model family (``o200k_base`` / ``cl100k_base``), or
    None for a model whose tokenizer is not published."""
    if not model:
        return None
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:]
    if name.startswith(_O200K):
        return "o200k_base"
    if name.startswith(_CL100K):
        return "cl100k_base"
    return None


_counters: dict[str, Callable[[str], int] | None] = {}
_load_lock = threading.Lock()


def _tokenizer_module() -> Any:
    """bpe-openai's compiled tokenizer module, loaded on its own.

    Importing the ``bpe_openai`` package builds Python rank tables for its tiktoken-style
    API at import time (seconds, ~100 MB), which counting never uses; the compiled module
    carries its own tables and loads in milliseconds. Falls back to the normal import.
    """
    import importlib.machinery
    import importlib.util
    import sys
    from pathlib import Path

    loaded = sys.modules.get("bpe_openai._bindings")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_bindings{suffix}"
            if path.is_file():
                ext = importlib.util.spec_from_file_location("bpe_openai._bindings", path)
                if ext is not None and ext.loader is not None:
                    module = importlib.util.module_from_spec(ext)
                    ext.loader.exec_module(module)
                    return module
    return importlib.import_module("bpe_openai._bindings")


def _counter(encoding: str) -> Callable[[str], int] | None:
    """The ``count`` function of a bpe-openai tokenizer, loaded once (o200k: ~0.2 s and
    ~60 MB, on the first estimate; :func:`tokenizer_available` loads it ahead of time)."""
    found = _counters.get(encoding, _MISSING)
    if found is not _MISSING:
        return found  # type: ignore[no-any-return]
    with _load_lock:
        if encoding in _counters:
            return _counters[encoding]
        counter: Callable[[str], int] | None
        try:
            module = _tokenizer_module()
            counter = None if module is None else module.tokenizer_for_encoding(encoding).count
        except Exception:  # the extra is not installed, or its build lacks this table
            counter = None
        _counters[encoding] = counter
        return counter


_MISSING: Any = object()


def tokenizer_available(model: str | None) -> bool:
    """True when ``model``'s tokens are counted with its own tokenizer (else approximated).
    Loads the tokenizer: call it at start-up to keep the load off the first request."""
    encoding = encoding_for(model)
    return encoding is not None and _counter(encoding) is not None


def _approximate(text: str) -> int:
    return math.ceil(len(text) / 4)


def _approximate_claude(text: str) -> int:
    return math.ceil(len(text) / 3.5)


def _is_claude(model: str | None) -> bool:
    return bool(model) and "claude" in model.lower()  # type: ignore[union-attr]


def _method(model: str | None) -> tuple[str, Callable[[str], int]]:
    encoding = encoding_for(model)
    if encoding is not None:
        counter = _counter(encoding)
        if counter is not None:
            return encoding, counter
    if _is_claude(model):
        return CLAUDE_APPROXIMATION, _approximate_claude
    return APPROXIMATION, _approximate


def _count_with(counter: Callable[[str], int], text: str) -> int:
    if not text:
        return 0
    if len(text) <= MAX_COUNTED_CHARS:
        return counter(text)
    head = counter(text[:MAX_COUNTED_CHARS])
    return math.ceil(head * len(text) / MAX_COUNTED_CHARS)


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens of ``text`` for ``model`` (its tokenizer when available, else chars/4)."""
    return _count_with(_method(model)[1], text)


# -- chat format ------------------------------------------------------------------------------

_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
# Tool definitions and calls, as the OpenAI cookbook counts them for the o200k models (the
# cl100k models spend 3 more tokens per function).
_FUNC_INIT = {"o200k_base": 7, "cl100k_base": 10}
_PROP_INIT = 3
_PROP_KEY = 3
_ENUM_INIT = -3
_ENUM_ITEM = 3
_FUNC_END = 12
# A tool call costs its name and arguments plus framing: 7 tokens for a single call; calls
# made in parallel are wrapped (``multi_tool_use.parallel``): 10 tokens, and 9 per call.
_SINGLE_CALL = 7
_PARALLEL_WRAPPER = 10
_PARALLEL_CALL = 9
# Claude: the tool-use system prompt Anthropic documents for its current models, and the
# framing of a tool_use block (measured on the recorded responses in tests/cassettes).
_CLAUDE_TOOL_PROMPT = 346
_CLAUDE_PER_CALL = 30


def _text(value: Any) -> str:
    """The countable text of a message content: a string, or the text of its parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("text", "content", "input", "arguments"):
            inner = value.get(key)
            if isinstance(inner, str):
                return inner
            if inner is not None and key in ("input", "arguments"):
                return _json(inner)
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join(t for t in (_text(v) for v in value) if t)
    return str(value)


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


def _tool_calls_tokens(
    calls: Iterable[Mapping[str, Any]], method: str, count: Callable[[str], int]
) -> int:
    listed = list(calls)
    if not listed:
        return 0
    if method == CLAUDE_APPROXIMATION:
        framing = _CLAUDE_PER_CALL * len(listed)
    elif len(listed) == 1:
        framing = _SINGLE_CALL
    else:
        framing = _PARALLEL_WRAPPER + _PARALLEL_CALL * len(listed)
    total = framing
    for call in listed:
        total += _count_with(count, str(call.get("name") or ""))
        total += _count_with(count, _json(call.get("arguments") or ""))
    return total


def _message_tokens(message: Mapping[str, Any], method: str, count: Callable[[str], int]) -> int:
    tokens = _PER_MESSAGE
    tokens += _count_with(count, str(message.get("role") or ""))
    tokens += _count_with(count, _text(message.get("content")))
    name = message.get("name")
    if isinstance(name, str) and name:
        tokens += _PER_NAME + _count_with(count, name)
    calls = message.get("tool_calls")
    if calls:
        tokens += _tool_calls_tokens(calls, method, count)
    # A tool message's call id is not shown to the model: not counted.
    return tokens


def _tools_tokens(
    tools: Sequence[Mapping[str, Any]], method: str, count: Callable[[str], int]
) -> int:
    if not tools:
        return 0
    if method == CLAUDE_APPROXIMATION:
        return _CLAUDE_TOOL_PROMPT + _count_with(count, _json(list(tools)))
    total = 0
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        inner = tool.get("function")
        function: Mapping[str, Any] = inner if isinstance(inner, Mapping) else tool
        name = str(function.get("name") or "")
        description = str(function.get("description") or "").rstrip(".")
        total += _FUNC_INIT.get(method, 7) + _count_with(count, f"{name}:{description}")
        parameters = function.get("parameters") or function.get("input_schema") or {}
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if isinstance(properties, Mapping) and properties:
            total += _PROP_INIT
            for key, spec in properties.items():
                spec = spec if isinstance(spec, Mapping) else {}
                total += _PROP_KEY
                enum = spec.get("enum")
                if isinstance(enum, (list, tuple)):
                    total += _ENUM_INIT
                    for item in enum:
                        total += _ENUM_ITEM + _count_with(count, str(item))
                p_type = spec.get("type", "")
                p_desc = str(spec.get("description") or "").rstrip(".")
                total += _count_with(count, f"{key}:{p_type}:{p_desc}")
    return total + _FUNC_END


def estimate_usage(
    model: str | None,
    *,
    messages: Iterable[Mapping[str, Any]] = (),
    prompt: str | None = None,
    tools: Sequence[Mapping[str, Any]] = (),
    output: str = "",
    output_tool_calls: Iterable[Mapping[str, Any]] = (),
) -> Estimate:
    """Usage of one call estimated from its text.

    ``messages``: chat messages as mappings with ``role``, ``content`` (text or a list of
    parts) and, when present, ``name``, ``tool_calls`` (``name`` + ``arguments``) and
    ``tool_call_id``. ``prompt``: the text of a completion (non-chat) call, counted bare.
    ``tools``: the function definitions offered (OpenAI ``{"type": "function",
    "function": {...}}`` or bare ``{"name", "description", "parameters" | "input_schema"}``).
    ``output`` / ``output_tool_calls``: what the model answered.
    """
    method, count = _method(model)
    input_tokens = 0
    chat = False
    for message in messages:
        chat = True
        input_tokens += _message_tokens(message, method, count)
    if chat:
        input_tokens += _REPLY_PRIMING
    if prompt:
        input_tokens += _count_with(count, prompt)
    input_tokens += _tools_tokens(tools, method, count)
    output_tokens = _count_with(count, output)
    output_tokens += _tool_calls_tokens(output_tool_calls, method, count)
    return Estimate(Usage(input_tokens=input_tokens, output_tokens=output_tokens), method)
