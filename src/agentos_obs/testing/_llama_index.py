"""An offline LlamaIndex LLM that reports usage where the OpenAI integration puts it.

Importing this module imports ``llama_index.core`` (``agentos_obs.testing`` loads it only
when :class:`FakeOpenAI` is first used).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llama_index.core.base.llms.types import (
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from pydantic import ConfigDict

from agentos_obs.testing._tokens import estimate_tokens

__all__ = ["FakeOpenAI"]


class FakeOpenAI(CustomLLM):
    """A completion LLM whose responses carry OpenAI-shaped usage in ``raw`` (``raw["usage"]``
    with ``prompt_tokens_details.cached_tokens`` and ``completion_tokens_details.
    reasoning_tokens``, ``raw["model"]``), as ``llama_index.llms.openai.OpenAI`` does. Named
    like it: integrations tell the provider from the class name.

    **Replies.** ``answer(prompt)`` when given, else ``reply``. **Usage.** ``input_tokens``
    and ``output_tokens`` per call, or ``None`` to estimate them from the text (about four
    characters per token); cache and reasoning tokens are inside them. Streaming yields
    about ``chunks`` pieces, each ending with a space, with the usage on the last one only
    (as OpenAI's ``stream_options.include_usage``). ``chat_model`` sets
    ``metadata.is_chat_model``.

    **Time and failure.** ``latency_s`` is slept per call. ``error`` is raised by every call;
    when streaming, after ``fail_after_chunks`` chunks (0: by ``stream_complete`` itself).
    ``calls`` counts the responses that reported usage, i.e. provider calls billed.
    Subclasses report other providers' shapes through :meth:`raw_response` and
    :meth:`extra_kwargs`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = "gpt-4o-mini"
    reply: str = "Paris is the capital of France."
    answer: Callable[[str], str] | None = None
    input_tokens: int | None = 120
    output_tokens: int | None = 30
    cache_read_tokens: int = 20
    reasoning_tokens: int = 5
    chunks: int = 4
    chat_model: bool = False
    latency_s: float = 0.0
    error: BaseException | None = None
    fail_after_chunks: int = 0
    calls: int = 0

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            model_name=self.model,
            is_chat_model=self.chat_model,
            context_window=128_000,
            num_output=512,
        )

    def raw_response(self, prompt: str, text: str) -> Any:
        """The provider response put in ``raw`` (subclasses return other providers' shapes;
        ``None`` reports no usage)."""
        input_tokens = estimate_tokens(prompt) if self.input_tokens is None else self.input_tokens
        output_tokens = estimate_tokens(text) if self.output_tokens is None else self.output_tokens
        return {
            "id": f"chatcmpl-fake-{self.calls}",
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cache_read_tokens},
                "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            },
        }

    def extra_kwargs(self, prompt: str, text: str) -> dict[str, Any]:
        """What a complete (not streamed) response carries in ``additional_kwargs``: nothing
        here; subclasses put counts there, as some integrations copy them."""
        return {}

    def _text(self, prompt: str) -> str:
        return self.answer(prompt) if self.answer is not None else self.reply

    def _response(
        self, prompt: str, text: str, streamed: tuple[str, str] | None = None
    ) -> CompletionResponse:
        """The response with usage; ``streamed``: (text so far, delta) of a last chunk."""
        raw = self.raw_response(prompt, text)
        extra = self.extra_kwargs(prompt, text) if streamed is None else {}
        if raw is not None or extra:
            self.calls += 1
        shown, delta = streamed if streamed is not None else (text, None)
        return CompletionResponse(text=shown, delta=delta, raw=raw, additional_kwargs=extra)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.latency_s:
            time.sleep(self.latency_s)
        if self.error is not None:
            raise self.error
        return self._response(prompt, self._text(prompt))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        if self.error is not None and self.fail_after_chunks == 0:
            raise self.error
        text = self._text(prompt)
        words = text.split(" ")
        size = max(1, len(words) // max(1, self.chunks))
        pieces = [" ".join(words[i : i + size]) + " " for i in range(0, len(words), size)]
        delay = self.latency_s / max(1, len(pieces))

        def gen() -> CompletionResponseGen:
            sofar = ""
            for index, piece in enumerate(pieces):
                if self.error is not None and index >= self.fail_after_chunks:
                    raise self.error
                if delay:
                    time.sleep(delay)
                sofar += piece
                if index == len(pieces) - 1:
                    yield self._response(prompt, text, (sofar, piece))
                else:
                    yield CompletionResponse(text=sofar, delta=piece, raw={"model": self.model})

        return gen()
