"""Shared fixtures and the suite's markers: the pubsub_jobs pytest plugin (loaded by its entry
point) does the rest.

The folders are the kinds of test: ``unit/`` starts no process and needs no emulator,
``processes/`` starts processes (a fresh interpreter, the command line) but needs no emulator,
``emulator/`` runs against the emulators, ``terraform/``, ``docs/`` and ``bench/`` need
Terraform, MkDocs and the benchmark harness. A folder's marker is applied here; a test of
another folder that uses an emulator says so with ``@pytest.mark.emulator``, and
:func:`mark_and_check` fails the run where one does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import jobs_core

TESTS = Path(__file__).resolve().parent

#: The marker every test of a folder carries (folders not named here add none).
FOLDER_MARKERS = {
    "emulator": "emulator",
    "terraform": "terraform",
    "docs": "docs",
    "bench": "bench",
}

#: The fixtures that start (or reuse) an emulator; a test using any fixture that depends on
#: them (``pubsub_jobs_settings``, ``bootstrap_queues``, ...) uses them too.
EMULATOR_FIXTURES = ("pubsub_emulator", "cloud_tasks_emulator")


def mark_and_check(items: list[pytest.Item], tests_dir: Path) -> None:
    """Give each test under ``tests_dir`` its folder's marker, then fail the run (naming each
    test, in a sentence) where a test uses an emulator fixture without the ``emulator``
    marker, or uses one at all under ``unit/``."""
    problems = []
    for item in items:
        for folder, marker in FOLDER_MARKERS.items():
            if tests_dir / folder in item.path.parents:
                item.add_marker(marker)
        used = [name for name in EMULATOR_FIXTURES if name in getattr(item, "fixturenames", ())]
        if not used:
            continue
        fixtures = ("fixture " if len(used) == 1 else "fixtures ") + " and ".join(used)
        if tests_dir / "unit" in item.path.parents:
            problems.append(
                f"{item.nodeid} uses the {fixtures}, but tests under unit/ need no "
                "emulator: move it to the emulator tests or use the memory_adapter fixture."
            )
        elif item.get_closest_marker("emulator") is None:
            problems.append(
                f"{item.nodeid} uses the {fixtures} without the emulator marker: add "
                "@pytest.mark.emulator (or move it under emulator/)."
            )
    if problems:
        raise pytest.UsageError("\n".join(problems))


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_and_check(items, TESTS)


@pytest.fixture
def ran() -> Iterator[list[tuple[str, object]]]:
    """What the jobs of tests/jobs_core.py recorded during the test."""
    jobs_core.RAN.clear()
    yield jobs_core.RAN
    jobs_core.RAN.clear()


@pytest.fixture
def observers(pubsub_jobs_settings):  # type: ignore[no-untyped-def]
    """Observer subscriptions (tests/jobs_dead.py) made by a test, closed after it."""
    made: list = []
    yield made
    for observer in made:
        observer.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Django set up with the test project in tests/django_project (once per process), its
    tables created; yields the app's tasks module. DJANGO_SETTINGS_MODULE is not left in the
    environment, so other tests' worker processes do not turn into Django workers."""
    import django
    from django.apps import apps

    db = tmp_path_factory.mktemp("django") / "db.sqlite3"
    if not apps.ready:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
            mp.setenv("PUBSUB_JOBS_TEST_DJANGO_DB", str(db))
            django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    from tests.django_project.testapp import tasks

    yield tasks


@pytest.fixture
def runs(project: Any) -> Callable[..., list[Any]]:
    """The Django project's ``Run`` rows of a tag (and task), in order."""
    from tests.django_project.testapp.models import Run

    def of(tag: str, task: str | None = None) -> list[Any]:
        rows = Run.objects.filter(tag=tag).order_by("id")
        return list(rows.filter(task=task) if task else rows)

    return of


@pytest.fixture
def middleware_events() -> Iterator[None]:
    """Empty what the jobs of tests/jobs_middleware.py recorded, around the test."""
    from tests import jobs_middleware

    jobs_middleware.EVENTS.clear()
    jobs_middleware.PROBES.clear()
    yield
    jobs_middleware.EVENTS.clear()
    jobs_middleware.PROBES.clear()
