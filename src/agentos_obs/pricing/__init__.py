"""Token usage in one shape from every provider's own, and what it costs: the price
catalogue (genai-prices underneath, with user overrides and aliases)."""

from __future__ import annotations

from agentos_obs.pricing._catalog import ModelPrice, PriceCatalog, default_catalog
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
    "ModelPrice",
    "PriceCatalog",
    "Usage",
    "default_catalog",
    "extract_usage",
    "read_field",
    "usage_from_anthropic",
    "usage_from_bedrock",
    "usage_from_cohere",
    "usage_from_gemini",
    "usage_from_langchain",
    "usage_from_ollama",
    "usage_from_openai",
]
