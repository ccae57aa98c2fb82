"""``traces``, ``traces show``, ``costs`` and ``prices``: read the store or the price catalogue."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from agentos_obs.cli._common import CLIError, console, terminal_safe, write_csv, write_json
from agentos_obs.errors import ConfigurationError
from agentos_obs.pricing._catalog import ModelPrice, PriceCatalog, default_catalog
from agentos_obs.pricing._usage import Usage
from agentos_obs.store import StoreReader, resolve_db_path

__all__ = ["cmd_costs", "cmd_prices", "cmd_trace_show", "cmd_traces", "reprice"]

_TRACE_CSV = (
    "trace_id", "start_ms", "name", "status", "duration_ms", "span_count", "llm_calls",
    "input_tokens", "output_tokens", "total_tokens", "cost_usd", "user_id", "session_id",
)  # fmt: skip
_COST_CSV = (
    "key", "calls", "traces", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "total_tokens", "cost_usd", "unpriced_llm_calls",
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
)  # fmt: skip
_REPRICE_CSV = (
    "key", "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "actual_cost_usd", "unpriced_llm_calls", "as_model_cost_usd",
)  # fmt: skip


def _reader(args: argparse.Namespace) -> StoreReader:
    return StoreReader(resolve_db_path(getattr(args, "db", None)))


def _window(args: argparse.Namespace) -> dict[str, datetime | None]:
    return {"since": getattr(args, "since", None), "until": getattr(args, "until", None)}


# -- traces ----------------------------------------------------------------------------------
def cmd_traces(args: argparse.Namespace) -> int:
    with _reader(args) as reader:
        rows, has_more = reader.traces(
            status=args.status,
            model=args.model,
            agent=args.agent,
            user=args.user,
            min_cost=args.min_cost,
            min_duration_ms=args.min_duration,
            search=args.search,
            limit=args.limit,
            offset=args.offset,
            **_window(args),
        )
    if args.format == "json":
        write_json(
            {"traces": rows, "limit": args.limit, "offset": args.offset, "has_more": has_more}
        )
        return 0
    if args.format == "csv":
        write_csv(rows, _TRACE_CSV)
        return 0
    out = console()  # first: names the extra to install when rich is missing
    from agentos_obs.cli._render import traces_table

    if not rows:
        out.print("No traces match." if args.offset == 0 else "No more traces.")
        return 0
    out.print(traces_table(rows))
    if has_more:
        out.print(f"[dim]More traces: --offset {args.offset + args.limit}[/dim]")
    out.print("[dim]Show one: agentos-obs traces show ID[/dim]")
    return 0


def cmd_trace_show(args: argparse.Namespace) -> int:
    with _reader(args) as reader:
        data = reader.trace(args.trace_id)
    if data is None:
        raise CLIError(f"no trace with id {args.trace_id!r} (or the prefix is ambiguous)")
    if getattr(args, "format", "tree") == "json":
        write_json(data)
        return 0
    out = console()
    from agentos_obs.cli._render import trace_tree

    out.print(trace_tree(data))
    return 0


# -- costs -----------------------------------------------------------------------------------
def _catalog(overrides: str | None) -> PriceCatalog:
    if not overrides:
        return default_catalog()
    try:
        return PriceCatalog(overrides=overrides)
    except ConfigurationError as exc:
        raise CLIError(f"price overrides {overrides}: {exc}") from None


def _group_key(row: Mapping[str, Any], by: str) -> str | None:
    if by == "model":
        return row.get("model_name") or None
    if by == "agent":
        return row.get("agent_name")
    if by == "user":
        return row.get("user_id")
    moment = datetime.fromtimestamp(row["start_time"] / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d")


def reprice(
    usage_rows: Iterable[Mapping[str, Any]],
    catalog: PriceCatalog,
    model: str,
    provider: str | None,
    by: str,
) -> dict[str, Any]:
    """Each stored call priced as if made with ``model``, from its own input, output, cache
    and reasoning token counts; grouped by ``by``. Raises CLIError when ``model`` has no price."""
    price = catalog.resolve(model, provider)
    if price is None:
        raise CLIError(f"no known price for model {model!r}; see `agentos-obs prices {model}`", 2)
    groups: dict[str | None, dict[str, Any]] = {}
    total = _reprice_group("total")
    for row in usage_rows:
        usage = Usage(
            input_tokens=int(row["input_tokens"] or 0),
            output_tokens=int(row["output_tokens"] or 0),
            cache_read_tokens=int(row["cache_read_tokens"] or 0),
            cache_write_tokens=int(row["cache_write_tokens"] or 0),
            reasoning_tokens=int(row["reasoning_tokens"] or 0),
        )
        new_cost = catalog.cost(model, usage, provider=provider) or 0.0
        key = _group_key(row, by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _reprice_group(key)
        for target in (group, total):
            target["calls"] += 1
            target["input_tokens"] += usage.input_tokens
            target["output_tokens"] += usage.output_tokens
            target["cache_read_tokens"] += usage.cache_read_tokens
            target["cache_write_tokens"] += usage.cache_write_tokens
            target["reasoning_tokens"] += usage.reasoning_tokens
            target["as_model_cost_usd"] += new_cost
            if row.get("cost_usd") is None:
                target["unpriced_llm_calls"] += 1
            else:
                target["actual_cost_usd"] += float(row["cost_usd"])
    rows = sorted(groups.values(), key=lambda g: (-g["actual_cost_usd"], str(g["key"])))
    if by == "day":
        rows.sort(key=lambda g: str(g["key"]))
    return {"by": by, "as_model": model, "price": _price_dict(price), "rows": rows, "total": total}


def _reprice_group(key: str | None) -> dict[str, Any]:
    return {
        "key": key,
        "calls": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "actual_cost_usd": 0.0,
        "unpriced_llm_calls": 0,
        "as_model_cost_usd": 0.0,
    }


def cmd_costs(args: argparse.Namespace) -> int:
    window = _window(args)
    with _reader(args) as reader:
        if args.as_model:
            result = reprice(
                reader.usage_rows(**window),
                _catalog(getattr(args, "overrides", None)),
                args.as_model,
                args.provider,
                args.by,
            )
        else:
            result = {"by": args.by, "rows": reader.breakdown(args.by, **window)}
    result["since"] = window["since"]
    result["until"] = window["until"]
    if args.format == "json":
        write_json(result)
        return 0
    if args.format == "csv":
        write_csv(result["rows"], _REPRICE_CSV if args.as_model else _COST_CSV)
        return 0
    out = console()
    from agentos_obs.cli._render import breakdown_table, repricing_table

    if not result["rows"]:
        out.print("No LLM calls in this window.")
        return 0
    span = "all time" if window["since"] is None else f"since {window['since']:%Y-%m-%d %H:%M} UTC"
    if args.as_model:
        out.print(repricing_table(result))
    else:
        out.print(breakdown_table(result["rows"], args.by, title=f"Cost by {args.by} ({span})"))
    return 0


# -- prices ----------------------------------------------------------------------------------
def _price_dict(price: ModelPrice) -> dict[str, Any]:
    return {
        "model": price.model,
        "provider": price.provider,
        "input_mtok": price.input_mtok,
        "output_mtok": price.output_mtok,
        "cache_read_mtok": price.cache_read_mtok,
        "cache_write_mtok": price.cache_write_mtok,
        "source": price.source,
        "tiered": price.tiered,
        "unit": "USD per 1M tokens",
    }


def cmd_prices(args: argparse.Namespace) -> int:
    catalog = _catalog(args.overrides)
    price = catalog.resolve(args.model, args.provider)
    if price is None:
        if args.format == "json":
            write_json({"query": args.model, "provider": args.provider, "price": None})
        hint = "" if args.provider else " (try --provider)"
        raise CLIError(f"no known price for {args.model!r}{hint}; add one with --overrides FILE")
    data = {"query": args.model, "provider": args.provider, "price": _price_dict(price)}
    if args.format == "json":
        write_json(data)
        return 0
    out = console()
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(
            terminal_safe(
                f"{args.model} → {price.model} ({price.provider or 'any provider'}, {price.source})"
            )
        ),
        title_justify="left",
        header_style="bold",
    )
    table.add_column("USD per 1M tokens")
    table.add_column("Price", justify="right")
    for label, value in (
        ("input", price.input_mtok),
        ("output", price.output_mtok),
        ("cache read", price.cache_read_mtok),
        ("cache write", price.cache_write_mtok),
    ):
        table.add_row(label, f"${value:,.4g}")
    out.print(table)
    if price.tiered:
        out.print(
            "[dim]Tiered: prices rise above an input-size threshold (costs apply the tiers).[/dim]"
        )
    return 0
