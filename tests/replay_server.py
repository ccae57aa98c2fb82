"""A local stand-in for the OpenAI and Anthropic HTTP APIs: replays recorded responses.

Tests point the real client packages (``openai``, ``anthropic``, ``langchain-openai``,
``langchain-anthropic``, ``llama-index-llms-openai``…) at ``ReplayServer.openai_url`` /
``ReplayServer.anthropic_url``. Every request is answered from the cassettes in
``tests/cassettes`` (sources in the README there), matched by

* chat completions: model + the last message (its text, or the ``tool_call_id`` of a tool
  message);
* Anthropic messages: model + the last message (its text, or the ``tool_use_id`` of its
  tool results);
* embeddings: model + the input texts.

A response recorded in one shape is served in the shape the request asks for, the way the
provider would send it: a JSON completion is split into an SSE stream (role chunk, content
and tool-call deltas, finish chunk) and a recorded stream is merged into JSON. OpenAI streams
carry usage only when the request says ``stream_options.include_usage`` (the recorded usage
chunk is dropped otherwise, as the API does); Anthropic streams always carry it. Embeddings
come back as floats or base64 as asked.

What was served is kept in :attr:`ReplayServer.served` — including the usage each recording
holds even when it was not sent — so tests can compare what was recorded with what the
server said. ``first_delta_delay_s`` holds back everything after a stream's first event
(OpenAI's role chunk, Anthropic's ``message_start``) to make time to first token measurable;
``break_stream_after`` cuts a stream after that many events with one the client cannot parse.
An unmatched request gets a 404 whose message names the key it looked for.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CASSETTES = Path(__file__).parent / "cassettes"

_PATHS = {
    "/v1/chat/completions": "openai.chat",
    "/v1/embeddings": "openai.embeddings",
    "/v1/messages": "anthropic.messages",
}
_WORDS = re.compile(r"\s*\S+")


@dataclass
class Served:
    """One answered request: which recording, what it recorded, what the client got."""

    api: str
    model: str | None  # the model the recording says answered
    stream: bool
    usage: dict[str, Any] | None  # the usage the recording holds (sent or not)
    usage_sent: bool
    request: dict[str, Any]
    source: str

    @property
    def provider(self) -> str:
        return "anthropic" if self.api.startswith("anthropic") else "openai"

    def catalogue_cost(self) -> float:
        """This call's recorded usage priced by genai-prices directly (its own usage reader
        and calculator, none of agentos_obs's code): what a correct trace total adds up to."""
        import genai_prices

        flavor = {"openai.chat": "chat", "openai.embeddings": "embeddings"}.get(self.api)
        body = {"model": self.model, "usage": self.usage}
        if flavor is None:
            extracted = genai_prices.extract_usage(body, provider_id=self.provider)
        else:
            extracted = genai_prices.extract_usage(
                body, provider_id=self.provider, api_flavor=flavor
            )
        return float(extracted.calc_price().total_price)


@dataclass
class _Interaction:
    api: str
    key: tuple[Any, ...]
    response: dict[str, Any]
    source: str
    uses: int = 0


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]


# -- keys ------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return " ".join(content.split())
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and "text" in p]
        return " ".join(" ".join(parts).split())
    return str(content)


