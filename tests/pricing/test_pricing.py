"""Price resolution: genai-prices catalogue + overrides + aliases, cached and offline."""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice as CatalogModelPrice

import agentos_obs.pricing._catalog as pricing
from agentos_obs import testing
from agentos_obs.errors import ConfigurationError
from agentos_obs.pricing import ModelPrice, PriceCatalog, Usage, default_catalog, extract_usage


def expected_cost(model: str, usage: Usage, provider: str | None = None) -> float:
    """What genai-prices itself charges for this usage (input includes cache tokens)."""
    result = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        ),
        model,
        provider_id=provider,
    )
    return float(result.total_price)


CALL = Usage(
    input_tokens=12_000,
    output_tokens=900,
    cache_read_tokens=8_000,
    cache_write_tokens=1_500,
    reasoning_tokens=300,
)
LONG_PROMPT = Usage(input_tokens=250_000, output_tokens=4_000, cache_read_tokens=100_000)


@pytest.fixture
def catalog() -> PriceCatalog:
    return PriceCatalog()


# -- same numbers as genai-prices -----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider", "usage"),
    [
        pytest.param("gpt-4o", None, CALL, id="openai"),
        pytest.param("gpt-4o-mini", "openai", CALL, id="openai-provider"),
        pytest.param("o3-mini", None, CALL, id="openai-reasoning"),
        pytest.param("claude-3-5-sonnet-20240620", None, CALL, id="anthropic"),
        pytest.param("claude-sonnet-4-5", None, CALL, id="anthropic-tiered-below"),
        pytest.param("claude-sonnet-4-5", None, LONG_PROMPT, id="anthropic-tiered-above"),
        pytest.param("gemini-1.5-pro", None, LONG_PROMPT, id="gemini-tiered-above"),
        pytest.param("gemini-2.5-flash", "google", CALL, id="gemini"),
        pytest.param("deepseek-chat", None, CALL, id="deepseek-time-of-day-prices"),
        pytest.param("sonar-pro", "perplexity", CALL, id="perplexity-per-request-fee"),
        pytest.param("sonar-deep-research", "perplexity", CALL, id="perplexity-reasoning-price"),
        pytest.param("llama-3.1-8b-instant", "groq", CALL, id="groq"),
        pytest.param("mistral-large-latest", "mistral", CALL, id="mistral"),
        pytest.param("command-r-plus", "cohere", CALL, id="cohere"),
        pytest.param("anthropic.claude-3-5-sonnet-20240620-v1:0", "aws", CALL, id="bedrock"),
        pytest.param("gpt-4o", "azure", CALL, id="azure"),
    ],
)
def test_cost_equals_genai_prices(
    catalog: PriceCatalog, model: str, provider: str | None, usage: Usage
) -> None:
    expected = expected_cost(model, usage, provider)
    assert expected > 0
    assert catalog.cost(model, usage, provider) == pytest.approx(expected, rel=1e-9)
    # And again from the cache.
    assert catalog.cost(model, usage, provider) == pytest.approx(expected, rel=1e-9)


def _catalog_models() -> Iterator[tuple[str, str]]:
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            yield model.id, provider.id


def test_every_catalogue_model_costs_what_genai_prices_says() -> None:
    """The cached price plans against genai-prices' own calc, model by model, at several
    input sizes (below and above every tier threshold)."""
    catalog = PriceCatalog()
    usages = [
        CALL,
        LONG_PROMPT,
        Usage(input_tokens=3_000_000, output_tokens=10, cache_write_tokens=5),
        Usage(output_tokens=7),
    ]
    compared = mismatched = 0
    for model, provider in _catalog_models():
        for usage in usages:
            try:
                expected = expected_cost(model, usage, provider)
            except LookupError:
                continue  # a few catalogue ids do not match themselves
            got = catalog.cost(model, usage, provider)
            if got is None:
                # Unpriced here means: no unit a token count measures (audio hours…).
                assert expected == 0, (model, provider, usage)
                continue
            compared += 1
            if not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15):
                mismatched += 1
                pytest.fail(f"{provider}/{model} {usage}: {got} != {expected}")
    assert compared > 5000 and mismatched == 0


