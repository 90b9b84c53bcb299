"""What stands before every route of the dashboard: the Host check, the token and its
session cookie, the CSRF token of POSTs, read-only mode, and the security headers (CSP).

A request whose Host header is not the bound address is refused (DNS rebinding); a bind
other than loopback needs a token, exchanged once at `/login?token=` for an HttpOnly
SameSite=Strict cookie (or sent as `Authorization: Bearer`); every POST needs the CSRF
token of this server; `--read-only` refuses every POST (and the app registers no action).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from queuectl.home import Home

#: The session cookie that `/login` sets.
COOKIE = "queuectl_session"


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 in brackets or not) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether `host` binds every address of the machine."""
    return host.strip("[]") in ("0.0.0.0", "::")


class Settings:
    """What `queuectl ui` was started with, and the secrets of this run."""

    def __init__(
        self, home: Home, host: str, port: int, token: str | None, read_only: bool
    ) -> None:
        self.home = home
        self.host = host
        self.port = port
        self.token = token
        self.read_only = read_only
        self.csrf = secrets.token_urlsafe(32)
        # The cookie holds a random value of this run, never the token itself: a restart
        # of the dashboard asks for the token again.
        self.session = secrets.token_urlsafe(32) if token else None

    def allowed_hosts(self) -> set[str] | None:
        """The Host headers served; None: any (a wildcard bind, guarded by its token)."""
        if is_wildcard(self.host):
            return None
        names = {self.host}
        if is_loopback(self.host):
            names |= {"localhost", "127.0.0.1", "[::1]"}
        return {f"{n}:{self.port}" for n in names} | (names if self.port == 80 else set())


class Guard:
    """ASGI middleware: Host check, token, CSRF and read-only, before any route runs."""

    OPEN_PATHS = ("/login", "/static/")

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.s = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refuse(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refuse(self, request: Request) -> Response | None:
        allowed = self.s.allowed_hosts()
        host = request.headers.get("host", "")
        if allowed is not None and host not in allowed:
            return PlainTextResponse(
                f"refused: Host {host!r} is not this dashboard's address", status_code=403
            )
        path = request.url.path
        if self.s.session is not None and not path.startswith(self.OPEN_PATHS):
            cookie = request.cookies.get(COOKIE, "")
            bearer = request.headers.get("authorization", "")
            token_ok = bearer.startswith("Bearer ") and hmac.compare_digest(
                bearer[7:].encode(), (self.s.token or "").encode()
            )
            if not (hmac.compare_digest(cookie.encode(), self.s.session.encode()) or token_ok):
                return PlainTextResponse(
                    "refused: this dashboard needs its token; open the address `queuectl ui` "
                    "printed (it ends in /login?token=...)",
                    status_code=401,
                )
        if request.method not in ("GET", "HEAD"):
            if self.s.read_only:
                return PlainTextResponse(
                    "refused: the dashboard is read-only (--read-only)", status_code=403
                )
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent.encode(), self.s.csrf.encode()):
                return PlainTextResponse(
                    "refused: the CSRF token is missing or wrong; reload the page", status_code=403
                )
        return None


def login_endpoint(settings: Settings) -> Callable[[Request], Response]:
    """`/login?token=`: the token of this run, once, for the session cookie."""

    def login(request: Request) -> Response:
        given = request.query_params.get("token", "")
        if settings.session is None:
            return RedirectResponse("/", status_code=303)
        if not hmac.compare_digest(given.encode(), (settings.token or "").encode()):
            return PlainTextResponse("refused: wrong token", status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, settings.session, httponly=True, samesite="strict", path="/")
        return response

    return login


class Headers:
    """Security headers on every answer: no framing, no sniffing, scripts only from here."""

    CSP = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
