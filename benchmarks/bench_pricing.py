"""Cost of pricing one LLM call: PriceCatalog.cost (cached plan) vs genai-prices' calc_price.

    .venv/bin/python benchmarks/bench_pricing.py [--rounds 25] [--inner 2000]

Every case runs in the same process, interleaved round by round (``_harness.interleaved``),
and the figure is the median µs per call over rounds. ``calc_price`` is what a tracer would
pay per LLM call without a cache of its own (genai-prices caches its model lookup, but each
call still re-reads the price table, builds Decimals and checks units). The cold row is a
first sighting of a model name: a new catalog resolving it once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import genai_prices
from _harness import environment, interleaved

from agentos_obs.pricing import PriceCatalog, Usage

USAGE = Usage(input_tokens=12_000, output_tokens=900, cache_read_tokens=8_000, reasoning_tokens=300)
CATALOG_USAGE = genai_prices.Usage(
    input_tokens=12_000, output_tokens=900, cache_read_tokens=8_000, output_reasoning_tokens=300
)

# (label, model, provider): a plain price, a tiered price, a time-of-day price, Bedrock.
MODELS = [
    ("gpt-4o (flat)", "gpt-4o", None),
    ("claude-sonnet-4-5 (tiered)", "claude-sonnet-4-5", None),
    ("deepseek-chat (time of day)", "deepseek-chat", None),
    ("bedrock claude-3-5-sonnet", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--inner", type=int, default=2000)
    args = parser.parse_args()

    catalog = PriceCatalog(overrides={"house-model": {"input": 1.0, "output": 2.0}})
    cases = {}
    for label, model, provider in MODELS:
        # Same answer on both sides, or the comparison means nothing.
        ours = catalog.cost(model, USAGE, provider)
        theirs = float(
            genai_prices.calc_price(CATALOG_USAGE, model, provider_id=provider).total_price
        )
        assert ours is not None and abs(ours - theirs) <= 1e-12 * max(1.0, theirs), label
        cases[f"{label} | cost() cached"] = lambda m=model, p=provider: catalog.cost(m, USAGE, p)
        cases[f"{label} | genai calc_price"] = lambda m=model, p=provider: genai_prices.calc_price(
            CATALOG_USAGE, m, provider_id=p
        )
    cases["override house-model | cost() cached"] = lambda: catalog.cost("house-model", USAGE)
    cases["unknown model | cost() cached"] = lambda: catalog.cost("no-such-model", USAGE)
    results = interleaved(cases, rounds=args.rounds, inner=args.inner, warmup=200)

    cold = interleaved(
        {
            "gpt-4o | first sight (new catalog)": lambda: PriceCatalog().cost("gpt-4o", USAGE),
            "no-such-model | first sight (new catalog)": (
                lambda: PriceCatalog().cost("no-such-model", USAGE)
            ),
        },
        rounds=max(5, args.rounds // 3),
        inner=max(20, args.inner // 50),
        warmup=5,
    )

    print(f"# Pricing one LLM call — {environment()}")
    print(f"{args.rounds} interleaved rounds × {args.inner} calls; median µs per call\n")
    print("| model | cost() cached µs | genai-prices calc_price µs | speed-up |")
    print("|---|---:|---:|---:|")
    for label, _, _ in MODELS:
        ours = results[f"{label} | cost() cached"].median_us
        theirs = results[f"{label} | genai calc_price"].median_us
        print(f"| {label} | {ours:.2f} | {theirs:.1f} | {theirs / ours:.0f}× |")
    for key in ("override house-model | cost() cached", "unknown model | cost() cached"):
        print(f"| {key.split(' | ')[0]} | {results[key].median_us:.2f} | – | – |")
    print("\n| first sighting (resolve + cost, new catalog) | median µs |")
    print("|---|---:|")
    for key, result in cold.items():
        print(f"| {key.split(' | ')[0]} | {result.median_us:.0f} |")


if __name__ == "__main__":
    main()
