"""``python manage.py pubsub_worker --queue Q``: ``pubsub-jobs worker`` for this project.

The options are the worker's: they become a :class:`~pubsub_jobs.worker.WorkerOptions` for
:func:`pubsub_jobs.worker.run.run_worker`, which finds the project's tasks (Django already
set up) through ``DJANGO_SETTINGS_MODULE``. An entry point like the command line, it logs
and handles signals as the command line does (first SIGTERM/SIGINT: stop gracefully;
second: at once).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

#: Options passed on to ``pubsub-jobs worker`` as they are: (flag, type, help).
_PASSED_ON: list[tuple[str, Any, str]] = [
    ("--concurrency", int, "jobs at once per queue (default 10)"),
    ("--streams", int, "streaming pulls per queue (default 1)"),
    ("--prefetch", int, "messages each stream holds beyond its threads (default 40)"),
    ("--burst-idle", float, "seconds idle before --burst exits (default 2)"),
    ("--shutdown-timeout", float, "how long running tasks may finish after SIGTERM (default 25)"),
    ("--processes", int, "run N worker processes under a supervisor that restarts them"),
    ("--http-port", int, "serve /healthz, /status and /metrics on this port"),
    ("--http-host", str, "address of the HTTP port (default 127.0.0.1)"),
    ("--stuck-after", float, "report stuck when a task runs, or nothing settles, this long"),
    ("--max-lease-duration", float, "how long a running task keeps its message"),
]


class Command(BaseCommand):  # type: ignore[misc]
    help = (
        "Run the django.tasks tasks of some queues from Pub/Sub: those in the tasks modules "
        "of installed apps and in the modules given."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("modules", nargs="*", metavar="MODULE",
                            help="further modules that define tasks")
        parser.add_argument("--queue", action="append", metavar="Q[=N[xS]]",
                            help="queue to work on (repeat for several); default: the QUEUES "
                                 "of the Pub/Sub backend in TASKS")
        parser.add_argument("--burst", action="store_true", help="exit once the queues are idle")
        parser.add_argument("--middleware", action="append", metavar="PATH",
                            help="worker middleware, e.g. logging or prometheus")
        parser.add_argument("--log-format", choices=["text", "json"],
                            help="json: one JSON object per line, as Cloud Logging reads them")
        for flag, kind, text in _PASSED_ON:
            parser.add_argument(flag, type=kind, help=text)

    def handle(self, *args: str, **options: Any) -> None:
        from pubsub_jobs._process import setup_logging, stop_on_signals
        from pubsub_jobs.adapters.django.worker import worker_backend
        from pubsub_jobs.errors import JobError
        from pubsub_jobs.worker import QueueSpec, WorkerOptions
        from pubsub_jobs.worker.run import run_worker

        queues = options["queue"]
        if not queues:
            backend = worker_backend()
            if backend is None:
                raise CommandError("no TASKS backend is pubsub_jobs.adapters.django."
                                   "PubSubBackend: name the queues with --queue")
            queues = sorted(backend.queues)
        _export_settings_module(children=options["processes"] is not None)
        verbosity = options.get("verbosity", 1)
        given = {flag[2:].replace("-", "_"): options[flag[2:].replace("-", "_")]
                 for flag, _, _ in _PASSED_ON}
        given = {k: v for k, v in given.items() if v is not None}
        concurrency = given.pop("concurrency", 10)
        streams = given.pop("streams", 1)
        try:
            worker_options = WorkerOptions(
                queues=[QueueSpec.parse(q, concurrency=concurrency, streams=streams)
                        for q in queues],
                modules=options["modules"],
                middleware=options["middleware"],
                burst=options["burst"],
                log_level={0: "WARNING", 1: "INFO"}.get(verbosity, "DEBUG"),
                log_format=options["log_format"] or "text",
                **given,
            )
            setup_logging(worker_options.log_level, worker_options.log_format)
            code = run_worker(worker_options, on_signals=stop_on_signals)
        except JobError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if code:
            raise CommandError(f"the worker exited with status {code}", returncode=code)


def _export_settings_module(children: bool) -> None:
    """Make the worker find this project by its settings module's name, and child processes
    (``--processes``) also by the directory it is imported from, on ``PYTHONPATH``."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE
    if not module:
        raise CommandError("pubsub_worker needs DJANGO_SETTINGS_MODULE (settings configured "
                           "in code cannot reach the worker's processes)")
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    if not children:
        return
    top = sys.modules[module.split(".")[0]]
    package_dirs = getattr(top, "__path__", None)
    location = Path(next(iter(package_dirs))) if package_dirs else Path(top.__file__ or ".")
    where = str(location.resolve().parent)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if where not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([where, *paths])