def test_cache_reads_are_priced_at_the_cache_rate(catalog: PriceCatalog) -> None:
    price = catalog.resolve("gpt-4o")
    assert price is not None and price.cache_read_mtok < price.input_mtok
    uncached = catalog.cost("gpt-4o", Usage(input_tokens=1_000_000))
    cached = catalog.cost("gpt-4o", Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000))
    assert uncached == pytest.approx(price.input_mtok)
    assert cached == pytest.approx(price.cache_read_mtok)


def test_model_without_cache_price_bills_cache_tokens_as_input(catalog: PriceCatalog) -> None:
    price = catalog.resolve("mistral-large-latest", "mistralai")
    assert price is not None and price.cache_read_mtok == price.input_mtok
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=400_000)
    assert catalog.cost("mistral-large-latest", usage, "mistralai") == pytest.approx(
        price.input_mtok
    )


def test_anthropic_usage_normalised_then_priced_like_genai_prices(catalog: PriceCatalog) -> None:
    response = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-3-5-sonnet-20240620",
        "usage": {
            "input_tokens": 50,
            "cache_read_input_tokens": 10_000,
            "cache_creation_input_tokens": 2_000,
            "output_tokens": 400,
        },
    }
    usage = extract_usage(response)
    assert usage == Usage(12_050, 400, 10_000, 2_000)
    theirs = genai_prices.extract_usage(response, provider_id="anthropic").calc_price()
    assert catalog.cost(response["model"], usage) == pytest.approx(float(theirs.total_price))


def test_tiered_prices_are_flagged_and_applied(catalog: PriceCatalog) -> None:
    price = catalog.resolve("claude-sonnet-4-5")
    assert price is not None and price.tiered
    small = catalog.cost("claude-sonnet-4-5", Usage(input_tokens=200_000))
    large = catalog.cost("claude-sonnet-4-5", Usage(input_tokens=200_001))
    assert small == pytest.approx(0.2 * price.input_mtok)
    assert large is not None and large > small * 1.5  # the long-context rate applies to all


def test_time_of_day_prices_follow_the_clock(
    catalog: PriceCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deepseek-chat has off-peak prices: the cached plan must follow the call's time."""

    class Clock(datetime):
        fixed = datetime(2025, 6, 1, 2, tzinfo=timezone.utc)

        @classmethod
        def now(cls, tz: Any = None) -> Clock:  # type: ignore[override]
            return cls.fixed  # type: ignore[return-value]

    monkeypatch.setattr(pricing, "datetime", Clock)
    costs = []
    for hour in (2, 18):
        Clock.fixed = datetime(2025, 6, 1, hour, tzinfo=timezone.utc)
        expected = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=12_000, output_tokens=900, cache_read_tokens=8_000),
            "deepseek-chat",
            genai_request_timestamp=Clock.fixed,
        )
        got = catalog.cost("deepseek-chat", Usage(12_000, 900, 8_000))
        assert got == pytest.approx(float(expected.total_price), rel=1e-9)
        costs.append(got)
    assert costs[0] != costs[1]


def test_prices_no_plan_can_express_are_computed_by_genai_prices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Today every catalogue price fits a plan; a future price key may not. Then the cached
    # catalogue model computes the cost itself (correct, only the lookup is skipped).
    monkeypatch.setattr(pricing, "_plan_from_catalog", lambda *args: None)
    catalog = PriceCatalog()
    for model, usage in [("claude-sonnet-4-5", LONG_PROMPT), ("deepseek-chat", CALL)]:
        assert catalog.cost(model, usage) == pytest.approx(expected_cost(model, usage), rel=1e-9)
    # Inconsistent usage (cache > input) is repaired, not raised, on this path too.
    odd = Usage(input_tokens=10, output_tokens=1, cache_read_tokens=50)
    assert catalog.cost("gpt-4o", odd) == pytest.approx(
        expected_cost("gpt-4o", Usage(50, 1, 50)), rel=1e-9
    )


