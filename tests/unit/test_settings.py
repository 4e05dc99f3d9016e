"""One source of settings, one retry policy: no emulator needed.

An invalid setting is a ConfigurationError naming the environment variable (or the keyword
given to ``configure``), in process (through the command line:
tests/processes/test_settings_cli.py); the adapters' retry policy retries transient errors
only, and a bulk publish sends again only what failed transiently."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from google.api_core import exceptions as gexc

import pubsub_jobs
from pubsub_jobs import BulkEnqueueError, ConfigurationError, PubSubAdapter, Settings
from pubsub_jobs import settings as settings_module
from pubsub_jobs.adapters import _retry
from pubsub_jobs.settings import configure, get_settings, load_settings
from tests import jobs_core


@pytest.fixture
def unread(monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings built yet (restored after the test), so the next use reads the environment."""
    monkeypatch.setattr(settings_module, "_settings", None)


# --------------------------------------------------------------------- settings errors


@pytest.mark.usefixtures("unread")
def test_invalid_variable_is_named_with_what_it_expects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_JOBS_PUBLISH_TIMEOUT", "abc")
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    text = str(info.value)
    assert text.startswith("invalid pubsub-jobs setting: PUBSUB_JOBS_PUBLISH_TIMEOUT='abc': ")
    assert "valid number" in text and "Seconds an enqueue waits" in text
    assert "\n" not in text
    assert settings_module._settings is None  # nothing half-built is kept


@pytest.mark.usefixtures("unread")
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PUBSUB_JOBS_PUBLISH_ATTEMPTS": "0"}, "PUBSUB_JOBS_PUBLISH_ATTEMPTS='0'"),
        ({"PUBSUB_JOBS_QUEUES": "{not json"}, "PUBSUB_JOBS_QUEUES is not valid JSON"),
        ({"PUBSUB_JOBS_QUEUES": '{"mailers": {"max_delivery_attempts": 1}}'},
         "PUBSUB_JOBS_QUEUES, at mailers.max_delivery_attempts=1"),
        ({"PUBSUB_JOBS_MIDDLEWARE": "[oops"}, "PUBSUB_JOBS_MIDDLEWARE='[oops'"),
        ({"PUBSUB_JOBS_LOG_LEVEL": "loud"}, "PUBSUB_JOBS_LOG_LEVEL='loud'"),
        ({"PUBSUB_JOBS_LOG_FORMAT": "xml"}, "PUBSUB_JOBS_LOG_FORMAT='xml'"),
    ],
)
def test_every_invalid_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match="^invalid pubsub-jobs setting: ") as info:
        get_settings()
    assert named in str(info.value)


def test_several_invalid_variables_are_named_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_JOBS_PUBLISH_TIMEOUT", "abc")
    monkeypatch.setenv("PUBSUB_JOBS_PUBLISH_ATTEMPTS", "many")
    with pytest.raises(ConfigurationError, match="^invalid pubsub-jobs settings: ") as info:
        load_settings()
    assert "PUBSUB_JOBS_PUBLISH_TIMEOUT='abc'" in str(info.value)
    assert "PUBSUB_JOBS_PUBLISH_ATTEMPTS='many'" in str(info.value)


def test_configure_names_the_keyword_and_keeps_the_settings() -> None:
    before = get_settings()
    with pytest.raises(ConfigurationError) as info:
        configure(publish_timeout="abc")
    assert "configure(publish_timeout='abc'): " in str(info.value)
    assert "valid number" in str(info.value)
    with pytest.raises(ConfigurationError, match=r"configure\(prefixx=\.\.\.\): no such setting"):
        configure(prefixx="jobs-")
    with pytest.raises(ConfigurationError,
                       match=r"configure\(queues=\.\.\.\), at q\.ack_deadline_seconds=5: "):
        configure(queues={"q": {"ack_deadline_seconds": 5}})
    assert get_settings() is before


