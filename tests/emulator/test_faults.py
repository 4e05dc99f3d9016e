"""Fault tests against the emulator: killed workers, bad input, an emulator restart.

Workers run as real processes (``python -m pubsub_jobs worker ...``), so SIGKILL is real.
Their jobs (tests/jobs_faults.py) record every start and run in a SQLite file, which is how
the tests count runs and duplicates. Each test prints what it observed.

One thing here is about emulator 0.8.20, not about pubsub-jobs: it hands every available
message to the streams open at the time (see :class:`Feeder`).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pubsub_jobs import Settings, configure
from pubsub_jobs.admin.topology import bootstrap, delete_topology
from pubsub_jobs.dead import DeadJob
from pubsub_jobs.emulator import free_port, start_pubsub_emulator
from pubsub_jobs.errors import EnqueueError
from pubsub_jobs.message import format_time
from pubsub_jobs.testing import publish_raw, pull_dead_letters
from tests import jobs_faults
from tests.emulator.test_cli import ROOT, cli_env
from tests.waiting import wait_for

QUEUE = jobs_faults.QUEUE
JOB_NAME = f"{jobs_faults.__name__}.record"
#: "A few thousand jobs", at a pace that keeps each test well under a minute here.
JOBS = 2000
CONCURRENCY = 6
PAUSE = 0.05
INTERRUPTIONS = 5
LEASE = 10


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = jobs_faults.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def count(db: Path, sql: str, *params: Any) -> int:
    return int(query(db, sql, *params)[0][0])


class WorkerPool:
    """Worker processes by slot name, each logging to a file of its own slot."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pids: dict[str, list[int]] = {}

    def start(self, slot: str) -> subprocess.Popen[bytes]:
        # A short lease: what is tested here holds for any lease, and the emulator (which
        # ignores flow control) pushes messages to a stream that the stopped worker never
        # read; they return when their lease ends (60 s at the default).
        argv = [sys.executable, "-m", "pubsub_jobs", "worker", jobs_faults.__name__,
                "--queue", f"{QUEUE}={CONCURRENCY}", "--shutdown-timeout", "30",
                "--lease-seconds", str(LEASE)]
        with (self.logs / f"worker-{slot}.log").open("ab") as log:
            proc = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log,  # noqa: S603
                                    stderr=subprocess.STDOUT)
        self.procs[slot] = proc
        self.pids.setdefault(slot, []).append(proc.pid)
        return proc

    def log(self, slot: str) -> str:
        return (self.logs / f"worker-{slot}.log").read_text(errors="replace")

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every worker and wait for its graceful stop; their exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return {slot: proc.wait(timeout=60) for slot, proc in self.procs.items()}

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def many_attempts(pubsub_jobs_settings: Settings) -> Iterator[Settings]:
    """The test settings, with the faults queue dead-lettering after 50 delivery attempts
    instead of 5: a message can be held by several killed workers in a row, and each
    delivery counts. Topology created, and deleted after the test."""
    options = pubsub_jobs_settings.queue_defaults.model_copy(
        update={"max_delivery_attempts": 50}
    )
    settings = configure(**{**pubsub_jobs_settings.model_dump(), "queues": {QUEUE: options}})
    bootstrap([QUEUE], settings)
    try:
        yield settings
    finally:
        delete_topology([QUEUE], settings)


def worker_env(settings: Settings, db: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process: the test's settings, its queues, its database."""
    queues = {name: json.loads(opts.model_dump_json()) for name, opts in settings.queues.items()}
    return cli_env(settings, PUBSUB_JOBS_QUEUES=json.dumps(queues),
                   **{jobs_faults.DB_ENV: str(db)}, **extra)


@dataclass
class Interrupted:
    """What a run of 2,000 jobs with one worker interrupted repeatedly left behind."""

    job_ids: dict[str, int]
    runs: Counter[str]
    interruptions: int
    exit_codes: list[int]
    interrupted_mid_job: int
    dead: list[DeadJob]
    seconds: float
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.runs.values() if n > 1)


