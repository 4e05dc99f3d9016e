"""Importing what an operator names: modules that register jobs, or a job by its name.

Only the command line does this; a message never names a module to import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pubsub_jobs.errors import JobError
from pubsub_jobs.jobs import default_registry
from pubsub_jobs.worker.run import import_modules


def import_job(name: str) -> Any:
    """The job registered as ``name``, importing its module (the longest importable prefix)."""
    if name in default_registry:
        return default_registry.get(name)
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        try:
            import_modules([module])
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        break
    return default_registry.get(name)


def load_app(modules: Sequence[str]) -> list[str]:
    """Import the application's modules (``--app``, ``PUBSUB_JOBS_APP``) before a command
    runs, so that their ``configure()`` gives the command the application's settings;
    returns them. A module that cannot be found is a :class:`JobError` that says what to do."""
    for name in modules:
        try:
            import_modules([name])
        except ModuleNotFoundError as exc:
            if not (exc.name and name.startswith(exc.name)):
                raise  # the app itself imports something missing: its own traceback
            raise JobError(
                f"--app {name}: no module named {exc.name!r} (from {os.getcwd()}): run the "
                "command from the directory that holds it, or add that directory to "
                "PYTHONPATH"
            ) from None
    return list(modules)
