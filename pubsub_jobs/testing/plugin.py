"""pytest plugin (entry point ``pytest11``): fixtures for testing code that uses pubsub-jobs.

Emulator fixtures reuse ``PUBSUB_EMULATOR_HOST`` when an emulator answers there, else start
one on a free port bound to 127.0.0.1 and stop it at the end of the session. They never skip:
an emulator that cannot be started fails the test, with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pubsub_jobs.adapters.immediate import ImmediateAdapter
    from pubsub_jobs.adapters.memory import InMemoryAdapter
    from pubsub_jobs.admin.topology import BootstrapReport
    from pubsub_jobs.dead.job import DeadJob
    from pubsub_jobs.emulator import EmulatorProcess
    from pubsub_jobs.settings import QueueOptions, Settings
    from pubsub_jobs.worker import QueueSpec, Worker

# pytest loads this module in every project that has pubsub-jobs installed, whether its
# tests use it or not: it imports nothing of pubsub-jobs (pydantic, the Google clients)
# until a fixture runs.


def fast_queues() -> QueueOptions:
    """Queue options for tests: dead-letter after 5 attempts, retry at once (no backoff)."""
    from pubsub_jobs.settings import QueueOptions

    return QueueOptions(min_retry_backoff=timedelta(0), max_retry_backoff=timedelta(seconds=0.5))


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a ready Pub/Sub emulator; ``PUBSUB_EMULATOR_HOST`` is set to it."""
    from pubsub_jobs import emulator

    yield from _session_emulator(
        tmp_path_factory,
        "pubsub-emulator",
        env_var="PUBSUB_EMULATOR_HOST",
        label="Pub/Sub emulator",
        ready=emulator.pubsub_emulator_ready,
        start=emulator.start_pubsub_emulator,
    )


@pytest.fixture
def pubsub_jobs_settings(pubsub_emulator: str) -> Iterator[Settings]:
    """Settings for one test, installed with ``configure``: the emulator, a resource prefix of
    the test's own, and queues that retry at once. Restored afterwards."""
    from pubsub_jobs.settings import configure, reset

    settings = configure(
        project_id="test-project",
        prefix=f"t{uuid.uuid4().hex[:10]}-",
        pubsub_emulator_host=pubsub_emulator,
        queue_defaults=fast_queues(),
        origin="the pytest plugin's fixtures",
    )
    try:
        yield settings
    finally:
        reset()


