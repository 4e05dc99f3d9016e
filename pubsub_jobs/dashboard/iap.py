"""Identity-Aware Proxy: the signed header that says a request came through IAP, verified.

IAP puts a JWT in ``x-goog-iap-jwt-assertion``, signed with ES256 by keys published at
:data:`~pubsub_jobs.dashboard.config.IAP_CERTS_URL`. :class:`IapVerifier` checks it with
google-auth (signature, ``exp``, ``iat``), then the algorithm, the issuer
(``https://cloud.google.com/iap``) and the audience (``/projects/NUMBER/global/backendServices/ID``
for a load balancer, ``/projects/NUMBER/apps/PROJECT`` for App Engine). Certificates are
cached for their ``max-age`` (:class:`~pubsub_jobs._http.certificates.CachingRequest`).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.oauth2 import id_token

from pubsub_jobs._http.certificates import CachingRequest

__all__ = ["IAP_HEADER", "IAP_ISSUER", "IapRefused", "IapVerifier"]

IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
_MAX_BYTES = 16 * 1024


class IapRefused(Exception):
    """The request did not come through Identity-Aware Proxy (or not for this audience)."""


class IapVerifier:
    """Verifies IAP's header for ``audience``; :meth:`verify` returns the user's email."""

    def __init__(self, audience: str, certs_url: str,
                 request: CachingRequest | None = None) -> None:
        self.audience = audience
        self.certs_url = certs_url
        self.request = request or CachingRequest()

    def verify(self, assertion: str | None) -> str:
        if not assertion:
            raise IapRefused(f"no {IAP_HEADER} header: this dashboard answers only through "
                             "Identity-Aware Proxy")
        if len(assertion) > _MAX_BYTES:
            raise IapRefused("the IAP assertion is too long")
        if _algorithm(assertion) != "ES256":
            raise IapRefused("the IAP assertion is not signed with ES256")
        claims = self._claims(assertion)
        if claims.get("iss") != IAP_ISSUER:
            raise IapRefused(f"the IAP assertion was issued by {claims.get('iss')!r}")
        if claims.get("aud") != self.audience:
            raise IapRefused(f"the IAP assertion is for audience {claims.get('aud')!r}")
        email = claims.get("email")
        return email if isinstance(email, str) else str(claims.get("sub", "?"))

    def _claims(self, assertion: str, *, may_refresh: bool = True) -> dict[str, Any]:
        try:
            claims = id_token.verify_token(assertion, self.request, audience=self.audience,
                                           certs_url=self.certs_url, clock_skew_in_seconds=30)
        except auth_exceptions.TransportError as exc:
            raise IapRefused(f"IAP's keys cannot be fetched: {exc}") from None
        except (ValueError, TypeError, KeyError, auth_exceptions.GoogleAuthError) as exc:
            if may_refresh and "Certificate for key id" in str(exc) and \
                    self.request.refresh(self.certs_url):
                return self._claims(assertion, may_refresh=False)
            raise IapRefused(f"invalid IAP assertion: {exc}") from None
        if not isinstance(claims, dict):
            raise IapRefused("invalid IAP assertion")
        return claims


def _algorithm(token: str) -> object:
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, RecursionError):
        return None
    return header.get("alg") if isinstance(header, dict) else None
