"""Chat messages, tool calls and tool definitions read from any framework's or SDK's shape.

One reader for LangChain messages (``AIMessage.tool_calls``, ``ToolMessage.tool_call_id``),
LlamaIndex ``ChatMessage`` (``ToolCallBlock`` blocks, ``additional_kwargs["tool_calls"]`` /
``["tool_call_id"]``), OpenAI request dicts and SDK objects (``tool_calls[].function``) and
Anthropic content blocks (``tool_use``, ``tool_result``). Used to estimate tokens (the text is
counted and dropped) and, with content capture on, to record tool calls and definitions.

Every reader is duck-typed, imports no framework and never raises on odd input.

Shapes produced (also what the captured-content attributes hold):

* tool call: ``{"id": str | None, "name": str, "arguments": <object or text>}``
* message: ``{"role", "content", "tool_calls"?: [tool call], "tool_call_id"?, "name"?}``
* tool definition: ``{"name", "description"?, "parameters"?}`` (a JSON schema)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "answer_of",
    "chat_messages",
    "message_dict",
    "tool_call_id_of",
    "tool_calls_of",
    "tool_definitions",
]

# LangChain message types -> chat roles.
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_MAX_ITEMS = 1000
_CACHE_LIMIT = 4096
_MAPPING: frozenset[str] = frozenset({"<mapping>"})
_names: dict[type, frozenset[str] | None] = {}


def _names_of(cls: type) -> frozenset[str] | None:
    """What instances of a pydantic class can answer (fields, properties, methods), once per
    class; None for a class read by plain ``getattr``."""
    if issubclass(cls, Mapping):
        return _MAPPING
    fields = getattr(cls, "model_fields", None)
    if not isinstance(fields, dict):
        return None
    return frozenset(fields) | frozenset(dir(cls))


def read_field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``, None when absent; cheap on pydantic models (LangChain
    and LlamaIndex messages, SDK objects), where asking for a missing attribute costs an
    exception inside pydantic: which names a class has is looked up once."""
    if obj is None:
        return None
    cls = obj.__class__
    if cls is dict:
        return obj.get(name)
    names = _names.get(cls, _MAPPING)
    if names is _MAPPING and cls not in _names:
        if len(_names) >= _CACHE_LIMIT:
            _names.clear()
        names = _names[cls] = _names_of(cls)
    if names is _MAPPING:
        return obj.get(name)
    if names is not None and name not in names:
        extra = getattr(obj, "__pydantic_extra__", None)  # models that allow extra keys
        return extra.get(name) if isinstance(extra, dict) else None
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that raises
        return None


def _role(message: Any) -> str | None:
    role = read_field(message, "role")
    if role is not None:
        return str(getattr(role, "value", role))
    kind = read_field(message, "type")
    if isinstance(kind, str):
        return _ROLES.get(kind, kind)
    return None


def _arguments(value: Any) -> Any:
    """Arguments as given: an object stays an object; text that holds JSON is parsed."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, (dict, list)) else value
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _one_call(call: Any) -> dict[str, Any] | None:
    function = read_field(call, "function")
    if function is not None:  # OpenAI: {"id", "function": {"name", "arguments"}}
        name = read_field(function, "name")
        arguments = read_field(function, "arguments")
    elif read_field(call, "tool_name") is not None:  # LlamaIndex ToolCallBlock
        name = read_field(call, "tool_name")
        arguments = read_field(call, "tool_kwargs")
    elif read_field(call, "type") == "tool_use":  # Anthropic block
        name = read_field(call, "name")
        arguments = read_field(call, "input")
    else:  # LangChain: {"name", "args", "id"}
        name = read_field(call, "name")
        arguments = read_field(call, "args")
        if arguments is None:
            arguments = read_field(call, "arguments")
    if not isinstance(name, str) or not name:
        return None
    call_id = read_field(call, "id")
    if call_id is None:
        call_id = read_field(call, "tool_call_id")
    return {
        "id": call_id if isinstance(call_id, str) else None,
        "name": name,
        "arguments": _arguments(arguments) if arguments is not None else {},
    }


def _calls(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, (list, tuple)):
        return []
    out = []
    for call in raw[:_MAX_ITEMS]:
        found = _one_call(call)
        if found is not None:
            out.append(found)
    return out


def _blocks(message: Any) -> list[Any]:
    for key in ("blocks", "content"):
        blocks = read_field(message, key)
        if isinstance(blocks, list):
            return blocks
    return []


def _block_type(block: Any) -> str | None:
    kind = read_field(block, "type") or read_field(block, "block_type")
    return kind if isinstance(kind, str) else None


def tool_calls_of(message: Any) -> list[dict[str, Any]]:
    """The tool calls an assistant message makes, in one shape."""
    calls = _calls(read_field(message, "tool_calls"))
    if calls:
        return calls
    extra = read_field(message, "additional_kwargs")
    calls = _calls(read_field(extra, "tool_calls"))
    if calls:
        return calls
    blocks = [b for b in _blocks(message) if _block_type(b) in ("tool_call", "tool_use")]
    return _calls(blocks)


def tool_call_id_of(message: Any) -> str | None:
    """The call a tool message answers (``tool_call_id``, or an Anthropic ``tool_result``)."""
    found = read_field(message, "tool_call_id")
    if found is None:
        found = read_field(read_field(message, "additional_kwargs"), "tool_call_id")
    if found is None:
        for block in _blocks(message):
            if _block_type(block) == "tool_result":
                found = read_field(block, "tool_use_id")
                break
    return found if isinstance(found, str) and found else None


def _text(content: Any) -> Any:
    """Content as text where it is text; parts other than text (images, tool blocks) are
    left out of the text (tool calls and results are read on their own)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content[:_MAX_ITEMS]:
            if isinstance(part, str):
                texts.append(part)
                continue
            kind = _block_type(part)
            if kind in (None, "text", "input_text", "output_text"):
                text = read_field(part, "text")
                if isinstance(text, str):
                    texts.append(text)
            elif kind == "tool_result":
                texts.append(_text(read_field(part, "content")))
        return "\n".join(t for t in texts if t)
    return str(content)