@pytest.fixture(scope="session")
def cloud_tasks_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a ready Cloud Tasks emulator; ``CLOUD_TASKS_EMULATOR_HOST`` is set to it.

    Reuses ``CLOUD_TASKS_EMULATOR_HOST`` when an emulator answers there, else starts
    pubsub-jobs' own in a process of its own. A task's name stays taken for
    ``$PUBSUB_JOBS_TASKS_TOMBSTONE_SECONDS`` (else an hour) after the task left.
    """
    from pubsub_jobs import emulator

    yield from _session_emulator(
        tmp_path_factory,
        "tasks-emulator",
        env_var="CLOUD_TASKS_EMULATOR_HOST",
        label="Cloud Tasks emulator",
        ready=lambda host: emulator.tasks_emulator_ready(host, timeout=5.0),
        start=emulator.start_tasks_emulator,
    )


def _session_emulator(
    tmp_path_factory: pytest.TempPathFactory,
    log_dir: str,
    *,
    env_var: str,
    label: str,
    ready: Callable[[str], bool],
    start: Callable[..., EmulatorProcess],
) -> Iterator[str]:
    """Yield the host of the emulator ``env_var`` names (failing if none answers there), else
    start one on a free port, set ``env_var`` to it, and stop it afterwards."""
    from pubsub_jobs.emulator import free_port
    from pubsub_jobs.errors import EmulatorError

    host = os.environ.get(env_var)
    if host:
        if not ready(host):
            pytest.fail(
                f"{env_var}={host}, but no {label} answers there; start one "
                "(`pubsub-jobs emulator start`) or unset the variable to let the tests start "
                "their own"
            )
        yield host
        return
    log_path = Path(tmp_path_factory.mktemp(log_dir)) / "emulator.log"
    try:
        proc = start(free_port(), log_path=log_path)
    except EmulatorError as exc:
        pytest.fail(f"could not start the {label}: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(env_var, proc.host)
        try:
            yield proc.host
        finally:
            proc.stop()


@pytest.fixture
def delayed_jobs_settings(
    pubsub_jobs_settings: Settings, cloud_tasks_emulator: str
) -> Iterator[Settings]:
    """``pubsub_jobs_settings`` plus Cloud Tasks on its emulator (location ``us-central1``),
    with the delayed-jobs queue created: ``using(delay=...)`` and long-wait retries work.
    Pass it on (``bootstrap_queues(..., settings=...)``, ``drain_queues(..., settings=...)``)."""
    from pubsub_jobs.admin.topology import ensure_cloud_tasks_queue
    from pubsub_jobs.settings import configure

    settings = configure(
        **{
            **pubsub_jobs_settings.model_dump(),
            "cloud_tasks_location": "us-central1",
            "cloud_tasks_emulator_host": cloud_tasks_emulator,
        },
        origin="the pytest plugin's fixtures",
    )
    ensure_cloud_tasks_queue(settings)
    yield settings  # pubsub_jobs_settings resets the settings afterwards


@pytest.fixture
def bootstrap_queues(pubsub_jobs_settings: Settings) -> Iterator[Callable[..., BootstrapReport]]:
    """``bootstrap_queues("default", "mailers")`` creates the queues; deleted after the test."""
    from pubsub_jobs.admin.topology import bootstrap, delete_topology

    created: list[str] = []

    def make(*queues: str, settings: Settings | None = None) -> BootstrapReport:
        created.extend(queues)
        return bootstrap(queues, settings or pubsub_jobs_settings)

    yield make
    if created:
        delete_topology(created, pubsub_jobs_settings)


@pytest.fixture
def drain_queues(pubsub_jobs_settings: Settings) -> Callable[..., Worker]:
    """``drain_queues("default", idle=1.0)`` runs a burst worker until idle; returns it.

    ``drain_queues("q", wait_for_delayed=True)`` first waits until Cloud Tasks has published
    the queue's delayed jobs. Options as :func:`pubsub_jobs.testing.drain`; the settings
    are those in force (``pubsub_jobs_settings``', or ``delayed_jobs_settings``' when the
    test uses it) unless ``settings=`` says otherwise."""
    from pubsub_jobs.settings import get_settings
    from pubsub_jobs.testing.helpers import drain

    def run(*queues: str | QueueSpec, **options: Any) -> Worker:
        options.setdefault("settings", get_settings())
        return drain(*queues, **options)

    return run


@pytest.fixture
def dead_letters(pubsub_jobs_settings: Settings) -> Callable[..., list[DeadJob]]:
    """``dead_letters("default", expect=1)`` takes the queue's dead-lettered messages, as the
    dead set's :class:`~pubsub_jobs.dead.job.DeadJob` (see ``pull_dead_letters``)."""
    from pubsub_jobs.testing.helpers import pull_dead_letters

    def take(queue: str, **options: Any) -> list[DeadJob]:
        return pull_dead_letters(queue, pubsub_jobs_settings, **options)

    return take


@pytest.fixture
def memory_adapter() -> Iterator[InMemoryAdapter]:
    """Jobs enqueued in the test are kept in memory; ``memory_adapter.run()`` performs those
    due, ``advance(seconds)`` moves its clock for delayed jobs, ``dead_jobs()`` lists the
    dead ones as ``pubsub-jobs dead list`` shows them."""
    from pubsub_jobs.adapters import use_adapter
    from pubsub_jobs.adapters.memory import InMemoryAdapter

    adapter = InMemoryAdapter()
    with use_adapter(adapter):
        yield adapter
    adapter.close()


@pytest.fixture
def immediate_adapter() -> Iterator[ImmediateAdapter]:
    """Jobs enqueued in the test run at once; a failing job raises ``JobFailed``."""
    from pubsub_jobs.adapters import use_adapter
    from pubsub_jobs.adapters.immediate import ImmediateAdapter

    adapter = ImmediateAdapter()
    with use_adapter(adapter):
        yield adapter
    adapter.close()
