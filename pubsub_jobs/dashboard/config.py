"""What a dashboard is told: its queues, where it listens, and who may use it.

:meth:`DashboardConfig.check` is where a dashboard refuses to start: it listens on a
loopback address (127.0.0.1 by default) unless it has an access control, a token
(``--token`` / ``PUBSUB_JOBS_DASHBOARD_TOKEN``) or Identity-Aware Proxy's signed headers
(``--iap-audience`` / ``PUBSUB_JOBS_DASHBOARD_IAP_AUDIENCE``).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from pubsub_jobs.errors import ConfigurationError

__all__ = [
    "IAP_AUDIENCE_ENV",
    "IAP_CERTS_URL",
    "MIN_TOKEN_LENGTH",
    "TOKEN_ENV",
    "DashboardConfig",
    "is_loopback",
]

TOKEN_ENV = "PUBSUB_JOBS_DASHBOARD_TOKEN"  # noqa: S105 - a variable name, not a secret
IAP_AUDIENCE_ENV = "PUBSUB_JOBS_DASHBOARD_IAP_AUDIENCE"
#: Identity-Aware Proxy's public keys (ES256, PEM by key id), which sign its JWT headers.
IAP_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"
#: A shorter token could be guessed; ``secrets.token_urlsafe()`` gives 43 characters.
MIN_TOKEN_LENGTH = 16
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class DashboardConfig:
    """A dashboard's options (the command line's, or a script's).

    ``allowed_hosts``: the names the dashboard answers to (the ``Host`` header), which keeps
    DNS rebinding out; by default the loopback names when it listens on loopback, and any
    name behind a token or IAP. ``refresh_seconds``: how often pages update themselves.
    ``secret`` signs sessions and CSRF tokens; a new one each start logs everyone out.
    """

    queues: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8081
    token: str | None = None
    iap_audience: str | None = None
    iap_certs_url: str = IAP_CERTS_URL
    allowed_hosts: tuple[str, ...] = ()
    refresh_seconds: float = 5.0
    page_size: int = 50
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def check(self) -> DashboardConfig:
        """Raise :class:`~pubsub_jobs.errors.ConfigurationError` for options that cannot
        be served safely; returns itself."""
        if not self.queues:
            raise ConfigurationError("the dashboard needs at least one --queue")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"the dashboard's token is shorter than {MIN_TOKEN_LENGTH} characters; make "
                "one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        if self.token and self.iap_audience:
            raise ConfigurationError("give the dashboard a token or an IAP audience, not both")
        if not is_loopback(self.host) and not (self.token or self.iap_audience):
            raise ConfigurationError(
                f"the dashboard would listen on {self.host} without access control: anyone "
                "who reaches it could retry and purge jobs. Give it a token (--token, or "
                f"{TOKEN_ENV}) or put it behind Identity-Aware Proxy (--iap-audience, or "
                f"{IAP_AUDIENCE_ENV}), or listen on 127.0.0.1"
            )
        if self.refresh_seconds < 1:
            raise ConfigurationError("--refresh is at least 1 second")
        if self.page_size < 1:
            raise ConfigurationError("the page size is at least 1")
        return self

    @property
    def access(self) -> str:
        """``"token"``, ``"iap"`` or ``"loopback"`` (nothing but the address)."""
        if self.token:
            return "token"
        if self.iap_audience:
            return "iap"
        return "loopback"

    def host_names(self) -> tuple[str, ...]:
        """The ``Host`` names answered (lower case, without port); empty: any."""
        if self.allowed_hosts:
            return tuple(h.lower() for h in self.allowed_hosts)
        if is_loopback(self.host):
            return (*_LOOPBACK_NAMES, self.host.strip("[]").lower())
        return ()