class Feeder(threading.Thread):
    """Enqueues at least JOBS jobs in batches of BATCH, keeping at most BACKLOG of them not yet
    run, and goes on past JOBS until ``release``: every interruption must find jobs to run
    however fast the workers are (with prefetch they drain 2,000 jobs in seconds).

    The emulator ignores flow control: it hands every available message to the streams open
    at that moment, so a backlog enqueued at once would all go to the worker that is not
    being interrupted, and a restarted worker would get nothing. Google Cloud hands out only
    what a stream's flow control allows. The last batch waits for ``release``, so that every
    interruption lands while jobs are running.
    """

    BATCH = 100
    BACKLOG = 200

    def __init__(self, db: Path) -> None:
        super().__init__(name="feeder", daemon=True)
        self.db = db
        self.job_ids: dict[str, int] = {}
        self.release = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            first = 0
            while not (self.release.is_set() and first >= JOBS):
                while (not self.stop.is_set() and len(self.job_ids)
                       - count(self.db, "SELECT count(*) FROM effects") > self.BACKLOG):
                    time.sleep(0.05)
                if self.stop.is_set():
                    return
                calls = [(i, PAUSE) for i in range(first, first + self.BATCH)]
                first += self.BATCH
                results = jobs_faults.record.enqueue_many(calls)
                self.job_ids.update({r.job_id: n for r, (n, _) in zip(results, calls, strict=True)})
        except BaseException as exc:
            self.error = exc


def interrupt_repeatedly(settings: Settings, tmp_path: Path, sig: signal.Signals) -> Interrupted:
    """Enqueue JOBS jobs (see :class:`Feeder`), run two workers, send ``sig`` to one of them
    INTERRUPTIONS times (each time once it is running jobs) and restart it; then wait until
    every job ran or was dead-lettered, and stop both workers gracefully."""
    db = tmp_path / "faults.db"
    jobs_faults.init_db(db)
    pool = WorkerPool(worker_env(settings, db), tmp_path)
    feeder = Feeder(db)
    dead: list[DeadJob] = []
    codes: list[int] = []
    rng = random.Random(7)
    started = time.monotonic()
    try:
        pool.start("steady")
        feeder.start()
        for _ in range(INTERRUPTIONS):
            victim = pool.start("victim")
            # Interrupt it while it runs jobs: once it started some, after a random moment.
            wait_for(lambda v=victim: count(db, "SELECT count(*) FROM starts WHERE pid = ?",
                                            v.pid) >= 10, 60, "the worker to start jobs")
            time.sleep(rng.uniform(0.0, 0.5))
            victim.send_signal(sig)
            codes.append(victim.wait(timeout=60))
        pool.start("victim")
        feeder.release.set()

        def all_accounted() -> bool:
            assert feeder.error is None, feeder.error
            dead.extend(pull_dead_letters(QUEUE, settings, timeout=0))
            fed = len(feeder.job_ids)
            return (not feeder.is_alive() and fed >= JOBS
                    and count(db, "SELECT count(*) FROM effects") + len(dead) >= fed)

        wait_for(all_accounted, 150, "every job to run or be dead-lettered", every=0.5)
        seconds = time.monotonic() - started
        wait_for(lambda: all(pool.log(slot).count("worker started") == len(pool.pids[slot])
                             for slot in pool.procs), 60, "the last worker to be ready")
        final = pool.stop_all()
    finally:
        feeder.stop.set()
        feeder.release.set()
        pool.kill_all()
        feeder.join(30)
    assert final == {"steady": 0, "victim": 0}, [pool.log(s) for s in final]
    runs = Counter(job_id for (job_id,) in query(db, "SELECT job_id FROM runs"))
    victims = pool.pids["victim"][:-1]
    mid_job = sum(
        count(db, "SELECT count(*) FROM starts s WHERE s.pid = ? AND NOT EXISTS "
              "(SELECT 1 FROM runs r WHERE r.job_id = s.job_id AND r.pid = s.pid)", pid)
        for pid in victims
    )
    return Interrupted(feeder.job_ids, runs, len(codes), codes, mid_job, dead, seconds,
                       {slot: pool.log(slot) for slot in ("steady", "victim")})


