"""The dashboard's views, through Starlette's TestClient over the ASGI app, with a backend of
the test's own (no Pub/Sub): what the pages show, how actions are checked and carried out,
that what a message carries is escaped, and the access rules.

The same pages against the emulator in a real browser: tests/emulator/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import pubsub_v1
from starlette.testclient import TestClient

from pubsub_jobs.dashboard.app import create_app
from pubsub_jobs.dashboard.backend import QueueRow, selection_digest
from pubsub_jobs.dashboard.config import DashboardConfig
from pubsub_jobs.dashboard.workers import WorkerBoard
from pubsub_jobs.dead import DeadJob, PurgeSummary, RetrySummary
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.settings import Settings

BASE = "http://127.0.0.1:8081"
ANYWHERE = "0.0.0.0"  # noqa: S104 - refused without access control
TOKEN = secrets.token_urlsafe()
SETTINGS = Settings(project_id="p")


def dead_job(n: int, queue: str = "default", **attributes: str) -> DeadJob:
    attrs = {"job_name": "app.jobs.import_feed", "job_id": f"job-{n:03d}", "queue_name": queue,
             "dead_letter_reason": "failed", "dead_letter_error": f"ValueError: feed {n} bad",
             "delivery_attempt": "5", "dead_lettered_at": "2026-01-02T03:04:05Z", **attributes}
    message = pubsub_v1.types.PubsubMessage(
        data=json.dumps({"args": [f"https://example.com/{n}.xml"], "kwargs": {}}).encode(),
        attributes=attrs, message_id=f"m{n:03d}",
        publish_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(seconds=n),
    )
    return DeadJob.from_message(queue, message)


class FakeBackend:
    """The backend's methods over a list of dead jobs; records what it was asked."""

    def __init__(self, jobs: Sequence[DeadJob] = ()) -> None:
        self.queues = ["default", "mailers"]
        self.jobs = {"default": list(jobs), "mailers": []}
        self.calls: list[tuple[Any, ...]] = []

    def queue_rows(self) -> list[QueueRow]:
        return [QueueRow(queue=q, topic=SETTINGS.topic_path(q), topic_exists=True,
                         subscription=SETTINGS.subscription_path(q), subscription_exists=True,
                         backlog=None, dead=len(self.jobs[q]), note="unknown on the emulator")
                for q in self.queues]

    def dead_jobs(self, queue: str) -> list[DeadJob]:
        return list(self.jobs[queue])

    def _selected(self, queue: str, ids: Sequence[str], every: bool) -> list[DeadJob]:
        return [j for j in self.jobs[queue] if every or j.id in ids or j.message_id in ids]

    def retry(self, queue: str, ids: Sequence[str], every: bool) -> RetrySummary:
        self.calls.append(("retry", queue, list(ids), every))
        done = self._selected(queue, ids, every)
        self.jobs[queue] = [j for j in self.jobs[queue] if j not in done]
        return RetrySummary(queue=queue, topic=SETTINGS.topic_path(queue), selected=len(done),
                            retried=tuple(j.id for j in done))

    def purge_preview(self, queue: str, ids: Sequence[str],
                      every: bool) -> tuple[list[DeadJob], str]:
        self.calls.append(("preview", queue, list(ids), every))
        jobs = self._selected(queue, ids, every)
        return jobs, selection_digest(jobs)

    def purge(self, queue: str, ids: Sequence[str], every: bool, digest: str) -> PurgeSummary:
        self.calls.append(("purge", queue, list(ids), every))
        jobs = self._selected(queue, ids, every)
        if selection_digest(jobs) != digest:
            return PurgeSummary(queue=queue, selected=len(jobs), cancelled=True)
        self.jobs[queue] = [j for j in self.jobs[queue] if j not in jobs]
        return PurgeSummary(queue=queue, selected=len(jobs), purged=tuple(j.id for j in jobs),
                            copies=len(jobs))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def beat(worker_id: str = "host-a:41:abc", seq: int = 1, state: str = "running",
         **fields: Any) -> bytes:
    body = {"kind": "pubsub-jobs.heartbeat", "worker_id": worker_id, "seq": seq,
            "state": state, "host": "host-a", "pid": 41, "version": "0.1.0",
            "interval_seconds": 5.0, "status": "ok",
            "queues": [{"name": "default", "concurrency": 10, "streams": 1}],
            "running": [{"queue": "default", "job_name": "app.jobs.resize", "job_id": "j-9",
                         "age_seconds": 12.0}],
            "running_total": 1, "counts": {"processed": 7, "failed": 2, "dead_lettered": 1},
            **fields}
    return json.dumps(body).encode()


