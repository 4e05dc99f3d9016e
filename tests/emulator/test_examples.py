"""The applications in examples/ run as their READMEs say, against the Pub/Sub emulator.

Each test loads the example's modules from their files (the example's directory is put on
``sys.path`` for the test only), lets the app enqueue as a user's would, runs the jobs with a
real worker and checks what the jobs did.

The FastAPI test shows that an ``async def`` endpoint with ``aenqueue`` leaves the event loop
free, without measuring time: the app reaches Pub/Sub through a proxy that holds what the
app sends. While it holds, the app has taken every enqueue request and none can finish, and
yet ``/health`` is answered by the same server; once released, every request completes and
every job runs exactly once. An endpoint that blocked its loop would leave ``/health`` (and
all but the first request) unanswered, and the test would fail saying so.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pubsub_jobs.jobs import default_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Concurrent enqueue requests in the FastAPI test.
CONCURRENT = 200
#: How long a test waits for something that should happen at once, before failing.
PATIENCE = 90.0


@pytest.fixture
def load_example() -> Iterator[Callable[..., list[ModuleType]]]:
    """``load_example("fastapi_app", "app", "jobs")`` imports those modules of an example
    from its directory, as ``uvicorn app:app`` run there would; afterwards the directory
    leaves ``sys.path`` and its modules and jobs are forgotten."""
    loaded: list[Path] = []

    def load(name: str, *modules: str) -> list[ModuleType]:
        directory = EXAMPLES / name
        clash = [m for m in ("app", "jobs", *modules) if m in sys.modules]
        assert not clash, f"modules {clash} are imported already: the example would not load"
        sys.path.insert(0, str(directory))
        loaded.append(directory)
        return [importlib.import_module(module) for module in modules]

    yield load
    for directory in loaded:
        sys.path.remove(str(directory))
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file is not None and Path(file).parent == directory:
                del sys.modules[name]
                for job in default_registry:
                    if job.fn.__module__ == name:
                        default_registry.unregister(job.name)


class HoldingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream`` that can hold what clients send.

    While held, bytes from the clients wait in the proxy (``held`` counts the chunks that
    arrived meanwhile); the answers from upstream always pass.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self.held = 0
        self._threads[0].start()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self.release()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in (self._listener, *sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads in accept() and recv()
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self._sockets += [client, upstream]
                pumps = [
                    threading.Thread(target=self._pump, args=(client, upstream, True),
                                     daemon=True),
                    threading.Thread(target=self._pump, args=(upstream, client, False),
                                     daemon=True),
                ]
                self._threads += pumps
            for pump in pumps:
                pump.start()

    def _pump(self, source: socket.socket, target: socket.socket, holdable: bool) -> None:
        try:
            while data := source.recv(65536):
                if holdable and not self._flowing.is_set():
                    with self._lock:
                        self.held += 1
                    self._flowing.wait()
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass


@pytest.fixture
def holding_proxy() -> Iterator[Callable[[str], HoldingProxy]]:
    """``holding_proxy(upstream)`` starts a :class:`HoldingProxy`; closed after the test."""
    proxies: list[HoldingProxy] = []

    def start(upstream: str) -> HoldingProxy:
        proxies.append(HoldingProxy(upstream))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


class CountRequests:
    """ASGI wrapper: counts the requests the server handed to the app, by path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.started[scope["path"]] += 1
        await self.app(scope, receive, send)


@pytest.fixture
def serve_asgi() -> Iterator[Callable[[Any], str]]:
    """``serve_asgi(app)`` serves an ASGI app with uvicorn on 127.0.0.1 (a free port) in a
    thread, its lifespan included; returns its URL. Stopped after the test."""
    import uvicorn

    from pubsub_jobs._http.serving import QuietServer, bind_socket, serve_in_thread

    running: list[tuple[QuietServer, threading.Thread]] = []

    def serve(app: Any) -> str:
        sock = bind_socket("127.0.0.1", 0)
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False,
                                timeout_graceful_shutdown=5)
        server = QuietServer(config)
        running.append((server, serve_in_thread(server, sock, "example-app", PATIENCE)))
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in running:
        server.should_exit = True
        thread.join(PATIENCE)


def example_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment a user's shell has after ``pubsub-jobs emulator start``, with the
    test's project and resource prefix."""
    return {
        **os.environ,
        "PUBSUB_EMULATOR_HOST": settings.pubsub_emulator_host,
        "PUBSUB_JOBS_PROJECT_ID": settings.project_id,
        "PUBSUB_JOBS_PREFIX": settings.prefix,
        **extra,
    }


def sent_emails(caplog: pytest.LogCaptureFixture) -> Counter[str]:
    """How many times the examples' ``send_welcome_email`` ran, by address."""
    return Counter(
        str(record.args[0])
        for record in caplog.records
        if record.name == "jobs" and record.msg == "welcome email sent to %s" and record.args
    )


def pubsub_jobs_command() -> list[str]:
    script = shutil.which("pubsub-jobs", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "pubsub_jobs"]