def test_sigkilled_worker_loses_no_job(many_attempts, tmp_path, capsys):
    """SIGKILL one of two workers mid-job, five times, restarting it each time: every job
    runs at least once. Jobs the killed worker was running, or held, come back once their
    lease (LEASE, the worker's --lease-seconds) runs out; those it had finished but not
    yet acked run twice: the duplicate count below."""
    result = interrupt_repeatedly(many_attempts, tmp_path, signal.SIGKILL)
    assert result.exit_codes == [-signal.SIGKILL] * INTERRUPTIONS
    assert result.interrupted_mid_job > 0  # the kills did land mid-job
    dead_ids = {d.job_id for d in result.dead}
    assert set(result.runs) | dead_ids == set(result.job_ids)  # every job accounted for
    assert not dead_ids, "no job should need 50 deliveries"
    # the effect is recorded once per job, whatever the duplicates
    effects = dict(query(tmp_path / "faults.db", "SELECT job_id, n FROM effects"))
    assert effects == result.job_ids
    with capsys.disabled():
        print(f"\nSIGKILL x{result.interruptions}: {len(result.job_ids)} jobs, "
              f"{sum(result.runs.values())} "
              f"runs, {result.duplicates} duplicates, {result.interrupted_mid_job} jobs "
              f"killed mid-run, {len(result.dead)} dead-lettered, {result.seconds:.1f} s")


def test_sigtermed_worker_runs_every_job_exactly_once(many_attempts, tmp_path, capsys):
    """SIGTERM one of two workers while it runs jobs, five times, restarting it each time:
    it finishes and acks what it started and nacks the rest, so every job runs exactly once."""
    result = interrupt_repeatedly(many_attempts, tmp_path, signal.SIGTERM)
    assert result.exit_codes == [0] * INTERRUPTIONS
    assert result.dead == []
    assert set(result.runs) == set(result.job_ids)
    assert [job_id for job_id, n in result.runs.items() if n != 1] == []
    assert result.interrupted_mid_job == 0  # every job it started, it finished
    stops = result.logs["victim"].count("SIGTERM: stopping")
    assert stops == INTERRUPTIONS + 1  # and the final stop
    with capsys.disabled():
        print(f"\nSIGTERM x{result.interruptions}: {len(result.job_ids)} jobs, "
              f"{sum(result.runs.values())} "
              f"runs, {result.duplicates} duplicates, {result.seconds:.1f} s")


# --- bad input ------------------------------------------------------------------------------

GOOD_DATA = b'{"args": [1], "kwargs": {}}'


def attrs(**override: str) -> dict[str, str]:
    """Valid wire attributes of a ``record`` job, changed by ``override`` (``"<drop>"``
    removes one)."""
    base = {
        "job_name": JOB_NAME,
        "job_id": str(uuid.uuid4()),
        "queue_name": QUEUE,
        "enqueued_at": format_time(datetime.now(UTC)),
        "wire_version": "1",
    }
    base.update(override)
    return {k: v for k, v in base.items() if v != "<drop>"}


def extra_attributes(n: int) -> dict[str, str]:
    return {f"x{i:03d}": "v" for i in range(n)}


@dataclass(frozen=True)
class Bad:
    """A malformed message and the reason its dead-letter copy must give (None: the copy
    cannot be published, so the subscription's own policy forwards the message)."""

    label: str
    data: bytes
    attributes: dict[str, str]
    reason: str | None


