"""Fetching the certificates that verify Google-signed tokens, kept for their
``Cache-Control: max-age``: push's OIDC tokens (:mod:`pubsub_jobs.push.auth`) and the
dashboard's Identity-Aware Proxy headers (:mod:`pubsub_jobs.dashboard.iap`).

:class:`CachingRequest` is google-auth's transport over ``requests``; a verifier hands it to
``google.oauth2.id_token.verify_token``, so a request costs one signature check, not a round
trip to Google, and a token signed by a key not in the cached set (Google rotated its keys)
fetches them again through :meth:`CachingRequest.refresh`, at most every ``min_refresh``
seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from google.auth import transport
from google.auth.transport.requests import Request as RequestsRequest

__all__ = ["CachingRequest"]


class _CachedResponse(transport.Response):
    """A response kept in memory, as google-auth's transport interface has it."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, headers, data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class CachingRequest(transport.Request):
    """google-auth's HTTP request (over ``requests``) that keeps successful GET responses
    for their ``Cache-Control: max-age`` (less their ``Age``); ``no-store`` or ``no-cache``
    keeps nothing, and a response without ``max-age`` is kept ``default_max_age`` seconds.
    One fetch at a time: threads that need the same certificates wait for it.
    """

    def __init__(self, *, timeout: float = 10.0, default_max_age: float = 300.0,
                 min_refresh: float = 30.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._inner = RequestsRequest()
        self._clock = clock
        self.timeout = timeout
        self.default_max_age = default_max_age
        self.min_refresh = min_refresh
        self._cache: dict[str, tuple[float, float, _CachedResponse]] = {}
        self._lock = threading.Lock()
        #: Responses fetched (not served from the cache), for tests and logs.
        self.fetches = 0

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> transport.Response:
        if method != "GET" or body is not None:
            passed: transport.Response = self._inner(
                url, method=method, body=body, headers=headers, timeout=timeout or self.timeout,
                **kwargs)
            return passed
        with self._lock:
            now = self._clock()
            hit = self._cache.get(url)
            if hit is not None and now < hit[1]:
                return hit[2]
            response = self._inner(url, method="GET", headers=headers,
                                   timeout=timeout or self.timeout, **kwargs)
            self.fetches += 1
            kept = _CachedResponse(response.status, dict(response.headers), response.data)
            max_age = _max_age(kept.headers, self.default_max_age)
            if kept.status == 200 and max_age > 0:
                self._cache[url] = (now, now + max_age, kept)
            else:
                self._cache.pop(url, None)
            return kept

    def is_fresh(self, url: str) -> bool:
        """Whether a call for ``url`` is answered from the cache (needs no network)."""
        hit = self._cache.get(url)
        return hit is not None and self._clock() < hit[1]

    def refresh(self, url: str) -> bool:
        """Forget ``url``'s response if it is older than ``min_refresh`` seconds, so the next
        call fetches it again; False (nothing forgotten) when it is fresher than that."""
        with self._lock:
            hit = self._cache.get(url)
            if hit is not None and self._clock() - hit[0] < self.min_refresh:
                return False
            self._cache.pop(url, None)
            return True


def _max_age(headers: Mapping[str, str], default: float) -> float:
    """Seconds a response may be kept, from its Cache-Control and Age headers."""
    lowered = {k.lower(): v for k, v in headers.items()}
    directives = [d.strip().lower() for d in lowered.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            try:
                age = float(lowered.get("age", "0") or 0)
                return max(0.0, float(value.strip().strip('"')) - age)
            except ValueError:
                return 0.0
    return default
