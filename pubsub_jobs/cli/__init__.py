"""The ``pubsub-jobs`` command line. Signal handlers are installed here, never in the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from google.auth.exceptions import DefaultCredentialsError

from pubsub_jobs._process import setup_logging
from pubsub_jobs.cli import worker
from pubsub_jobs.cli._imports import import_job, load_app
from pubsub_jobs.errors import ConfigurationError, JobError
from pubsub_jobs.settings import describe_queue, describe_settings, get_settings

log = logging.getLogger(__name__)


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    from pubsub_jobs.admin.topology import bootstrap
    from pubsub_jobs.queues import declared_queues

    # Which names it makes, and why: a prefix set by configure() in a module this command
    # did not import would show here as the default.
    settings = get_settings()
    queues = args.queue or [q.name for q in declared_queues]
    if not queues:
        raise ConfigurationError(
            "bootstrap: say which queues: --queue Q (repeatable), or declare them with "
            "queue(...) in a module given with --app (or PUBSUB_JOBS_APP)")
    print(f"bootstrap: {describe_settings(settings)}", file=sys.stderr)
    # Each queue's options and delivery features, each with where it came from: a queue
    # declared in a module this command did not import shows as not declared.
    for queue in dict.fromkeys(queues):
        print(f"bootstrap: {describe_queue(settings, queue)}", file=sys.stderr)
    report = bootstrap(queues, update=args.update, push_endpoint=args.push_endpoint)
    for name in report.created:
        print(f"created  {name}")
    for name in report.updated:
        print(f"updated  {name}")
    for name in report.existing:
        print(f"exists   {name}")
    for name, diffs in report.drift.items():
        print(f"DIFFERS  {name}")
        for diff in diffs:
            print(f"           {diff}")
    if report.drift:
        print("Some subscriptions differ from the settings: change the settings, or run "
              "again with --update to apply them.", file=sys.stderr)
        return 3
    return 0


def _cmd_enqueue(args: argparse.Namespace) -> int:
    try:
        call_args = json.loads(args.args)
        call_kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        which = "--args" if exc.doc == args.args else "--kwargs"
        raise JobError(f"{which} is not valid JSON ({exc}): {exc.doc!r}") from None
    if not isinstance(call_args, list) or not isinstance(call_kwargs, dict):
        raise JobError("--args takes a JSON array and --kwargs a JSON object")
    job = import_job(args.job_name)
    options: dict[str, Any] = {}
    if args.queue:
        options["queue"] = args.queue
    if args.delay:
        options["delay"] = args.delay
    if args.job_id:
        options["job_id"] = args.job_id
    target = job.using(**options) if options else job
    result = target.enqueue(*call_args, **call_kwargs)
    print(result.job_id)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pubsub_jobs.cli import demo

    code: int = demo.main(keep_emulator=args.keep_emulator)
    return code


def _cmd_terraform_vars(args: argparse.Namespace) -> int:
    from pubsub_jobs.admin import terraform_vars as terraform

    if args.output == "-":
        sys.stdout.write(terraform.render_terraform_vars(args.queue))
        return 0
    path = terraform.write_terraform_vars(args.output, args.queue)
    print(f"wrote {path} ({len(set(args.queue))} queue(s)) for the module in terraform/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pubsub-jobs",
        description="Background jobs on Google Cloud Pub/Sub.",
        allow_abbrev=False,  # a long option is spelled out: `--proc` is not `--processes`
    )
    parser.add_argument("--log-level", default=None,
                        help="DEBUG, INFO, ... (default: PUBSUB_JOBS_LOG_LEVEL, else INFO)")
    parser.add_argument("--log-format", choices=["text", "json"], default=None,
                        help="json: one JSON object per line, as Cloud Logging reads them "
                             "(default: PUBSUB_JOBS_LOG_FORMAT, else text)")
    parser.add_argument("--app", action="append", metavar="MODULE",
                        help="your application's module to import first (its jobs, its "
                             "configure() call), so this command has the application's "
                             "settings; repeat for several (default: PUBSUB_JOBS_APP)")
    sub = parser.add_subparsers(dest="command", required=True)

    from pubsub_jobs.cli import emulator as _emulator_cmd

    _emulator_cmd.register(sub)  # emulator start|stop

    p = sub.add_parser("bootstrap", help="create the queues' topics and subscriptions")
    p.add_argument("--queue", action="append", metavar="Q",
                   help="a queue to create (repeatable); default: every queue the --app "
                        "modules declare with queue(...)")
    p.add_argument("--update", action="store_true",
                   help="change subscriptions whose policies differ from the settings")
    p.add_argument("--push-endpoint", metavar="URL",
                   help="make the queues' subscriptions push to URL/push/Q, URL being the "
                        "push server's base URL (see push-server)")
    p.set_defaults(func=_cmd_bootstrap)

    p = sub.add_parser("terraform-vars",
                       help="write the queues' settings as variables of the Terraform module")
    p.add_argument("--queue", action="append", required=True, metavar="Q")
    p.add_argument("--output", default="pubsub-jobs.auto.tfvars.json", metavar="PATH",
                   help="file to write ('-' for standard output)")
    p.set_defaults(func=_cmd_terraform_vars)

    worker.register(sub)
    from pubsub_jobs.cli import dashboard as _dashboard_cmd

    _dashboard_cmd.register(sub)  # dashboard
    from pubsub_jobs.cli import cron as _cron_cmd

    _cron_cmd.register(sub)  # cron list|run|sync (after terraform-vars, which it extends)
    from pubsub_jobs.cli import push as _push_cmd

    _push_cmd.register(sub)  # push-server

    p = sub.add_parser("enqueue", help="validate and enqueue one job")
    p.add_argument("job_name")
    p.add_argument("--args", default="[]", help="JSON array of positional arguments")
    p.add_argument("--kwargs", default="{}", help="JSON object of keyword arguments")
    p.add_argument("--queue")
    p.add_argument("--delay", type=float, metavar="SECONDS")
    p.add_argument("--job-id")
    p.set_defaults(func=_cmd_enqueue)

    p = sub.add_parser("demo", help="run example jobs on a local emulator")
    p.add_argument("--keep-emulator", action="store_true")
    p.set_defaults(func=_cmd_demo)

    from pubsub_jobs.cli import cancel as _cancel_cmd
    from pubsub_jobs.cli import dead as _dead_cmd
    from pubsub_jobs.cli import queues as _queues_cmd

    _dead_cmd.register(sub)  # dead list/show/retry/purge
    _queues_cmd.register(sub)  # queues
    _cancel_cmd.register(sub)  # cancel
    _app_after_command(parser)
    return parser


def _app_after_command(parser: argparse.ArgumentParser) -> None:
    """Let ``--app`` come after the command too (``pubsub-jobs bootstrap --app myapp``), as
    people type it; it adds to those given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                if not any("--app" in a.option_strings for a in command._actions):
                    command.add_argument(
                        "--app", action="append", metavar="MODULE", dest="app_after",
                        default=argparse.SUPPRESS,
                        help="as --app before the command: a module of your application")
                _app_after_command(command)


