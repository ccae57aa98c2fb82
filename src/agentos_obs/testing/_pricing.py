"""A price catalogue with one flat price for every model, so tests can assert exact costs."""

from __future__ import annotations

from collections.abc import Iterable

from agentos_obs.pricing._catalog import ModelPrice, PriceCatalog
from agentos_obs.pricing._usage import Usage, extract_usage

__all__ = ["FlatPricing"]


class FlatPricing(PriceCatalog):
    """Every model costs ``input_per_mtok`` / ``output_per_mtok`` USD per million tokens,
        except the names in ``unpriced``, which have no price (cost ``None``, as an unknown model
        has in the real catalogue). Cache and reasoning tokens are billed inside input and output
        at those rates. Nothing is looked up, so the costs never change with the catalogue; the
    inherited overrides and aliases have no effect here."""

    def __init__(
        self,
        input_per_mtok: float = 1000.0,
        output_per_mtok: float = 2000.0,
        *,
        unpriced: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.input_per_mtok = float(input_per_mtok)
        self.output_per_mtok = float(output_per_mtok)
        self.unpriced = frozenset(name.strip().lower() for name in unpriced)
        self._unpriced_seen: set[str] = set()

    def cost(self, model: str, usage: Usage, provider: str | None = None) -> float | None:
        if self.resolve(model, provider) is None:
            return None
        if not isinstance(usage, Usage):
            found = extract_usage(usage, provider)
            if found is None:
                return None
            usage = found
        return (
            usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        ) / 1e6

    def resolve(self, model: str, provider: str | None = None) -> ModelPrice | None:
        if str(model).strip().lower() in self.unpriced:
            self._unpriced_seen.add(model)
            return None
        return ModelPrice(
            model=model,
            provider=provider,
            input_mtok=self.input_per_mtok,
            output_mtok=self.output_per_mtok,
            cache_read_mtok=self.input_per_mtok,
            cache_write_mtok=self.input_per_mtok,
            source="override",
        )

    def unpriced_models(self) -> set[str]:
        """The names in ``unpriced`` that were asked for."""
        return set(self._unpriced_seen)

    def __repr__(self) -> str:
        return (
            f"FlatPricing(input_per_mtok={self.input_per_mtok}, "
            f"output_per_mtok={self.output_per_mtok}, unpriced={sorted(self.unpriced)})"
        )
