"""Histogram bucket bounds: the defaults of the default metrics, and their validation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import prometheus_client

from agentos_obs.errors import ConfigurationError

__all__ = [
    "DEFAULT_BUCKETS",
    "GENAI_DURATION_BUCKETS",
    "GENAI_TOKEN_BUCKETS",
    "LLM_COST_USD_BUCKETS",
    "SPAN_DURATION_BUCKETS",
    "check_buckets",
]

# prometheus_client's own default (a web request, 5 ms to 10 s), without its +Inf.
DEFAULT_BUCKETS: tuple[float, ...] = tuple(
    float(b) for b in prometheus_client.Histogram.DEFAULT_BUCKETS if float(b) != math.inf
)

# OpenTelemetry GenAI semantic conventions: explicit bucket boundaries advised for
# gen_ai.client.token.usage (tokens) and gen_ai.client.operation.duration (seconds).
GENAI_TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
GENAI_DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

# Per-call cost in USD, 1-2.5-5 steps over six decades. The low end is a short call to a
# small model (gpt-4o-mini, 500 in / 100 out ≈ $0.00014); the middle a typical frontier
# call (gpt-4o, 2k in / 500 out ≈ $0.01); the top a long-context call to the dearest models
# (200k tokens to an Opus-class model ≈ $3) or a runaway loop. Each bucket is about
# 2-2.5x the previous one, enough to see a shift in per-call cost on a dashboard.
LLM_COST_USD_BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# Any span, agent runs too: from a ~1 ms in-process step up to an 11-minute agent run (the
# GenAI duration buckets, with three smaller and three larger bounds in the same doubling).
SPAN_DURATION_BUCKETS: tuple[float, ...] = (
    0.00125, 0.0025, 0.005, *GENAI_DURATION_BUCKETS, 163.84, 327.68, 655.36,
)  # fmt: skip


def check_buckets(name: str, buckets: Sequence[float] | None) -> tuple[float, ...]:
    """``buckets`` as strictly increasing finite floats (a trailing ``+Inf`` is dropped:
    every histogram has one); None means :data:`DEFAULT_BUCKETS`. ConfigurationError else."""
    if buckets is None:
        return DEFAULT_BUCKETS
    if isinstance(buckets, (str, bytes)):
        raise ConfigurationError(f"{name}: buckets must be a sequence of numbers, got {buckets!r}")
    try:
        bounds = tuple(float(b) for b in buckets if float(b) != math.inf)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name}: buckets must be numbers, got {buckets!r}") from exc
    if not bounds:
        raise ConfigurationError(f"{name}: needs at least one finite bucket bound")
    if any(math.isnan(b) or b == -math.inf for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise ConfigurationError(
            f"{name}: buckets must be strictly increasing finite numbers, got {buckets!r}"
        )
    return bounds
