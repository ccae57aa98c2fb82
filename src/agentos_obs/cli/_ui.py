"""``agentos-obs ui`` (alias ``serve``): check the arguments, bind, serve the dashboard.

The ASGI app itself is :func:`agentos_obs.ui.create_app`; this module is the command line
around it (token rules, budgets, the listening socket, uvicorn).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from agentos_obs.cli._common import CLIError, terminal_safe

__all__ = ["TOKEN_ENV", "cmd_ui"]

TOKEN_ENV = "AGENTOS_OBS_UI_TOKEN"
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")


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
    except (socket.gaierror, UnicodeError) as exc:
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

        from agentos_obs.ui import create_app, parse_budget
        from agentos_obs.ui._security import is_loopback_host
    except ImportError:
        raise CLIError(
            "the dashboard needs Starlette and uvicorn: pip install 'agentos-obs[ui]'"
        ) from None
    from agentos_obs.store import resolve_db_path

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
    url = terminal_safe(f"http://{shown_host}:{port}/")
    print(f"agentos-obs dashboard: {url}", flush=True)
    if token is not None:
        print(f"  open with the token once: {url}?token={token}", flush=True)
    store = terminal_safe(str(db_path))
    print(f"  store: {store} (read-only)   metrics: {url}metrics   Ctrl-C to stop", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()
    return 0
