"""Iterating jobs against the emulator: stops and kills resume from the last checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pubsub_jobs import InMemoryAdapter, JobDefinitionError, job, use_adapter
from pubsub_jobs.dead import list_dead, retry
from pubsub_jobs.worker import Worker
from tests import jobs_iterating
from tests.emulator.test_cli import ROOT, cli_env
from tests.jobs_faults import connect
from tests.waiting import wait_for

QUEUE = jobs_iterating.QUEUE
ITEMS = 2000
INTERRUPTIONS = 5


@pytest.fixture
def iterating(bootstrap_queues, pubsub_jobs_settings, tmp_path, monkeypatch):
    bootstrap_queues(QUEUE)
    db = tmp_path / "items.db"
    jobs_iterating.init_db(db)
    monkeypatch.setenv(jobs_iterating.DB_ENV, str(db))
    monkeypatch.setenv(jobs_iterating.FAIL_FLAG_ENV, str(tmp_path / "fail"))
    return pubsub_jobs_settings, db


def items(db: Path) -> Counter[int]:
    conn = connect(db)
    try:
        return Counter(item for (item,) in conn.execute("SELECT item FROM items"))
    finally:
        conn.close()


def stretches(db: Path, pid: int) -> int:
    conn = connect(db)
    try:
        return int(conn.execute("SELECT count(DISTINCT iteration) FROM items WHERE pid = ?",
                                (pid,)).fetchone()[0])
    finally:
        conn.close()


def start_worker(settings, db: Path, tmp_path: Path, n: int) -> subprocess.Popen[bytes]:
    env = cli_env(settings, **{jobs_iterating.DB_ENV: str(db),
                               jobs_iterating.FAIL_FLAG_ENV: str(tmp_path / "fail")})
    with (tmp_path / f"worker-{n}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pubsub_jobs", "worker", "tests.jobs_iterating",
             "--queue", QUEUE, "--lease-seconds", "10"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_an_interrupted_iterating_job_resumes_and_finishes(iterating, tmp_path, sig, capsys):
    settings, db = iterating
    result = jobs_iterating.walk.enqueue(ITEMS)
    stops: list[float] = []
    for n in range(INTERRUPTIONS):
        worker = start_worker(settings, db, tmp_path, n)
        # interrupt once it checkpointed (a message killed again and again before any
        # checkpoint would be dead-lettered by the subscription's delivery limit, rightly)
        wait_for(lambda w=worker: stretches(db, w.pid) >= 2, 90,  # noqa: B023
                 "the worker to checkpoint")
        sent = time.monotonic()
        worker.send_signal(sig)
        code = worker.wait(timeout=60)
        stops.append(time.monotonic() - sent)
        assert code == (0 if sig is signal.SIGTERM else -signal.SIGKILL)
    worker = start_worker(settings, db, tmp_path, INTERRUPTIONS)
    try:
        wait_for(lambda: set(items(db)) >= set(range(ITEMS)), 180, "every item")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    done = items(db)
    repeats = sum(done.values()) - ITEMS
    conn = connect(db)
    try:
        stretch = max(c for (c,) in conn.execute(
            "SELECT count(*) FROM items GROUP BY iteration, pid"))
        iterations = conn.execute("SELECT max(iteration) FROM items").fetchone()[0]
    finally:
        conn.close()
    with capsys.disabled():
        print(f"\n{sig.name} x{INTERRUPTIONS}: {ITEMS} items, {repeats} repeated, "
              f"{iterations} continuations of job {result.job_id}, stops took "
              f"{', '.join(f'{s:.1f}' for s in stops)} s, longest stretch {stretch} items")
    assert set(done) == set(range(ITEMS))
    if sig is signal.SIGTERM:  # the item running finishes, then the checkpoint: no repeats
        assert repeats <= INTERRUPTIONS
    else:  # a kill loses at most the items since the last checkpoint
        assert repeats <= INTERRUPTIONS * stretch


def test_a_failing_item_retries_from_its_checkpoint_and_dead_retry_resumes(
    iterating, tmp_path
):
    settings, db = iterating
    flag = tmp_path / "fail"
    flag.touch()
    jobs_iterating.walk.enqueue(300, 0.01, 250)
    worker = Worker([QUEUE], settings=settings, burst=True, burst_idle=3)
    worker.run()
    [dead] = wait_for(lambda: list_dead(QUEUE, settings), 30, "the dead copy")
    assert dead.reason == "max_attempts" and "item 250 failed" in dead.error
    cursor = dead.kwargs["cursor"]
    assert cursor is not None and cursor < 250  # the dead copy keeps its checkpoint
    before = items(db)
    assert set(before) == set(range(250))
    # fixed: retried from the dead set, it resumes after its cursor rather than restarting
    flag.unlink()
    summary = retry(QUEUE, [dead.job_id], settings)
    assert len(summary.retried) == 1
    Worker([QUEUE], settings=settings, burst=True, burst_idle=3).run()
    after = items(db)
    assert set(after) == set(range(300))
    assert all(after[i] == before[i] for i in range(cursor + 1))  # nothing before it redone


def test_iterating_jobs_in_memory_and_their_definition():
    seen: list[tuple[int, int]] = []

    @job(name="tests.iterating.count", checkpoint_every=0.001)
    def count(n: int, *, cursor: int | None = None):  # type: ignore[no-untyped-def]
        from pubsub_jobs import current_job

        for i in range(0 if cursor is None else cursor + 1, n):
            time.sleep(0.005)
            seen.append((i, current_job().iteration))
            yield i

    adapter = InMemoryAdapter()
    with use_adapter(adapter):
        count.enqueue(4)
        summary = adapter.run()
    assert [i for i, _ in seen] == [0, 1, 2, 3]
    assert [it for _, it in seen] == [0, 1, 2, 3]  # a checkpoint after every item
    assert summary.checkpointed == 4 and summary.succeeded == 1
    with pytest.raises(JobDefinitionError, match="keyword-only argument `cursor`"):
        @job(name="tests.iterating.bad")
        def bad(n: int):  # type: ignore[no-untyped-def]
            yield n
