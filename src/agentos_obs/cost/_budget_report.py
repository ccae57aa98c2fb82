"""Read a shared ledger from outside the app: what ``agentos-obs budgets`` (and the
dashboard's budgets panel) show — spend per budget, key value and window, with limits."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from agentos_obs.cost._budget_status import BudgetStatus, budget_window
from agentos_obs.cost._ledger import BudgetMeta, LedgerRow, parse_ledger_url
from agentos_obs.cost._ledger_open import open_backend
from agentos_obs.errors import ConfigurationError

__all__ = ["ledger_report"]


def _current_window(meta: BudgetMeta | None, now: float) -> str | None:
    """The window id a budget writes to now (None: unknown budget, show every window)."""
    if meta is None:
        return None
    if meta.key == "trace":
        return "run"
    if meta.period is None:
        return "all"
    return budget_window(meta.period, now)[0].isoformat()


def _status(row: LedgerRow, meta: BudgetMeta | None) -> BudgetStatus:
    start = end = None
    period = meta.period if meta is not None else None
    if row.window not in ("all", "run"):
        start = datetime.fromisoformat(row.window)
        if period is not None:
            end = budget_window(period, start.timestamp())[1]
    return BudgetStatus(
        key=meta.key if meta is not None else None,
        key_value=None if row.key_value == "*" else row.key_value,
        period=period,
        window_start=start,
        window_end=end,
        spend=row.tally.spend,
        limit=meta.limit_usd if meta is not None else 0.0,
        threshold_pct=meta.threshold_pct if meta is not None else 100.0,
        name=row.budget,
        calls=row.tally.calls,
        tokens=row.tally.tokens,
        max_llm_calls=meta.max_llm_calls if meta is not None else None,
        max_tokens=meta.max_tokens if meta is not None else None,
    )


def ledger_report(
    url: str,
    *,
    budget: str | None = None,
    all_windows: bool = False,
    top: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The spend a shared ledger holds, read-only.

    ``rows``: one per (budget, window, key value) — the current window of each budget
    unless ``all_windows`` — highest use first within a budget, at most ``top`` per budget.
    ``budgets``: each budget's settings (as last written by an app) and window totals.
    Raises ConfigurationError for a bad or in-process URL, and the backend's own error
    (sqlite3.Error, redis.RedisError) when the ledger cannot be read.
    """
    spec = parse_ledger_url(url)
    if not spec.shared:
        raise ConfigurationError(
            "the memory ledger lives inside one process: give a sqlite:/// or redis:// URL"
        )
    if spec.path is not None and not spec.path.is_file():
        raise ConfigurationError(f"no budget ledger at {spec.path}")
    now = time.time() if now is None else now
    backend = open_backend(spec)
    try:
        metas = {m.name: m for m in backend.metas()}
        rows = backend.rows(budget, None, now)
    finally:
        backend.close()
    by_budget: dict[str, list[BudgetStatus]] = {}
    for row in rows:
        meta = metas.get(row.budget)
        window = _current_window(meta, now)
        if not all_windows and window is not None and row.window != window:
            continue
        by_budget.setdefault(row.budget, []).append(_status(row, meta))
    out_rows: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    names = set(by_budget) | (set(metas) if budget is None else {budget} & set(metas))
    for name in sorted(names):
        statuses = sorted(
            by_budget.get(name, []),
            key=lambda s: (
                -(s.window_start.timestamp() if s.window_start else 0),
                -s.pct,
                -s.spend,
            ),
        )
        meta = metas.get(name)
        summary: dict[str, Any] = meta.to_dict() if meta is not None else {"name": name}
        summary.update(
            keys=len(statuses),
            exceeded_keys=sum(1 for s in statuses if s.exceeded),
            spend=sum(s.spend for s in statuses),
            calls=sum(s.calls for s in statuses),
            window=_current_window(meta, now),
        )
        summaries.append(summary)
        shown = statuses if top is None else statuses[:top]
        out_rows.extend(s.to_dict() for s in shown)
    return {
        "ledger": backend.display_url,
        "now": datetime.fromtimestamp(now, tz=timezone.utc).isoformat(),
        "budgets": summaries,
        "rows": out_rows,
    }
