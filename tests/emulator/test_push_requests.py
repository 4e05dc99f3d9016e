"""Requests that are not push envelopes (400), bodies over 10 MB (413), and the endpoint as
a WSGI app, an ASGI app mounted under a prefix, and a Django view."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.push import MAX_BODY_BYTES, PushASGIApp, PushWSGIApp
from pubsub_jobs.push.server import PushServer
from pubsub_jobs.settings import Settings, configure, load_settings
from tests import jobs_push
from tests.jobs_push import envelope, job_envelope, post, runs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def push_settings(pubsub_jobs_settings: Settings) -> Settings:
    return configure(**{**pubsub_jobs_settings.model_dump(), "push_auth": "none"})


@pytest.fixture
def server(push_settings: Settings) -> Iterator[PushServer]:
    jobs_push.RAN.clear()
    with PushServer(["push"], port=0, settings=push_settings) as push_server:
        yield push_server
    jobs_push.RAN.clear()


def _message(**fields: Any) -> bytes:
    message = {"data": base64.b64encode(b"{}").decode(), "attributes": {}, "messageId": "1"}
    message.update(fields)
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}
                      ).encode()


MALFORMED = {
    "empty": b"",
    "not-json": b"not json",
    "not-utf8": b"\xff\xfe{}",
    "array": b"[]",
    "string": b'"message"',
    "no-message": b'{"subscription": "projects/p/subscriptions/s"}',
    "message-not-object": b'{"message": "x", "subscription": "projects/p/subscriptions/s"}',
    "no-subscription": json.dumps({"message": {"data": "", "messageId": "1"}}).encode(),
    "no-message-id": _message(messageId=None),
    "empty-message-id": _message(messageId=""),
    "data-not-base64": _message(data="!!not base64!!"),
    "data-not-string": _message(data=123),
    "attributes-list": _message(attributes=["a"]),
    "attribute-not-string": _message(attributes={"job_name": 1}),
    "attempt-string": json.dumps({**json.loads(_message()), "deliveryAttempt": "3"}).encode(),
    "attempt-zero": json.dumps({**json.loads(_message()), "deliveryAttempt": 0}).encode(),
    "attempt-bool": json.dumps({**json.loads(_message()), "deliveryAttempt": True}).encode(),
    "nested-past-the-stack": b"[" * 200_000 + b"]" * 200_000,
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_body_that_is_not_a_push_envelope_gets_400_and_runs_nothing(server, body):
    assert post(server.url, "/push/push", body)[0] == 400
    assert runs() == []
    assert server.handler.stats.snapshot()["received"] == 0


def test_bodies_over_10_mb_get_413_whether_declared_or_streamed(server):
    big = job_envelope(jobs_push.greet, "x" * 8_000_000, delivery_attempt=1)  # base64: 10.7 MB
    assert len(big) > MAX_BODY_BYTES
    assert post(server.url, "/push/push", big)[0] == 413
    assert post(server.url, "/push/push", big, chunked=True)[0] == 413
    # 10 MB itself is read (and then found not to be an envelope).
    assert post(server.url, "/push/push", b" " * MAX_BODY_BYTES)[0] == 400
    assert runs() == []


def test_a_message_without_data_is_dead_lettered_not_refused(server, push_settings,
                                                             bootstrap_queues, dead_letters):
    bootstrap_queues("push")
    body = json.dumps({"message": {"attributes": {"a": "b"}, "messageId": "7"},
                       "subscription": push_settings.subscription_path("push")}).encode()
    assert post(server.url, "/push/push", body)[0] == 204
    assert [d.reason for d in dead_letters("push", expect=1)] == ["invalid_message"]


def _wsgi(app: PushWSGIApp, method: str, path: str, body: bytes = b"",
          **environ: str) -> tuple[str, dict[str, str], bytes]:
    env: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path,
                           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    env.update(environ)
    setup_testing_defaults(env)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    out = b"".join(app(env, start_response))
    return answer["status"], answer["headers"], out


def test_the_wsgi_app_answers_as_the_server_does(push_settings):
    jobs_push.RAN.clear()
    app = PushWSGIApp(["push"], settings=push_settings)
    try:
        body = job_envelope(jobs_push.greet, "wsgi", delivery_attempt=1)
        assert _wsgi(app, "POST", "/push/push", body)[0] == "204 No Content"
        assert _wsgi(app, "POST", "/push/push", b"[]")[0] == "400 Bad Request"
        assert _wsgi(app, "POST", "/push/other", body)[0] == "404 Not Found"
        assert _wsgi(app, "GET", "/push/push")[0] == "405 Method Not Allowed"
        assert _wsgi(app, "GET", "/healthz")[2] == b"ok\n"
        assert _wsgi(app, "POST", "/push/push", body, CONTENT_LENGTH="abc")[0].startswith("400")
        status, _, _ = _wsgi(app, "POST", "/push/push", b"{}",
                             CONTENT_LENGTH=str(MAX_BODY_BYTES + 1))
        assert status == "413 Content Too Large" or status.startswith("413")
        assert [r[3] for r in runs("greet")] == ["wsgi"]
    finally:
        app.close()
        jobs_push.RAN.clear()


async def _asgi(app: PushASGIApp, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_the_asgi_app_mounted_under_a_prefix_routes_below_it(push_settings):
    jobs_push.RAN.clear()
    app = PushASGIApp(["push"], settings=push_settings)
    try:
        body = job_envelope(jobs_push.greet, "mounted", delivery_attempt=1)
        scope = {"type": "http", "method": "POST", "path": "/jobs/push/push",
                 "root_path": "/jobs", "headers": [(b"content-length", str(len(body)).encode())]}
        sent = asyncio.run(_asgi(app, scope, body))
        assert sent[0]["status"] == 204
        assert [r[3] for r in runs("greet")] == ["mounted"]
    finally:
        app.close()
        jobs_push.RAN.clear()


def test_a_wrong_setting_stops_the_server_from_starting(monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    settings = load_settings(project_id="p", push_auth="none")
    with pytest.raises(ConfigurationError, match="only against the emulator"):
        PushServer(["push"], port=0, settings=settings).start()

    async def lifespan() -> list[dict[str, Any]]:
        app = PushASGIApp(["push"], settings=load_settings(project_id="p"))
        sent: list[dict[str, Any]] = []
        events = [{"type": "lifespan.startup"}]

        async def receive() -> dict[str, Any]:
            return events.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)
        return sent

    sent = asyncio.run(lifespan())
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "PUBSUB_JOBS_PUSH_AUDIENCE" in sent[0]["message"]


DJANGO_SCRIPT = """
import json, sys, types
import django
django.setup()
from django.test import Client
from django.test.utils import override_settings
from django.urls import path
from pubsub_jobs.adapters.django.push import push_view
from tests import jobs_push