#: Commands that read settings or jobs, and so take a Django project's (the worker does it
#: itself, after its command-line modules).
_DJANGO_AWARE = {"bootstrap", "cancel", "enqueue", "dead", "queues", "terraform-vars"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if getattr(args, "app_after", None):
        args.app = [*(args.app or []), *args.app_after]
    try:  # the settings give the log defaults: an invalid variable is named, not a traceback
        settings = get_settings()
    except JobError as exc:
        print(f"pubsub-jobs: {exc}", file=sys.stderr)
        return 2
    # The command line wins over the settings; commands read the resolved values from args.
    args.log_level = (args.log_level or settings.log_level).upper()
    args.log_format = args.log_format or settings.log_format
    if args.log_level not in logging.getLevelNamesMapping():
        parser.error(f"--log-level {args.log_level}: a level is DEBUG, INFO, WARNING, ERROR "
                     "or CRITICAL")
    setup_logging(args.log_level, args.log_format)
    try:
        args.app = load_app(args.app if args.app is not None else settings.app)
        if os.environ.get("DJANGO_SETTINGS_MODULE") and args.command in _DJANGO_AWARE:
            # A Django project: the backend's OPTIONS are the settings, its tasks are jobs.
            from pubsub_jobs.adapters.django.worker import setup_worker

            setup_worker()
        get_settings()
        code: int = args.func(args)
    except (JobError, json.JSONDecodeError) as exc:
        print(f"pubsub-jobs: {exc}", file=sys.stderr)
        return 2
    except DefaultCredentialsError:
        print("pubsub-jobs: no Google credentials found: run `gcloud auth application-default "
              "login` (or use a service account), or set PUBSUB_EMULATOR_HOST to work on the "
              "emulator", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