def test_plain_script_enqueues_and_the_worker_runs_its_jobs(
    pubsub_jobs_settings, bootstrap_queues
):
    bootstrap_queues("default")
    directory = EXAMPLES / "plain_script"
    env = example_env(pubsub_jobs_settings)
    enqueue = subprocess.run(
        [sys.executable, "enqueue.py", "Ada", "Grace"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=PATIENCE,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    assert enqueue.stdout.count("enqueued greet(") == 2, enqueue.stdout

    worker = subprocess.run(
        [*pubsub_jobs_command(), "worker", "jobs", "--queue", "default", "--burst",
         "--burst-idle", "1"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=PATIENCE,
    )
    assert worker.returncode == 0, worker.stderr
    greetings = re.findall(r" INFO jobs: (.*)$", worker.stderr, re.MULTILINE)
    assert sorted(greetings) == ["Hello, Ada!", "Hello, Grace!"], worker.stderr


async def until(condition: Callable[[], bool], failure: Callable[[], str]) -> None:
    """Wait (without blocking the loop) until ``condition()``; fail with ``failure()`` if it
    does not come within PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(failure())
        await asyncio.sleep(0.02)


def enqueued_total(metrics_text: str) -> float:
    """``pubsub_jobs_jobs_enqueued_total`` of the examples' job, from a /metrics page."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if (sample.name == "pubsub_jobs_jobs_enqueued_total"
                    and sample.labels == {"queue": "mailers",
                                          "job_name": "jobs.send_welcome_email"}):
                return sample.value
    return 0.0


async def exercise_fastapi_app(
    url: str, app: CountRequests, proxy: HoldingProxy
) -> tuple[list[str], float]:
    """Drive the app as the module docstring says; returns the job ids of the accepted
    requests and how many enqueues its /metrics counted."""
    timeout = httpx2.Timeout(PATIENCE)
    unlimited = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    async with (
        httpx2.AsyncClient(base_url=url, timeout=timeout, limits=unlimited) as client,
        httpx2.AsyncClient(base_url=url, timeout=timeout) as other,
    ):
        before = enqueued_total((await other.get("/metrics")).text)
        first = await client.post("/signup", json={"email": "first@example.com"})
        assert first.status_code == 202, first.text
        letter = await client.post(
            "/newsletter", json={"emails": [f"reader{i}@example.com" for i in range(5)]}
        )
        assert letter.status_code == 202, letter.text
        job_ids = [first.json()["job_id"], *letter.json()["job_ids"]]

        proxy.hold()
        signups_before = app.started["/signup"]
        signups: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(client.post("/signup", json={"email": f"user{i}@example.com"}))
            for i in range(CONCURRENT)
        ]
        try:
            await until(
                lambda: app.started["/signup"] - signups_before == CONCURRENT and proxy.held > 0,
                lambda: f"the app took {app.started['/signup'] - signups_before} of "
                f"{CONCURRENT} enqueue requests while Pub/Sub was held ({proxy.held} chunks "
                "held): its event loop is blocked",
            )
            try:
                health = await other.get("/health")
            except httpx2.TimeoutException:
                pytest.fail("no answer to /health while enqueues waited on Pub/Sub: the app's "
                            "event loop is blocked")
            assert health.json() == {"status": "ok"}
            done = sum(future.done() for future in signups)
            assert done == 0, f"{done} enqueue requests finished while Pub/Sub was held"
        except BaseException:
            for future in signups:
                future.cancel()
            await asyncio.gather(*signups, return_exceptions=True)
            raise
        finally:
            proxy.release()
        responses = await asyncio.gather(*signups)
        assert [r.status_code for r in responses] == [202] * CONCURRENT
        job_ids += [r.json()["job_id"] for r in responses]
        after = enqueued_total((await other.get("/metrics")).text)
    return job_ids, after - before


@pytest.mark.timeout(600)
def test_fastapi_app_enqueues_without_blocking_its_event_loop(
    pubsub_jobs_settings, pubsub_emulator, bootstrap_queues, drain_queues, load_example,
    holding_proxy, serve_asgi, monkeypatch, caplog,
):
    caplog.set_level(logging.INFO, logger="jobs")
    bootstrap_queues("mailers")
    proxy = holding_proxy(pubsub_emulator)
    # The app is configured by its environment, as in production; its Pub/Sub is the proxy.
    # A generous publish timeout: no publish may time out (and be sent again) while held.
    for name, value in example_env(pubsub_jobs_settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", proxy.host)
    monkeypatch.setenv("PUBSUB_JOBS_PUBLISH_TIMEOUT", "600")
    (example,) = load_example("fastapi_app", "app")
    app = CountRequests(example.app)
    url = serve_asgi(app)

    job_ids, counted = asyncio.run(exercise_fastapi_app(url, app, proxy))

    assert len(set(job_ids)) == CONCURRENT + 6
    assert counted == CONCURRENT + 6, "the app's /metrics did not count every enqueue"
    drain_queues("mailers", idle=1.0)
    expected = {"first@example.com", *(f"reader{i}@example.com" for i in range(5)),
                *(f"user{i}@example.com" for i in range(CONCURRENT))}
    sent = sent_emails(caplog)
    assert set(sent) == expected
    assert set(sent.values()) == {1}, "some jobs ran more than once"


def test_flask_app_enqueues_and_the_worker_runs_its_jobs(
    pubsub_jobs_settings, bootstrap_queues, drain_queues, load_example, caplog
):
    caplog.set_level(logging.INFO, logger="jobs")
    bootstrap_queues("mailers")
    (example,) = load_example("flask_app", "app")
    settings = pubsub_jobs_settings
    app = example.create_app({"TESTING": True, "PUBSUB_JOBS": {
        "project_id": settings.project_id,
        "prefix": settings.prefix,
        "pubsub_emulator_host": settings.pubsub_emulator_host,
    }})
    client = app.test_client()

    signup = client.post("/signup", json={"email": "ada@example.com"})
    assert signup.status_code == 202, signup.text
    letter = client.post(
        "/newsletter", json={"emails": ["grace@example.com", "edsger@example.com"]}
    )
    assert letter.status_code == 202, letter.text
    assert len({signup.json["job_id"], *letter.json["job_ids"]}) == 3

    drain_queues("mailers", idle=1.0)
    assert sent_emails(caplog) == {"ada@example.com": 1, "grace@example.com": 1,
                                   "edsger@example.com": 1}
