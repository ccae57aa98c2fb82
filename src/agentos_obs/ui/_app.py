"""The dashboard as an ASGI app: static pages, the JSON API they use, and ``/metrics``.

Starlette (routing, static files), in the ``ui`` extra; ``agentos-obs ui`` serves it with
uvicorn (:mod:`agentos_obs.cli._ui`). Every route reads the store through
:class:`~agentos_obs.store.StoreReader`, which opens SQLite read-only, so the dashboard can
never change or lock out the data an app is writing.

The JSON API (documented in README.md) — all ``GET``, all JSON, times in epoch ms:

==============================  ==========================================================
``/api/version``                change marker the pages poll (trace count, newest trace)
``/api/summary``                totals: traces, error rate, latency percentiles, cost, tokens
``/api/timeseries``             traces, errors, cost and tokens per time bucket
``/api/breakdown?by=``          cost, tokens and calls by ``model``, ``agent``, ``user``,
                                ``day``: a page of rows (``limit``, ``offset``) with totals
``/api/stages``                 latency by stage (span kind), inclusive and self time
``/api/budgets``                spend against the ``--budget`` limits
``/api/filters``                models, agents and users seen (for the filter menus)
``/api/traces``                 trace list with filters, newest first
``/api/traces/{id}``            one trace and a page of its spans (``limit``, ``after``)
==============================  ==========================================================

Query parameters ``since`` / ``until`` take what the CLI's ``--since`` takes (``24h``,
``7d``, an ISO date). A bad parameter is a 400 with ``{"error": ...}``; a store that cannot
be read a 503. The bounds are in docs/limits.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from agentos_obs.store import MAX_SPAN_PAGE, InvalidQuery, StoreError, StoreReader
from agentos_obs.ui import STATIC_DIR
from agentos_obs.ui._budgets import Budget, budget_status
from agentos_obs.ui._params import (
    BadRequest,
    choice_param,
    int_param,
    number_param,
    text_param,
    time_param,
)
from agentos_obs.ui._security import SecurityMiddleware

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError(
        "the dashboard needs Starlette and uvicorn: pip install 'agentos-obs[ui]'"
    ) from exc

__all__ = [
    "BREAKDOWN_PAGE",
    "MAX_BREAKDOWN_PAGE",
    "MAX_TRACE_PAGE",
    "SPAN_PAGE",
    "create_app",
]

MAX_TRACE_PAGE = 500  # traces per /api/traces answer
MAX_OFFSET = 1_000_000_000
BREAKDOWN_PAGE, MAX_BREAKDOWN_PAGE = 100, 1000  # rows per /api/breakdown answer
SPAN_PAGE = 2000  # spans per /api/traces/{id} answer by default (at most MAX_SPAN_PAGE)
_BREAKDOWNS = ("model", "agent", "user", "day")
_STATUSES = ("ok", "error", "timeout", "cancelled")
_NO_STORE = {"cache-control": "no-store"}


def create_app(
    db_path: str | os.PathLike[str],
    *,
    auth_token: str | None = None,
    budgets: Sequence[Budget] = (),
    check_host: bool = True,
) -> Any:
    """The dashboard as an ASGI app, read-only on the store at ``db_path``.

    ``check_host`` refuses requests whose Host header is not a loopback name (turn it off
    only when a token protects the app, e.g. behind a reverse proxy). Raises
    :class:`~agentos_obs.store.StoreError` when the store cannot be opened.
    """
    reader = StoreReader(db_path)
    budget_list = list(budgets)

    def endpoint(fn: Callable[[Request], Any]) -> Callable[[Request], Response]:
        # Sync endpoints: Starlette runs them in its thread pool, SQLite reads block there.
        def handle(request: Request) -> Response:
            try:
                body = fn(request)
            except (BadRequest, InvalidQuery) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except StoreError as exc:
                return JSONResponse({"error": str(exc)}, status_code=503)
            if isinstance(body, Response):
                return body
            return JSONResponse(body, headers=_NO_STORE)

        return handle

    def window(request: Request) -> dict[str, datetime | None]:
        return {"since": time_param(request, "since"), "until": time_param(request, "until")}

    def version(request: Request) -> Any:
        return reader.version()

    def summary(request: Request) -> Any:
        return reader.summary(**window(request))

    def timeseries(request: Request) -> Any:
        buckets = int_param(request, "buckets", 30, 1, 200)
        return reader.timeseries(buckets=buckets, **window(request))

    def breakdown(request: Request) -> Any:
        by = choice_param(request, "by", _BREAKDOWNS, "model")
        assert by is not None
        limit = int_param(request, "limit", BREAKDOWN_PAGE, 1, MAX_BREAKDOWN_PAGE)
        offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
        bounds = window(request)
        page = reader.breakdown_page(
            by, bounds["since"], bounds["until"], limit=limit, offset=offset
        )
        return {
            "by": by,
            "rows": page.rows,
            "total_rows": page.total_rows,
            "totals": page.totals,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(page.rows) < page.total_rows,
        }

    def stages(request: Request) -> Any:
        return {"rows": reader.stages(**window(request))}

    def budgets_status(request: Request) -> Any:
        return {"budgets": budget_status(reader, budget_list)}

    def filters(request: Request) -> Any:
        return reader.filter_options(**window(request))

    def traces(request: Request) -> Any:
        limit = int_param(request, "limit", 50, 1, MAX_TRACE_PAGE)
        offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
        rows, has_more = reader.traces(
            status=choice_param(request, "status", _STATUSES, None),
            model=text_param(request, "model"),
            agent=text_param(request, "agent"),
            user=text_param(request, "user"),
            min_cost=number_param(request, "min_cost"),
            min_duration_ms=number_param(request, "min_duration_ms"),
            search=text_param(request, "search"),
            limit=limit,
            offset=offset,
            **window(request),
        )
        return {"traces": rows, "limit": limit, "offset": offset, "has_more": has_more}

    def trace(request: Request) -> Any:
        trace_id = request.path_params["trace_id"]
        limit = int_param(request, "limit", SPAN_PAGE, 1, MAX_SPAN_PAGE)
        found = reader.trace(trace_id, limit=limit, after=request.query_params.get("after"))
        if found is None:
            return JSONResponse({"error": f"no trace {trace_id!r}"}, status_code=404)
        found["limit"] = limit
        return found

    def metrics(request: Request) -> Response:
        from agentos_obs.ui._metrics import render_store_metrics

        body, content_type = render_store_metrics(reader, request.headers.get("accept", ""))
        return Response(body, media_type=content_type, headers=_NO_STORE)

    def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

    def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/", index),
        Route("/healthz", health),
        Route("/metrics", endpoint(metrics)),
        Route("/api/version", endpoint(version)),
        Route("/api/summary", endpoint(summary)),
        Route("/api/timeseries", endpoint(timeseries)),
        Route("/api/breakdown", endpoint(breakdown)),
        Route("/api/stages", endpoint(stages)),
        Route("/api/budgets", endpoint(budgets_status)),
        Route("/api/filters", endpoint(filters)),
        Route("/api/traces", endpoint(traces)),
        Route("/api/traces/{trace_id}", endpoint(trace)),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        reader.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.reader = reader
    return SecurityMiddleware(app, token=auth_token, check_host=check_host)
