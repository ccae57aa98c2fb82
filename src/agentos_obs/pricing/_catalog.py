"""Price resolution: model name + :class:`~agentos_obs.pricing.Usage` -> USD, offline.

Prices come from genai-prices' bundled catalogue (its updater is never started: no network)
and from user overrides. Finding a model in the catalogue is slow (tens of µs), so each
``(model, provider)`` pair is resolved once into a small *price plan* (plain floats per token,
with the catalogue's tier thresholds) and cached; a cached :meth:`PriceCatalog.cost` call is
a dict lookup and a few multiplications. Plans are checked against genai-prices' own
``calc_price`` over the whole catalogue in the test suite.

Resolution of a model name, first hit wins:

1. Overrides (``PriceCatalog(overrides=...)``, :meth:`PriceCatalog.add_override`), matched
   case-insensitively on the raw name, its alias targets, the name without a provider
   prefix, then a fine-tune's base model.
2. The catalogue, trying the same names with: the provider the name carries as a prefix
   (``openai/gpt-4o``, ``anthropic:claude-…``, ``bedrock/…``), the caller's provider (LangChain
   ``ls_provider`` spellings are mapped: ``google_genai`` -> ``google``, ``amazon_bedrock`` ->
   ``aws``, ``mistralai`` -> ``mistral``…), ``aws`` for Bedrock-looking ids
   (``us.anthropic.claude-…-v1:0``, ARNs), then no provider; last, a dated snapshot unknown to
   the catalogue falls back to its undated model (``gpt-4o-2099-01-01`` -> ``gpt-4o``).

Aliases map a name the catalogue cannot know (an Azure deployment, a proxy's name) to one it
does; a target may carry a provider prefix (``"azure/gpt-4o"``). Fine-tunes
(``ft:gpt-4o-mini:org::id``, Azure ``gpt-4o-mini.ft-abc``) are priced as their base model
unless the fine-tune name itself has an override or alias. OpenAI bills fine-tuned inference
above the base rate, so add an override when that matters.

Override prices are USD per million tokens with keys ``input``, ``output`` (required),
``cache_read`` and ``cache_write`` (optional). A missing cache price falls back to the input
price, which is also what the catalogue does for a model without a cache price: cache tokens
are then billed as ordinary input.

Reasoning tokens are part of output tokens and billed at the output rate, unless the
catalogue has a separate reasoning price. Models priced only in units a token count cannot
measure (audio hours, pages) are treated as unpriced: the cost is unknown, not zero.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agentos_obs._internal.guard import report
from agentos_obs.errors import ConfigurationError
from agentos_obs.pricing._usage import Usage, extract_usage

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo as CatalogModel
    from genai_prices.types import ModelPrice as CatalogPrice
    from genai_prices.types import Provider as CatalogProvider

__all__ = ["ModelPrice", "PriceCatalog", "default_catalog"]

OVERRIDE_KEYS: Final = ("input", "output", "cache_read", "cache_write")
_MAX_RESOLVED: Final = 4096  # (model, provider) pairs kept; the oldest goes first
_MAX_UNPRICED: Final = 1024  # unpriced names remembered for unpriced_models()
_MAX_ALIAS_HOPS: Final = 8
_PER_MTOK: Final = 1_000_000.0


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """The price a model name resolved to, in USD per million tokens.

    ``source`` is ``"override"`` (a user override), ``"catalog"`` (genai-prices, found by the
    name itself) or ``"alias:<target>"`` (catalogue price found through an alias or a
    fine-tune's base model). ``tiered`` means the catalogue raises some prices above an
    input-size threshold (the fields hold the base prices; :meth:`PriceCatalog.cost` applies
    the tiers). Time-dependent catalogue prices show the price in force when the name was
    resolved; :meth:`PriceCatalog.cost` always uses the price in force at the call.
    """

    model: str
    provider: str | None
    input_mtok: float
    output_mtok: float
    cache_read_mtok: float
    cache_write_mtok: float
    source: str
    tiered: bool = False


# -- price plans: the cheap, cached form of a price ----------------------------------------


@dataclass(frozen=True, slots=True)
class _Rates:
    """USD per token for each part of a Usage (``request``: USD per call).

    An unpriced cache or reasoning part carries the input / output rate, which gives the
    same result as genai-prices billing those tokens inside input / output.
    """

    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float
    request: float = 0.0


class _Plan:
    """Base rates plus, for tiered prices, the rates above each input-size threshold."""

    __slots__ = ("base", "regions")

    def __init__(self, base: _Rates, regions: tuple[tuple[int, _Rates], ...] = ()) -> None:
        self.base = base
        self.regions = regions  # (threshold, rates), highest threshold first

    def cost(self, usage: Usage) -> float:
        rates = self.base
        for threshold, region_rates in self.regions:
            # Cliff pricing as in genai-prices: crossing a tier reprices ALL tokens.
            if usage.input_tokens > threshold:
                rates = region_rates
                break
        uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        visible_output = usage.output_tokens - usage.reasoning_tokens
        return (
            (uncached if uncached > 0 else 0) * rates.input
            + usage.cache_read_tokens * rates.cache_read
            + usage.cache_write_tokens * rates.cache_write
            + (visible_output if visible_output > 0 else 0) * rates.output
            + usage.reasoning_tokens * rates.reasoning
            + rates.request
        )


# Catalogue price keys a plan understands, with the Usage part each one prices.
_PLAN_KEYS: Final = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "output_reasoning_mtok": "reasoning",
    "requests_kcount": "request",
}
# Dimensions of the usage genai-prices is given (see _catalog_usage).
_REPORTED_DIMENSIONS: Final = (
    {"family": "tokens", "direction": "input"},
    {"family": "tokens", "direction": "output"},
)


def _unit_table() -> dict[str, tuple[int, Mapping[str, str]]]:
    """price key -> (count per price, dimensions), from genai-prices' public unit data."""
    from genai_prices.data_units import unit_data

    return {
        raw.get("price_key", usage_key): (int(raw["per"]), dict(raw.get("dimensions", {})))
        for usage_key, raw in unit_data.items()
    }


def _rate_at(value: Any, per: int, total_input: int) -> float | None:
    """USD per unit of a catalogue price (Decimal or TieredPrices) at this input size."""
    if value is None:
        return None
    tiers = getattr(value, "tiers", None)
    if tiers is None:
        return float(value) / per
    price = value.base
    for tier in reversed(tiers):
        if total_input > tier.start:
            price = tier.price
            break
    return float(price) / per


_UnitTable = Mapping[str, tuple[int, Mapping[str, str]]]


def _plan_from_catalog(model_price: CatalogPrice, units: _UnitTable) -> _Plan | None:
    """A plan equal to genai-prices' calc for our Usage, or None when one cannot be made
    (a price key outside what a token count measures, or no token price at all)."""
    prices: dict[str, tuple[Any, int]] = {}
    for key, value in vars(model_price).items():
        if key.startswith("_") or value is None:
            continue
        if key not in units:
            return None
        per, dimensions = units[key]
        if key in _PLAN_KEYS:
            prices[_PLAN_KEYS[key]] = (value, per)
        elif any(dimensions.items() <= reported.items() for reported in _REPORTED_DIMENSIONS):
            # A broader unit than input/output tokens would change how genai-prices splits
            # the usage: leave such a model to genai-prices itself.
            return None
        # Otherwise a narrower unit (audio, images, 1h cache writes, web searches…): our
        # usage never reports it, so it costs nothing here, as in genai-prices.
    if not prices:
        return None
    thresholds = sorted(
        {tier.start for value, _ in prices.values() for tier in getattr(value, "tiers", ())},
        reverse=True,
    )

    def rates_at(total_input: int) -> _Rates:
        def rate(part: str) -> float | None:
            value, per = prices.get(part, (None, 1))
            return _rate_at(value, per, total_input)

        input_rate = rate("input") or 0.0
        output_rate = rate("output") or 0.0
        return _Rates(
            input=input_rate,
            output=output_rate,
            cache_read=_or(rate("cache_read"), input_rate),
            cache_write=_or(rate("cache_write"), input_rate),
            reasoning=_or(rate("reasoning"), output_rate),
            request=rate("request") or 0.0,
        )

    return _Plan(rates_at(0), tuple((t, rates_at(t + 1)) for t in thresholds))


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def _catalog_usage(usage: Usage) -> Any:
    """genai-prices' Usage for ours, repaired so its checks (cache <= input) cannot fail."""
    from genai_prices import Usage as CatalogUsage

    cache = usage.cache_read_tokens + usage.cache_write_tokens
    return CatalogUsage(
        input_tokens=max(usage.input_tokens, cache),
        output_tokens=max(usage.output_tokens, usage.reasoning_tokens),
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )


class _Entry:
    """A resolved name: its price for display and the cheapest correct way to compute cost."""

    __slots__ = ("_model", "_plans", "_provider", "plan", "price")

    def __init__(
        self,
        price: ModelPrice,
        plan: _Plan | None,
        model: CatalogModel | None = None,
        provider: CatalogProvider | None = None,
        plans: dict[int, _Plan | None] | None = None,
    ) -> None:
        self.price = price
        self.plan = plan  # set for fixed prices
        self._model = model  # genai-prices ModelInfo, for time-dependent or odd prices
        self._provider = provider
        self._plans = plans  # id(active catalogue price) -> plan, for time-dependent prices

    def cost(self, usage: Usage) -> float:
        if self.plan is not None:
            return self.plan.cost(usage)
        assert self._model is not None and self._provider is not None
        if self._plans is not None:
            plan = self._plans.get(id(self._model.get_prices(datetime.now(timezone.utc))))
            if plan is not None:
                return plan.cost(usage)
        # Prices no plan can express: genai-prices computes them, skipping only its lookup.
        result = self._model.calc_price(_catalog_usage(usage), self._provider)
        return float(result.total_price)


def _override_entry(name: str, prices: Mapping[str, float], provider: str | None) -> _Entry:
    input_mtok = prices["input"]
    output_mtok = prices["output"]
    cache_read = prices.get("cache_read", input_mtok)
    cache_write = prices.get("cache_write", input_mtok)
    price = ModelPrice(name, provider, input_mtok, output_mtok, cache_read, cache_write, "override")
    rates = _Rates(
        input=input_mtok / _PER_MTOK,
        output=output_mtok / _PER_MTOK,
        cache_read=cache_read / _PER_MTOK,
        cache_write=cache_write / _PER_MTOK,
        reasoning=output_mtok / _PER_MTOK,
    )
    return _Entry(price, _Plan(rates))


def _catalog_entry(
    model: CatalogModel, provider: CatalogProvider, source: str, units: _UnitTable
) -> _Entry | None:
    active = model.get_prices(datetime.now(timezone.utc))
    candidates = (
        [active] if not isinstance(model.prices, list) else [c.prices for c in model.prices]
    )
    plans = {id(p): _plan_from_catalog(p, units) for p in candidates}
    if not any(_has_token_price(p) for p in candidates):
        return None  # priced only in units a token count cannot measure

    def mtok(key: str, fallback: float = 0.0) -> float:
        rate = _rate_at(getattr(active, key, None), 1, 0)
        return fallback if rate is None else rate

    input_mtok = mtok("input_mtok")
    price = ModelPrice(
        model=model.id,
        provider=provider.id,
        input_mtok=input_mtok,
        output_mtok=mtok("output_mtok"),
        cache_read_mtok=mtok("cache_read_mtok", input_mtok),
        cache_write_mtok=mtok("cache_write_mtok", input_mtok),
        source=source,
        tiered=any(getattr(v, "tiers", None) is not None for v in vars(active).values()),
    )
    if not isinstance(model.prices, list):
        plan = plans[id(active)]
        if plan is not None:
            return _Entry(price, plan)
        return _Entry(price, None, model, provider)
    return _Entry(price, None, model, provider, plans)


def _has_token_price(model_price: CatalogPrice) -> bool:
    return any(getattr(model_price, key, None) is not None for key in _PLAN_KEYS)


# -- model names ----------------------------------------------------------------------------

# LangChain ls_provider / LiteLLM prefixes / common spellings -> genai-prices provider id.
_PROVIDER_IDS: Final = {
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "azure_ai": "azure",
    "azureopenai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "google_genai": "google",
    "google_vertexai": "google",
    "google_anthropic_vertex": "google",
    "vertexai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "amazon_bedrock": "aws",
    "amazon": "aws",
    "aws": "aws",
    "groq": "groq",
    "mistral": "mistral",
    "mistralai": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "databricks": "databricks",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
}
# Models served locally have no list price: never borrow a hosted provider's price for them.
_LOCAL_PROVIDERS: Final = frozenset({"ollama", "llamacpp", "llama_cpp", "lmstudio", "local"})

_PREFIX_RE: Final = re.compile(r"^([a-z][\w.-]*?)[/:](.+)$", re.IGNORECASE)
_BEDROCK_RE: Final = re.compile(
    r"^(?:[a-z]{2,7}\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|writer|qwen|openai)"
    r"\.[a-z0-9][\w.:-]*$",
    re.IGNORECASE,
)
_ARN_RE: Final = re.compile(r"^arn:aws[\w-]*:bedrock:[^/]*/(.+)$", re.IGNORECASE)
_DATE_SUFFIX_RE: Final = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8})$")
_AZURE_FINE_TUNE_RE: Final = re.compile(r"^(.+?)\.ft-[0-9a-z]+$", re.IGNORECASE)


