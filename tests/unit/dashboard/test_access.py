"""Who may use a dashboard that listens beyond loopback: Identity-Aware Proxy's signed header
(ES256 keys made here, served by a key server run here, as IAP serves its own). The command
line's refusal to start without access control: tests/processes/test_dashboard_cli.py."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import jwt
from google.auth.crypt import es256
from starlette.testclient import TestClient

from pubsub_jobs.dashboard.app import create_app
from pubsub_jobs.dashboard.config import DashboardConfig
from tests.unit.dashboard.test_views import ANYWHERE, SETTINGS, FakeBackend

AUDIENCE = "/projects/123456/global/backendServices/987654"
KID = "iap-test-key"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


KEY, OTHER = _key(), _key()


def _public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def assertion(key: ec.EllipticCurvePrivateKey = KEY, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "https://cloud.google.com/iap", "aud": AUDIENCE, "iat": now,
               "exp": now + 600, "sub": "accounts.google.com:1", "email": "oncall@example.com",
               **claims}
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    signer = es256.ES256Signer.from_string(pem, KID)
    return jwt.encode(signer, payload).decode()


@pytest.fixture(scope="module")
def key_server() -> Iterator[str]:
    """Serves ``{kid: PEM public key}`` as IAP's public_key endpoint does."""
    body = json.dumps({KID: _public_pem(KEY)}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/iap/verify/public_key"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def iap_client(key_server: str) -> TestClient:
    config = DashboardConfig(queues=("default", "mailers"), host=ANYWHERE,
                             iap_audience=AUDIENCE, iap_certs_url=key_server)
    app = create_app(config, SETTINGS, backend=FakeBackend(), listen=False)
    return TestClient(app, base_url="https://jobs.example.com", follow_redirects=False)


def test_iap_header_verified_with_google_auth(iap_client: TestClient) -> None:
    page = iap_client.get("/", headers={"x-goog-iap-jwt-assertion": assertion()})
    assert page.status_code == 200 and "Signed in as oncall@example.com" in page.text
    assert "Secure" in page.headers["set-cookie"]  # served over https


@pytest.mark.parametrize("header", [
    None,
    "not-a-jwt",
    assertion(OTHER),
    assertion(aud="/projects/123456/global/backendServices/1"),
    assertion(iss="https://accounts.google.com"),
    assertion(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
])
def test_requests_without_a_valid_iap_header_are_refused(iap_client: TestClient,
                                                         header: str | None) -> None:
    headers = {"x-goog-iap-jwt-assertion": header} if header is not None else {}
    for response in (iap_client.get("/", headers=headers),
                     iap_client.get("/static/dashboard.css", headers=headers),
                     iap_client.post("/queues/default/dead/retry", headers=headers,
                                     data={"all": "1"})):
        assert response.status_code == 401 and "refused" in response.text


def test_an_unsigned_assertion_is_refused(iap_client: TestClient) -> None:
    header = jwt.encode(es256.ES256Signer.from_string(
        KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()), KID), {"aud": AUDIENCE}).decode()
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    unsigned = ".".join([none, header.split(".")[1], ""])
    assert iap_client.get("/", headers={"x-goog-iap-jwt-assertion": unsigned}).status_code == 401


