"""Jobs, arguments, the wire format and the test adapters: no emulator needed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jsonschema
import pytest

import pubsub_jobs
from pubsub_jobs import (
    ImmediateAdapter,
    InMemoryAdapter,
    InvalidArguments,
    InvalidMessage,
    JobDefinitionError,
    JobFailed,
    JobMessage,
    MessageTooLarge,
    Registry,
    Settings,
    job,
)
from pubsub_jobs.message import schema
from tests import jobs_core


def test_public_api_is_curated():
    import types

    public = {
        name for name, value in vars(pubsub_jobs).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(pubsub_jobs.__all__)
    # the rest load on first use (the Pub/Sub client library is heavy)
    assert all(getattr(pubsub_jobs, name) is not None for name in pubsub_jobs.__all__)


def test_plain_call_runs_here(ran):
    assert jobs_core.add(1, 2) is None
    assert ran == [("add", 3)]


def test_name_defaults_to_module_and_qualname():
    assert jobs_core.add.name == "tests.jobs_core.add"
    assert jobs_core.add.queue == "core"
    assert jobs_core.async_add.is_async


def test_same_name_for_another_function_is_refused():
    registry = Registry()

    @job(name="dup", registry=registry)
    def one() -> None: ...

    with pytest.raises(JobDefinitionError, match="already registered"):
        @job(name="dup", registry=registry)
        def two() -> None: ...


def test_bad_job_options_are_refused():
    with pytest.raises(JobDefinitionError):
        job(max_attempts=0)(lambda: None)
    with pytest.raises(JobDefinitionError):
        job(retry_on=("nope",))(lambda: None)  # type: ignore[arg-type]


def test_arguments_encode_to_json_from_type_hints():
    when = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    message = jobs_core.typed.message(
        when, uid, Decimal("1.10"), jobs_core.Color.RED,
        jobs_core.Address(city="Oslo", zip="0150"), tags=["x"],
    )
    assert message.args == [
        "2026-05-01T12:00:00Z", str(uid), "1.10", "red", {"city": "Oslo", "zip": "0150"},
    ]
    assert message.kwargs == {"tags": ["x"]}
    decoded_args, decoded_kwargs = jobs_core.typed.codec.decode(message.args, message.kwargs)
    assert decoded_args == [when, uid, Decimal("1.10"), jobs_core.Color.RED,
                            jobs_core.Address(city="Oslo", zip="0150")]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("x", 1), {}, "argument 'a' is invalid"),
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"c": 3}, "unexpected keyword argument 'c'"),
    ],
)
def test_wrong_arguments_fail_at_enqueue(args, kwargs, match, memory_adapter):
    with pytest.raises(InvalidArguments, match=match):
        jobs_core.add.enqueue(*args, **kwargs)
    assert memory_adapter.jobs() == []


def test_unencodable_argument_says_what_to_do(memory_adapter):
    @job(registry=Registry())
    def takes_anything(thing) -> None:  # type: ignore[no-untyped-def]
        ...

    with pytest.raises(InvalidArguments, match="cannot be encoded as JSON"):
        takes_anything.enqueue(object())


def test_oversized_job_is_refused_with_advice(memory_adapter):
    @job(registry=Registry())
    def big(blob: str) -> None: ...

    with pytest.raises(MessageTooLarge, match="Cloud Storage"):
        big.enqueue("x" * 10_000_001)


def test_too_long_attribute_is_refused(memory_adapter):
    @job(name="n" * 1100, registry=Registry())
    def long_name() -> None: ...

    with pytest.raises(MessageTooLarge, match="job_name"):
        long_name.enqueue()


def test_published_message_matches_the_json_schema():
    message = jobs_core.add.using(run_at=datetime.now(UTC) + timedelta(hours=1)).message(1, 2)
    data, attributes = message.encode()
    jsonschema.validate({"data": json.loads(data), "attributes": attributes}, schema())
    assert attributes["wire_version"] == "1"
    assert attributes["enqueued_at"].endswith("Z")
    assert attributes["scheduled_at"].endswith("Z")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"data": [], "attributes": attributes}, schema())


@pytest.mark.parametrize(
    ("data", "attributes", "match"),
    [
        (b"{", {}, "missing"),
        (b'{"args": [], "kwargs": {}}', {"job_name": "x", "job_id": "1", "queue_name": "q",
                                         "enqueued_at": "yesterday", "wire_version": "1"},
         "bad time"),
        (b'"text"', {"job_name": "x", "job_id": "1", "queue_name": "q",
                     "enqueued_at": "2026-01-01T00:00:00Z", "wire_version": "1"},
         "not an object"),
    ],
)
def test_decode_explains_what_is_wrong(data, attributes, match):
    with pytest.raises(InvalidMessage, match=match):
        JobMessage.decode(data, attributes)


def test_memory_adapter_runs_retries_and_dead_letters(memory_adapter, ran):
    jobs_core.add.enqueue(1, 2)
    jobs_core.flaky.enqueue("f")
    jobs_core.always_fails.enqueue("a")
    jobs_core.discarded.enqueue("d")
    summary = memory_adapter.run()
    assert ("add", 3) in ran and ("flaky", 2) in ran and ("discarded", "d") in ran
    assert summary.dead_lettered == 1
    [dead] = memory_adapter.dead_jobs("core")
    assert (dead.reason, dead.attempts) == ("max_attempts", 3)
    assert dead.attributes["dead_letter_reason"] == "max_attempts"  # the raw copy
    assert dead.attributes["delivery_attempt"] == "3"


def test_memory_adapter_dead_letters_malformed_input(memory_adapter):
    memory_adapter.publish_raw("core", b"nope", {"job_name": "x"})
    memory_adapter.run()
    [dead] = memory_adapter.dead_jobs("core")
    assert dead.reason == "invalid_message"
    assert (dead.data, dead.job_name, dead.args) == (b"nope", "x", None)
    assert dead.decode_error is not None and "not JSON" in dead.decode_error


def test_memory_adapter_holds_delayed_jobs(memory_adapter, ran):
    jobs_core.add.using(delay=timedelta(hours=1)).enqueue(1, 1)
    jobs_core.add.using(delay=0).enqueue(2, 2)  # zero delay: at once
    memory_adapter.run()
    assert ran == [("add", 4)]
    memory_adapter.run(include_delayed=True)
    assert ran == [("add", 4), ("add", 2)]


def test_immediate_adapter_runs_at_once_and_raises(immediate_adapter, ran):
    jobs_core.add.enqueue(3, 4)
    assert ran == [("add", 7)]
    with pytest.raises(JobFailed) as info:
        jobs_core.not_retryable.enqueue("x")
    assert isinstance(info.value.__cause__, KeyError)


def test_async_job_in_immediate_mode(immediate_adapter, ran):
    jobs_core.async_add.enqueue(1, 1)
    assert ran == [("async_add", 2)]


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-google")
    monkeypatch.setenv("PUBSUB_JOBS_PREFIX", "work-")
    monkeypatch.setenv("PUBSUB_JOBS_QUEUES", '{"mailers": {"max_delivery_attempts": 9}}')
    s = Settings()
    assert s.project_id == "from-google"
    assert s.topic_path("mailers") == "projects/from-google/topics/work-mailers"
    assert s.queue_options("mailers").max_delivery_attempts == 9
    monkeypatch.setenv("PUBSUB_JOBS_PROJECT_ID", "ours")
    assert Settings().project_id == "ours"


def test_missing_project_is_a_clear_error(monkeypatch):
    for name in ("GOOGLE_CLOUD_PROJECT", "PUBSUB_JOBS_PROJECT_ID", "PUBSUB_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(pubsub_jobs.ConfigurationError, match="PUBSUB_JOBS_PROJECT_ID"):
        Settings().topic_path("q")


def test_configure_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("PUBSUB_JOBS_PREFIX", "env-")
    try:
        assert pubsub_jobs.configure(prefix="code-").prefix == "code-"
        assert pubsub_jobs.get_settings().prefix == "code-"
    finally:
        pubsub_jobs.settings.reset()


def test_immediate_adapter_failure_outcome_is_kept():
    adapter = ImmediateAdapter(raise_errors=False)
    jobs_core.add.using(adapter=adapter).enqueue(1, 1)
    jobs_core.always_fails.using(adapter=adapter).enqueue("z")
    assert [o.reason.value for o in adapter.outcomes] == ["succeeded", "retry"]
    jobs_core.RAN.clear()


def test_in_memory_adapter_can_be_passed_explicitly():
    adapter = InMemoryAdapter()
    result = jobs_core.add.using(adapter=adapter, queue="other").enqueue(1, 1)
    assert [m.job_id for m in adapter.jobs("other")] == [result.job_id]


class _FlakyTransport(pubsub_jobs.PubSubAdapter):
    """The adapter with its Publish RPC replaced: fails with the given errors, then succeeds."""

    def __init__(self, errors: list[Exception]) -> None:
        super().__init__(Settings(project_id="p", publish_attempts=4), middleware=[])
        self.errors = errors
        self.calls = 0

    def publish_request(self, topic_path, messages):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return [f"id-{self.calls}"]


def test_transient_publish_errors_are_retried():
    from google.api_core import exceptions as gexc

    adapter = _FlakyTransport([gexc.ServiceUnavailable("down"), gexc.DeadlineExceeded("slow")])
    result = jobs_core.add.using(adapter=adapter).enqueue(1, 2)
    assert (adapter.calls, result.message_id) == (3, "id-3")


def test_permanent_publish_errors_fail_at_once_with_advice():
    from google.api_core import exceptions as gexc

    adapter = _FlakyTransport([gexc.NotFound("no topic")])
    with pytest.raises(pubsub_jobs.TopicNotFound, match="bootstrap --queue core"):
        jobs_core.add.using(adapter=adapter).enqueue(1, 2)
    assert adapter.calls == 1
    adapter = _FlakyTransport([gexc.PermissionDenied("no")])
    with pytest.raises(pubsub_jobs.EnqueueError, match="roles/pubsub.publisher"):
        jobs_core.add.using(adapter=adapter).enqueue(1, 2)


def test_retries_are_bounded():
    from google.api_core import exceptions as gexc

    adapter = _FlakyTransport([gexc.ServiceUnavailable("down")] * 10)
    with pytest.raises(pubsub_jobs.EnqueueError, match="after retries"):
        jobs_core.add.using(adapter=adapter).enqueue(1, 2)
    assert adapter.calls == 4
