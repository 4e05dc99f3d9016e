"""The side effect every system's benchmark job has: it counts itself, and the first and the
N-th distinct job write a line to a file the harness watches.

It imports nothing but the standard library, because it runs inside every system's worker:
pubsub-jobs', the raw client's, and the peers' in their own virtualenvs. ``BENCH_MARKS``
names the file and ``BENCH_EXPECT`` the N. Each line is a JSON object: ``event`` (``first``
or ``last``), ``t`` (``time.monotonic()``, the same clock as the harness's on Linux),
``cpu`` (this process's CPU seconds; ``user`` and ``system``, its two parts), ``pid``, and
on ``last`` the process's ``rss_mib`` and ``hwm_mib`` and the ``duplicates`` seen so far.
Every :data:`PROGRESS` jobs a ``count`` line (with ``n``) tells how far a worker got, should
it never reach N.
"""

from __future__ import annotations

import json
import os
import threading
import time

_lock = threading.Lock()
_seen: set[int] = set()
_duplicates = 0
_config: tuple[str, int] | None = None
#: Distinct jobs between two ``count`` lines.
PROGRESS = 1000


def _memory_mib() -> dict[str, float]:
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values["rss_mib" if key == "VmRSS" else "hwm_mib"] = int(rest.split()[0]) / 1024
    return values


def _write(path: str, event: str, **extra: object) -> None:
    times = os.times()
    line = {"event": event, "t": time.monotonic(), "cpu": time.process_time(),
            "user": times.user, "system": times.system, "pid": os.getpid(), **extra}
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")


def hit(key: int) -> None:
    """Count the job numbered ``key`` (a redelivered job counts once, as a duplicate)."""
    global _config, _duplicates
    with _lock:
        if _config is None:
            _config = (os.environ["BENCH_MARKS"], int(os.environ["BENCH_EXPECT"]))
        path, expect = _config
        if key in _seen:
            _duplicates += 1
            return
        _seen.add(key)
        count = len(_seen)
        if count == 1:
            _write(path, "first")
        if count % PROGRESS == 0 and count != expect:
            _write(path, "count", n=count, duplicates=_duplicates)
        if count == expect:
            _write(path, "last", duplicates=_duplicates, **_memory_mib())