# -- model name resolution ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "provider", "model_id", "provider_id"),
    [
        pytest.param("gpt-4o-2024-08-06", None, "gpt-4o", "openai", id="dated-snapshot"),
        pytest.param("gpt-4o-2099-01-01", None, "gpt-4o", "openai", id="unknown-dated-snapshot"),
        pytest.param("GPT-4o", None, "gpt-4o", "openai", id="case"),
        pytest.param("openai/gpt-4o", None, "gpt-4o", "openai", id="slash-prefix"),
        pytest.param("openai:gpt-4o", None, "gpt-4o", "openai", id="colon-prefix"),
        pytest.param(
            "anthropic:claude-3-5-sonnet-20240620",
            None,
            "claude-3-5-sonnet",
            "anthropic",
            id="anthropic-prefix",
        ),
        pytest.param(
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            None,
            "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws",
            id="bedrock-id-detected",
        ),
        pytest.param(
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "amazon_bedrock",
            "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws",
            id="bedrock-cross-region",
        ),
        pytest.param(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            None,
            "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws",
            id="bedrock-arn",
        ),
        pytest.param(
            "bedrock/amazon.nova-pro-v1:0",
            None,
            "amazon.nova-pro-v1:0",
            "aws",
            id="litellm-bedrock",
        ),
        pytest.param(
            "gemini-1.5-pro", "google_genai", "gemini-1.5-pro", "google", id="google-genai"
        ),
        pytest.param(
            "gemini-2.5-flash", "google_vertexai", "gemini-2.5-flash", "google", id="vertexai"
        ),
        pytest.param(
            "models/gemini-2.5-flash", None, "gemini-2.5-flash", "google", id="gemini-resource"
        ),
        pytest.param(
            "mistral-large-latest", "mistralai", "mistral-large", "mistral", id="mistralai"
        ),
        pytest.param(
            "llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant", "groq", id="groq-needs-provider"
        ),
        pytest.param("gpt-4o", "azure", "gpt-4o", "azure", id="azure"),
        pytest.param("gpt-4o", "groq", "gpt-4o", "openai", id="wrong-provider-falls-back"),
        pytest.param(
            "ft:gpt-4o-mini-2024-07-18:acme::9x8y7z", None, "gpt-4o-mini", "openai", id="fine-tune"
        ),
        pytest.param(
            "gpt-4o-mini.ft-0a1b2c", "azure", "gpt-4o-mini", "azure", id="azure-fine-tune"
        ),
    ],
)
def test_resolution(
    catalog: PriceCatalog, name: str, provider: str | None, model_id: str, provider_id: str
) -> None:
    price = catalog.resolve(name, provider)
    assert price is not None
    assert (price.model, price.provider) == (model_id, provider_id)
    assert catalog.cost(name, CALL, provider) == pytest.approx(
        expected_cost(model_id, CALL, provider_id), rel=1e-9
    )


def test_bedrock_ids_resolve_only_through_the_aws_provider() -> None:
    # What genai-prices does alone, which is why the aws retry exists.
    with pytest.raises(LookupError):
        genai_prices.calc_price(genai_prices.Usage(input_tokens=1), "amazon.nova-pro-v1:0")


def test_fine_tune_is_priced_as_its_base_with_an_alias_source(catalog: PriceCatalog) -> None:
    price = catalog.resolve("ft:gpt-4o-mini:acme::abc123")
    assert price is not None and price.source == "alias:gpt-4o-mini"


def test_alias_maps_azure_deployment_names(catalog: PriceCatalog) -> None:
    assert catalog.resolve("prod-chat", "azure") is None
    aliased = PriceCatalog(aliases={"prod-chat": "azure/gpt-4o", "Legacy": "prod-chat"})
    price = aliased.resolve("prod-chat", "azure")
    assert price is not None
    assert (price.model, price.provider, price.source) == ("gpt-4o", "azure", "alias:azure/gpt-4o")
    # Alias chains and prefixed names ("azure/<deployment>" from LiteLLM) resolve too.
    legacy = aliased.resolve("legacy")
    assert legacy is not None and legacy.model == "gpt-4o"
    assert aliased.resolve("azure/prod-chat") is not None
    assert aliased.cost("prod-chat", CALL, "azure") == pytest.approx(
        expected_cost("gpt-4o", CALL, "azure")
    )


def test_alias_cycles_end(catalog: PriceCatalog) -> None:
    catalog.add_alias("a", "b")
    catalog.add_alias("b", "a")
    assert catalog.resolve("a") is None


