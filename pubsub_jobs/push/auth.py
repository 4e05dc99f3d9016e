"""Who may push: Google-signed OIDC tokens, verified with google-auth before anything else.

Pub/Sub signs a token for the push subscription's service account and audience and sends it
as ``Authorization: Bearer <token>``. :class:`TokenVerifier` checks, in this order, and
refuses with :class:`~pubsub_jobs.errors.PushRefused`:

=====================================================================  ======
check                                                                  refused
=====================================================================  ======
a ``Bearer`` token is there, a JWT signed with RS256 (``alg: none`` is  401
not)
its signature, against Google's certificates (``push_certs_url``)       401
``exp`` not passed and ``iat`` not ahead (10 s of clock skew)          401
``iss`` is ``accounts.google.com`` or ``https://accounts.google.com``  401
``aud`` is ``push_audience``                                           403
``email`` is ``push_service_account`` and ``email_verified`` is true    403
the certificates cannot be fetched                                     503
=====================================================================  ======

google-auth (``google.oauth2.id_token.verify_token``) checks the signature, ``exp`` and
``iat``; the claims after it are checked here. Its certificates are fetched through
:class:`~pubsub_jobs._http.certificates.CachingRequest`, which keeps them for their
``Cache-Control: max-age`` (Google's say hours), so a request costs one RSA verification,
not a round trip to Google; a token signed by a key not in the cached set (Google rotated
its keys) fetches them again, at most every 30 s.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.oauth2 import id_token

from pubsub_jobs._http.certificates import CachingRequest
from pubsub_jobs.errors import ConfigurationError, PushRefused
from pubsub_jobs.settings import Settings

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
#: Seconds of clock difference tolerated on ``exp`` and ``iat``.
CLOCK_SKEW_SECONDS = 10
#: A longer Authorization header is refused unread (Google's tokens are about 1 kB).
MAX_TOKEN_BYTES = 16 * 1024


class TokenVerifier:
    """Verifies the ``Authorization`` header of push requests (see the module doc).

    Built from the settings: ``push_auth`` ``oidc`` needs ``push_audience`` and
    ``push_service_account``; ``none`` is accepted only while ``PUBSUB_EMULATOR_HOST`` is
    set. Anything else is a :class:`~pubsub_jobs.errors.ConfigurationError`, so a server
    refuses to start rather than run unauthenticated requests.
    """

    def __init__(self, settings: Settings, request: CachingRequest | None = None) -> None:
        self.enabled = settings.push_auth == "oidc"
        if not self.enabled and not settings.pubsub_emulator_host:
            raise ConfigurationError(
                "PUBSUB_JOBS_PUSH_AUTH=none is accepted only against the emulator "
                "(PUBSUB_EMULATOR_HOST set): on Google Cloud every push request must carry a "
                "verified OIDC token; set PUBSUB_JOBS_PUSH_AUTH=oidc with "
                "PUBSUB_JOBS_PUSH_AUDIENCE and PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT"
            )
        missing = [name for name, value in (("PUBSUB_JOBS_PUSH_AUDIENCE", settings.push_audience),
                                             ("PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT",
                                              settings.push_service_account))
                   if not value]
        if self.enabled and missing:
            raise ConfigurationError(
                f"push authentication (PUBSUB_JOBS_PUSH_AUTH=oidc) needs {' and '.join(missing)}"
                ": the audience and the service account of the push subscription's OIDC token"
                " (against the emulator, which sends no token, set PUBSUB_JOBS_PUSH_AUTH=none)"
            )
        self.audience = settings.push_audience or ""
        self.service_account = (settings.push_service_account or "").lower()
        self.certs_url = settings.push_certs_url
        self.request = request or CachingRequest()

    @property
    def needs_network(self) -> bool:
        """Whether verifying now may fetch certificates (else it is quick work on the CPU:
        servers with an event loop verify in it, and in a thread only when this is true)."""
        return self.enabled and not self.request.is_fresh(self.certs_url)

    def verify(self, authorization: str | None) -> Mapping[str, Any] | None:
        """The verified claims of the request's token (None when authentication is off);
        :class:`PushRefused` 401, 403 or 503 otherwise."""
        if not self.enabled:
            return None
        token = _bearer_token(authorization)
        _check_header(token)
        claims = self._verified(token)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise PushRefused(401, f"token issued by {claims.get('iss')!r}, not Google")
        audience = claims.get("aud")
        if not (audience == self.audience
                or (isinstance(audience, list) and self.audience in audience)):
            raise PushRefused(403, f"token for audience {audience!r}, expected "
                                   f"{self.audience!r} (PUBSUB_JOBS_PUSH_AUDIENCE)")
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() != self.service_account:
            raise PushRefused(403, f"token of {email!r}, expected {self.service_account!r} "
                                   "(PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT)")
        if claims.get("email_verified") is not True:
            raise PushRefused(403, f"token of {email!r} whose email is not verified")
        return claims

    def _verified(self, token: str, *, may_refresh: bool = True) -> Mapping[str, Any]:
        """Signature, ``exp`` and ``iat`` checked by google-auth; a key id missing from the
        cached certificates fetches them again (at most every ``min_refresh`` seconds)."""
        try:
            claims = id_token.verify_token(
                token, self.request, audience=None, certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except auth_exceptions.TransportError as exc:
            log.error("cannot fetch the certificates that verify push tokens from %s: %s",
                      self.certs_url, exc)
            raise PushRefused(503, f"certificates unavailable: {exc}") from None
        except (ValueError, TypeError, KeyError, auth_exceptions.GoogleAuthError) as exc:
            unknown_key = "Certificate for key id" in str(exc)
            if may_refresh and unknown_key and self.request.refresh(self.certs_url):
                return self._verified(token, may_refresh=False)
            raise PushRefused(401, f"invalid token: {exc}") from None
        if not isinstance(claims, Mapping):
            raise PushRefused(401, "invalid token: its claims are not an object")
        return claims


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise PushRefused(401, "no Authorization header")
    if len(authorization) > MAX_TOKEN_BYTES:
        raise PushRefused(401, "the Authorization header is too long")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise PushRefused(401, "the Authorization header is not 'Bearer <token>'")
    return token


def _check_header(token: str) -> None:
    """Refuse a token that is not a JWT signed with RS256 (Google's ID tokens are), before
    google-auth reads it: ``alg: none`` and HMAC tokens never reach a verifier."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, RecursionError):
        raise PushRefused(401, "invalid token: not a JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        alg = header.get("alg") if isinstance(header, dict) else None
        raise PushRefused(401, f"invalid token: algorithm {alg!r}, expected RS256")