def message_dict(message: Any) -> dict[str, Any] | None:
    """One message in the shape above (None for something that is not a message)."""
    if isinstance(message, str):
        return {"role": "user", "content": message}
    role = _role(message)
    if role is None:
        return None
    blocks = read_field(message, "blocks")
    content = read_field(message, "content")
    if isinstance(blocks, list) and not isinstance(content, str):
        content = blocks
    out: dict[str, Any] = {"role": role, "content": _text(content)}
    calls = tool_calls_of(message)
    if calls:
        out["tool_calls"] = calls
    call_id = tool_call_id_of(message)
    if call_id is not None:
        out["tool_call_id"] = call_id
    name = read_field(message, "name")
    if isinstance(name, str) and name:
        out["name"] = name
    return out


def chat_messages(messages: Any) -> list[dict[str, Any]]:
    """A message list (or one message, or a prompt string) in the shape above."""
    if messages is None:
        return []
    if isinstance(messages, (str, Mapping)) or not isinstance(messages, Iterable):
        messages = [messages]
    out = []
    for count, message in enumerate(messages):
        if count >= _MAX_ITEMS:
            break
        if isinstance(message, (list, tuple)):  # LangChain passes a list per prompt
            out.extend(chat_messages(message))
            continue
        found = message_dict(message)
        if found is not None:
            out.append(found)
    return out


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Tool definitions offered to a model: OpenAI ``{"type": "function", "function": …}``,
    Anthropic ``{"name", "input_schema"}``, bare ``{"name", "parameters"}``, or tool objects
    with ``name``/``description`` (LlamaIndex ``metadata``)."""
    if not isinstance(tools, (list, tuple)):
        return []
    out = []
    for tool in tools[:_MAX_ITEMS]:
        spec = read_field(tool, "function") or read_field(tool, "metadata") or tool
        name = read_field(spec, "name")
        if not isinstance(name, str) or not name:
            continue
        item: dict[str, Any] = {"name": name}
        description = read_field(spec, "description")
        if isinstance(description, str) and description:
            item["description"] = description
        parameters = read_field(spec, "parameters")
        if parameters is None:
            parameters = read_field(spec, "input_schema")
        if isinstance(parameters, Mapping):
            item["parameters"] = dict(parameters)
        out.append(item)
    return out


def answer_of(response: Any) -> tuple[str, list[dict[str, Any]]]:
    """The text and tool calls of a model's answer: a message (LangChain ``AIMessage``,
    LlamaIndex ``ChatMessage``), a response holding one (``.message``), or plain text."""
    if response is None:
        return "", []
    if isinstance(response, str):
        return response, []
    message = read_field(response, "message")
    if message is None:
        text = read_field(response, "text")
        if isinstance(text, str) and read_field(response, "content") is None:
            return text, []
        message = response
    text = _text(read_field(message, "content"))
    if not text:
        blocks = read_field(message, "blocks")
        if isinstance(blocks, list):
            text = _text(blocks)
    return (text if isinstance(text, str) else str(text)), tool_calls_of(message)
