"""An exactly-once queue on the emulator: the worker acks with Pub/Sub's answer, counts the
confirmed acks, and logs and counts an ack Pub/Sub refuses because the lease was lost.

Duplicates are counted and printed, never assumed to be zero: on Google Cloud, exactly-once
subscriptions have been seen to deliver again under a backlog (see docs/exactly-once.md).
The emulator (0.8.20) implements exactly-once: it confirms a current ack id and refuses a
stale one with ``PERMANENT_FAILURE_INVALID_ACK_ID``, which the client turns into
``AcknowledgeError(INVALID_ACK_ID)``.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pubsub_jobs import Settings, queues
from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.admin.topology import BootstrapReport
from pubsub_jobs.queues import queue
from pubsub_jobs.worker import Worker
from tests import jobs_exactly_once
from tests.emulator.test_cli import cli_env
from tests.waiting import wait_for

QUEUE = jobs_exactly_once.QUEUE
JOBS = 300
#: The worker's lease renewals (the least the worker allows): a paused worker loses its
#: leases within this many seconds.
LEASE = 10
APP = f"""\
from pubsub_jobs import queue

queue({QUEUE!r}, exactly_once=True)
"""


@pytest.fixture
def exactly_once_queue(
    pubsub_jobs_settings: Settings, bootstrap_queues: Callable[..., BootstrapReport]
) -> Iterator[Settings]:
    """The queue declared exactly_once (forgotten after the test) and bootstrapped."""
    queues.declared_queues.remove(QUEUE)
    queue(QUEUE, exactly_once=True)
    try:
        bootstrap_queues(QUEUE)
        subscriber = subscriber_client(pubsub_jobs_settings)
        try:
            sub = subscriber.get_subscription(
                subscription=pubsub_jobs_settings.subscription_path(QUEUE))
        finally:
            subscriber.close()
        assert sub.enable_exactly_once_delivery
        yield pubsub_jobs_settings
    finally:
        queues.declared_queues.remove(QUEUE)


def runs(path: Path, event: str = "ran") -> Counter[int]:
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[1]) for line in path.read_text().splitlines()
                   if line.startswith(event + " "))


def test_every_job_runs_and_its_ack_is_confirmed(
    exactly_once_queue: Settings, drain_queues: Callable[..., Worker], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = tmp_path / "runs.txt"
    monkeypatch.setenv(jobs_exactly_once.RUNS_ENV, str(record))
    jobs_exactly_once.pay.enqueue_many([(n,) for n in range(JOBS)])

    worker = drain_queues(QUEUE, idle=1.0)

    ran = runs(record)
    duplicates = sum(ran.values()) - len(ran)
    counts = worker.stats.snapshot()
    print(f"{JOBS} jobs on an exactly-once queue: {sum(ran.values())} runs, {duplicates} "
          f"duplicate(s); acks confirmed {counts['acks_confirmed']}, refused "
          f"{counts['acks_refused']}")
    assert set(ran) == set(range(JOBS))  # every job ran at least once
    assert counts["succeeded"] == sum(ran.values())
    # Every ack asked for Pub/Sub's answer, and had it before the worker stopped.
    assert counts["acks_confirmed"] + counts["acks_refused"] == counts["succeeded"]
    assert counts["acks_confirmed"] > 0


def test_an_ack_after_the_lease_was_lost_is_refused_logged_and_the_job_runs_again(
    exactly_once_queue: Settings, tmp_path: Path
) -> None:
    """A worker paused (SIGSTOP: a VM pause, a CPU-starved container) while its job runs,
    for longer than the lease: Pub/Sub delivers the message again, and the ack of the first
    run, sent after the pause, names a lease that is gone."""
    settings = exactly_once_queue
    record = tmp_path / "runs.txt"
    (tmp_path / "eoapp.py").write_text(APP)
    env = cli_env(settings, **{jobs_exactly_once.RUNS_ENV: str(record)})
    jobs_exactly_once.pay_slowly.enqueue(1, 2.0)
    worker = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "--app", "eoapp", "worker",
         jobs_exactly_once.__name__, "--queue", QUEUE, "--lease-seconds", str(LEASE),
         "--burst", "--burst-idle", "3"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: runs(record, "started"), 60, "the job to start")
        os.kill(worker.pid, signal.SIGSTOP)
        time.sleep(LEASE + 6)  # the lease runs out meanwhile; Pub/Sub delivers it again
        os.kill(worker.pid, signal.SIGCONT)
        _, stderr = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGCONT)
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr
    (stopped,) = [line for line in stderr.splitlines() if "worker stopped: " in line]
    counts = ast.literal_eval(stopped.split("worker stopped: ", 1)[1])
    ran = runs(record)
    print(f"paused past the lease: the job ran {ran[1]} time(s); acks confirmed "
          f"{counts['acks_confirmed']}, refused {counts['acks_refused']}")
    # The client itself may warn "AcknowledgeError when lease-modacking a message" (with its
    # traceback) for a delivery that went stale during the pause: it drops that one.
    assert counts["errors"] == 0 and "unexpected error" not in stderr
    assert counts["acks_refused"] == 1
    assert (f"Pub/Sub refused the ack of job {jobs_exactly_once.pay_slowly.name} "
            in stderr and "INVALID_ACK_ID; its lease was lost, so the job runs again" in stderr)
    assert ran[1] >= 2 and counts["acks_confirmed"] >= 1  # it ran again, and that ack held
