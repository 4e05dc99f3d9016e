"""Queues declared in code, on the emulator: bootstrap makes ordered and exactly-once worker
subscriptions, refuses one that differs, and the worker reads the declarations (``--app``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pubsub_jobs import Settings, queues
from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.admin.queue_status import queue_status
from pubsub_jobs.admin.topology import BootstrapReport, bootstrap
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.queues import queue

PUBSUB_JOBS = str(Path(sys.executable).with_name("pubsub-jobs"))


@pytest.fixture
def declare() -> Iterator[Callable[..., queues.Queue]]:
    """``declare("billing", ordered=True)``: a declaration forgotten after the test."""
    names: list[str] = []

    def make(name: str, **options: object) -> queues.Queue:
        names.append(name)
        queues.declared_queues.remove(name)
        return queue(name, **options)  # type: ignore[arg-type]

    yield make
    for name in names:
        queues.declared_queues.remove(name)


def _subscription(settings: Settings, queue_name: str) -> object:
    subscriber = subscriber_client(settings)
    try:
        return subscriber.get_subscription(subscription=settings.subscription_path(queue_name))
    finally:
        subscriber.close()


def test_bootstrap_makes_ordered_and_exactly_once_subscriptions(
    pubsub_jobs_settings: Settings, bootstrap_queues: Callable[..., BootstrapReport],
    declare: Callable[..., queues.Queue],
) -> None:
    declare("billing", ordered=True, max_delivery_attempts=8)
    declare("payments", exactly_once=True)
    report = bootstrap_queues("billing", "payments", "plain")
    assert not report.drift
    billing = _subscription(pubsub_jobs_settings, "billing")
    assert billing.enable_message_ordering and not billing.enable_exactly_once_delivery
    assert billing.dead_letter_policy.max_delivery_attempts == 8
    payments = _subscription(pubsub_jobs_settings, "payments")
    assert payments.enable_exactly_once_delivery and not payments.enable_message_ordering
    plain = _subscription(pubsub_jobs_settings, "plain")
    assert not plain.enable_message_ordering and not plain.enable_exactly_once_delivery

    again = bootstrap(["billing", "payments"], pubsub_jobs_settings)
    assert again.created == [] and again.drift == {} and len(again.existing) == 8
    (status,) = queue_status(["billing"], pubsub_jobs_settings, backlog=False)
    worker = next(s for s in status.subscriptions if s.role == "worker")
    assert worker.ordering and not worker.drift


def test_bootstrap_refuses_a_subscription_that_differs_from_the_declaration(
    pubsub_jobs_settings: Settings, bootstrap_queues: Callable[..., BootstrapReport],
    declare: Callable[..., queues.Queue],
) -> None:
    bootstrap_queues("billing")  # made before the queue was declared ordered
    declare("billing", ordered=True, exactly_once=True)
    path = pubsub_jobs_settings.subscription_path("billing")
    for update in (False, True):
        with pytest.raises(ConfigurationError) as caught:
            bootstrap(["billing"], pubsub_jobs_settings, update=update)
        assert str(caught.value) == (
            f"{path} has ordered=False where the queue is declared ordered=True and "
            "exactly_once=False where the queue is declared exactly_once=True: Pub/Sub cannot "
            "change a subscription's message ordering or exactly-once delivery in place, so "
            "make a new subscription: delete this one (its undelivered messages go with it) "
            "and run bootstrap again, or use another prefix (PUBSUB_JOBS_PREFIX)")
    sub = _subscription(pubsub_jobs_settings, "billing")
    assert not sub.enable_message_ordering  # left as it was
    (status,) = queue_status(["billing"], pubsub_jobs_settings, backlog=False)
    worker = next(s for s in status.subscriptions if s.role == "worker")
    assert "ordered=False where the queue is declared ordered=True" in worker.drift

    # A queue no module declares keeps whatever its subscription was made with.
    queues.declared_queues.remove("billing")
    assert bootstrap(["billing"], pubsub_jobs_settings).drift == {}


APP = """\
from pubsub_jobs import job, queue

queue("billing", ordered=True, max_delivery_attempts=8)


@job(queue="billing")
def charge(n: int) -> None:
    pass
"""


def _run(app_dir: Path, settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{name: value for name, value in os.environ.items() if name != "PUBSUB_JOBS_APP"},
        "PUBSUB_EMULATOR_HOST": settings.pubsub_emulator_host or "",
        "PUBSUB_JOBS_PROJECT_ID": settings.require_project(),
        "PUBSUB_JOBS_PREFIX": settings.prefix,
        "PUBSUB_JOBS_QUEUE_DEFAULTS": settings.queue_defaults.model_dump_json(),
    }
    return subprocess.run([PUBSUB_JOBS, *argv], cwd=app_dir, env=env, capture_output=True,
                          text=True, timeout=120)


def test_commands_read_the_declarations_of_the_app(
    tmp_path: Path, pubsub_jobs_settings: Settings,
    bootstrap_queues: Callable[..., BootstrapReport],
) -> None:
    settings = pubsub_jobs_settings
    (tmp_path / "billingapp.py").write_text(APP)
    bootstrap_queues("billing")  # without the app: an unordered subscription

    # The worker given the app warns that the subscription is not ordered, and runs.
    done = _run(tmp_path, settings, "--app", "billingapp", "worker", "--queue", "billing",
                "--burst", "--burst-idle", "0.5")
    assert done.returncode == 0, done.stderr
    assert (f"{settings.subscription_path('billing')} has ordered=False but queue 'billing' "
            "is declared ordered=True (queue() at billingapp.py:3)") in done.stderr
    assert "dead-letters after 5 delivery attempts but the settings say 8" in done.stderr

    # Bootstrap given the app says where each value came from, and refuses the subscription.
    done = _run(tmp_path, settings, "--app", "billingapp", "bootstrap", "--queue", "billing")
    assert done.returncode == 2
    assert ("bootstrap: queue 'billing': ordered (from queue() at billingapp.py:3); "
            "max_delivery_attempts 8 (from queue() at billingapp.py:3)") in done.stderr
    assert "ack_deadline_seconds 60 (from PUBSUB_JOBS_QUEUE_DEFAULTS)" in done.stderr
    assert "Pub/Sub cannot change a subscription's message ordering" in done.stderr
    assert "Traceback" not in done.stderr

    # Under another prefix, bootstrap makes it ordered (the app's declared queues, when no
    # --queue names them), and the worker is content.
    other = settings.model_copy(update={"prefix": f"{settings.prefix}o-"})
    done = _run(tmp_path, other, "--app", "billingapp", "bootstrap")
    try:
        assert done.returncode == 0, done.stderr
        assert _subscription(other, "billing").enable_message_ordering
        done = _run(tmp_path, other, "--app", "billingapp", "worker", "--queue", "billing",
                    "--burst", "--burst-idle", "0.5")
        assert done.returncode == 0, done.stderr
        assert "declared ordered" not in done.stderr
    finally:
        from pubsub_jobs.admin.topology import delete_topology

        delete_topology(["billing"], other)