def corpus(markers: Path) -> list[Bad]:
    """Messages no job can run: each must end in the dead-letter topic."""
    m = str(markers)
    ok_data = GOOD_DATA
    invalid, unknown, arguments = "invalid_message", "unknown_job", "invalid_arguments"
    return [
        # data that is not the wire format's JSON object
        Bad("not json", b"not json", attrs(), invalid),
        Bad("empty data", b"", attrs(), invalid),
        Bad("truncated json", b'{"args": [1], "kwargs": {', attrs(), invalid),
        Bad("json array", b"[1, 2]", attrs(), invalid),
        Bad("json null", b"null", attrs(), invalid),
        Bad("json number", b"42", attrs(), invalid),
        Bad("json string", b'"args"', attrs(), invalid),
        Bad("no kwargs", b'{"args": [1]}', attrs(), invalid),
        Bad("no args", b'{"kwargs": {}}', attrs(), invalid),
        Bad("args not a list", b'{"args": {"n": 1}, "kwargs": {}}', attrs(), invalid),
        Bad("kwargs not an object", b'{"args": [1], "kwargs": [1]}', attrs(), invalid),
        Bad("args given twice", b'{"args": [1], "kwargs": {}, "args": "x"}', attrs(), invalid),
        Bad("not utf-8", b"\xff\xfe{\x80}", attrs(), invalid),
        Bad("utf-8 bom", b"\xef\xbb\xbf" + ok_data, attrs(), invalid),
        Bad("deeply nested", b"[" * 200_000, attrs(), invalid),
        Bad("5000-digit integer", b'{"args": [' + b"9" * 5000 + b'], "kwargs": {}}', attrs(),
            invalid),
        # attributes
        Bad("no attributes", ok_data, {}, invalid),
        Bad("missing job_id", ok_data, attrs(job_id="<drop>"), invalid),
        Bad("empty job_id", ok_data, attrs(job_id=""), invalid),
        Bad("empty job_name", ok_data, attrs(job_name=""), invalid),
        Bad("missing queue_name", ok_data, attrs(queue_name="<drop>"), invalid),
        Bad("missing enqueued_at", ok_data, attrs(enqueued_at="<drop>"), invalid),
        Bad("bad enqueued_at", ok_data, attrs(enqueued_at="yesterday"), invalid),
        Bad("naive enqueued_at", ok_data, attrs(enqueued_at="2026-01-02T03:04:05"), invalid),
        Bad("bad scheduled_at", ok_data, attrs(scheduled_at="soon"), invalid),
        Bad("missing wire_version", ok_data, attrs(wire_version="<drop>"), invalid),
        Bad("empty wire_version", ok_data, attrs(wire_version=""), invalid),
        Bad("wire_version 2", ok_data, attrs(wire_version="2"), invalid),
        Bad("wire_version 1.0", ok_data, attrs(wire_version="1.0"), invalid),
        # jobs that are not registered: never imported, never run
        Bad("unknown job", ok_data, attrs(job_name=f"{JOB_NAME}_nope"), unknown),
        Bad("os.system", json.dumps({"args": [f"touch {m}/os.system"], "kwargs": {}}).encode(),
            attrs(job_name="os.system"), unknown),
        Bad("subprocess.run",
            json.dumps({"args": [["touch", f"{m}/subprocess.run"]], "kwargs": {}}).encode(),
            attrs(job_name="subprocess.run"), unknown),
        Bad("builtins.exec",
            json.dumps({"args": [f"open({m + '/exec'!r}, 'w')"], "kwargs": {}}).encode(),
            attrs(job_name="builtins.exec"), unknown),
        Bad("function of the jobs module, not a job",
            json.dumps({"args": [f"{m}/canary"], "kwargs": {}}).encode(),
            attrs(job_name=f"{jobs_faults.__name__}.canary"), unknown),
        Bad("job of a module the worker was not given", b'{"args": [1, 2], "kwargs": {}}',
            attrs(job_name="tests.jobs_core.add"), unknown),
        # arguments that do not validate against record(n: int, pause: float, note: str<=64)
        Bad("wrong type", b'{"args": ["one"], "kwargs": {}}', attrs(), arguments),
        Bad("float for int", b'{"args": [1.5], "kwargs": {}}', attrs(), arguments),
        Bad("NaN", b'{"args": [NaN], "kwargs": {}}', attrs(), arguments),
        Bad("missing argument", b'{"args": [], "kwargs": {}}', attrs(), arguments),
        Bad("extra argument", b'{"args": [1, 0.0, "", 4], "kwargs": {}}', attrs(), arguments),
        Bad("unknown keyword", b'{"args": [1], "kwargs": {"bogus": 1}}', attrs(), arguments),
        Bad("argument given twice", b'{"args": [1], "kwargs": {"n": 2}}', attrs(), arguments),
        Bad("huge argument",
            json.dumps({"args": [1], "kwargs": {"note": "x" * 1_000_000}}).encode(),
            attrs(), arguments),
        # Pub/Sub's attribute limits: 100 attributes, values of 1024 bytes
        Bad("job_name of 1024 bytes", ok_data, attrs(job_name="j" * 1024), unknown),
        Bad("attribute value of 1024 bytes", ok_data,
            attrs(job_name=f"{JOB_NAME}_nope", note="n" * 1024), unknown),
        Bad("96 attributes", ok_data, {**attrs(job_name=f"{JOB_NAME}_nope"),
                                       **extra_attributes(90)}, unknown),
        Bad("100 attributes", ok_data, {**attrs(job_name=f"{JOB_NAME}_nope"),
                                        **extra_attributes(94)}, None),
        Bad("attribute value over 1024 bytes", ok_data,
            attrs(job_name=f"{JOB_NAME}_nope", note="n" * 5000), None),
    ]