def test_local_models_never_borrow_a_hosted_price(catalog: PriceCatalog) -> None:
    assert catalog.cost("llama3.1", CALL, "ollama") is None
    assert "llama3.1" in catalog.unpriced_models()


def test_unknown_model_is_none_never_zero(catalog: PriceCatalog) -> None:
    assert catalog.cost("my-own-model-7b", CALL) is None
    assert catalog.resolve("my-own-model-7b") is None
    assert catalog.cost("", CALL) is None
    assert catalog.cost(None, CALL) is None  # type: ignore[arg-type]
    assert catalog.unpriced_models() == {"my-own-model-7b"}


# -- overrides ------------------------------------------------------------------------------


def test_override_takes_precedence_over_the_catalogue() -> None:
    catalog = PriceCatalog(overrides={"gpt-4o": {"input": 1.0, "output": 2.0, "cache_read": 0.5}})
    price = catalog.resolve("gpt-4o")
    assert price == ModelPrice("gpt-4o", None, 1.0, 2.0, 0.5, 1.0, "override")
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=200_000)
    assert catalog.cost("gpt-4o", usage) == pytest.approx(0.8 * 1.0 + 0.2 * 0.5 + 2.0)
    # The same name behind a provider prefix still gets the override.
    assert catalog.cost("openai/gpt-4o", usage) == pytest.approx(2.9)


def test_override_matches_alias_targets_and_fine_tune_bases() -> None:
    catalog = PriceCatalog(
        overrides={"gpt-4o-mini": {"input": 10, "output": 20}},
        aliases={"team-bot": "gpt-4o-mini"},
    )
    assert catalog.cost("team-bot", Usage(1_000_000)) == pytest.approx(10.0)
    assert catalog.cost("ft:gpt-4o-mini:acme::x", Usage(1_000_000)) == pytest.approx(10.0)
    # An override on the fine-tune itself wins over its base.
    catalog.add_override("ft:gpt-4o-mini:acme::x", {"input": 30, "output": 60})
    assert catalog.cost("ft:gpt-4o-mini:acme::x", Usage(1_000_000)) == pytest.approx(30.0)


def test_missing_cache_prices_fall_back_to_input() -> None:
    catalog = PriceCatalog(overrides={"house-model": {"input": 4, "output": 8}})
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=500_000, cache_write_tokens=250_000)
    assert catalog.cost("house-model", usage) == pytest.approx(4.0)
    price = catalog.resolve("HOUSE-MODEL")
    assert price is not None and (price.cache_read_mtok, price.cache_write_mtok) == (4.0, 4.0)


def test_add_override_reprices_and_clears_unpriced(catalog: PriceCatalog) -> None:
    assert catalog.cost("house-model", CALL) is None
    assert catalog.cost("other-model", CALL) is None
    catalog.add_override("house-model", {"input": 1, "output": 1, "cache_write": 2})
    assert catalog.cost("house-model", Usage(1_000_000, 1_000_000)) == pytest.approx(2.0)
    assert catalog.unpriced_models() == {"other-model"}
    catalog.add_alias("other-model", "gpt-4o")
    assert catalog.unpriced_models() == set()


def test_overrides_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"house-model": {"input": 3, "output": 6, "cache_read": 0.3}}))
    catalog = PriceCatalog(overrides=path)
    assert catalog.cost("house-model", Usage(1_000_000, 1_000_000)) == pytest.approx(9.0)
    assert PriceCatalog(overrides=str(path)).resolve("house-model") is not None


