"""The dashboard's guard, as plain ASGI middleware in front of every route.

- Token (when configured): accepted from ``Authorization: Bearer T``, an ``X-AgentOS-Token``
  header, or the ``agentos_obs_token`` cookie. ``?token=T`` on any URL sets that cookie and
  redirects to the same URL without it (so the token leaves the address bar and history).
  Compared in constant time. Checked on every request, static files included.
- Host header: when no token is required the server must be on loopback, and a request
  whose ``Host`` is not a loopback name is refused — a web page elsewhere cannot reach the
  dashboard through DNS rebinding.
- Headers on every response: a strict Content-Security-Policy (scripts and styles only from
  the dashboard itself, no inline script), ``nosniff``, no framing, no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["COOKIE_NAME", "SecurityMiddleware", "is_loopback_host"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE_NAME = "agentos_obs_token"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def is_loopback_host(host: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """``Host`` header without its port (``[::1]:80`` -> ``::1``)."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, *, token: str | None, check_host: bool) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self._check_host and not is_loopback_host(_host_name(headers.get("host", ""))):
            await _plain(send, 421, "This dashboard only answers to localhost / 127.0.0.1.")
            return
        if self._token is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            pairs = parse_qsl(query, keep_blank_values=True)
            offered = [v for k, v in pairs if k == "token"]
            if offered:
                if self._matches(offered[0]):
                    rest = urlencode([(k, v) for k, v in pairs if k != "token"])
                    await _redirect_with_cookie(send, scope.get("path", "/"), rest, offered[0])
                else:
                    await _unauthorized(send, scope)
                return
            if not self._authorized(headers):
                await _unauthorized(send, scope)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _matches(self, candidate: str) -> bool:
        assert self._token is not None
        return hmac.compare_digest(candidate.encode(), self._token)

    def _authorized(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and self._matches(auth[7:].strip()):
            return True
        header = headers.get("x-agentos-token")
        if header is not None and self._matches(header.strip()):
            return True
        cookie_header = headers.get("cookie")
        if cookie_header:
            cookies: SimpleCookie = SimpleCookie()
            try:
                cookies.load(cookie_header)
            except Exception:  # a malformed Cookie header is just not a token
                return False
            morsel = cookies.get(COOKIE_NAME)
            if morsel is not None and self._matches(morsel.value):
                return True
        return False


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(send: Send, scope: Scope) -> None:
    path = scope.get("path", "/")
    if path.startswith("/api/"):
        body = json.dumps({"error": "unauthorized: send the dashboard token"}).encode()
        content_type = b"application/json"
    else:
        body = (
            b"401 Unauthorized: this dashboard needs its token. Open the URL that "
            b"`agentos-obs ui` printed (it ends with ?token=...), or send "
            b"'Authorization: Bearer <token>'.\n"
        )
        content_type = b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="agentos-obs"'),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send: Send, path: str, query: str, token: str) -> None:
    # Same path only: never redirect to a location taken from the request beyond our own path.
    location = ("/" + path.lstrip("/")) + (f"?{query}" if query else "")
    cookie = f"{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1", "replace")),
                (b"set-cookie", cookie.encode("latin-1", "replace")),
                (b"content-length", b"0"),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