def test_bad_input_is_dead_lettered_and_the_worker_keeps_going(
    pubsub_jobs_settings, bootstrap_queues, tmp_path, capsys
):
    """Every message of the corpus, published raw, ends in the dead-letter topic with its
    reason; the worker process stays up and runs the good jobs sent after them; nothing a
    message names is imported or run.

    The emulator accepts messages Pub/Sub itself refuses (over 100 attributes, values over
    1024 bytes); the worker does not publish a dead-letter copy that breaks those limits (its
    4 extra attributes would), it nacks, and the subscription's policy forwards the message
    after 5 deliveries, as it does for a job that crashes the worker.
    """
    bootstrap_queues(QUEUE)
    db = tmp_path / "faults.db"
    jobs_faults.init_db(db)
    markers = tmp_path / "markers"
    markers.mkdir()
    core_record = tmp_path / "jobs_core.txt"
    pool = WorkerPool(worker_env(pubsub_jobs_settings, db,
                                 JOBS_CORE_RECORD=str(core_record)), tmp_path)
    bad = corpus(markers)
    assert len({b.label for b in bad}) == len(bad) >= 20
    started = time.monotonic()
    worker = pool.start("w")
    try:
        for item in bad:
            # an attribute more tells the copies apart (the "100 attributes" case included)
            publish_raw(QUEUE, item.data, {**item.attributes, "case": item.label},
                        settings=pubsub_jobs_settings)
        good = jobs_faults.record.enqueue_many([(i, 0.0) for i in range(5)])
        wait_for(lambda: count(db, "SELECT count(*) FROM effects") == 5, 60,
                 "the good jobs sent after the bad ones")
        dead = pull_dead_letters(QUEUE, pubsub_jobs_settings, expect=len(bad), timeout=60)
        assert worker.poll() is None, pool.log("w")  # still running: never crashed
        seconds = time.monotonic() - started
    finally:
        codes = pool.stop_all()
        pool.kill_all()
    assert codes == {"w": 0}
    log = pool.log("w")
    assert {job_id for (job_id,) in query(db, "SELECT job_id FROM runs")} == {
        r.job_id for r in good}
    by_case = {d.attributes.get("case"): d for d in dead}
    assert sorted(by_case, key=str) == sorted(b.label for b in bad), "missing dead letters"
    assert len(dead) == len(bad), "a message was dead-lettered twice"
    for item in bad:
        copy = by_case[item.label]
        assert copy.data == item.data, item.label
        assert copy.reason == (item.reason or "delivery_limit"), (
            item.label, copy.attributes.get("dead_letter_error"))
        for key, value in item.attributes.items():  # the original attributes are kept
            assert copy.attributes.get(key) == value, (item.label, key)
        if item.reason is not None:
            error = copy.attributes["dead_letter_error"]
            assert error and len(error.encode()) <= 1024, item.label
            assert len(copy.attributes) <= 100, item.label
        else:
            assert "cannot be dead-lettered by the worker" in log, item.label
    # an error naming a 1024-byte job name is cut to fit an attribute value
    cut = by_case["job_name of 1024 bytes"].attributes["dead_letter_error"]
    assert cut.startswith("UnknownJob: ") and cut.endswith("...") and len(cut.encode()) == 1024
    assert list(markers.iterdir()) == []  # os.system, subprocess.run, exec, canary: never ran
    assert not core_record.exists()  # tests.jobs_core was never imported
    assert "Traceback" not in log
    reasons = Counter(str(b.reason) for b in bad)
    with capsys.disabled():
        print(f"\nbad input: {len(bad)} kinds dead-lettered ({dict(reasons)}), 5 good jobs "
              f"ran after them, worker pid {worker.pid} up throughout, {seconds:.1f} s")


# --- emulator restart -----------------------------------------------------------------------


