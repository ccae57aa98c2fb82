"""The dashboard server: static pages, the JSON API they use, and ``/metrics``.

Starlette (routing, static files) on uvicorn, both in the ``ui`` extra. Every route reads
the store through :class:`~agentos_obs.store.StoreReader`, which opens SQLite read-only,
so the dashboard can never change or lock out the data an app is writing.

The JSON API (documented in README.md) — all ``GET``, all JSON, times in epoch ms:

==============================  ==========================================================
``/api/version``                change marker the pages poll (trace count, newest trace)
``/api/summary``                totals: traces, error rate, latency percentiles, cost, tokens
``/api/timeseries``             traces, errors, cost and tokens per time bucket
``/api/breakdown?by=``          cost, tokens and calls by ``model``, ``agent``, ``user``, ``day``
``/api/stages``                 latency by stage (span kind), inclusive and self time
``/api/budgets``                spend against the ``--budget`` limits
``/api/filters``                models, agents and users seen (for the filter menus)
``/api/traces``                 trace list with filters, newest first
``/api/traces/{id}``            one trace with all its spans
==============================  ==========================================================

Query parameters ``since`` / ``until`` take what the CLI's ``--since`` takes (``24h``,
``7d``, an ISO date). A bad parameter is a 400 with ``{"error": ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from agentos_obs.cli._common import CLIError, parse_time
from agentos_obs.store._reader import Budget, StoreReader, parse_budget, resolve_db_path
from agentos_obs.ui import STATIC_DIR
from agentos_obs.ui._security import SecurityMiddleware, is_loopback_host

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

__all__ = ["TOKEN_ENV", "cmd_ui", "create_app"]

TOKEN_ENV = "AGENTOS_OBS_UI_TOKEN"
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")
_MAX_LIMIT = 500
_BREAKDOWNS = ("model", "agent", "user", "day")
_STATUSES = ("ok", "error", "timeout", "cancelled")


class BadRequest(ValueError):
    """A query parameter the API cannot use: answered with 400."""


def _time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return parse_time(value)
    except argparse.ArgumentTypeError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _number_param(request: Request, name: str, *, minimum: float = 0.0) -> float | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {value!r}") from None
    if not number >= minimum or number == float("inf"):
        raise BadRequest(f"{name} must be a finite number >= {minimum:g}")
    return number


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    number = _number_param(request, name)
    if number is None:
        return default
    return min(int(number), maximum)


def _choice_param(
    request: Request, name: str, choices: Sequence[str], default: str | None
) -> str | None:
    value = request.query_params.get(name) or default
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}")
    return value


def create_app(
    db_path: str | os.PathLike[str],
    *,
    auth_token: str | None = None,
    budgets: Sequence[Budget] = (),
    check_host: bool = True,
) -> Any:
    """The dashboard as an ASGI app, read-only on the store at ``db_path``.

    ``check_host`` refuses requests whose Host header is not a loopback name (turn it off
    only when a token protects the app, e.g. behind a reverse proxy).
    """
    reader = StoreReader(db_path)
    budget_list = list(budgets)

    def endpoint(fn: Callable[[Request], Any]) -> Callable[[Request], Response]:
        # Sync endpoints: Starlette runs them in its thread pool, SQLite reads block there.
        def handle(request: Request) -> Response:
            try:
                return JSONResponse(fn(request), headers={"cache-control": "no-store"})
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except CLIError as exc:
                return JSONResponse({"error": str(exc)}, status_code=503)

        return handle

    def window(request: Request) -> dict[str, datetime | None]:
        return {"since": _time_param(request, "since"), "until": _time_param(request, "until")}

    def version(request: Request) -> Any:
        return reader.version()

    def summary(request: Request) -> Any:
        return reader.summary(**window(request))

    def timeseries(request: Request) -> Any:
        buckets = _int_param(request, "buckets", 30, 200)
        return reader.timeseries(buckets=max(1, buckets), **window(request))

    def breakdown(request: Request) -> Any:
        by = _choice_param(request, "by", _BREAKDOWNS, "model")
        assert by is not None
        return {"by": by, "rows": reader.breakdown(by, **window(request))}

    def stages(request: Request) -> Any:
        return {"rows": reader.stages(**window(request))}

    def budget_status(request: Request) -> Any:
        return {"budgets": reader.budget_status(budget_list)}

    def filters(request: Request) -> Any:
        return reader.filter_options(**window(request))

    def traces(request: Request) -> Any:
        limit = max(1, _int_param(request, "limit", 50, _MAX_LIMIT))
        offset = _int_param(request, "offset", 0, 10**9)
        q = request.query_params
        rows, has_more = reader.traces(
            status=_choice_param(request, "status", _STATUSES, None),
            model=q.get("model") or None,
            agent=q.get("agent") or None,
            user=q.get("user") or None,
            min_cost=_number_param(request, "min_cost"),
            min_duration_ms=_number_param(request, "min_duration_ms"),
            search=q.get("search") or None,
            limit=limit,
            offset=offset,
            **window(request),
        )
        return {"traces": rows, "limit": limit, "offset": offset, "has_more": has_more}

    def trace(request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        found = reader.trace(trace_id)
        if found is None:
            return JSONResponse({"error": f"no trace {trace_id!r}"}, status_code=404)
        return JSONResponse(found, headers={"cache-control": "no-store"})

    def metrics(request: Request) -> Response:
        from agentos_obs.ui._metrics import render_store_metrics

        body, content_type = render_store_metrics(reader, request.headers.get("accept", ""))
        return Response(body, media_type=content_type, headers={"cache-control": "no-store"})

    def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-store"})

    def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/", index),
        Route("/healthz", health),
        Route("/metrics", metrics),
        Route("/api/version", endpoint(version)),
        Route("/api/summary", endpoint(summary)),
        Route("/api/timeseries", endpoint(timeseries)),
        Route("/api/breakdown", endpoint(breakdown)),
        Route("/api/stages", endpoint(stages)),
        Route("/api/budgets", endpoint(budget_status)),
        Route("/api/filters", endpoint(filters)),
        Route("/api/traces", endpoint(traces)),
        Route("/api/traces/{trace_id}", trace),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        reader.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.reader = reader
    return SecurityMiddleware(app, token=auth_token, check_host=check_host)


def _validate_token(token: str) -> str:
    if len(token) < 8 or not set(token) <= _TOKEN_CHARS:
        raise CLIError(
            "the auth token must be at least 8 characters of A-Z a-z 0-9 - _ . ~ "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')",
            exit_code=2,
        )
    return token


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so the URL printed has the real port (--port 0)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CLIError(f"cannot resolve --host {host!r}: {exc}", exit_code=2) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def cmd_ui(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise CLIError("the dashboard needs uvicorn: pip install 'agentos-obs[ui]'") from None
    host: str = args.host
    token = args.auth_token or os.environ.get(TOKEN_ENV) or None
    loopback = is_loopback_host(host)
    if not loopback and token is None:
        raise CLIError(
            f"binding to {host} (not loopback) requires a token: pass --auth-token or set "
            f"{TOKEN_ENV}",
            exit_code=2,
        )
    if token is not None:
        _validate_token(token)
    try:
        budgets = [parse_budget(spec) for spec in args.budget]
    except ValueError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    db_path = resolve_db_path(args.db)
    app = create_app(db_path, auth_token=token, budgets=budgets, check_host=loopback)
    sock = _bind(host, args.port)
    port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/"
    print(f"agentos-obs dashboard: {url}", flush=True)
    if token is not None:
        print(f"  open with the token once: {url}?token={token}", flush=True)
    print(f"  store: {db_path} (read-only)   metrics: {url}metrics   Ctrl-C to stop", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()
    return 0