def make_client(backend: FakeBackend | None = None, board: WorkerBoard | None = None,
                base_url: str = BASE, **config: Any) -> TestClient:
    options: dict[str, Any] = {"queues": ("default", "mailers"), "page_size": 50, **config}
    app = create_app(DashboardConfig(**options), SETTINGS, backend=backend or FakeBackend(),
                     board=board or WorkerBoard(), listen=False)
    return TestClient(app, base_url=base_url, follow_redirects=False)


def csrf(client: TestClient, path: str = "/queues/default/dead") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, "the page has a CSRF token"
    return found.group(1)


def test_front_page_shows_queues_and_live_workers() -> None:
    clock = Clock()
    board = WorkerBoard(clock)
    board.receive(beat())
    clock.now += 3
    page = make_client(FakeBackend([dead_job(1), dead_job(2)]), board).get("/")
    assert page.status_code == 200
    text = page.text
    assert "projects/p/topics/jobs-default" in text
    assert "projects/p/subscriptions/jobs-default-worker" in text
    assert re.search(r">2<span class=\"visually-hidden\"> dead jobs in default", text)
    assert "host-a" in text and "pid 41" in text and "app.jobs.resize" in text
    assert "for 15 s" in text  # 12 s old when sent, seen 3 s ago
    assert re.search(r'<td class="num">7</td>\s*<td class="num">2</td>', text)
    assert "3 s ago" in text and 'class="badge good">ok<' in text


def test_workers_are_lost_without_beats_and_gone_after_stopping() -> None:
    clock = Clock()
    board = WorkerBoard(clock)
    board.receive(beat("a", 1))
    board.receive(beat("b", 1, host="host-b"))
    clock.now += 10
    board.receive(beat("b", 2, host="host-b"))
    assert [w.state for w in board.workers()] == ["ok", "ok"]
    clock.now += 10  # a: 20 s without a beat (3 intervals of 5 s: lost after 15 s)
    states = {w.beat.worker_id: w.state for w in board.workers()}
    assert states == {"a": "lost", "b": "ok"}
    page = make_client(board=board).get("/").text
    assert ">lost<" in page and "no heartbeat for 20 s" in page

    board.receive(beat("b", 3, state="stopped"))
    board.receive(beat("b", 2, host="host-b"))  # a late beat, sent before the stop
    assert [w.beat.worker_id for w in board.workers()] == ["a"]
    clock.now += 700  # lost workers are forgotten after 10 minutes
    assert board.workers() == []


def test_beats_are_validated_and_bounded() -> None:
    board = WorkerBoard()
    assert board.receive(b"not json") is None
    assert board.receive(json.dumps({"kind": "other", "worker_id": "x"}).encode()) is None
    assert board.receive(beat(worker_id="")) is None
    long = board.receive(beat(host="h" * 5000, reasons=["r"] * 500, interval_seconds=1e9))
    assert long is None  # an interval beyond 300 s is refused
    ok = board.receive(beat(host="h" * 5000, reasons=["r"] * 500,
                            running=[{"job_name": {"nested": 1}}] * 500))
    assert ok is not None and len(ok.host) <= 300 and len(ok.reasons) == 100
    assert len(ok.running) == 100 and ok.running[0].job_name == '{"nested": 1}'


def test_pages_send_security_headers_and_a_strict_session_cookie() -> None:
    page = make_client().get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "form-action 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert '<meta http-equiv="refresh" content="5">' in page.text  # inside <noscript>
    assert '<script src="/static/dashboard.js" defer>' in page.text
    js = make_client().get("/static/dashboard.js")
    assert js.status_code == 200 and "data-live" in js.text