def test_emulator_restart_under_a_running_worker(pubsub_jobs_settings, tmp_path, capsys):
    """Restart a (dedicated) emulator under a worker running under its supervisor.

    The emulator keeps everything in memory: a restart loses the topics, the subscriptions
    and every message not yet delivered and acked. So the jobs enqueued before the outage are
    waited for until they ran (one still queued would be lost with the emulator's memory,
    which cannot happen on Google Cloud), and the topology is bootstrapped again.

    While the emulator is down the worker's stream keeps retrying; when it is back without
    the subscription, the worker exits 1 saying to run bootstrap and the supervisor restarts
    it (with backoff) until bootstrap has run. An enqueue during the outage retries
    (``publish_attempts``, with backoff) and either succeeds once the emulator answers, or
    raises EnqueueError saying the job was not enqueued: when its retries run out first, or
    with TopicNotFound when it reaches the emulator before bootstrap. The application then
    retries it with the same job_id, as the error says; no enqueue that returned is lost.
    """
    port = free_port()
    emulator = start_pubsub_emulator(port, log_path=tmp_path / "emulator-1.log")
    settings = configure(**{**pubsub_jobs_settings.model_dump(),
                            "pubsub_emulator_host": emulator.host})
    db = tmp_path / "faults.db"
    jobs_faults.init_db(db)
    env = worker_env(settings, db)
    log_path = tmp_path / "supervisor.log"
    during: list[str] = []
    refused: list[str] = []
    try:
        bootstrap([QUEUE], settings)
        with log_path.open("ab") as log:
            supervisor = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "pubsub_jobs", "worker", jobs_faults.__name__,
                 "--queue", f"{QUEUE}=4", "--processes", "1"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            before = [r.job_id for r in jobs_faults.record.enqueue_many(
                [(i, 0.0) for i in range(20)])]
            wait_for(lambda: count(db, "SELECT count(*) FROM effects") == 20, 60,
                     "the jobs enqueued before the outage")
            first_pids = {pid for (pid,) in query(db, "SELECT DISTINCT pid FROM runs")}

            # A publish that lands between bootstrap's creating the topic and its creating
            # the subscription succeeds and reaches no subscription: lost. Google Cloud never
            # has a half-made topology, so enqueues and bootstrap take turns here.
            topology = threading.Lock()

            def enqueue_during_outage() -> None:
                for i in range(5):
                    job_id = str(uuid.uuid4())
                    while True:
                        try:
                            with topology:
                                jobs_faults.record.using(job_id=job_id).enqueue(100 + i, 0.0)
                            break
                        except EnqueueError as exc:  # not enqueued: try again, same job id
                            refused.append(f"{type(exc).__name__}: {exc}")
                            time.sleep(0.2)
                    during.append(job_id)

            emulator.stop()
            stopped = time.monotonic()
            thread = threading.Thread(target=enqueue_during_outage)
            thread.start()
            time.sleep(3)
            assert during == [], "nothing can be enqueued while the emulator is down"
            assert supervisor.poll() is None
            emulator = start_pubsub_emulator(port, log_path=tmp_path / "emulator-2.log")
            down = time.monotonic() - stopped
            # Back, but empty: the worker's stream finds no subscription, and says so.
            wait_for(lambda: "exited with 1; restarting" in log_path.read_text(), 90,
                     "the worker to exit and be restarted by the supervisor")
            with topology:
                bootstrap([QUEUE], settings)
            after = [r.job_id for r in jobs_faults.record.enqueue_many(
                [(200 + i, 0.0) for i in range(5)])]
            thread.join(120)
            assert not thread.is_alive()
            every = {*before, *during, *after}
            wait_for(lambda: {j for (j,) in query(db, "SELECT job_id FROM effects")} >= every,
                     90, "the jobs enqueued during and after the outage")
            supervisor.send_signal(signal.SIGTERM)
            code = supervisor.wait(timeout=60)
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
                supervisor.wait()
    finally:
        emulator.stop()
    log = log_path.read_text(errors="replace")
    assert code == 0, log
    assert len(during) == 5
    assert (f"subscription {settings.subscription_path(QUEUE)} does not exist: run "
            f"`pubsub-jobs bootstrap --queue {QUEUE}`") in log
    later_pids = {pid for (pid,) in query(
        db, "SELECT DISTINCT pid FROM runs WHERE n >= 100")}
    assert later_pids and not later_pids & first_pids  # run by the restarted worker
    runs = Counter(j for (j,) in query(db, "SELECT job_id FROM runs"))
    assert set(runs) == every
    assert all("not enqueued" in refusal for refusal in refused), refused
    not_found = sum(refusal.startswith("TopicNotFound") for refusal in refused)
    restarts = log.count("exited with 1; restarting")
    with capsys.disabled():
        print(f"\nemulator restart: down {down:.1f} s; {len(before)} jobs before, "
              f"{len(during)} during ({len(refused)} enqueue calls raised, {not_found} of "
              f"them TopicNotFound), {len(after)} after: all ran, "
              f"{sum(runs.values()) - len(runs)} duplicates; worker exited and was restarted "
              f"{restarts} time(s)")
