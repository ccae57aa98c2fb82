"""A traced LlamaIndex query engine, plain and streaming, fully offline.

Run: python examples/llama_index_query.py

The LLM is a small CustomLLM that answers from a fixed text and reports token usage in
``CompletionResponse.raw`` the way the OpenAI integration does, so tokens and cost show up
exactly as they would with a real provider. Embeddings come from LlamaIndex's MockEmbedding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback

import agentos_obs as obs

ANSWER = "Paris is the capital of France, on the Seine."


class OfflineLLM(CustomLLM):
    """Answers ANSWER; reports OpenAI-shaped usage in ``raw`` (on the last chunk if streaming)."""

    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    def _raw(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "usage": {"prompt_tokens": 412, "completion_tokens": 12, "total_tokens": 424},
        }

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=ANSWER, raw=self._raw())

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        words = ANSWER.split(" ")

        def gen() -> Iterator[CompletionResponse]:
            for i, word in enumerate(words):
                last = i == len(words) - 1
                yield CompletionResponse(
                    text=" ".join(words[: i + 1]),
                    delta=word + ("" if last else " "),
                    raw=self._raw() if last else None,
                )

        return gen()


def print_trace(trace: obs.Trace) -> None:
    totals = trace.usage_totals()
    print(
        f"\ntrace {trace.name}: {len(trace.spans)} spans, {trace.status.value}, "
        f"{totals['input_tokens']} in + {totals['output_tokens']} out tokens, "
        f"${totals['cost_usd']:.6f}"
    )

    def walk(span: obs.Span, depth: int) -> None:
        line = f"{'  ' * depth}{span.name} [{span.kind.value}] {span.duration_ms:.2f} ms"
        if span.counts_usage:
            cost = "unpriced" if span.cost_usd is None else f"${span.cost_usd:.6f}"
            line += f"  {span.model_name}: {span.input_tokens}+{span.output_tokens} tokens {cost}"
        ttft = span.attributes.get("llm.time_to_first_token_ms")
        if ttft is not None:
            line += f"  first token after {ttft:.2f} ms"
        print(line)
        for child in span.children:
            walk(child, depth + 1)

    assert trace.root_span is not None
    walk(trace.root_span, 1)


def main() -> None:
    index = VectorStoreIndex.from_documents(
        [
            Document(text="Paris is the capital and largest city of France."),
            Document(text="The Seine flows through Paris."),
            Document(text="Mount Everest is the highest mountain on Earth."),
        ],
        embed_model=MockEmbedding(embed_dim=16, model_name="text-embedding-3-small"),
    )
    tracer = obs.Tracer("llama-index-example")
    tracer.add_exporter(print_trace, sync=True)
    # Every LlamaIndex call in the process is traced from here on (langchain=False: leave
    # LangChain alone even if it is installed).
    obs.instrument(tracer=tracer, langchain=False, llama_index=True)
    try:
        print("== query")
        answer = index.as_query_engine(llm=OfflineLLM()).query("What is the capital of France?")
        print(f"answer: {answer}")

        print("\n== streaming query")
        streaming = index.as_query_engine(llm=OfflineLLM(), streaming=True)
        response = streaming.query("What is the capital of France?")
        print("answer: ", end="")
        for token in response.response_gen:  # the trace is exported when the stream ends
            print(token, end="", flush=True)
        print()
    finally:
        obs.uninstrument()


if __name__ == "__main__":
    main()