def test_configure_names_the_variable_when_the_bad_value_is_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_JOBS_PUBLISH_ATTEMPTS", "x")
    with pytest.raises(ConfigurationError, match="PUBSUB_JOBS_PUBLISH_ATTEMPTS='x'"):
        load_settings(prefix="code-")
    assert load_settings(publish_attempts=2).publish_attempts == 2  # the keyword wins


def test_the_variable_named_for_the_project_is_the_one_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PUBSUB_JOBS_PROJECT_ID", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-google")
    assert settings_module._env_var("project_id") == "GOOGLE_CLOUD_PROJECT"
    monkeypatch.setenv("PUBSUB_JOBS_PROJECT_ID", "ours")
    assert settings_module._env_var("project_id") == "PUBSUB_JOBS_PROJECT_ID"


def test_log_settings_have_defaults_and_accept_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PUBSUB_JOBS_LOG_LEVEL", "PUBSUB_JOBS_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    assert (Settings().log_level, Settings().log_format) == ("INFO", "text")
    monkeypatch.setenv("PUBSUB_JOBS_LOG_LEVEL", "warning")
    monkeypatch.setenv("PUBSUB_JOBS_LOG_FORMAT", "json")
    assert (Settings().log_level, Settings().log_format) == ("WARNING", "json")


# ----------------------------------------------------------------------- the retry policy


class Flaky:
    """A callable that raises the given errors in turn, then returns how often it was called."""

    def __init__(self, errors: Sequence[BaseException]) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


def no_sleep(waits: list[float]) -> Callable[[float], None]:
    return waits.append


def test_policy_retries_transient_errors_with_growing_jittered_waits() -> None:
    fn = Flaky([gexc.ServiceUnavailable("down"), gexc.DeadlineExceeded("slow"),
                ConnectionResetError("reset")])
    waits: list[float] = []
    assert _retry.call(fn, attempts=5, what="test", sleep=no_sleep(waits)) == 4
    assert len(waits) == 3
    assert all(0 <= w <= _retry.FIRST_WAIT * 2**i for i, w in enumerate(waits))


@pytest.mark.parametrize(
    "error",
    [gexc.NotFound("no topic"), gexc.PermissionDenied("no"), gexc.InvalidArgument("bad"),
     gexc.AlreadyExists("task"), ValueError("a bug")],
)
def test_policy_does_not_retry_terminal_errors(error: Exception) -> None:
    fn = Flaky([error])
    with pytest.raises(type(error)):
        _retry.call(fn, attempts=5, what="test", sleep=no_sleep([]))
    assert fn.calls == 1


def test_policy_stops_after_the_attempts_and_raises_the_last_error() -> None:
    last = gexc.ServiceUnavailable("still down")
    fn = Flaky([gexc.ServiceUnavailable("down"), gexc.ServiceUnavailable("down"), last])
    waits: list[float] = []
    with pytest.raises(gexc.ServiceUnavailable) as info:
        _retry.call(fn, attempts=3, what="test", sleep=no_sleep(waits))
    assert info.value is last
    assert (fn.calls, len(waits)) == (3, 2)
    fn = Flaky([gexc.ServiceUnavailable("down")])
    with pytest.raises(gexc.ServiceUnavailable):
        _retry.call(fn, attempts=1, what="test")  # one attempt: no retry at all
    assert fn.calls == 1


def test_a_first_attempt_that_succeeds_builds_no_tenacity_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the fast path built a Retrying")

    monkeypatch.setattr(_retry, "retrying", refuse)
    assert _retry.call(Flaky([]), attempts=5, what="test") == 1


def test_a_retry_after_a_failure_is_logged_with_its_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fn = Flaky([gexc.ServiceUnavailable("down")])
    _retry.call(fn, attempts=3, what="publish to t", sleep=no_sleep([]))
    [record] = [r for r in caplog.records if r.name == "pubsub_jobs.adapters._retry"]
    assert "publish to t: attempt 1 of 3 failed (ServiceUnavailable: 503 down)" in (
        record.getMessage()
    )


