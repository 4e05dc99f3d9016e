"""``pubsub-jobs cron list|run|sync``: periodic jobs, from the schedules the modules declare.

The work is done by :mod:`pubsub_jobs.cron`, which scripts can use directly, and imported
when a command runs: every ``pubsub-jobs`` run builds this parser. Registering also lets
``pubsub-jobs terraform-vars MODULE ...`` write the modules' schedules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pubsub_jobs._process import stop_on_signals
from pubsub_jobs.errors import ConfigurationError, describe
from pubsub_jobs.settings import get_settings
from pubsub_jobs.worker.run import import_modules, load_jobs

if TYPE_CHECKING:
    from pubsub_jobs.cron.schedules import Schedule

#: Exit code when nothing is declared, or Cloud Scheduler refused a call.
EXIT_FAILED = 1


def register(sub: Any) -> None:
    """Add ``cron`` to the subcommands ``sub`` (and MODULE arguments to ``terraform-vars``)."""
    cron = sub.add_parser("cron", help="periodic jobs: list them, run them locally, or sync "
                                       "them to Cloud Scheduler")
    commands = cron.add_subparsers(dest="cron_command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="each schedule with its next runs")
    _modules(p)
    p.add_argument("--count", type=int, default=3, metavar="N", help="next runs to show")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_list)

    p = commands.add_parser(
        "run", help="the local scheduler for the emulator: publish each schedule's message "
                    "on its slots, as Cloud Scheduler would")
    _modules(p)
    p.add_argument("--schedule", action="append", metavar="NAME",
                   help="run only this schedule (repeat for several; default: all)")
    p.add_argument("--catch-up", action="store_true",
                   help="first publish the slots missed since this scheduler last ran")
    p.add_argument("--catch-up-limit", type=int, default=100, metavar="N",
                   help="catch up at most the latest N slots per schedule")
    p.add_argument("--state", type=Path, metavar="PATH",
                   help="file of the last slot published per schedule (default: under "
                        "~/.cache/pubsub-jobs/cron/)")
    p.set_defaults(func=_cmd_run)

    p = commands.add_parser(
        "sync", help="create, update and (with --prune) delete Cloud Scheduler jobs to match "
                     "the schedules")
    _modules(p)
    p.add_argument("--location", metavar="REGION",
                   help="Cloud Scheduler location, e.g. europe-west1 (default: "
                        "PUBSUB_JOBS_CLOUD_TASKS_LOCATION)")
    p.add_argument("--prune", action="store_true",
                   help="delete our Cloud Scheduler jobs that no schedule declares any more")
    p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    p.set_defaults(func=_cmd_sync)

    _extend_terraform_vars(sub)


def _modules(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help="modules that declare jobs and schedules")


def _declared(args: argparse.Namespace) -> list[Schedule]:
    from pubsub_jobs.cron.schedules import schedules_for

    load_jobs(args.modules)
    return list(schedules_for())


def _cmd_list(args: argparse.Namespace) -> int:
    from pubsub_jobs.cron import format_rows, schedule_rows

    rows = schedule_rows(_declared(args), count=args.count)
    if args.json:
        json.dump([row.to_json() for row in rows], sys.stdout, indent=2)
        print()
    elif rows:
        sys.stdout.write(format_rows(rows))
    else:
        print(f"no schedules declared in {', '.join(args.modules) or 'the modules imported'}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pubsub_jobs.cron import CronState, LocalScheduler, default_state_path

    schedules = _declared(args)
    if args.schedule:
        unknown = sorted(set(args.schedule) - {s.name for s in schedules})
        if unknown:
            raise ConfigurationError(f"no schedule named {', '.join(unknown)} is declared")
        schedules = [s for s in schedules if s.name in args.schedule]
    if not schedules:
        print("pubsub-jobs cron run: no schedules declared in "
              f"{', '.join(args.modules) or 'the modules imported'}", file=sys.stderr)
        return EXIT_FAILED
    settings = get_settings()
    state = CronState(args.state or default_state_path(settings))
    scheduler = LocalScheduler(schedules, settings=settings, state=state,
                               catch_up=args.catch_up, catch_up_limit=args.catch_up_limit)
    stop = threading.Event()
    try:
        with stop_on_signals(stop.set):
            scheduler.run(stop)
    finally:
        scheduler.close()
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from google.api_core import exceptions as gexc

    from pubsub_jobs.cron import sync_schedules

    schedules = _declared(args)
    if not schedules:
        # Never read "nothing declared" (a forgotten MODULE) as "delete every job".
        print("pubsub-jobs cron sync: no schedules declared in "
              f"{', '.join(args.modules) or 'the modules imported'}; nothing to sync",
              file=sys.stderr)
        return EXIT_FAILED
    settings = get_settings()
    location = args.location or settings.cloud_tasks_location
    if not location:
        raise ConfigurationError("give the Cloud Scheduler location: --location REGION")
    try:
        plan = sync_schedules(schedules, location=location, settings=settings,
                              prune=args.prune, dry_run=args.dry_run)
    except gexc.GoogleAPICallError as exc:
        print(f"pubsub-jobs: Cloud Scheduler refused the call: {describe(exc)}",
              file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(plan.describe())
    pending = len(plan.pending)
    if args.dry_run:
        print(f"dry run: {pending} change(s) planned in {plan.parent}, none made")
    else:
        print(f"{pending} change(s) made in {plan.parent}" if pending else
              f"nothing to change in {plan.parent}")
    return 0


def _extend_terraform_vars(sub: Any) -> None:
    """``terraform-vars MODULE ...`` also writes the schedules those modules declare (the
    module's ``schedules`` variable); without modules it writes what it always did, unless
    a Django project's tasks were loaded."""
    parser = sub.choices.get("terraform-vars")
    if parser is None or any(action.dest == "modules" for action in parser._actions):
        return
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help="modules that declare periodic jobs: their schedules are "
                             "written too")
    command = parser.get_default("func")

    def with_schedules(args: argparse.Namespace) -> int:
        if not args.modules and not os.environ.get("DJANGO_SETTINGS_MODULE"):
            code: int = command(args)
            return code
        from pubsub_jobs.admin.terraform_vars import writing_schedules
        from pubsub_jobs.cron.schedules import schedules_for

        import_modules(args.modules)  # Django, when used, was set up by main() already
        with writing_schedules(schedules_for()):
            code = command(args)
        return code

    parser.set_defaults(func=with_schedules)