def test_dead_page_lists_jobs_with_reason_error_attempts_arguments_paged() -> None:
    client = make_client(FakeBackend([dead_job(n) for n in range(120)]))
    first = client.get("/queues/default/dead")
    assert first.status_code == 200
    assert "120 dead jobs" in first.text and "Page 1 of 3" in first.text
    assert first.text.count('name="ids"') == 50
    assert "job-000" in first.text and "job-050" not in first.text
    assert "ValueError: feed 0 bad" in first.text and "failed" in first.text
    assert "https://example.com/0.xml" in first.text
    assert re.search(r'<td class="num">5</td>', first.text)
    assert 'href="?page=2" rel="next"' in first.text
    last = client.get("/queues/default/dead?page=3")
    assert last.text.count('name="ids"') == 20 and "job-119" in last.text
    assert client.get("/queues/default/dead?page=99").text.count('name="ids"') == 20
    assert client.get("/queues/default/dead?page=x").status_code == 200
    assert client.get("/queues/nope/dead").status_code == 404


def test_everything_a_message_carries_is_escaped() -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    job = dead_job(1, job_name=evil, job_id='"><b>id</b>', dead_letter_error=evil,
                   dead_letter_reason="r\u202eevil", custom=evil)
    text = make_client(FakeBackend([job])).get("/queues/default/dead").text
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>id" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&#34;&gt;&lt;b&gt;id&lt;/b&gt;" in text  # an id inside attribute values too
    assert "\u202e" not in text and "r\\u202eevil" in text


def test_retry_one_a_selection_or_all_then_redirects_with_the_result() -> None:
    backend = FakeBackend([dead_job(n) for n in range(5)])
    client = make_client(backend)
    token = csrf(client)
    one = client.post("/queues/default/dead/retry", data={"csrf_token": token, "one": "job-001",
                                                          "ids": ["job-002"]})
    assert one.status_code == 303 and one.headers["location"] == "/queues/default/dead"
    assert backend.calls[-1] == ("retry", "default", ["job-001"], False)
    page = client.get("/queues/default/dead").text
    assert "Retried 1 job: republished to projects/p/topics/jobs-default" in page
    client.post("/queues/default/dead/retry",
                data={"csrf_token": token, "ids": ["job-002", "job-003"]})
    assert backend.calls[-1] == ("retry", "default", ["job-002", "job-003"], False)
    client.post("/queues/default/dead/retry", data={"csrf_token": token, "all": "1"})
    assert backend.calls[-1] == ("retry", "default", [], True)
    assert backend.jobs["default"] == []
    nothing = client.post("/queues/default/dead/retry", data={"csrf_token": token})
    assert nothing.status_code == 303 and len(backend.calls) == 3
    assert "Select dead jobs to retry first" in client.get("/queues/default/dead").text


def test_purge_asks_first_and_purges_only_what_was_confirmed() -> None:
    backend = FakeBackend([dead_job(n) for n in range(3)])
    client = make_client(backend)
    token = csrf(client)
    ask = client.post("/queues/default/dead/purge", data={"csrf_token": token, "one": "job-001"})
    assert ask.status_code == 200 and "Purge 1 dead job of queue" in ask.text
    assert [c[0] for c in backend.calls] == ["preview"] and len(backend.jobs["default"]) == 3
    digest = re.search(r'name="digest" value="([0-9a-f]+)"', ask.text)
    assert digest and 'name="ids" value="job-001"' in ask.text

    backend.jobs["default"].append(dead_job(1, dead_letter_error="another copy"))
    changed = client.post("/queues/default/dead/purge", data={
        "csrf_token": token, "ids": "job-001", "confirmed": "yes", "digest": digest.group(1)})
    assert changed.status_code == 200 and "The dead set changed" in changed.text
    assert len(backend.jobs["default"]) == 4

    digest = re.search(r'name="digest" value="([0-9a-f]+)"', changed.text)
    assert digest
    done = client.post("/queues/default/dead/purge", data={
        "csrf_token": token, "ids": "job-001", "confirmed": "yes", "digest": digest.group(1)})
    assert done.status_code == 303
    assert [j.id for j in backend.jobs["default"]] == ["job-000", "job-002"]
    assert "Purged 2 jobs" in client.get("/queues/default/dead").text


