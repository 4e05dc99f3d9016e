"""Iterating jobs of tests/emulator/test_iterating.py: each item a process finishes is a row in a
SQLite file (worker processes that the tests kill write there concurrently)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from pubsub_jobs import current_job, job
from tests.jobs_faults import connect

DB_ENV = "JOBS_ITERATING_DB"
#: While this file exists, item ``fail_at`` of ``walk`` raises.
FAIL_FLAG_ENV = "JOBS_ITERATING_FAIL_FLAG"
QUEUE = "iterating"


def init_db(path: Path) -> None:
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS items (item INTEGER NOT NULL, "
                     "iteration INTEGER NOT NULL, pid INTEGER NOT NULL)")
    finally:
        conn.close()


@job(queue=QUEUE, checkpoint_every=1.0, max_attempts=3)
def walk(n: int, pause: float = 0.004, fail_at: int = -1, *,
         cursor: int | None = None) -> Iterator[int]:
    """Items ``cursor + 1`` to ``n - 1``, one row each, yielding each one done."""
    conn = connect(os.environ[DB_ENV])
    try:
        for item in range(0 if cursor is None else cursor + 1, n):
            if item == fail_at and Path(os.environ[FAIL_FLAG_ENV]).exists():
                raise RuntimeError(f"item {item} failed")
            time.sleep(pause)
            conn.execute("INSERT INTO items VALUES (?, ?, ?)",
                         (item, current_job().iteration, os.getpid()))
            yield item
    finally:
        conn.close()
