"""Terminal rendering of the CLI's answers: rich tables and span trees.

Input is the JSON API's shapes (:mod:`agentos_obs.store._shapes`), so the terminal and the
dashboard show the same numbers. Every recorded value reaches rich through :func:`_text`:
plain ``Text`` (never markup, so ``[bold]`` prints as is) with its control characters
escaped (:func:`~agentos_obs.cli._common.terminal_safe`, so an escape sequence in a span
name prints as ``\x1b]0;…`` instead of retitling the window).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from agentos_obs.cli._common import terminal_safe

__all__ = [
    "breakdown_table",
    "fmt_cost",
    "fmt_int",
    "fmt_ms",
    "repricing_table",
    "stages_table",
    "summary_table",
    "trace_tree",
    "traces_table",
]

_KIND_STYLE = {
    "agent": "bold magenta",
    "llm": "bold blue",
    "tool": "bold yellow",
    "retrieval": "bold cyan",
    "embedding": "cyan",
    "memory": "bold red",
    "chain": "dim",
}
_STATUS_STYLE = {"ok": "green", "error": "bold red", "timeout": "bold red", "cancelled": "yellow"}


def fmt_int(value: float | None) -> str:
    return "-" if value is None else f"{round(value):,}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    return f"{value / 1000:.2f} s"


def fmt_cost(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    if value < 1e-9:
        return f"${value:.2e}"
    # Two significant digits in fixed notation: $0.000027, not $2.7e-05.
    digits = -math.floor(math.log10(value)) + 1
    return f"${value:.{digits}f}"


def fmt_time(epoch_ms: float | None) -> str:
    if epoch_ms is None:
        return "-"
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any, style: str = "") -> Text:
    """A recorded value as inert text: no markup, no control characters."""
    return Text(terminal_safe(str(value)), style=style)


def _safe(value: Any) -> str:
    return terminal_safe(str(value))


def _status(status: str) -> Text:
    return _text(status, _STATUS_STYLE.get(status, ""))


def _key(value: Any) -> Text:
    return Text("(none)", style="dim") if value in (None, "") else _text(value)


# -- traces ----------------------------------------------------------------------------------
def traces_table(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    table.add_column("Trace", no_wrap=True)
    table.add_column("Started", no_wrap=True)
    table.add_column("Name", overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Spans", justify="right")
    table.add_column("Tokens", justify="right")
    table.add_column("Cost", justify="right", no_wrap=True)
    table.add_column("User", overflow="fold")
    for row in rows:
        table.add_row(
            _text(row["trace_id"][:12], "cyan"),
            fmt_time(row["start_ms"]),
            _text(row["name"] or ""),
            _status(row["status"]),
            fmt_ms(row["duration_ms"]),
            fmt_int(row["span_count"]),
            fmt_int(row["total_tokens"]),
            fmt_cost(row["cost_usd"]),
            _key(row["user_id"]) if row["user_id"] else Text(""),
        )
    return table


def _span_label(span: Mapping[str, Any], trace_start_ms: float) -> Text:
    label = Text()
    label.append(f"{_safe(span['kind']):<9}", style=_KIND_STYLE.get(span["kind"], ""))
    label.append(" ")
    label.append(_safe(span["name"] or "(unnamed)"), style="bold")
    offset = span["start_ms"] - trace_start_ms
    label.append(f"  {fmt_ms(span['duration_ms'])}", style="green")
    label.append(f" @+{fmt_ms(offset)}", style="dim")
    if span.get("model_name"):
        label.append(f"  {_safe(span['model_name'])}", style="blue")
    if span.get("input_tokens") or span.get("output_tokens"):
        tokens = f"  {fmt_int(span['input_tokens'])} in / {fmt_int(span['output_tokens'])} out"
        if span.get("cache_read_tokens"):
            tokens += f" ({fmt_int(span['cache_read_tokens'])} cached)"
        label.append(tokens, style="dim")
        label.append(
            f"  {fmt_cost(span['cost_usd'])}" if span.get("cost_usd") is not None else "  unpriced",
            style="yellow",
        )
    ttft = span.get("attributes", {}).get("llm.time_to_first_token_ms")
    if isinstance(ttft, (int, float)):
        label.append(f"  first token {fmt_ms(float(ttft))}", style="dim")
    if span["status"] != "ok":
        label.append(
            f"  {_safe(span['status']).upper()}", style=_STATUS_STYLE.get(span["status"], "")
        )
        message = span.get("attributes", {}).get("error.message") or span.get("attributes", {}).get(
            "error"
        )
        if message:
            label.append(f": {_safe(str(message)[:120])}", style="red")
    return label


def trace_tree(data: Mapping[str, Any]) -> Tree:
    """The span tree of ``{"trace": ..., "spans": [...]}`` (children by start time; spans
    whose parent is missing hang from the root)."""
    trace = data["trace"]
    spans = list(data["spans"])
    header = Text()
    header.append(_safe(trace["name"] or trace["trace_id"]), style="bold")
    header.append(f"  {_safe(trace['trace_id'])}", style="cyan")
    header.append("  ")
    header.append_text(_status(trace["status"]))
    header.append(
        f"  {fmt_ms(trace['duration_ms'])}  {fmt_int(trace['total_tokens'])} tokens  "
        f"{fmt_cost(trace['cost_usd'])}",
        style="dim",
    )
    if trace.get("user_id"):
        header.append(f"  user={_safe(trace['user_id'])}", style="dim")
    tree = Tree(header)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in spans:
        parent = (
            span["parent_id"]
            if span["parent_id"] in ids and span["parent_id"] != span["span_id"]
            else None
        )
        children.setdefault(parent, []).append(span)
    start = min((s["start_ms"] for s in spans), default=trace["start_ms"] or 0.0)
    seen: set[str] = set()

    def add(node: Tree, parent_id: str | None) -> None:
        for span in sorted(children.get(parent_id, []), key=lambda s: s["start_ms"]):
            if span["span_id"] in seen:
                continue  # a cycle in corrupt data must not loop forever
            seen.add(span["span_id"])
            add(node.add(_span_label(span, start)), span["span_id"])

    add(tree, None)
    return tree


# -- aggregates ------------------------------------------------------------------------------
def breakdown_table(rows: Sequence[Mapping[str, Any]], by: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column(by.capitalize(), overflow="fold")
    table.add_column("LLM calls", justify="right")
    table.add_column("Input tok", justify="right")
    table.add_column("Output tok", justify="right")
    table.add_column("Cached tok", justify="right")
    table.add_column("Cost", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    totals = {
        "calls": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cost_usd": 0.0,
    }
    for row in rows:
        for key in totals:
            totals[key] += row[key] or 0
        table.add_row(
            _key(row["key"]),
            fmt_int(row["calls"]),
            fmt_int(row["input_tokens"]),
            fmt_int(row["output_tokens"]),
            fmt_int(row["cache_read_tokens"]),
            fmt_cost(row["cost_usd"]),
            fmt_ms(row["latency_p50_ms"]),
            fmt_ms(row["latency_p95_ms"]),
        )
    if len(rows) > 1:
        table.add_section()
        table.add_row(
            Text("total", style="bold"),
            fmt_int(totals["calls"]),
            fmt_int(totals["input_tokens"]),
            fmt_int(totals["output_tokens"]),
            fmt_int(totals["cache_read_tokens"]),
            Text(fmt_cost(totals["cost_usd"]), style="bold"),
            "",
            "",
        )
    return table


def repricing_table(result: Mapping[str, Any]) -> Table:
    model = _safe(result["as_model"])
    table = Table(
        title=Text(
            f"Re-priced as {model} ({result['price']['input_mtok']:g} in / "
            f"{result['price']['output_mtok']:g} out USD per 1M tokens)"
        ),
        title_justify="left",
        header_style="bold",
    )
    table.add_column(result["by"].capitalize(), overflow="fold")
    table.add_column("LLM calls", justify="right")
    table.add_column("Input tok", justify="right")
    table.add_column("Output tok", justify="right")
    table.add_column("Actual", justify="right")
    table.add_column(Text(f"As {model}"), justify="right")
    table.add_column("Change", justify="right")
    for row in [*result["rows"], {**result["total"], "key": "total"}]:
        if row["key"] == "total" and len(result["rows"]) > 1:
            table.add_section()
        elif row["key"] == "total":
            continue
        table.add_row(
            _key(row["key"]),
            fmt_int(row["calls"]),
            fmt_int(row["input_tokens"]),
            fmt_int(row["output_tokens"]),
            fmt_cost(row["actual_cost_usd"]),
            fmt_cost(row["as_model_cost_usd"]),
            _change(row["actual_cost_usd"], row["as_model_cost_usd"]),
        )
    return table


def _change(actual: float | None, new: float) -> Text:
    if not actual:
        return Text("-", style="dim")
    delta = (new - actual) / actual
    return Text(f"{delta:+.0%}", style="green" if delta < 0 else "red" if delta > 0 else "")


def stages_table(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("Stage")
    table.add_column("Spans", justify="right")
    for label in ("Incl p50", "Incl p95", "Incl p99", "Self p50", "Self p95", "Self total"):
        table.add_column(label, justify="right")
    for row in rows:
        inc, own = row["inclusive"], row["self"]
        table.add_row(
            _text(row["stage"], _KIND_STYLE.get(row["stage"], "")),
            fmt_int(row["count"]),
            fmt_ms(inc["p50"]),
            fmt_ms(inc["p95"]),
            fmt_ms(inc["p99"]),
            fmt_ms(own["p50"]),
            fmt_ms(own["p95"]),
            fmt_ms(own["total"]),
        )
    return table


def summary_table(summary: Mapping[str, Any], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    latency = summary["latency_ms"]
    rate = summary["error_rate"]
    for label, value in _summary_lines(summary, latency, rate):
        table.add_row(label, value)
    return table


def _summary_lines(
    summary: Mapping[str, Any], latency: Mapping[str, Any], rate: float
) -> Iterable[tuple[str, Text | str]]:
    yield "Traces", f"{fmt_int(summary['trace_count'])} ({fmt_int(summary['span_count'])} spans)"
    yield (
        "Error rate",
        Text(
            f"{rate:.1%} ({fmt_int(summary['error_count'])} of "
            f"{fmt_int(summary['trace_count'])} traces failed)",
            style="red" if rate else "green",
        ),
    )
    yield (
        "Latency",
        "   ".join(f"{q} {fmt_ms(latency[q])}" for q in ("p50", "p95", "p99")),
    )
    unpriced = summary["unpriced_llm_calls"]
    yield (
        "Cost",
        fmt_cost(summary["cost_usd"]) + (f" ({unpriced} unpriced calls)" if unpriced else ""),
    )
    yield (
        "Tokens",
        (
            f"{fmt_int(summary['total_tokens'])} ({fmt_int(summary['input_tokens'])} in, "
            f"{fmt_int(summary['output_tokens'])} out, "
            f"{fmt_int(summary['cache_read_tokens'])} cached)"
        ),
    )
    yield "LLM calls", fmt_int(summary["llm_calls"])
