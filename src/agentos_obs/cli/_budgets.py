"""``agentos-obs budgets``: the spend a shared budget ledger holds, per budget, key value and
window, read-only (``--ledger sqlite:///PATH`` or ``redis://HOST:PORT/DB``).

Exit codes as everywhere in the CLI: 2 for a bad URL or no ledger given, 1 when the ledger
cannot be read (missing file, Redis down).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from agentos_obs.cli._common import CLIError, console, parse_limit, write_json

__all__ = ["add_budgets_parser", "cmd_budgets"]

LEDGER_ENV = "AGENTOS_OBS_BUDGET_LEDGER"


def add_budgets_parser(sub: Any) -> None:
    """Register ``budgets`` on the sub-command parsers of ``agentos-obs``."""
    budgets = sub.add_parser(
        "budgets",
        help="spend per budget, key and window from a shared budget ledger",
        description="Shows what the apps' budgets have spent, as the shared ledger holds it "
        "(the current window of each budget unless --all): every process and host that "
        "shares the ledger counts.",
    )
    budgets.add_argument(
        "--ledger",
        metavar="URL",
        help=f"sqlite:///PATH or redis://HOST:PORT/DB (default: ${LEDGER_ENV})",
    )
    budgets.add_argument("--budget", metavar="NAME", help="only this budget")
    budgets.add_argument(
        "--all", dest="all_windows", action="store_true", help="every stored window"
    )
    budgets.add_argument(
        "--top",
        type=parse_limit,
        default=50,
        metavar="N",
        help="at most N key values per budget, highest use first (default 50)",
    )
    budgets.add_argument("--format", choices=("table", "json"), default="table")


def cmd_budgets(args: argparse.Namespace) -> int:
    from agentos_obs.cost import ledger_report, parse_ledger_url
    from agentos_obs.errors import ConfigurationError

    url = args.ledger or os.environ.get(LEDGER_ENV)
    if not url:
        raise CLIError(f"budgets needs --ledger URL (or ${LEDGER_ENV})", exit_code=2)
    try:
        parse_ledger_url(url)
    except ConfigurationError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    try:
        report = ledger_report(url, budget=args.budget, all_windows=args.all_windows, top=args.top)
    except ConfigurationError as exc:
        raise CLIError(str(exc)) from None
    except Exception as exc:  # sqlite3.Error, redis.RedisError: the ledger cannot be read
        raise CLIError(f"cannot read the budget ledger: {type(exc).__name__}: {exc}") from None
    if args.format == "json":
        write_json(report)
        return 0
    _print_table(report)
    return 0


def _limits(row: dict[str, Any]) -> str:
    parts = []
    if row.get("limit"):
        parts.append(_usd(row["limit"]))
    if row.get("max_llm_calls"):
        parts.append(f"{row['max_llm_calls']:,} calls")
    if row.get("max_tokens"):
        parts.append(f"{row['max_tokens']:,} tokens")
    return ", ".join(parts) or "-"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def _window(row: dict[str, Any]) -> str:
    start = row.get("window_start")
    if start is None:
        return "run" if row.get("key") == "trace" else "all time"
    return f"{row.get('period') or ''} {start[:16].replace('T', ' ')}".strip()


def _print_table(report: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    if not report["rows"]:
        out.print(f"No budget spend in {report['ledger']}.")
        return
    table = Table(title=f"Budgets in {report['ledger']}", title_justify="left")
    for column, justify in (
        ("Budget", "left"), ("Key", "left"), ("Window (UTC)", "left"), ("Spend", "right"),
        ("Calls", "right"), ("Tokens", "right"), ("Limit", "right"), ("Use", "right"),
        ("Status", "left"),
    ):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in report["rows"]:
        key = "(all)" if row["key"] is None else f"{row['key']}={row['key_value']}"
        status = (
            Text("exceeded", "bold red")
            if row["exceeded"]
            else Text("alert", "yellow")
            if row["alerting"]
            else Text("ok", "green")
        )
        table.add_row(
            Text(str(row["name"])),
            Text(key),
            Text(_window(row)),
            _usd(row["spend"]),
            f"{row['calls']:,}",
            f"{row['tokens']:,}",
            _limits(row),
            f"{row['pct']:.0f}%" if _limits(row) != "-" else "-",
            status,
        )
    out.print(table)
