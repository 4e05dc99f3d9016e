"""Authentication of push requests: tokens signed by an RSA key made here, verified through
``PUBSUB_JOBS_PUSH_CERTS_URL`` pointing at a certificate server run here.

Only a token that Google would sign for the configured audience and service account runs a
job; every other request is refused (401 or 403) and runs nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from pubsub_jobs._http.certificates import CachingRequest
from pubsub_jobs.errors import ConfigurationError, PushRefused
from pubsub_jobs.push.auth import TokenVerifier
from pubsub_jobs.push.server import PushServer
from pubsub_jobs.settings import Settings, configure, load_settings
from tests import jobs_push
from tests.jobs_push import job_envelope, post, runs

AUDIENCE = "https://jobs.example.run.app"
ACCOUNT = "pubsub-push@my-project.iam.gserviceaccount.com"
KID = "test-key-1"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pubsub-jobs tests")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


KEY = _key()
OTHER_KEY = _key()


class CertServer:
    """Serves ``{kid: PEM certificate}`` as Google's v1 certs endpoint does, with a
    ``Cache-Control`` of ``max_age``; counts the fetches."""

    def __init__(self, certs: dict[str, str], max_age: int | None = 3600) -> None:
        self.certs = certs
        self.max_age = max_age
        self.fetches = 0
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.fetches += 1
                body = json.dumps(outer.certs).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                if outer.max_age is not None:
                    self.send_header("Cache-Control", f"public, max-age={outer.max_age}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/v1/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def cert_server() -> Iterator[CertServer]:
    server = CertServer({KID: _certificate(KEY)})
    try:
        yield server
    finally:
        server.close()


def claims(**changes: Any) -> dict[str, Any]:
    """What Pub/Sub's token for the push subscription says, with ``changes``."""
    now = int(time.time())
    base = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": ACCOUNT,
            "email_verified": True, "iat": now, "exp": now + 3600, "sub": "1234567890"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(payload: dict[str, Any] | None = None, *, key: rsa.RSAPrivateKey = KEY,
          kid: str = KID) -> str:
    signer = crypt.RSASigner.from_string(_pem(key), key_id=kid)
    return jwt.encode(signer, payload or claims()).decode()


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token() -> str:
    """``alg: none``: a token that claims to need no signature."""
    return f"{_b64({'alg': 'none', 'kid': KID, 'typ': 'JWT'})}.{_b64(claims())}."