def test_changes_need_the_session_csrf_token() -> None:
    backend = FakeBackend([dead_job(1)])
    client = make_client(backend)
    token = csrf(client)
    for data in ({"one": "job-001"}, {"one": "job-001", "csrf_token": "0" * 64}):
        refused = client.post("/queues/default/dead/retry", data=data)
        assert refused.status_code == 403 and "security token" in refused.text
    other = make_client(backend)  # another session: its own token
    other.get("/")
    assert other.post("/queues/default/dead/purge",
                      data={"one": "job-001", "csrf_token": token}).status_code == 403
    assert backend.calls == []


@pytest.mark.parametrize("headers", [
    {"sec-fetch-site": "cross-site"},
    {"sec-fetch-site": "same-site"},
    {"origin": "http://evil.example"},
    {"origin": "http://127.0.0.1:9999"},
    {"origin": "null"},
])
def test_cross_site_posts_are_refused(headers: dict[str, str]) -> None:
    backend = FakeBackend([dead_job(1)])
    client = make_client(backend)
    token = csrf(client)
    refused = client.post("/queues/default/dead/retry", headers=headers,
                          data={"one": "job-001", "csrf_token": token})
    assert refused.status_code == 403 and "refused" in refused.text
    assert backend.calls == []
    same = client.post("/queues/default/dead/retry", data={"one": "job-001", "csrf_token": token},
                       headers={"origin": BASE, "sec-fetch-site": "same-origin"})
    assert same.status_code == 303 and backend.calls


def test_unknown_host_names_are_refused_on_loopback() -> None:
    """A DNS-rebinding page (evil.example resolving to 127.0.0.1) gets nothing."""
    client = make_client()
    assert client.get("/", headers={"host": "evil.example:8081"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8081"}).status_code == 200
    assert client.get("/", headers={"host": "[::1]:8081"}).status_code == 200


def test_listening_beyond_loopback_requires_access_control() -> None:
    with pytest.raises(ConfigurationError, match="without access control"):
        DashboardConfig(queues=("q",), host=ANYWHERE).check()
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        DashboardConfig(queues=("q",), host=ANYWHERE, token="x" * 5).check()
    DashboardConfig(queues=("q",), host=ANYWHERE, token="t" * 16).check()
    DashboardConfig(queues=("q",), host="::1").check()
    with pytest.raises(ConfigurationError):
        DashboardConfig(queues=("q",), host="10.1.2.3").check()


def test_a_token_protects_every_page_and_action() -> None:
    token = TOKEN
    backend = FakeBackend([dead_job(1)])
    client = make_client(backend, host=ANYWHERE, token=token,
                         base_url="http://dash.example")
    page = client.get("/queues/default/dead?page=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fqueues%2Fdefault%2Fdead%3Fpage%3D1"
    assert client.post("/queues/default/dead/retry", data={"one": "job-001"}).status_code == 401
    assert client.get("/", headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 303

    login = client.get("/login?next=/queues/default/dead")
    assert login.status_code == 200 and 'type="password"' in login.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert found
    wrong = client.post("/login", data={"csrf_token": found.group(1), "token": "nope",
                                        "next": "/queues/default/dead"})
    assert wrong.status_code == 401 and "not this dashboard" in wrong.text
    right = client.post("/login", data={"csrf_token": found.group(1), "token": token,
                                        "next": "/queues/default/dead"})
    assert right.status_code == 303 and right.headers["location"] == "/queues/default/dead"
    assert client.get("/queues/default/dead").status_code == 200
    retried = client.post("/queues/default/dead/retry",
                          data={"one": "job-001", "csrf_token": csrf(client)})
    assert retried.status_code == 303 and backend.calls


def test_login_goes_back_only_to_this_dashboard() -> None:
    token = TOKEN
    client = make_client(host=ANYWHERE, token=token, base_url="http://dash.example")
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert found
        done = client.post("/login", data={"csrf_token": found.group(1), "token": token,
                                           "next": target})
        assert done.status_code == 303 and done.headers["location"] == "/"