def _provider_id(provider: str | None) -> str | None:
    if not isinstance(provider, str) or not provider.strip():
        return None
    lowered = provider.strip().lower()
    return _PROVIDER_IDS.get(lowered, lowered)


def _fine_tune_base(name: str) -> str | None:
    if name.lower().startswith("ft:"):
        parts = name.split(":")
        return parts[1] or None
    match = _AZURE_FINE_TUNE_RE.match(name)
    return match.group(1) if match else None


def _forms(name: str) -> list[tuple[str, str | None]]:
    """(model ref, provider the name itself names) for a name, most literal first."""
    forms: list[tuple[str, str | None]] = [(name, None)]
    arn = _ARN_RE.match(name)
    if arn:
        forms.append((arn.group(1), "aws"))
    prefix = _PREFIX_RE.match(name)
    if prefix and prefix.group(1).lower() in _PROVIDER_IDS:
        forms.append((prefix.group(2), _PROVIDER_IDS[prefix.group(1).lower()]))
    # Gemini and Vertex resource names: "models/gemini-…", "publishers/google/models/gemini-…".
    _, found, resource = name.rpartition("models/")
    if found and resource:
        forms.append((resource, None))
    return forms


def _date_stripped(name: str) -> str | None:
    stripped = _DATE_SUFFIX_RE.sub("", name)
    return stripped if stripped != name and stripped else None


