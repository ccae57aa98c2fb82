"""agentos_obs: observability for LLM agent pipelines (facade filled in as modules land)."""