def hmac_token() -> str:
    """``alg: HS256`` keyed with the public certificate: the algorithm-confusion attack."""
    import hashlib
    import hmac

    head = f"{_b64({'alg': 'HS256', 'kid': KID, 'typ': 'JWT'})}.{_b64(claims())}"
    mac = hmac.new(_certificate(KEY).encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.fixture
def oidc_settings(pubsub_jobs_settings: Settings, cert_server: CertServer,
                  monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings with authentication read from the contract's variables."""
    monkeypatch.setenv("PUBSUB_JOBS_PUSH_AUTH", "oidc")
    monkeypatch.setenv("PUBSUB_JOBS_PUSH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("PUBSUB_JOBS_PUSH_CERTS_URL", cert_server.url)
    base = pubsub_jobs_settings
    return configure(project_id=base.project_id, prefix=base.prefix,
                     pubsub_emulator_host=base.pubsub_emulator_host,
                     queue_defaults=base.queue_defaults)


@pytest.fixture
def server(oidc_settings: Settings) -> Iterator[PushServer]:
    jobs_push.RAN.clear()
    with PushServer(["push"], port=0, settings=oidc_settings) as push_server:
        yield push_server
    jobs_push.RAN.clear()


def push(server: PushServer, tok: str | None, **headers: str) -> int:
    body = job_envelope(jobs_push.greet, "authenticated", delivery_attempt=1)
    return post(server.url, "/push/push", body, token=tok, headers=headers)[0]


def test_a_valid_token_runs_the_job_and_certificates_are_cached(server, cert_server):
    assert cert_server.url == server.handler.settings.push_certs_url
    assert push(server, token()) == 204
    assert push(server, token()) == 204
    assert [r[3] for r in runs("greet")] == ["authenticated"] * 2
    assert cert_server.fetches == 1  # Cache-Control: max-age=3600


@pytest.mark.parametrize(("make", "status"), [
    (lambda: None, 401),
    (lambda: "", 401),
    (lambda: token(claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)), 401),
    (lambda: token(claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200)), 401),
    (lambda: token(claims(aud="https://other.example.run.app")), 403),
    (lambda: token(claims(aud=None)), 403),
    (lambda: token(claims(email="attacker@evil-project.iam.gserviceaccount.com")), 403),
    (lambda: token(claims(email=None)), 403),
    (lambda: token(claims(email_verified=False)), 403),
    (lambda: token(claims(email_verified="true")), 403),
    (lambda: token(claims(email_verified=None)), 403),
    (lambda: token(claims(iss="https://evil.example.com")), 401),
    (lambda: token(claims(iss=None)), 401),
    (lambda: token(key=OTHER_KEY), 401),
    (lambda: token(kid="unknown-key"), 401),
    (unsigned_token, 401),
    (hmac_token, 401),
    (lambda: token()[:-4] + "AAAA", 401),
    (lambda: "not.a.jwt", 401),
    (lambda: "x" * 20_000, 401),
], ids=["missing", "empty", "expired", "issued-in-the-future", "wrong-audience",
        "no-audience", "wrong-email", "no-email", "unverified-email", "email-verified-string",
        "no-email-verified", "wrong-issuer", "no-issuer", "bad-signature", "unknown-key",
        "alg-none", "alg-hs256", "tampered-signature", "garbage", "oversized"])
def test_invalid_tokens_are_refused_and_run_nothing(server, make, status):
    assert push(server, make()) == status
    assert runs() == []


def test_other_schemes_and_repeated_headers_are_refused(server):
    body = job_envelope(jobs_push.greet, "x", delivery_attempt=1)
    assert post(server.url, "/push/push", body, headers={"Authorization": f"Basic {token()}"}
                )[0] == 401
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/push/push")
    conn.putheader("Authorization", f"Bearer {token()}")
    conn.putheader("Authorization", "Bearer other")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    assert conn.getresponse().status == 401
    conn.close()
    assert runs() == []


def test_a_refusal_says_bearer_and_nothing_more(server):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/push/push", body=b"{}")
    response = conn.getresponse()
    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == 'Bearer error="invalid_token"'
    assert response.read() == b"Unauthorized\n"
    conn.close()


def test_nothing_of_the_request_is_read_before_the_token(server):
    """Without a token, an unknown queue, a malformed or oversized body all get 401: the
    unauthenticated learn nothing."""
    assert post(server.url, "/push/secret-queue", b"{}")[0] == 401
    assert post(server.url, "/push/push", b"not json")[0] == 401
    assert post(server.url, "/push/push", b"x" * (10 * 1000 * 1000 + 1))[0] == 401
    assert post(server.url, "/push/push", b"not json", token=token())[0] == 400
    assert post(server.url, "/push/secret-queue", b"{}", token=token())[0] == 404


def test_certificates_out_of_reach_give_503(server, cert_server):
    cert_server.status = 500
    assert push(server, token()) == 503
    assert runs() == []


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rotated_key_fetches_the_certificates_again_at_most_every_30_s(oidc_settings,
                                                                         cert_server):
    clock = Clock()
    verifier = TokenVerifier(oidc_settings, CachingRequest(clock=clock))
    verifier.verify(f"Bearer {token()}")
    assert cert_server.fetches == 1
    cert_server.certs["new-key"] = _certificate(OTHER_KEY)
    clock.now += 29
    with pytest.raises(PushRefused):  # fetched 29 s ago: not again yet
        verifier.verify(f"Bearer {token(key=OTHER_KEY, kid='new-key')}")
    assert cert_server.fetches == 1
    clock.now += 2
    verifier.verify(f"Bearer {token(key=OTHER_KEY, kid='new-key')}")
    assert cert_server.fetches == 2
    with pytest.raises(PushRefused):  # a key nobody has: at most one fetch per 30 s
        verifier.verify(f"Bearer {token(kid='made-up')}")
    assert cert_server.fetches == 2


def test_certificates_are_kept_for_their_max_age():
    certs = CertServer({KID: _certificate(KEY)}, max_age=60)
    try:
        clock = Clock()
        request = CachingRequest(clock=clock)
        for _ in range(3):
            assert request(certs.url).status == 200
            clock.now += 29
        assert certs.fetches == 1  # at 0, 29 and 58 s: Cache-Control: max-age=60
        request(certs.url)
        assert certs.fetches == 2  # at 87 s
        certs.max_age = None  # no Cache-Control: kept default_max_age (300 s)
        clock.now += 61
        request(certs.url)
        clock.now += 299
        request(certs.url)
        assert certs.fetches == 3
        clock.now += 2
        request(certs.url)
        assert certs.fetches == 4
    finally:
        certs.close()


def test_authentication_settings_are_checked_when_the_endpoint_is_built(monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    with pytest.raises(ConfigurationError, match="only against the emulator"):
        TokenVerifier(load_settings(push_auth="none"))
    with pytest.raises(ConfigurationError, match="PUBSUB_JOBS_PUSH_AUDIENCE and "
                                                 "PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT"):
        TokenVerifier(load_settings(push_auth="oidc"))
    with pytest.raises(ConfigurationError, match="PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT"):
        TokenVerifier(load_settings(push_audience=AUDIENCE))
    assert TokenVerifier(load_settings(push_auth="none",
                                       pubsub_emulator_host="127.0.0.1:1")).enabled is False


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Cache-Control": "public, max-age=100, must-revalidate"}, 100),
    ({"cache-control": "max-age=100", "Age": "30"}, 70),
    ({"Cache-Control": "max-age=10", "Age": "30"}, 0),
    ({"Cache-Control": "no-store"}, 0),
    ({"Cache-Control": "no-cache, max-age=100"}, 0),
    ({"Cache-Control": "max-age=soon"}, 0),
    ({}, 300),
])
def test_how_long_a_response_is_kept(headers, seconds):
    from pubsub_jobs._http.certificates import _max_age

    assert _max_age(headers, 300) == seconds