class _Topics(PubSubAdapter):
    """The adapter with its Publish RPC replaced: each topic fails with its errors in turn."""

    def __init__(self, errors: dict[str, list[Exception]], attempts: int = 3) -> None:
        super().__init__(Settings(project_id="p", publish_attempts=attempts), middleware=[])
        self.errors = errors
        self.sent: list[tuple[str, int]] = []

    def publish_request(self, topic_path: str, messages: Sequence[Any]) -> list[str]:
        queue = topic_path.rsplit("/jobs-", 1)[1]
        self.sent.append((queue, len(messages)))
        if self.errors.get(queue):
            raise self.errors[queue].pop(0)
        return [f"{queue}-{i}" for i in range(len(messages))]


def test_bulk_publish_sends_again_only_what_failed_transiently() -> None:
    adapter = _Topics({"flaky": [gexc.ServiceUnavailable("down")], "gone": [gexc.NotFound("x")]})
    flaky = [jobs_core.add.using(queue="flaky").message(i, i) for i in range(3)]
    gone = [jobs_core.add.using(queue="gone").message(i, i) for i in range(2)]
    fine = [jobs_core.add.using(queue="fine").message(i, i) for i in range(2)]
    with pytest.raises(BulkEnqueueError) as info:
        adapter.publish_many([*flaky, *gone, *fine])
    assert sorted(adapter.sent) == [("fine", 2), ("flaky", 3), ("flaky", 3), ("gone", 2)]
    assert {j.job_id for j in info.value.enqueued} == {m.job_id for m in [*flaky, *fine]}
    assert [m.job_id for m, _ in info.value.failed] == [m.job_id for m in gone]
    assert all(isinstance(exc, gexc.NotFound) for _, exc in info.value.failed)
    assert "2 of 7 jobs were not enqueued" in str(info.value)
    assert "pubsub-jobs bootstrap --queue gone" in str(info.value)
    adapter.close()


def test_bulk_publish_reports_transient_failures_after_the_attempts() -> None:
    adapter = _Topics({"down": [gexc.ServiceUnavailable("down")] * 5}, attempts=2)
    messages = [jobs_core.add.using(queue="down").message(i, i) for i in range(2)]
    with pytest.raises(BulkEnqueueError, match="after retries") as info:
        adapter.publish_many(messages)
    assert adapter.sent == [("down", 2), ("down", 2)]
    assert (info.value.enqueued, len(info.value.failed)) == ([], 2)
    adapter.close()


def test_bulk_publish_that_recovers_returns_every_job_in_order() -> None:
    adapter = _Topics({"q": [gexc.Aborted("busy")]})
    messages = [jobs_core.add.using(queue="q").message(i, i) for i in range(3)]
    results = adapter.publish_many(messages)
    assert [r.job_id for r in results] == [m.job_id for m in messages]
    assert adapter.sent == [("q", 3), ("q", 3)]
    adapter.close()


def test_one_wording_for_both_adapters_errors() -> None:
    """The same failure reads the same for a topic and for the delayed-jobs queue."""
    topic = _retry.pubsub_topic("projects/p/topics/jobs-q", "q")
    tasks = _retry.cloud_tasks_queue("projects/p/locations/l/queues/jobs-delayed")
    for exc, words in [
        (gexc.PermissionDenied("no"), "permission denied"),
        (gexc.DeadlineExceeded("slow"), "enqueue it again with the same job_id"),
        (gexc.ServiceUnavailable("down"), "failed after retries (5 attempts)"),
    ]:
        for to in (topic, tasks):
            error = _retry.enqueue_error(exc, to, attempts=5, timeout=60)
            assert isinstance(error, pubsub_jobs.EnqueueError)
            assert words in str(error), str(error)
            assert f"not {to.outcome}" in str(error)
    assert isinstance(_retry.enqueue_error(gexc.NotFound("x"), topic, attempts=5, timeout=1),
                      pubsub_jobs.TopicNotFound)