def _last_message_key(message: dict[str, Any]) -> tuple[Any, ...]:
    role = message.get("role")
    if role == "tool":
        return ("tool", message.get("tool_call_id"))
    content = message.get("content")
    if isinstance(content, list):
        ids = [
            b.get("tool_use_id")
            for b in content
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        if ids:
            return ("tool_result", *ids)
    return (role, _text_of(content))


def request_key(api: str, body: dict[str, Any]) -> tuple[Any, ...]:
    """What a request is matched by (the same function reads recordings and live requests)."""
    model = body.get("model")
    if api == "openai.embeddings":
        inputs = body.get("input")
        texts = tuple(inputs) if isinstance(inputs, list) else (inputs,)
        return (api, model, tuple(_text_of(t) if isinstance(t, str) else t for t in texts))
    messages = body.get("messages") or []
    last = _last_message_key(messages[-1]) if messages else ()
    return (api, model, *last)


# -- OpenAI chat: JSON <-> SSE -----------------------------------------------------------------


def _pieces(text: str) -> list[str]:
    return _WORDS.findall(text) or [text]


def _openai_chunks_from_json(body: dict[str, Any]) -> list[dict[str, Any]]:
    head = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
        "system_fingerprint": body.get("system_fingerprint"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice]}

    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content = message.get("content")
    tool_calls = message.get("tool_calls") or []
    chunks = [chunk({"role": "assistant", "content": "" if content is not None else None})]
    if content:
        chunks.extend(chunk({"content": piece}) for piece in _pieces(content))
    for index, call in enumerate(tool_calls):
        function = call.get("function") or {}
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.get("id"),
                            "type": "function",
                            "function": {"name": function.get("name"), "arguments": ""},
                        }
                    ]
                }
            )
        )
        arguments = function.get("arguments") or ""
        step = max(1, len(arguments) // 3)
        for at in range(0, len(arguments), step):
            part = arguments[at : at + step]
            chunks.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    chunks.append(chunk({}, choice.get("finish_reason") or "stop"))
    if body.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": body["usage"]})
    return chunks


def _openai_json_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    first = chunks[0] if chunks else {}
    for item in chunks:
        if item.get("usage"):
            usage = item["usage"]
        for choice in item.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(
                    call["index"],
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {
        "id": first.get("id"),
        "object": "chat.completion",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


def _openai_stream(chunks: list[dict[str, Any]], include_usage: bool) -> list[dict[str, Any]]:
    """The chunks as the API sends them: usage only when asked for (``usage: null`` on the
    others), no usage chunk otherwise."""
    out = []
    for item in chunks:
        item = copy.deepcopy(item)
        is_usage_chunk = not item.get("choices") and item.get("usage")
        if include_usage:
            item.setdefault("usage", None)
        else:
            if is_usage_chunk:
                continue
            item.pop("usage", None)
        out.append({"data": item})
    out.append({"data": "[DONE]"})
    return out


# -- Anthropic messages: JSON <-> SSE ----------------------------------------------------------


def _anthropic_events_from_json(body: dict[str, Any]) -> list[dict[str, Any]]:
    usage = dict(body.get("usage") or {})
    start_usage = {**usage, "output_tokens": 1}
    message = {**body, "content": [], "stop_reason": None, "stop_sequence": None}
    message["usage"] = start_usage
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
    for index, block in enumerate(body.get("content") or ()):
        if block.get("type") == "tool_use":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                }
            )
            arguments = json.dumps(block.get("input") or {})
            step = max(1, len(arguments) // 3)
            for at in range(0, len(arguments), step):
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": arguments[at : at + step],
                        },
                    }
                )
        else:
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            for piece in _pieces(block.get("text") or ""):
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    }
                )
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": body.get("stop_reason"), "stop_sequence": None},
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _anthropic_json_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = copy.deepcopy(event["message"])
        elif kind == "content_block_start":
            blocks[event["index"]] = copy.deepcopy(event["content_block"])
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta.get("type") == "text_delta":
                blocks[event["index"]]["text"] = blocks[event["index"]].get("text", "") + (
                    delta.get("text") or ""
                )
            elif delta.get("type") == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + (
                    delta.get("partial_json") or ""
                )
        elif kind == "message_delta":
            message.update(event.get("delta") or {})
            message["usage"] = {**(message.get("usage") or {}), **(event.get("usage") or {})}
    for index, text in partial.items():
        blocks[index]["input"] = json.loads(text) if text else {}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def _anthropic_usage(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    usage: dict[str, Any] = {}
    for event in events:
        if event.get("type") == "message_start":
            usage.update(event["message"].get("usage") or {})
        elif event.get("type") == "message_delta":
            usage.update(event.get("usage") or {})
    return usage or None


# -- embeddings ---------------------------------------------------------------------------------


def _as_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _as_floats(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _embeddings(body: dict[str, Any], encoding: str | None) -> dict[str, Any]:
    body = copy.deepcopy(body)
    for item in body.get("data") or ():
        vector = item.get("embedding")
        if encoding == "base64" and isinstance(vector, list):
            item["embedding"] = _as_base64(vector)
        elif encoding != "base64" and isinstance(vector, str):
            item["embedding"] = _as_floats(vector)
    return body


# -- the server ---------------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    json_body: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


class ReplayServer:
    """An HTTP server on 127.0.0.1 (a free port) replaying the cassettes; start with ``with``."""

    def __init__(self, cassettes: Iterable[Path] | None = None) -> None:
        self._interactions: dict[tuple[Any, ...], list[_Interaction]] = {}
        for path in cassettes if cassettes is not None else sorted(CASSETTES.glob("*.json")):
            self.load(path)
        self.requests: list[dict[str, Any]] = []
        self.served: list[Served] = []
        self.first_delta_delay_s = 0.0
        self.break_stream_after: int | None = None
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- cassettes ------------------------------------------------------------------------
    def load(self, path: Path) -> None:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for item in data["interactions"]:
            source = item.get("source") or {}
            self.add(
                item["api"],
                item["request"],
                item["response"],
                source=f"{source.get('repository', path.name)}:{source.get('path', '')}",
            )

    def add(
        self,
        api: str,
        request: dict[str, Any],
        response: dict[str, Any],
        *,
        source: str = "test",
    ) -> None:
        """Add a recording (``response``: ``{"status", "json" | "sse"}``); later ones with
        the same key answer after earlier ones are used."""
        key = request_key(api, request)
        self._interactions.setdefault(key, []).append(_Interaction(api, key, response, source))

    def fail_next(self, status: int = 500, message: str = "replayed failure") -> None:
        """Answer the next request with an error of the provider's shape."""
        body = {"error": {"message": message, "type": "server_error", "code": None}}
        self._failures.append(_Failure(status, body))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.served.clear()
            self._failures.clear()
        self.first_delta_delay_s = 0.0
        self.break_stream_after = None
        for entries in self._interactions.values():
            for entry in entries:
                entry.uses = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="replay-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.base_url

    # -- answering ----------------------------------------------------------------------------
    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        path = http.path.split("?", 1)[0]
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        with self._lock:
            self.requests.append({"path": path, "body": body})
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            self._send_json(http, failure.status, failure.body)
            return
        api = _PATHS.get(path)
        if api is None:
            self._send_json(http, 404, {"error": {"message": f"no route {path}"}})
            return
        key = request_key(api, body)
        entries = self._interactions.get(key)
        if not entries:
            message = f"no recording for {key!r}"
            self._send_json(http, 404, {"error": {"message": message, "type": "not_found"}})
            return
        with self._lock:
            entry = min(entries, key=lambda e: e.uses)
            entry.uses += 1
        reply, served = self._reply(api, entry, body)
        with self._lock:
            self.served.append(served)
        if reply.json_body is not None:
            self._send_json(http, reply.status, reply.json_body)
        else:
            self._send_events(http, reply.status, reply.events)

    def _reply(self, api: str, entry: _Interaction, body: dict[str, Any]) -> tuple[_Reply, Served]:
        response = entry.response
        status = int(response.get("status", 200))
        stream = bool(body.get("stream"))
        model = _recorded_model(response) or body.get("model")

        def served(usage: dict[str, Any] | None, sent: bool) -> Served:
            return Served(api, model, stream, usage, sent, body, entry.source)

        if api == "openai.embeddings":
            out = _embeddings(response["json"], body.get("encoding_format"))
            return _Reply(status, out), served(out.get("usage"), True)
        if api == "openai.chat":
            options = body.get("stream_options") or {}
            include_usage = bool(options.get("include_usage"))
            chunks = [e["data"] for e in response.get("sse", ()) if e["data"] != "[DONE]"]
            if not stream:
                out = response.get("json") or _openai_json_from_chunks(chunks)
                return _Reply(status, out), served(out.get("usage"), True)
            if not chunks:
                chunks = _openai_chunks_from_json(response["json"])
            usage = next((c["usage"] for c in chunks if c.get("usage")), None)
            events = _openai_stream(chunks, include_usage)
            return _Reply(status, events=events), served(usage, include_usage and bool(usage))
        # anthropic.messages
        events = [e["data"] for e in response.get("sse", ())]
        if not stream:
            out = response.get("json") or _anthropic_json_from_events(events)
            return _Reply(status, out), served(out.get("usage"), True)
        if not events:
            events = _anthropic_events_from_json(response["json"])
        usage = _anthropic_usage(events)
        return (
            _Reply(status, events=[{"event": e["type"], "data": e} for e in events]),
            served(usage, True),
        )

    @staticmethod
    def _send_json(http: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        http.wfile.write(data)

    def _send_events(
        self, http: BaseHTTPRequestHandler, status: int, events: list[dict[str, Any]]
    ) -> None:
        http.send_response(status)
        http.send_header("Content-Type", "text/event-stream")
        http.send_header("Cache-Control", "no-cache")
        http.send_header("Connection", "close")
        http.end_headers()
        cut = self.break_stream_after
        for index, event in enumerate(_encoded(events)):
            if cut is not None and index >= cut:
                # A stream that breaks off: an event the client cannot parse, then EOF.
                http.wfile.write(b"data: {broken\n\n")
                http.wfile.flush()
                break
            http.wfile.write(event)
            http.wfile.flush()
            if index == 0 and self.first_delta_delay_s > 0:
                time.sleep(self.first_delta_delay_s)
        http.close_connection = True


def _recorded_model(response: dict[str, Any]) -> str | None:
    if response.get("json"):
        return response["json"].get("model")  # type: ignore[no-any-return]
    for event in response.get("sse", ()):
        data = event.get("data")
        if isinstance(data, dict):
            found = data.get("model") or (data.get("message") or {}).get("model")
            if found:
                return found  # type: ignore[no-any-return]
    return None


def _encoded(events: list[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
        data = event["data"]
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {event['event']}\n" if event.get("event") else ""
        yield f"{head}data: {text}\n\n".encode()
