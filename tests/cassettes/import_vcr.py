"""Convert VCR cassettes recorded by peer projects into the replay server's JSON format.

Run by hand (``python tests/cassettes/import_vcr.py <git dir of Arize-ai/openinference>``)
when a cassette is added; the JSON files it writes are committed. It keeps each recorded
request body and response as they were, parses the SSE bodies into events, and shortens
embedding vectors to 8 dimensions (the usage and everything else are untouched). The README
in this folder names every source.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
REPO = "Arize-ai/openinference"
PY = "python/instrumentation"
OAI = f"{PY}/openinference-instrumentation-openai/tests/openinference/instrumentation/openai"
OAI += "/cassettes"
ANT = f"{PY}/openinference-instrumentation-anthropic/tests/openinference/anthropic"
ANT += "/cassettes/test_instrumentor"
LC = f"{PY}/openinference-instrumentation-langchain/tests/cassettes"
LITELLM = f"{PY}/openinference-instrumentation-litellm/tests/cassettes/test_embeddings"
PYDANTIC = f"{PY}/openinference-instrumentation-pydantic-ai/tests/openinference/instrumentation"
PYDANTIC += "/pydantic_ai/cassettes/test_instrumentor"

# output file -> source cassettes (their interactions are concatenated)
IMPORTS: dict[str, list[str]] = {
    "openai_chat_hello.json": [f"{OAI}/test_token_counts/TestTokenCounts.test_openai.yaml"],
    "openai_chat_tool_calls.json": [f"{OAI}/test_tool_calls/test_tool_calls.yaml"],
    "openai_chat_cached_tokens.json": [f"{OAI}/test_tool_calls/test_cached_tokens.yaml"],
    "openai_chat_stream_joke.json": [
        f"{LC}/test_instrumentor/test_records_token_counts_for_streaming_openai_llm.yaml"
    ],
    "openai_chat_stream_no_usage_agent.json": [
        f"{LC}/test_raw_dict_message/test_agent_with_raw_dict_messages.yaml"
    ],
    "openai_chat_weather_tool_loop.json": [
        f"{PYDANTIC}/test_openai_tool_span_instrumentation_v5.yaml"
    ],
    "openai_embeddings.json": [
        f"{LITELLM}/test_single_string_embedding.yaml",
        f"{LITELLM}/test_batch_embedding.yaml",
        f"{LITELLM}/test_batch_embedding_with_different_model.yaml",
    ],
    "anthropic_messages.json": [
        f"{ANT}/test_anthropic_instrumentation_messages.yaml",
        f"{ANT}/test_anthropic_instrumentation_messages_streaming.yaml",
    ],
    "anthropic_tool_use.json": [
        f"{ANT}/test_anthropic_instrumentation_multiple_tool_calling.yaml",
        f"{ANT}/test_anthropic_instrumentation_multiple_tool_calling_streaming.yaml",
    ],
}
_API = {
    "/v1/chat/completions": "openai.chat",
    "/v1/embeddings": "openai.embeddings",
    "/v1/messages": "anthropic.messages",
}


def _sse(text: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, Any] = {}
        data_lines = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event["event"] = line[6:].strip()
            elif line.startswith("data:"):
                data_lines.append(line[5:].strip())
        if not data_lines:
            continue
        data = "\n".join(data_lines)
        event["data"] = data if data == "[DONE]" else json.loads(data)
        events.append(event)
    return events


def _shorten_vectors(body: dict[str, Any]) -> dict[str, Any]:
    for item in body.get("data") or ():
        if isinstance(item.get("embedding"), list):
            item["embedding"] = item["embedding"][:8]
    return body


def convert(git_dir: str, path: str, commit: str) -> list[dict[str, Any]]:
    text = subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    out = []
    for item in yaml.safe_load(text)["interactions"]:
        request, response = item["request"], item["response"]
        uri_path = "/" + request["uri"].split("://", 1)[1].split("/", 1)[1]
        body_text = response["body"]["string"]
        entry: dict[str, Any] = {
            "api": _API[uri_path],
            "request": json.loads(request["body"]),
            "response": {"status": response["status"]["code"]},
            "source": {"repository": REPO, "commit": commit, "path": path},
        }
        if body_text.lstrip().startswith(("data:", "event:")):
            entry["response"]["sse"] = _sse(body_text)
        else:
            parsed = json.loads(body_text)
            if entry["api"] == "openai.embeddings":
                parsed = _shorten_vectors(parsed)
                entry["note"] = "embedding vectors shortened to 8 dimensions"
            entry["response"]["json"] = parsed
        out.append(entry)
    return out


def main(git_dir: str) -> None:
    commit = subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for name, sources in IMPORTS.items():
        interactions = [i for path in sources for i in convert(git_dir, path, commit)]
        (HERE / name).write_text(
            json.dumps({"interactions": interactions}, indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        print(f"{name}: {len(interactions)} interactions")


if __name__ == "__main__":
    main(sys.argv[1])