def test_overrides_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '["house-model"]\ninput = 3\noutput = 6.5\n\n["gpt-4o"]\ninput = 0\noutput = 0\n'
    )
    catalog = PriceCatalog(overrides=path)
    assert catalog.cost("house-model", Usage(1_000_000, 1_000_000)) == pytest.approx(9.5)
    # A zero override is a price (free), not "unknown".
    assert catalog.cost("gpt-4o", CALL) == 0.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"m": {"input": 1, "output": 1, "cached": 1}}, "unknown key", id="unknown-key"
        ),
        pytest.param({"m": {"input": -1, "output": 1}}, ">= 0", id="negative"),
        pytest.param({"m": {"input": "1.0", "output": 1}}, "must be a number", id="string"),
        pytest.param({"m": {"input": True, "output": 1}}, "must be a number", id="bool"),
        pytest.param({"m": {"input": math.nan, "output": 1}}, "finite", id="nan"),
        pytest.param({"m": {"input": 1}}, "missing output", id="missing-output"),
        pytest.param({"m": [1, 2]}, "expected a mapping", id="not-a-mapping"),
        pytest.param({"": {"input": 1, "output": 1}}, "non-empty", id="empty-name"),
        pytest.param(42, "overrides must be", id="wrong-type"),
    ],
)
def test_bad_overrides_raise_configuration_error(overrides: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PriceCatalog(overrides=overrides)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("missing.json", None, "cannot read", id="missing-file"),
        pytest.param("bad.json", "{not json", "not valid", id="bad-json"),
        pytest.param("bad.toml", "[unclosed", "not valid", id="bad-toml"),
        pytest.param("list.json", "[1, 2]", "top level", id="top-level-list"),
        pytest.param("prices.yaml", "m: 1", r"\.json or \.toml", id="unknown-suffix"),
        pytest.param("neg.toml", "[m]\ninput = -2\noutput = 1\n", ">= 0", id="bad-value-in-file"),
    ],
)
def test_bad_override_files_raise_configuration_error(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        PriceCatalog(overrides=path)


def test_bad_aliases_and_late_overrides_raise(catalog: PriceCatalog) -> None:
    with pytest.raises(ConfigurationError, match="points to itself"):
        PriceCatalog(aliases={"x": "X"})
    with pytest.raises(ConfigurationError, match="target"):
        PriceCatalog(aliases={"x": ""})
    with pytest.raises(ConfigurationError, match="aliases must be a mapping"):
        PriceCatalog(aliases=["x"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown key"):
        catalog.add_override("m", {"inp": 1})
    with pytest.raises(ConfigurationError):
        catalog.add_alias("", "gpt-4o")


def test_override_prices_accept_decimal_and_int() -> None:
    catalog = PriceCatalog(overrides={"m": {"input": Decimal("0.5"), "output": 2}})
    assert catalog.cost("m", Usage(2_000_000, 0)) == pytest.approx(1.0)


# -- caching, concurrency, never raising ----------------------------------------------------


def test_second_call_does_not_touch_genai_prices(
    catalog: PriceCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find = data_snapshot.DataSnapshot.find_provider_model
    calls: list[str] = []

    def spy(self: Any, model_ref: str, *args: Any) -> Any:
        calls.append(model_ref)
        return real_find(self, model_ref, *args)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", spy)
    first = catalog.cost("claude-sonnet-4-5", CALL)
    assert calls
    calls.clear()

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("genai-prices' calc used on the cached path")

    monkeypatch.setattr(CatalogModelPrice, "calc_price", forbidden)
    for _ in range(3):
        assert catalog.cost("claude-sonnet-4-5", CALL) == first
    assert catalog.resolve("claude-sonnet-4-5") is not None
    assert calls == []
    # Unknown names are cached too (no repeated slow misses).
    catalog.cost("nobody-knows-me", CALL)
    calls.clear()
    catalog.cost("nobody-knows-me", CALL)
    assert calls == []


def test_cache_and_unpriced_set_are_bounded(
    catalog: PriceCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pricing, "_MAX_RESOLVED", 8)
    monkeypatch.setattr(pricing, "_MAX_UNPRICED", 5)
    for i in range(20):
        catalog.cost(f"unknown-{i}", CALL)
    assert catalog.unpriced_models() == {f"unknown-{i}" for i in range(15, 20)}
    assert len(catalog._resolved) <= 8
    assert catalog.cost("gpt-4o", CALL) == pytest.approx(expected_cost("gpt-4o", CALL))


def test_sixteen_threads_hammering_cost() -> None:
    catalog = PriceCatalog(overrides={"house-model": {"input": 1, "output": 2}})
    models = ["gpt-4o", "claude-sonnet-4-5", "house-model", "deepseek-chat", "nope-model"]
    usage = Usage(input_tokens=5_000, output_tokens=700, cache_read_tokens=1_000)
    reference = PriceCatalog(overrides={"house-model": {"input": 1, "output": 2}})
    expected = {model: reference.cost(model, usage) for model in models}
    start = threading.Barrier(16)
    errors: list[BaseException] = []
    wrong: list[tuple[str, float | None]] = []

    def hammer(offset: int) -> None:
        try:
            start.wait()
            for i in range(2_000):
                model = models[(i + offset) % len(models)]
                got = catalog.cost(model, usage)
                if got != expected[model]:
                    wrong.append((model, got))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and wrong == []
    assert catalog.unpriced_models() == {"nope-model"}


def test_changes_while_threads_price_give_old_or_new_prices_only() -> None:
    catalog = PriceCatalog()
    usage = Usage(input_tokens=1_000_000)
    old = catalog.cost("gpt-4o", usage)
    stop = threading.Event()
    seen: set[float | None] = set()

    def reader() -> None:
        while not stop.is_set():
            seen.add(catalog.cost("gpt-4o", usage))

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    for i in range(20):
        catalog.add_alias(f"deployment-{i}", "gpt-4o")  # invalidates the cache each time
    catalog.add_override("gpt-4o", {"input": 7, "output": 7})
    for i in range(20):
        catalog.add_alias(f"other-{i}", "gpt-4o")
    stop.set()
    for thread in readers:
        thread.join()
    assert catalog.cost("gpt-4o", usage) == pytest.approx(7.0)
    assert seen and all(v == old or v == pytest.approx(7.0) for v in seen)


def test_cost_accepts_raw_usage_and_never_raises_in_production(
    catalog: PriceCatalog, lenient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {"prompt_tokens": 1000, "completion_tokens": 10}
    assert catalog.cost("gpt-4o", raw) == pytest.approx(  # type: ignore[arg-type]
        expected_cost("gpt-4o", Usage(1000, 10))
    )
    assert catalog.cost("gpt-4o", "garbage") is None  # type: ignore[arg-type]

    def broken(self: Any, usage: Usage) -> float:
        raise RuntimeError("bug in a price plan")

    monkeypatch.setattr(pricing._Plan, "cost", broken)
    assert catalog.cost("gpt-4o", CALL) is None
    assert testing.failure_counts()["pricing"] == 1


def test_internal_failure_surfaces_in_strict_mode(
    catalog: PriceCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, usage: Usage) -> float:
        raise RuntimeError("bug in a price plan")

    monkeypatch.setattr(pricing._Plan, "cost", broken)
    with pytest.raises(RuntimeError, match="bug in a price plan"):
        catalog.cost("gpt-4o", CALL)


def test_new_catalogue_snapshot_is_picked_up(catalog: PriceCatalog) -> None:
    """If the app loads newer prices into genai-prices, cached plans are dropped."""
    before = catalog.cost("gpt-4o", Usage(1_000_000))
    bundled = data_snapshot.get_snapshot()
    providers = copy.deepcopy(bundled.providers)
    openai = next(p for p in providers if p.id == "openai")
    gpt_4o = next(m for m in openai.models if m.id == "gpt-4o")
    assert isinstance(gpt_4o.prices, CatalogModelPrice)
    gpt_4o.prices = CatalogModelPrice(input_mtok=Decimal("100"), output_mtok=Decimal("100"))
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)
    )
    try:
        assert catalog.cost("gpt-4o", Usage(1_000_000)) == pytest.approx(100.0)
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert catalog.cost("gpt-4o", Usage(1_000_000)) == pytest.approx(before)


def test_no_price_updater_is_started(catalog: PriceCatalog) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    catalog.cost("gpt-4o", CALL)
    catalog.cost("never-heard-of-it", CALL)
    assert data_snapshot._custom_snapshot is None
    assert data_snapshot.get_snapshot().from_auto_update is False
    assert {t.ident for t in threading.enumerate()} <= threads_before


def test_default_catalog_is_one_shared_instance() -> None:
    seen: list[PriceCatalog] = []
    threads = [threading.Thread(target=lambda: seen.append(default_catalog())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in seen}) == 1 and seen[0] is default_catalog()
    assert default_catalog().cost("gpt-4o", CALL) == pytest.approx(expected_cost("gpt-4o", CALL))
