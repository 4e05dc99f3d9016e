"""Middleware: hook order, loading from settings and the CLI, and the three built-ins
(structured logging, Prometheus metrics, OpenTelemetry tracing) on the in-memory adapter and
end to end on the emulator."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from pubsub_jobs import ConfigurationError, PubSubAdapter, Settings
from pubsub_jobs.cli import main
from pubsub_jobs.middleware import Middleware, MiddlewareChain, import_middleware, load_middleware
from pubsub_jobs.middleware.logging import JsonFormatter, StructuredLogging
from pubsub_jobs.middleware.opentelemetry import OpenTelemetry
from pubsub_jobs.middleware.prometheus import PrometheusMetrics
from pubsub_jobs.settings import reset
from pubsub_jobs.worker import Worker
from tests import jobs_middleware
from tests.jobs_middleware import EVENTS, PROBES, record

pytestmark = pytest.mark.usefixtures("middleware_events")

PROBE = jobs_middleware.probe.name
FAILS = jobs_middleware.always_fails.name


def use(adapter, *middleware: Middleware):
    """Give the in-memory adapter (enqueue side and its performer) these middleware."""
    adapter.middleware = MiddlewareChain(middleware)
    return adapter


def events() -> list[str]:
    return [name for name, _ in EVENTS]


class Recorder(Middleware):
    """Records every hook, so the order can be checked."""

    def __init__(self, name: str) -> None:
        self.name = name

    def before_enqueue(self, message):
        record(f"{self.name}.before_enqueue")
        return message.with_attributes(**{f"seen_{self.name}": "yes"})

    def after_enqueue(self, message, result, error):
        record(f"{self.name}.after_enqueue", (result.job_id if result else None, error))

    def before_perform(self, context):
        record(f"{self.name}.before_perform", dict(context.attributes))

    @contextmanager
    def perform_context(self, context):
        record(f"{self.name}.enter", threading.current_thread().name)
        yield
        record(f"{self.name}.exit")

    def after_perform(self, context, outcome):
        record(f"{self.name}.after_perform", outcome.reason.value)

    def on_rejected(self, queue, attributes, outcome):
        record(f"{self.name}.on_rejected", (queue, outcome.reason.value))


class NoArguments(Middleware):
    """Loadable by path: a middleware built without arguments."""


def rejected_messages(adapter) -> None:
    """Publish one message that is not a job and one naming a job nobody registered."""
    adapter.publish_raw("default", b"not json", {"job_name": "x"})
    adapter.publish_raw("default", b'{"args": [], "kwargs": {}}', {
        "job_name": "nobody.registered", "job_id": "j-unknown", "queue_name": "default",
        "enqueued_at": "2024-01-01T00:00:00Z", "wire_version": "1",
    })


# -- the hooks ---------------------------------------------------------------------------


def test_before_hooks_run_in_order_after_hooks_in_reverse(memory_adapter):
    use(memory_adapter, Recorder("A"), Recorder("B"))
    job_id = jobs_middleware.probe.enqueue("x").job_id
    memory_adapter.run()
    assert events() == [
        "A.before_enqueue", "B.before_enqueue", "B.after_enqueue", "A.after_enqueue",
        "A.before_perform", "B.before_perform", "A.enter", "B.enter",
        "job",
        "B.exit", "A.exit", "B.after_perform", "A.after_perform",
    ]
    values = dict(EVENTS)
    assert values["A.after_enqueue"] == (job_id, None)
    # Attributes added on enqueue travel with the message and reach the worker's context.
    assert values["A.before_perform"] == {"seen_A": "yes", "seen_B": "yes"}
    assert values["A.after_perform"] == "succeeded"


def test_perform_context_is_entered_where_the_job_runs(memory_adapter):
    use(memory_adapter, Recorder("A"))
    jobs_middleware.probe.enqueue("sync")
    jobs_middleware.traced_async.enqueue("async")
    memory_adapter.run()
    threads = [value for name, value in EVENTS if name == "A.enter"]
    assert threads[0] == threading.current_thread().name
    assert threads[1] == "pubsub-jobs-async"  # inside the event loop's task


def test_rejected_messages_reach_on_rejected_in_reverse(memory_adapter):
    use(memory_adapter, Recorder("A"), Recorder("B"))
    rejected_messages(memory_adapter)
    summary = memory_adapter.run()
    assert summary.dead_lettered == 2
    assert EVENTS == [
        ("B.on_rejected", ("default", "invalid_message")),
        ("A.on_rejected", ("default", "invalid_message")),
        ("B.on_rejected", ("default", "unknown_job")),
        ("A.on_rejected", ("default", "unknown_job")),
    ]


# -- loading from settings and the command line ---------------------------------------------


def test_load_middleware_from_paths_and_short_names():
    settings = Settings(middleware=[
        "pubsub_jobs.middleware.logging:StructuredLogging",
        "tests.unit.middleware.test_middleware.NoArguments",
        "prometheus",
        "opentelemetry",
    ])
    loaded = load_middleware(settings)
    assert [type(m) for m in loaded] == [
        StructuredLogging, NoArguments, PrometheusMetrics, OpenTelemetry,
    ]


@pytest.mark.parametrize(("path", "says"), [
    ("nosuch.module:Thing", "cannot import middleware 'nosuch.module:Thing'"),
    ("pubsub_jobs.middleware.logging:Nope", "has no 'Nope'"),
    ("pubsub_jobs.middleware.logging:job_fields", "not a Middleware subclass"),
    ("tests.unit.middleware.test_middleware:Recorder", "constructible without arguments"),
    ("loggin", "expected an import path"),
])
def test_a_bad_middleware_path_is_named(path, says):
    with pytest.raises(ConfigurationError, match=says) as info:
        import_middleware(path)
    assert repr(path) in str(info.value)


@pytest.mark.parametrize("value", [
    '["logging", "tests.unit.middleware.test_middleware:NoArguments"]',
    "logging, tests.unit.middleware.test_middleware:NoArguments",
])
def test_middleware_setting_from_the_environment(monkeypatch, value):
    monkeypatch.setenv("PUBSUB_JOBS_MIDDLEWARE", value)
    assert Settings().middleware == ["logging", "tests.unit.middleware.test_middleware:NoArguments"]


def test_adapter_and_worker_use_the_settings_middleware_by_default():
    settings = Settings(
        project_id="p", middleware=["logging", "tests.unit.middleware.test_middleware:NoArguments"]
    )
    adapter = PubSubAdapter(settings)
    assert [type(m) for m in adapter.middleware.middleware] == [StructuredLogging, NoArguments]
    assert not PubSubAdapter(settings, middleware=[]).middleware
    worker = Worker(["default"], settings=settings)
    assert [type(m) for m in worker._performer.middleware.middleware] == [
        StructuredLogging, NoArguments,
    ]
    given = NoArguments()
    worker = Worker(["default"], settings=settings, middleware=[given])
    assert worker._performer.middleware.middleware == (given,)


def test_cli_names_a_middleware_it_cannot_import(capsys):
    try:
        code = main(["worker", "--queue", "default", "--middleware", "logging",
                     "--middleware", "nosuch.module:Thing"])
    finally:
        reset()
    assert code == 2
    assert "nosuch.module:Thing" in capsys.readouterr().err


# -- structured logging ------------------------------------------------------------------


def test_structured_logging_writes_one_record_per_job(memory_adapter, caplog):
    use(memory_adapter, StructuredLogging())
    caplog.set_level(logging.INFO, logger="pubsub_jobs.jobs")
    ok = jobs_middleware.probe.enqueue("x").job_id
    fails = jobs_middleware.always_fails.enqueue().job_id
    jobs_middleware.discarded.enqueue()
    rejected_messages(memory_adapter)
    memory_adapter.run()
    records = [r for r in caplog.records if r.name == "pubsub_jobs.jobs"]
    by_outcome = {r.outcome: r for r in records}
    assert sorted(by_outcome) == sorted([
        "succeeded", "retry", "max_attempts", "discarded", "invalid_message", "unknown_job",
    ])
    done = by_outcome["succeeded"]
    assert (done.levelno, done.job_id, done.job_name, done.queue, done.attempt) == (
        logging.INFO, ok, PROBE, "default", 1)
    assert isinstance(done.duration, float) and done.duration >= 0
    assert by_outcome["retry"].levelno == logging.WARNING
    dead = by_outcome["max_attempts"]
    assert (dead.levelno, dead.job_id, dead.attempt) == (logging.ERROR, fails, 2)
    assert dead.error == "RuntimeError: boom"
    assert by_outcome["discarded"].levelno == logging.INFO
    unknown = by_outcome["unknown_job"]
    assert (unknown.levelno, unknown.job_id, unknown.job_name) == (
        logging.ERROR, "j-unknown", "nobody.registered")


def test_json_formatter_writes_cloud_logging_lines(memory_adapter):
    formatter = JsonFormatter()
    log = logging.getLogger("tests.middleware")
    record_ = log.makeRecord("tests.middleware", logging.WARNING, __file__, 1, "hello %s",
                             ("world",), None, extra={"job_id": "j1", "attempt": 2})
    entry = json.loads(formatter.format(record_))
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "hello world"
    assert (entry["job_id"], entry["attempt"]) == ("j1", 2)
    assert entry["time"].endswith("Z")
    assert entry["logging.googleapis.com/sourceLocation"]["line"] == 1
    try:
        raise ValueError("bad")
    except ValueError:
        failed = log.makeRecord("tests.middleware", logging.ERROR, __file__, 1, "oops", (),
                                sys.exc_info())
    entry = json.loads(formatter.format(failed))
    assert entry["severity"] == "ERROR"
    assert entry["stack_trace"].startswith("Traceback (most recent call last)")
    assert "ValueError: bad" in entry["stack_trace"]
    # A record logged inside a job gets the job's id and name.
    seen: list[dict] = []
    PROBES.append(lambda: seen.append(json.loads(formatter.format(
        log.makeRecord("tests.middleware", logging.INFO, __file__, 1, "inside", (), None)))))
    job_id = jobs_middleware.probe.enqueue("x").job_id
    memory_adapter.run()
    assert (seen[0]["job_id"], seen[0]["job_name"]) == (job_id, PROBE)


# -- Prometheus --------------------------------------------------------------------------


def test_prometheus_counts_jobs_and_rejected_messages(memory_adapter):
    registry = CollectorRegistry()
    use(memory_adapter, PrometheusMetrics(registry))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    PROBES.append(lambda: record("in_flight", value("pubsub_jobs_jobs_in_flight",
                                                     queue="default")))
    jobs_middleware.probe.enqueue("a")
    jobs_middleware.probe.enqueue("b")
    jobs_middleware.always_fails.enqueue()
    jobs_middleware.discarded.enqueue()
    rejected_messages(memory_adapter)
    memory_adapter.run()

    assert value("pubsub_jobs_jobs_enqueued_total", queue="default", job_name=PROBE) == 2
    assert value("pubsub_jobs_jobs_processed_total", queue="default", job_name=PROBE,
                 outcome="succeeded") == 2
    assert value("pubsub_jobs_jobs_processed_total", queue="default", job_name=FAILS,
                 outcome="retry") == 1
    assert value("pubsub_jobs_jobs_processed_total", queue="default", job_name=FAILS,
                 outcome="max_attempts") == 1
    assert value("pubsub_jobs_jobs_failed_total", queue="default", job_name=FAILS) == 2
    assert value("pubsub_jobs_jobs_failed_total", queue="default", job_name=PROBE) is None
    assert value("pubsub_jobs_jobs_dead_lettered_total", queue="default", job_name=FAILS,
                 reason="max_attempts") == 1
    assert value("pubsub_jobs_jobs_processed_total", queue="default",
                 job_name=jobs_middleware.discarded.name, outcome="discarded") == 1
    for reason in ("invalid_message", "unknown_job"):
        assert value("pubsub_jobs_jobs_dead_lettered_total", queue="default", job_name="",
                     reason=reason) == 1
        assert value("pubsub_jobs_jobs_processed_total", queue="default", job_name="",
                     outcome=reason) == 1
    assert value("pubsub_jobs_job_duration_seconds_count", queue="default",
                 job_name=PROBE) == 2
    assert [v for name, v in EVENTS if name == "in_flight"] == [1.0, 1.0]
    assert value("pubsub_jobs_jobs_in_flight", queue="default") == 0


def test_prometheus_instances_share_a_registry():
    registry = CollectorRegistry()
    first, second = PrometheusMetrics(registry), PrometheusMetrics(registry)
    assert first.metrics is second.metrics


def test_missing_extras_say_what_to_install(monkeypatch):
    for package, module, extra in [
        ("prometheus_client", "pubsub_jobs.middleware.prometheus", "prometheus"),
        ("opentelemetry", "pubsub_jobs.middleware.opentelemetry", "opentelemetry"),
    ]:
        monkeypatch.setitem(sys.modules, package, None)
        monkeypatch.delitem(sys.modules, module, raising=False)
        line = f"pip install 'pubsub-jobs[{extra}]'"
        with pytest.raises(ImportError) as info:
            importlib.import_module(module)
        assert line in str(info.value)
        with pytest.raises(ConfigurationError) as config_info:
            import_middleware(extra)
        assert line in str(config_info.value)


# -- OpenTelemetry -----------------------------------------------------------------------


@pytest.fixture
def tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, list]:
    found: dict[str, list] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def check_trace(exporter: InMemorySpanExporter, request_span) -> None:
    """Producer spans are children of the request; consumer spans of the producer spans,
    and each consumer span was the current span inside its job (sync and async)."""
    spans = spans_by_name(exporter)
    seen = dict(EVENTS)
    for kind, job in (("sync", jobs_middleware.traced_sync),
                      ("async", jobs_middleware.traced_async)):
        [producer] = spans[f"{job.name} publish"]
        [consumer] = spans[f"{job.name} process"]
        assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
        assert producer.parent.span_id == request_span.get_span_context().span_id
        assert consumer.context.trace_id == request_span.get_span_context().trace_id
        assert consumer.parent.span_id == producer.context.span_id
        assert seen[kind].span_id == consumer.context.span_id, f"not current in the {kind} job"
        assert consumer.attributes["messaging.system"] == "gcp_pubsub"
        assert consumer.attributes["messaging.destination.name"] == "default"
        assert consumer.attributes["messaging.message.id"]
        assert consumer.attributes["pubsub_jobs.job_id"]
        assert consumer.attributes["pubsub_jobs.outcome"] == "succeeded"


def test_opentelemetry_propagates_the_trace_through_a_message(memory_adapter, tracing):
    provider, exporter = tracing
    use(memory_adapter, OpenTelemetry(tracer_provider=provider))
    with provider.get_tracer("test").start_as_current_span("request") as request:
        jobs_middleware.traced_sync.enqueue("a")
        jobs_middleware.traced_async.enqueue("b")
    [message, _] = memory_adapter.jobs("default")
    trace_id = format(request.get_span_context().trace_id, "032x")
    assert message.attributes["traceparent"].startswith(f"00-{trace_id}-")
    memory_adapter.run()
    check_trace(exporter, request)


def test_opentelemetry_marks_failures(memory_adapter, tracing):
    provider, exporter = tracing
    use(memory_adapter, OpenTelemetry(tracer_provider=provider))
    jobs_middleware.always_fails.enqueue()
    jobs_middleware.discarded.enqueue()
    rejected_messages(memory_adapter)
    memory_adapter.run()
    spans = spans_by_name(exporter)
    retried, dead = spans[f"{FAILS} process"]
    assert retried.attributes["pubsub_jobs.outcome"] == "retry"
    assert dead.attributes["pubsub_jobs.outcome"] == "max_attempts"
    for span in (retried, dead):
        assert span.status.status_code is StatusCode.ERROR
        assert span.events[0].name == "exception"
    [discarded] = spans[f"{jobs_middleware.discarded.name} process"]
    assert discarded.status.status_code is StatusCode.UNSET
    rejected = spans["default process"]
    assert [s.attributes["pubsub_jobs.outcome"] for s in rejected] == [
        "invalid_message", "unknown_job"]
    assert all(s.status.status_code is StatusCode.ERROR for s in rejected)