def _looks_bedrock(ref: str) -> bool:
    return _BEDROCK_RE.match(ref) is not None


# -- override input -------------------------------------------------------------------------


def _check_prices(model: object, prices: object) -> dict[str, float]:
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(
            f"price override: model name must be a non-empty string, got {model!r}"
        )
    if not isinstance(prices, Mapping):
        raise ConfigurationError(
            f"price override for {model!r}: expected a mapping of {', '.join(OVERRIDE_KEYS)} "
            f"(USD per million tokens), got {type(prices).__name__}"
        )
    unknown = sorted(str(key) for key in prices if key not in OVERRIDE_KEYS)
    if unknown:
        raise ConfigurationError(
            f"price override for {model!r}: unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(OVERRIDE_KEYS)}"
        )
    missing = [key for key in ("input", "output") if key not in prices]
    if missing:
        raise ConfigurationError(f"price override for {model!r}: missing {', '.join(missing)}")
    checked: dict[str, float] = {}
    for key, value in prices.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ConfigurationError(
                f"price override for {model!r}: {key} must be a number (USD per million "
                f"tokens), got {value!r}"
            )
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ConfigurationError(
                f"price override for {model!r}: {key} must be a finite number >= 0, got {value!r}"
            )
        checked[str(key)] = number
    return checked


