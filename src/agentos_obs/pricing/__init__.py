"""Token usage in one shape from every provider's own, what it costs (the price catalogue:
genai-prices underneath, with user overrides and aliases), and usage estimated offline for
calls whose provider reported none."""

from __future__ import annotations

from agentos_obs.pricing._catalog import ModelPrice, PriceCatalog, default_catalog
from agentos_obs.pricing._estimate import (
    APPROXIMATION_TOLERANCE,
    TOKENIZER_TOLERANCE,
    Estimate,
    Tolerance,
    count_tokens,
    encoding_for,
    estimate_usage,
    tokenizer_available,
)
from agentos_obs.pricing._usage import (
    Usage,
    extract_usage,
    read_field,
    usage_from_anthropic,
    usage_from_bedrock,
    usage_from_cohere,
    usage_from_gemini,
    usage_from_langchain,
    usage_from_ollama,
    usage_from_openai,
)

__all__ = [
    "APPROXIMATION_TOLERANCE",
    "TOKENIZER_TOLERANCE",
    "Estimate",
    "ModelPrice",
    "PriceCatalog",
    "Tolerance",
    "Usage",
    "count_tokens",
    "default_catalog",
    "encoding_for",
    "estimate_usage",
    "extract_usage",
    "read_field",
    "tokenizer_available",
    "usage_from_anthropic",
    "usage_from_bedrock",
    "usage_from_cohere",
    "usage_from_gemini",
    "usage_from_langchain",
    "usage_from_ollama",
    "usage_from_openai",
]
