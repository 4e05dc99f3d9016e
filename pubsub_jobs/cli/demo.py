"""``pubsub-jobs demo``: example jobs run, retried and dead-lettered on a local emulator.

Starts the Pub/Sub emulator unless one is configured, bootstraps two queues, enqueues a
few jobs (one that fails for good, one flaky, one async) plus a malformed message, runs a
burst worker and shows what ended in the dead-letter topic and why.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from pubsub_jobs.context import current_job
from pubsub_jobs.jobs import job

if TYPE_CHECKING:
    from pubsub_jobs.dead.job import DeadJob
    from pubsub_jobs.settings import Settings

DEMO_QUEUES = ("demo", "demo-mailers")


def say(line: str) -> None:
    """Print one line from a job: jobs run in several threads, and print() writes the text
    and its newline apart, so two jobs' lines could run together; one write cannot."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@job(queue="demo-mailers")
def send_welcome(user_id: int, *, locale: str = "en") -> None:
    """Pretend to send a welcome e-mail."""
    say(f"  send_welcome(user_id={user_id}, locale={locale!r})  [job {current_job().job_id}]")


@job(queue="demo")
async def resize_image(url: str, width: int) -> None:
    """An ``async def`` job: runs on the worker's event loop."""
    await asyncio.sleep(0.05)
    say(f"  resize_image({url!r}, width={width})")


@job(queue="demo")
def charge(order_id: int, amount: Decimal) -> None:
    """Fails on its first two attempts, then succeeds: a retry at work."""
    attempt = current_job().attempt
    if attempt < 3:
        raise ConnectionError(f"payment provider timed out (attempt {attempt})")
    say(f"  charge(order_id={order_id}, amount={amount}) succeeded on attempt {attempt}")


@job(queue="demo", max_attempts=3)
def import_feed(feed: str) -> None:
    """Always fails: after its third attempt it lands in the dead-letter topic."""
    raise ValueError(f"feed {feed!r} is not valid XML")


def main(keep_emulator: bool = False) -> int:
    from pubsub_jobs import emulator
    from pubsub_jobs.admin.topology import bootstrap
    from pubsub_jobs.settings import QueueOptions, configure, get_settings
    from pubsub_jobs.testing.helpers import drain, publish_raw

    logging.getLogger("pubsub_jobs").setLevel(logging.CRITICAL)  # the demo prints its own
    proc = None
    host = get_settings().pubsub_emulator_host
    if not host or not emulator.pubsub_emulator_ready(host):
        print("Starting the Pub/Sub emulator ...")
        proc = emulator.start_pubsub_emulator(emulator.free_port(), detach=keep_emulator)
        host = proc.host
        print(f"  ready on {host}{' (with its bug fixes applied)' if proc.patched else ''}")
    try:
        settings = configure(
            pubsub_emulator_host=host,
            queue_defaults=QueueOptions(
                min_retry_backoff=timedelta(seconds=1), max_retry_backoff=timedelta(seconds=2)
            ),
            origin="the command line",
        )
        print(f"Bootstrapping queues {', '.join(DEMO_QUEUES)} ...")
        report = bootstrap(DEMO_QUEUES, settings)
        print(f"  {len(report.created)} created, {len(report.existing)} already there")

        print("Enqueueing jobs ...")
        send_welcome.enqueue(42, locale="ja")
        send_welcome.enqueue_many([(7,), (8,), {"user_id": 9, "locale": "fr"}])
        resize_image.enqueue("https://example.com/cat.png", 320)
        charge.enqueue(1001, Decimal("19.99"))
        bad = import_feed.enqueue("https://example.com/feed.xml")
        publish_raw("demo", b"this is not JSON", {"job_name": "x"}, settings)
        print(f"  6 jobs and 1 malformed message (import_feed is job {bad.job_id})")

        print("Running a worker until the queues are idle (retries included) ...")
        worker = drain(*DEMO_QUEUES, settings=settings, idle=3.0, timeout=120)
        stats = worker.stats.snapshot()
        print(f"  processed {stats['processed']} deliveries: {stats['retried']} retried, "
              f"{stats['dead_lettered']} dead-lettered")

        print("Dead set of queue 'demo' (pubsub-jobs dead list demo):")
        for dead in _dead_jobs(settings, expect=2):
            print(f"  - {dead.job_name or '?'}: reason={dead.reason} attempts={dead.attempts} "
                  f"error={dead.error!r}")
    finally:
        if proc is not None and not keep_emulator:
            proc.stop()
    if keep_emulator and proc is not None:
        print(f"The emulator keeps running: export PUBSUB_EMULATOR_HOST={host}")
    return 0


def _dead_jobs(settings: Settings, expect: int, timeout: float = 15.0) -> list[DeadJob]:
    """The demo queue's dead set, read without removing it, once ``expect`` jobs are there."""
    from pubsub_jobs.dead.operations import list_dead

    deadline = time.monotonic() + timeout
    while True:
        dead = list_dead("demo", settings)
        if len(dead) >= expect or time.monotonic() > deadline:
            return dead
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
