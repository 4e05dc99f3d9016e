"""Jobs of the fault tests (tests/emulator/test_faults.py): each run is recorded in a SQLite file.

Worker processes that the tests SIGKILL write here concurrently, so the file is in WAL mode
and every connection waits for the lock instead of failing. A run writes a ``starts`` row
when it begins and, after a short pause (so kills land mid-job), a ``runs`` row (one per run:
duplicates show up) and an ``effects`` row (one per job id: the idempotent effect) in one
transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Annotated

from pydantic import StringConstraints

from pubsub_jobs import current_job, job

#: The SQLite file the jobs write to.
DB_ENV = "JOBS_FAULTS_DB"
QUEUE = "faults"

SCHEMA = """
CREATE TABLE IF NOT EXISTS starts (job_id TEXT NOT NULL, pid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    job_id TEXT NOT NULL, pid INTEGER NOT NULL, n INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS effects (job_id TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""

_local = threading.local()


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode that waits up to 60 s for another writer."""
    conn = sqlite3.connect(str(path), timeout=60, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    return conn


def init_db(path: str | Path) -> None:
    """Create the file in WAL mode (which persists in the file) with its tables."""
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
    finally:
        conn.close()


def _conn() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = connect(os.environ[DB_ENV])
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@job(queue=QUEUE)
def record(
    n: int, pause: float = 0.02, note: Annotated[str, StringConstraints(max_length=64)] = ""
) -> None:
    """Record a start, pause, then record the run and its (idempotent) effect."""
    job_id = current_job().job_id
    conn = _conn()
    conn.execute("INSERT INTO starts(job_id, pid) VALUES (?, ?)", (job_id, os.getpid()))
    time.sleep(pause)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO runs(job_id, pid, n, at) VALUES (?, ?, ?, ?)",
                     (job_id, os.getpid(), n, time.time()))
        conn.execute("INSERT OR IGNORE INTO effects(job_id, n) VALUES (?, ?)", (job_id, n))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def canary(path: str) -> None:
    """Not a job: a message naming it must never make it run (it would create ``path``)."""
    Path(path).touch()