urls = types.ModuleType("push_urls")
urls.urlpatterns = [path("jobs/push/<str:queue>", push_view(modules=["tests.jobs_push"]))]
sys.modules["push_urls"] = urls
out = {}
with override_settings(ROOT_URLCONF="push_urls", DATA_UPLOAD_MAX_MEMORY_SIZE=10):
    client = Client(enforce_csrf_checks=True)
    body = jobs_push.job_envelope(jobs_push.greet, "django", delivery_attempt=1)
    post = lambda p, b: client.post(p, data=b, content_type="application/json").status_code
    out["ran"] = post("/jobs/push/default", body)
    out["again"] = post("/jobs/push/default", body)
    out["unknown_queue"] = post("/jobs/push/push", body)
    out["malformed"] = post("/jobs/push/default", b"[]")
    out["get"] = client.get("/jobs/push/default").status_code
    out["runs"] = [r[3] for r in jobs_push.RAN]
print(json.dumps(out))
"""


def test_the_django_view_serves_the_backend_queues(pubsub_emulator):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
           "PUBSUB_EMULATOR_HOST": pubsub_emulator, "PUBSUB_JOBS_PUSH_AUTH": "none",
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", DJANGO_SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"ran": 204, "again": 204, "unknown_queue": 404, "malformed": 400,
                   "get": 405, "runs": ["django"]}


def test_envelope_reads_what_the_emulator_sends():
    """The emulator's own body (snake-case duplicates included), as seen on the wire."""
    from pubsub_jobs.push import parse_envelope

    body = {"subscription": "projects/p/subscriptions/s", "message": {
        "publishTime": "2026-12-03T12:29:38.787Z", "data": "eyJ4IjoxfQ==",
        "publish_time": "2026-12-03T12:29:38.787Z", "messageId": "2",
        "attributes": {"a": "b"}, "message_id": "2"}}
    pushed = parse_envelope(json.dumps(body).encode())
    assert (pushed.message_id, pushed.data, pushed.attributes, pushed.delivery_attempt) == (
        "2", b'{"x":1}', {"a": "b"}, None)
    assert envelope(b"x", delivery_attempt=4).count(b'"deliveryAttempt": 4') == 1
