"""The dead set against the emulator: jobs dead-lettered by the worker (each reason) and by
the subscription's own policy are listed, shown, retried (then run) and purged; an
interrupted retry, run again, loses no job and doubles none."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pubsub_jobs import dead
from pubsub_jobs.dead import DeadJob
from pubsub_jobs.errors import ConfigurationError, DeadJobNotFound
from pubsub_jobs.message import JobMessage
from pubsub_jobs.testing import publish_raw, pull_dead_letters
from tests import jobs_dead
from tests.jobs_dead import Observer

WORKER_REASONS = {"max_attempts", "not_retryable", "invalid_message", "unknown_job",
                  "invalid_arguments"}


@pytest.fixture
def ran() -> Iterator[list[tuple[str, object]]]:
    jobs_dead.RAN.clear()
    jobs_dead.BROKEN.clear()
    yield jobs_dead.RAN
    jobs_dead.RAN.clear()
    jobs_dead.BROKEN.clear()


def wait_for_dead(queue: str, count: int, timeout: float = 15.0) -> list[DeadJob]:
    """The dead set once it holds ``count`` jobs (Pub/Sub forwards asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = dead.list_dead(queue)
        if len(jobs) >= count or time.monotonic() > deadline:
            return jobs
        time.sleep(0.2)


def test_each_reason_is_listed_shown_retried_and_purged(
    bootstrap_queues, pubsub_jobs_settings, drain_queues, ran, observers
):
    settings = pubsub_jobs_settings
    bootstrap_queues("dead", "crash")

    # Dead-lettered by the subscription's own policy: delivered and never settled, 5 times
    # (as a worker SIGKILLed mid-job would), while the worker dead-letters the others.
    crashed = jobs_dead.note.using(queue="crash").message("p1")
    publish_raw("crash", *crashed.encode(), settings=settings)
    forwarder = threading.Thread(
        target=jobs_dead.nack_until_forwarded,
        args=("crash", settings, settings.queue_options("crash").max_delivery_attempts),
    )
    forwarder.start()

    jobs_dead.BROKEN.update({"a", "b"})
    fragile = jobs_dead.fragile.enqueue("a")
    picky = jobs_dead.picky.enqueue("b")
    publish_raw("dead", b"not json", {
        "job_name": jobs_dead.note.name, "job_id": "bad-1", "queue_name": "dead",
        "enqueued_at": "2026-01-01T00:00:00Z", "wire_version": "1"}, settings=settings)
    unknown = JobMessage(job_name=jobs_dead.LATE_NAME, queue="dead", args=[7], kwargs={})
    publish_raw("dead", *unknown.encode(), settings=settings)
    wrong = JobMessage(job_name=jobs_dead.LENIENT_NAME, queue="dead", args=["seven"], kwargs={})
    publish_raw("dead", *wrong.encode(), settings=settings)
    drain_queues("dead", idle=1.0)
    forwarder.join()

    listed = dead.list_dead("dead")
    by_reason = {j.reason: j for j in listed}
    assert set(by_reason) == WORKER_REASONS
    assert all(j.dead_lettered_by == "worker" and not j.reason_derived for j in listed)
    assert all(j.dead_lettered_at is not None and j.attempts == 1 for j in listed)
    max_attempts = by_reason["max_attempts"]
    assert (max_attempts.job_id, max_attempts.job_name) == (fragile.job_id,
                                                            jobs_dead.fragile.name)
    assert max_attempts.error == "RuntimeError: broken a"
    assert (max_attempts.args, max_attempts.kwargs) == (["a"], {})
    assert by_reason["not_retryable"].job_id == picky.job_id
    assert by_reason["not_retryable"].error == "KeyError: 'b'"
    assert by_reason["invalid_message"].args is None
    assert by_reason["invalid_message"].data == b"not json"
    assert by_reason["unknown_job"].job_id == unknown.job_id
    assert by_reason["invalid_arguments"].job_id == wrong.job_id

    # Listing removes nothing; filters and limit.
    assert {j.message_id for j in dead.list_dead("dead")} == {j.message_id for j in listed}
    assert [j.job_id for j in dead.list_dead("dead", reason="not_retryable")] == [picky.job_id]
    assert [j.job_id for j in dead.list_dead("dead", job_name=jobs_dead.fragile.name)] == [
        fragile.job_id]
    assert len(dead.list_dead("dead", limit=2)) == 2

    [forwarded] = wait_for_dead("crash", 1)
    assert forwarded.reason == dead.DERIVED_REASON and forwarded.reason_derived
    assert forwarded.dead_lettered_by == "subscription"
    assert forwarded.job_id == crashed.job_id and forwarded.attempts == 5
    assert forwarded.args == ["p1"]
    assert forwarded.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"

    shown = dead.show("dead", fragile.job_id)
    assert shown.message_id == max_attempts.message_id
    assert shown.attributes["dead_letter_reason"] == "max_attempts"
    invalid = by_reason["invalid_message"]
    assert dead.show("dead", invalid.message_id).job_id == "bad-1"  # by message id
    with pytest.raises(DeadJobNotFound):
        dead.show("dead", "no-such-job")

    # Deploy the fixes, retry everything: the jobs run.
    observer = Observer("crash", settings)
    observers.append(observer)
    with jobs_dead.deployed_fixes():
        summary = dead.retry("dead", every=True)
        assert summary.ok and summary.selected == 5 and len(summary.retried) == 5
        crash_summary = dead.retry("crash", [crashed.job_id])
        assert crash_summary.retried == (crashed.job_id,)
        drain_queues("dead", "crash", idle=1.0)
    assert Counter(name for name, _ in ran) == Counter(
        {"fragile": 1, "picky": 1, "late": 1, "lenient_v2": 1, "note": 1})

    # The republished message: same job_id and data, no dead-letter attributes of ours or
    # Pub/Sub's, and where it came from.
    [republished] = observer.take(expect=1)
    assert republished["job_id"] == crashed.job_id
    assert republished["retried_from"] == forwarded.message_id
    assert republished["retried_count"] == "1"
    assert not [k for k in republished
                if k.startswith("CloudPubSubDeadLetter") or k.startswith("dead_letter")
                or k == "delivery_attempt"]
    assert dead.list_dead("crash") == []

    # The invalid message cannot run: it is dead again, and says it was retried.
    [again] = wait_for_dead("dead", 1)
    assert again.reason == "invalid_message" and again.job_id == "bad-1"
    assert again.attributes["retried_from"] == invalid.message_id
    assert again.attributes["retried_count"] == "1"

    summary = dead.purge("dead", ["bad-1"])
    assert summary.purged == ("bad-1",) and summary.copies == 1
    assert dead.list_dead("dead") == []


def test_selection_is_required_and_unknown_ids_are_reported(
    bootstrap_queues, pubsub_jobs_settings
):
    bootstrap_queues("bulk")
    [job_id] = jobs_dead.dead_copies("bulk", pubsub_jobs_settings, ["k"])
    with pytest.raises(ConfigurationError, match="say which dead jobs"):
        dead.retry("bulk")
    with pytest.raises(ConfigurationError):
        dead.purge("bulk", [job_id], every=True)
    summary = dead.retry("bulk", ["nope"])
    assert summary.not_found == ("nope",) and summary.selected == 0 and not summary.ok
    assert dead.purge("bulk", every=True, confirm=lambda jobs: False).cancelled
    assert [j.job_id for j in dead.list_dead("bulk")] == [job_id]
    assert dead.purge("bulk", reason="max_attempts").purged == (job_id,)


def test_interrupted_retry_rerun_loses_none_and_doubles_none(
    bootstrap_queues, pubsub_jobs_settings, observers
):
    settings = pubsub_jobs_settings
    bootstrap_queues("bulk")
    keys = [f"k{i}" for i in range(120)]
    job_ids = jobs_dead.dead_copies("bulk", settings, keys, duplicate=3)
    observer = Observer("bulk", settings)
    observers.append(observer)
    assert len(dead.list_dead("bulk")) == 123  # three jobs have two dead copies each

    stop = threading.Event()
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        stop.set()  # as Ctrl-C in the command line does: stop after this batch

    first = dead.retry("bulk", every=True, batch_size=25, progress=progress, stop=stop)
    assert first.interrupted and calls == [(25, 120)]
    assert len(first.retried) == 25 and first.remaining == 95
    # The rest are released at once, so a rerun sees them without waiting for leases.
    assert len({j.id for j in dead.list_dead("bulk")}) == 95

    rerun = dead.retry("bulk", every=True, batch_size=25)
    assert rerun.ok and len(rerun.retried) == 95
    assert first.duplicates + rerun.duplicates == 3

    published = Counter(a["job_id"] for a in observer.take(expect=120))
    assert set(published) == set(job_ids)
    assert max(published.values()) == 1
    assert dead.list_dead("bulk") == []


def test_keyboard_interrupt_mid_batch_keeps_publish_and_ack_together(
    bootstrap_queues, pubsub_jobs_settings, observers, monkeypatch
):
    settings = pubsub_jobs_settings
    bootstrap_queues("bulk")
    job_ids = jobs_dead.dead_copies("bulk", settings, [f"k{i}" for i in range(40)])
    observer = Observer("bulk", settings)
    observers.append(observer)

    original = DeadJob.retry_attributes
    count = 0

    def interrupting(self: DeadJob) -> dict[str, str]:
        # Runs in the batch thread while the main thread waits for the batch: a Ctrl-C.
        nonlocal count
        count += 1
        if count == 7:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return original(self)

    monkeypatch.setattr(DeadJob, "retry_attributes", interrupting)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        dead.retry("bulk", every=True, batch_size=5)
    monkeypatch.undo()

    done = Counter(a["job_id"] for a in observer.take(expect=5))
    remaining = {j.job_id for j in dead.list_dead("bulk")}
    # Every job is either republished (and its dead copy gone) or still dead: never both.
    assert not (set(done) & remaining)
    assert set(done) | remaining == set(job_ids)
    assert remaining, "the interrupt ended the run early"

    dead.retry("bulk", every=True)
    done.update(a["job_id"] for a in observer.take(expect=len(remaining)))
    assert set(done) == set(job_ids) and max(done.values()) == 1


def test_readme_example_runs(bootstrap_queues, pubsub_jobs_settings, capsys):
    """The Python example of docs/dead-jobs.md, as written."""
    settings = pubsub_jobs_settings
    bootstrap_queues("default")
    jobs_dead.dead_copies("default", settings, ["a", "b"])
    jobs_dead.dead_copies("default", settings, ["c"], reason="invalid_message")
    text = (Path(__file__).resolve().parents[2] / "docs/dead-jobs.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", text, re.S)
    exec(compile(example, "dead-jobs.md", "exec"), {})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "retried 2, failed 0, left 0" in out
    assert dead.list_dead("default") == []


def test_test_helpers_take_the_dead_sets_own_model(bootstrap_queues, pubsub_jobs_settings):
    """``pull_dead_letters`` (behind the ``dead_letters`` fixture) reads dead messages with the
    dead set's own reader into the same ``DeadJob``, and removes them."""
    settings = pubsub_jobs_settings
    bootstrap_queues("bulk")
    ids = jobs_dead.dead_copies("bulk", settings, ["a", "b"], duplicate=1)
    message = jobs_dead.note.using(queue="bulk").message("fwd")
    data, attrs = message.encode()
    jobs_dead.publish_dead("bulk", settings, [(data, {
        **attrs, "CloudPubSubDeadLetterSourceDeliveryCount": "5"})])

    taken = pull_dead_letters("bulk", settings, expect=4)
    assert all(isinstance(t, DeadJob) for t in taken) and len(taken) == 4
    assert Counter(t.job_id for t in taken) == Counter([ids[0], ids[0], ids[1], message.job_id])
    by_id = {t.job_id: t for t in taken}
    assert by_id[ids[1]].reason == "max_attempts" and by_id[ids[1]].json() == {
        "args": ["b"], "kwargs": {}}
    assert by_id[message.job_id].reason == dead.DERIVED_REASON
    assert by_id[message.job_id].dead_lettered_by == "subscription"
    assert dead.list_dead("bulk") == [] and pull_dead_letters("bulk", settings, timeout=0) == []
