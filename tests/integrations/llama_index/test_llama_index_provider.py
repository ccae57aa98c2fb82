"""Provider from an LLM's class name: whole CamelCase words only."""

from __future__ import annotations

import pytest

from agentos_obs.integrations.llama_index._extract import _provider_from_class_name


@pytest.mark.parametrize(
    ("class_name", "provider"),
    [
        ("OpenAI", "openai"),
        ("OpenAILike", "openai"),
        ("AzureOpenAI", "azure"),
        ("Anthropic", "anthropic"),
        ("BedrockConverse", "bedrock"),
        ("VertexAI", "vertexai"),
        ("GeminiLLM", "google"),
        ("MyGroqLLM", "groq"),
        ("CustomOllamaWrapper", "ollama"),
        # a provider word inside another word is not a provider
        ("DemoLlamaLLM", None),
        ("Fromistral", None),
        ("MockLLM", None),
    ],
)
def test_provider_from_class_name(class_name: str, provider: str | None) -> None:
    assert _provider_from_class_name(class_name) == provider