def _load_override_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigurationError(f"price overrides file {file}: use a .json or .toml file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read price overrides file {file}: {exc}") from exc
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif tomllib is None:  # pragma: no cover - Python 3.10
            raise ConfigurationError(f"price overrides file {file}: TOML needs Python 3.11+")
        else:
            data = tomllib.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigurationError(f"price overrides file {file} is not valid: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"price overrides file {file}: expected a table of model -> prices at the top level"
        )
    return data


def _check_alias(name: object, target: object) -> tuple[str, str]:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"model alias: name must be a non-empty string, got {name!r}")
    if not isinstance(target, str) or not target.strip():
        raise ConfigurationError(f"model alias {name!r}: target must be a non-empty string")
    if name.strip().lower() == target.strip().lower():
        raise ConfigurationError(f"model alias {name!r} points to itself")
    return name.strip().lower(), target.strip()


# -- the catalog ----------------------------------------------------------------------------

_MISSING: Final[Any] = object()


class PriceCatalog:
    """Model prices from genai-prices plus user overrides and aliases, resolved once per
    ``(model, provider)`` and cached. Safe to share between threads."""

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, float]] | str | os.PathLike[str] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(overrides, (str, os.PathLike)):
            overrides = _load_override_file(overrides)
        elif overrides is not None and not isinstance(overrides, Mapping):
            raise ConfigurationError(
                "overrides must be a mapping of model -> prices or a .json/.toml file path, "
                f"got {type(overrides).__name__}"
            )
        if aliases is not None and not isinstance(aliases, Mapping):
            raise ConfigurationError(f"aliases must be a mapping, got {type(aliases).__name__}")
        self._overrides: dict[str, dict[str, float]] = {}
        for model, prices in (overrides or {}).items():
            self._overrides[str(model).strip().lower()] = _check_prices(model, prices)
        self._aliases: dict[str, str] = dict(
            _check_alias(name, target) for name, target in (aliases or {}).items()
        )
        self._lock = threading.Lock()
        # Read without the lock (a dict lookup is atomic); replaced, never cleared, on change.
        self._resolved: dict[tuple[str, str | None], _Entry | None] = {}
        self._generation = 0
        self._snapshot: DataSnapshot | None = None
        self._units: _UnitTable | None = None
        self._unpriced: dict[str, str | None] = {}

    # -- public API -------------------------------------------------------------------------

    def cost(self, model: str, usage: Usage, provider: str | None = None) -> float | None:
        """USD for ``usage`` of ``model``; None (never 0) when the model has no known price."""
        try:
            entry = self._entry(model, provider)
            if entry is None:
                return None
            if not isinstance(usage, Usage):
                found = extract_usage(usage, provider)
                if found is None:
                    return None
                usage = found
            return entry.cost(usage)
        except Exception as exc:
            report("pricing", exc)
            return None

    def resolve(self, model: str, provider: str | None = None) -> ModelPrice | None:
        """The price ``model`` resolves to, or None when it has none."""
        try:
            entry = self._entry(model, provider)
        except Exception as exc:
            report("pricing", exc)
            return None
        return None if entry is None else entry.price

    def add_override(self, model: str, prices: Mapping[str, float]) -> None:
        """Price ``model`` at ``prices`` (USD per million tokens), ahead of the catalogue."""
        checked = _check_prices(model, prices)
        with self._lock:
            self._overrides = {**self._overrides, model.strip().lower(): checked}
        self._invalidate()

    def add_alias(self, name: str, target: str) -> None:
        """Resolve ``name`` (e.g. an Azure deployment) as ``target`` (e.g. ``"azure/gpt-4o"``)."""
        key, value = _check_alias(name, target)
        with self._lock:
            self._aliases = {**self._aliases, key: value}
        self._invalidate()

    def unpriced_models(self) -> set[str]:
        """Model names seen with no price (at most the last 1024 such names).

        Names priced since (by a later override or alias) are dropped here, lazily: each is
        looked up again through the cache, so the call is cheap once the cache is warm.
        """
        with self._lock:
            seen = list(self._unpriced.items())
        priced_now = {name for name, provider in seen if self._entry(name, provider) is not None}
        with self._lock:
            for name in priced_now:
                self._unpriced.pop(name, None)
            return set(self._unpriced)

    # -- cache ------------------------------------------------------------------------------

    def _entry(self, model: str, provider: str | None) -> _Entry | None:
        if not isinstance(model, str):
            return None
        if not isinstance(provider, str):
            provider = None
        if self._snapshot is not None and self._snapshot is not _current_snapshot():
            # Someone (the app, not us) loaded newer prices: resolve again against them.
            self._invalidate()
        key = (model, provider)
        entry = self._resolved.get(key, _MISSING)
        if entry is _MISSING:
            entry = self._resolve_and_store(key)
        return entry  # type: ignore[no-any-return]

    def _resolve_and_store(self, key: tuple[str, str | None]) -> _Entry | None:
        generation = self._generation
        # Resolved outside the lock: the first lookup may import the catalogue (slow), and a
        # duplicate resolution by a racing thread is harmless.
        entry = self._resolve_uncached(*key)
        with self._lock:
            if generation == self._generation:
                resolved = self._resolved
                if len(resolved) >= _MAX_RESOLVED:
                    del resolved[next(iter(resolved))]
                resolved[key] = entry
                if entry is None and key[0].strip():
                    self._unpriced.pop(key[0], None)
                    if len(self._unpriced) >= _MAX_UNPRICED:
                        del self._unpriced[next(iter(self._unpriced))]
                    self._unpriced[key[0]] = key[1]
        return entry

    def _invalidate(self) -> None:
        """Forget every resolution (after a config change or a new catalogue snapshot).

        Cheap on purpose: it can run on the hot path. A resolution racing with it is not
        stored (generation check), so no stale price outlives the change.
        """
        with self._lock:
            self._generation += 1
            self._resolved = {}
            self._snapshot = None

    # -- resolution -------------------------------------------------------------------------

    def _names(self, model: str) -> list[tuple[str, str]]:
        """(name, source) to try: the name, its alias targets, its fine-tune base."""
        aliases = self._aliases
        names = [(model, "catalog")]
        current = model
        for _ in range(_MAX_ALIAS_HOPS):
            candidates = [current.lower()] + [form.lower() for form, _ in _forms(current)[1:]]
            target = next((aliases[c] for c in candidates if c in aliases), None)
            if target is None or any(target.lower() == n.lower() for n, _ in names):
                break
            names.append((target, f"alias:{target}"))
            current = target
        base = _fine_tune_base(current)
        if base is not None:
            names.append((base, f"alias:{base}"))
        return names

    def _resolve_uncached(self, model: str, provider: str | None) -> _Entry | None:
        model = model.strip()
        if not model:
            return None
        names = self._names(model)
        hint = _provider_id(provider)
        overrides = self._overrides
        for name, _ in names:
            for form, _ in _forms(name):
                prices = overrides.get(form.lower())
                if prices is not None:
                    return _override_entry(form, prices, hint)
        return self._resolve_in_catalog(names, hint)

    def _resolve_in_catalog(self, names: list[tuple[str, str]], hint: str | None) -> _Entry | None:
        snapshot = _current_snapshot()
        if self._units is None:
            self._units = _unit_table()
        local = hint in _LOCAL_PROVIDERS
        attempts: list[tuple[str, str | None, str]] = []
        for name, source in names:
            for form, named_provider in _forms(name):
                providers: list[str | None] = [named_provider] if named_provider else []
                if not local:
                    providers.append(hint)
                if _looks_bedrock(form):
                    providers.append("aws")
                if named_provider is None and not local:
                    providers.append(None)
                attempts.extend((form, p, source) for p in dict.fromkeys(providers))
        # Last resort: a dated snapshot the catalogue does not list yet -> its undated model.
        attempts.extend(
            (stripped, provider, source)
            for form, provider, source in list(attempts)
            if (stripped := _date_stripped(form)) is not None
        )
        for ref, provider_id, source in dict.fromkeys(attempts):
            try:
                provider, model = snapshot.find_provider_model(ref, None, provider_id, None)
            except LookupError:
                continue
            # Found: the answer even when it has no token price (free-with-subscription
            # models, audio priced by the hour); another provider's price would be wrong.
            self._snapshot = snapshot
            return _catalog_entry(model, provider, source, self._units)
        self._snapshot = snapshot
        return None


_get_snapshot: Callable[[], DataSnapshot] | None = None


def _current_snapshot() -> DataSnapshot:
    """genai-prices' current data (the bundled one unless the app loaded newer prices)."""
    global _get_snapshot
    if _get_snapshot is None:
        # Imported on first use: genai-prices takes ~0.2 s to import, paid at the first
        # price lookup rather than at `import agentos_obs`.
        from genai_prices.data_snapshot import get_snapshot

        _get_snapshot = get_snapshot
    return _get_snapshot()


_default: PriceCatalog | None = None
_default_lock = threading.Lock()


def default_catalog() -> PriceCatalog:
    """The process-wide catalog (catalogue prices, no overrides), created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PriceCatalog()
    return _default
