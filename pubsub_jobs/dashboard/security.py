"""The dashboard's guard: who may see it, and which requests may change anything.

:class:`Guard` (ASGI middleware, outermost) checks every request, in this order:

1. ``Host`` is one the dashboard answers to (:meth:`DashboardConfig.host_names`): on
   loopback, only loopback names, so a DNS-rebinding page cannot read or drive it (400);
2. access control, when it listens elsewhere: a token (``Authorization: Bearer``, or the
   cookie ``/login`` sets, bound to the session) or IAP's verified JWT header (401, or a
   redirect to ``/login`` for a page);
3. a changing request (POST) must be same-origin: ``Sec-Fetch-Site`` is ``same-origin``
   when the browser sends it and ``Origin`` is this host when sent (403). The views then
   check the form's CSRF token (:meth:`Sessions.check_csrf`), the per-session second line.

Every response gets a strict Content-Security-Policy (scripts and styles from the
dashboard's own files only, no framing, forms only to itself), ``nosniff``, no referrer
to elsewhere, ``no-store`` for pages. The session is a random id in an ``HttpOnly``,
``SameSite=Strict`` cookie; CSRF tokens and login marks are HMACs of it with a secret
made at start.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

from anyio import to_thread
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pubsub_jobs.dashboard.config import DashboardConfig
from pubsub_jobs.dashboard.iap import IAP_HEADER, IapRefused, IapVerifier

__all__ = ["CSP", "PUBLIC_PATHS", "Guard", "Sessions", "cross_site_reason"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
#: Paths a token-protected dashboard shows without the token (to ask for it).
PUBLIC_PATHS = ("/login", "/static/")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_MAX_FLASHES = 1000


class Sessions:
    """Session ids, the CSRF token and login mark of each, and messages for its next page."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.cookie = "pubsub_jobs_" + hashlib.sha256(secret).hexdigest()[:8]
        self.auth_cookie = self.cookie + "_auth"
        self._flashes: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def valid_id(value: str | None) -> bool:
        return value is not None and _SESSION_ID.fullmatch(value) is not None

    def _mac(self, purpose: str, session: str) -> str:
        return hmac.new(self._secret, f"{purpose}\0{session}".encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, session: str) -> str:
        return self._mac("csrf", session)

    def check_csrf(self, session: str, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token, self.csrf_token(session))

    def auth_mark(self, session: str) -> str:
        return self._mac("auth", session)

    def flash(self, session: str, level: str, text: str) -> None:
        with self._lock:
            self._flashes.setdefault(session, []).append((level, text))
            self._flashes.move_to_end(session)
            while len(self._flashes) > _MAX_FLASHES:
                self._flashes.popitem(last=False)

    def flashes(self, session: str) -> list[tuple[str, str]]:
        with self._lock:
            return self._flashes.pop(session, [])


def cross_site_reason(request: Request) -> str | None:
    """Why a changing request is not same-origin, or None when it is (or cannot be told:
    a client that sends neither header must still pass the CSRF token)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return f"a {site} request (Sec-Fetch-Site)"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "").lower()
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return f"a request from {origin} (Origin), not from {host}"
    return None


class Guard:
    """ASGI middleware: host, access and same-origin checks, session cookie, headers."""

    def __init__(self, app: ASGIApp, *, config: DashboardConfig, sessions: Sessions,
                 iap: IapVerifier | None = None) -> None:
        self.app = app
        self.config = config
        self.sessions = sessions
        self.iap = iap
        self.hosts = config.host_names()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session = request.cookies.get(self.sessions.cookie)
        fresh = not Sessions.valid_id(session)
        sid = Sessions.new_id() if fresh else str(session)
        refused = await self._refusal(request, sid)
        if refused is not None:
            await self._send(refused, scope, receive, send, sid if fresh else None)
            return
        scope.setdefault("state", {})["session"] = sid
        await self._send(self.app, scope, receive, send, sid if fresh else None)

    async def _refusal(self, request: Request, sid: str) -> Response | None:
        if self.hosts and _host_name(request.headers.get("host", "")) not in self.hosts:
            return PlainTextResponse("unknown host: this dashboard answers to "
                                     + ", ".join(self.hosts), status_code=400)
        state = request.scope.setdefault("state", {})
        if self.config.access == "iap" and self.iap is not None:
            try:
                state["user"] = await to_thread.run_sync(
                    self.iap.verify, request.headers.get(IAP_HEADER))
            except IapRefused as exc:
                return PlainTextResponse(f"refused: {exc}", status_code=401)
        elif (self.config.access == "token" and not _public(request.url.path)
              and not self._token_ok(request, sid)):
            if request.method in _SAFE_METHODS:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            return PlainTextResponse("refused: this dashboard needs its token",
                                     status_code=401, headers={"www-authenticate": "Bearer"})
        if request.method not in _SAFE_METHODS:
            reason = cross_site_reason(request)
            if reason is not None:
                return PlainTextResponse(f"refused: {reason}; changes are accepted only from "
                                         "the dashboard's own pages", status_code=403)
        return None

    def _token_ok(self, request: Request, sid: str) -> bool:
        token = self.config.token or ""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return hmac.compare_digest(given.strip().encode(), token.encode())
        mark = request.cookies.get(self.sessions.auth_cookie, "")
        return hmac.compare_digest(mark.encode(), self.sessions.auth_mark(sid).encode())

    async def _send(self, app: Any, scope: Scope, receive: Receive, send: Send,
                    new_session: str | None) -> None:
        secure = scope.get("scheme") == "https"
        static = scope.get("path", "").startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers["cache-control"] = "no-store"
                if new_session is not None:
                    headers.append("set-cookie", session_cookie(
                        self.sessions.cookie, new_session, secure=secure))
            await send(message)

        await app(scope, receive, with_headers)


def session_cookie(name: str, value: str, *, secure: bool) -> str:
    """A ``Set-Cookie`` value: for this site only, unreadable by scripts, never sent with
    requests other sites start."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Strict"
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()


def _public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC_PATHS)


def _host_name(host: str) -> str:
    """``Host`` without its port, lower case (``[::1]:8081`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
