"""The ``pubsub-jobs`` command line. Signal handlers are installed here, never in the library."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pubsub_jobs.errors import JobError
from pubsub_jobs.settings import get_settings

log = logging.getLogger("pubsub_jobs.cli")


def import_modules(modules: Sequence[str]) -> None:
    """Import the modules that register jobs (the current directory is importable)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        importlib.import_module(name)


def import_job(name: str) -> Any:
    """The job registered as ``name``, importing its module (the longest importable prefix).

    Only an operator's command line does this; a message never names a module to import.
    """
    from pubsub_jobs.registry import default_registry

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


def _cmd_emulator(args: argparse.Namespace) -> int:
    """Start (or stop) the Pub/Sub emulator and the Cloud Tasks emulator on 127.0.0.1."""
    from pubsub_jobs import _emulator, _tasks_emulator

    if args.action == "stop":
        stopped = _emulator.stop_detached(args.port)
        print("stopped" if stopped else f"no emulator of ours is running on port {args.port}")
        if not args.no_cloud_tasks:
            stopped = _tasks_emulator.stop_detached(args.tasks_port)
            print("stopped the Cloud Tasks emulator" if stopped else
                  f"no Cloud Tasks emulator of ours is running on port {args.tasks_port}")
        return 0
    env = os.environ
    project = env.get("PUBSUB_JOBS_PROJECT_ID") or env.get("GOOGLE_CLOUD_PROJECT")
    location = env.get("PUBSUB_JOBS_CLOUD_TASKS_LOCATION") or "us-central1"
    queue = env.get("PUBSUB_JOBS_CLOUD_TASKS_QUEUE") or "jobs-delayed"
    exports: dict[str, str] = {}
    started: list[_emulator.EmulatorProcess] = []
    detach = not args.foreground
    stop = _emulator.stop_on_signal() if args.foreground else None
    try:
        host = f"127.0.0.1:{args.port}"
        if _emulator.pubsub_emulator_ready(host):
            print(f"# the Pub/Sub emulator already answers on {host}", file=sys.stderr)
        else:
            proc = _emulator.start_pubsub_emulator(args.port, detach=detach)
            started.append(proc)
            print(f"# Pub/Sub emulator ready on {proc.host} (pid {proc.pid}, log {proc.log_path}"
                  f"{', with its bug fixes applied' if proc.patched else ''})", file=sys.stderr)
        exports["PUBSUB_EMULATOR_HOST"] = host
        if not project:
            exports["PUBSUB_JOBS_PROJECT_ID"] = "local-project"
        if not args.no_cloud_tasks:
            tasks_host = f"127.0.0.1:{args.tasks_port}"
            if _tasks_emulator.tasks_emulator_ready(tasks_host):
                print(f"# the Cloud Tasks emulator already answers on {tasks_host}",
                      file=sys.stderr)
            else:
                # Its delayed-jobs queue exists from the start; `bootstrap` creates it too.
                queue_path = (f"projects/{project or 'local-project'}/locations/{location}"
                              f"/queues/{queue}")
                tasks = _tasks_emulator.start_tasks_emulator(
                    args.tasks_port, detach=detach, queues=[queue_path]
                )
                started.append(tasks)
                print(f"# Cloud Tasks emulator ready on {tasks.host} (pid {tasks.pid}, log "
                      f"{tasks.log_path}), queue {queue_path}", file=sys.stderr)
            exports["CLOUD_TASKS_EMULATOR_HOST"] = tasks_host
            if not env.get("PUBSUB_JOBS_CLOUD_TASKS_LOCATION"):
                exports["PUBSUB_JOBS_CLOUD_TASKS_LOCATION"] = location
    except _emulator.EmulatorError as exc:
        print(f"pubsub-jobs emulator: {exc}", file=sys.stderr)
        if args.foreground:
            for proc in started:
                proc.stop()
        return 1
    for name, value in exports.items():
        print(f"export {name}={value}", flush=True)
    if stop is not None:
        _emulator.run_until_signalled(started, stop)
    return 0


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    from pubsub_jobs.topology import bootstrap

    report = bootstrap(args.queue, update=args.update)
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


class _Signals:
    """First SIGTERM/SIGINT: graceful stop. Second: exit at once."""

    def __init__(
        self, on_first: Callable[[], None], on_second: Callable[[], None] | None = None
    ) -> None:
        self.on_first = on_first
        self.on_second = on_second
        self.count = 0

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            log.warning("%s: stopping (again to exit at once)", signal.Signals(signum).name)
            self.on_first()
        else:
            log.warning("second signal: exiting now; unfinished jobs will be redelivered")
            if self.on_second is not None:
                self.on_second()
            logging.shutdown()
            os._exit(130)


_SUPERVISOR_ONLY = {"--processes": True, "--http-port": True, "--http-host": True}


def _child_argv(argv: Sequence[str]) -> list[str]:
    """The command line of a supervised child: ours without the supervisor's options."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _SUPERVISOR_ONLY:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _cmd_supervisor(args: argparse.Namespace) -> int:
    from pubsub_jobs.worker.status import StatusServer
    from pubsub_jobs.worker.supervisor import Supervisor

    supervisor = Supervisor(_child_argv(args.argv), args.processes,
                            shutdown_timeout=args.shutdown_timeout)
    _Signals(supervisor.request_stop, on_second=supervisor.kill).install()
    server = None
    if args.http_port is not None:
        server = StatusServer(supervisor.status, args.http_port, args.http_host).start()
    try:
        return supervisor.run()
    finally:
        if server is not None:
            server.stop()


def _cmd_worker(args: argparse.Namespace) -> int:
    from pubsub_jobs.worker import QueueSpec, Worker
    from pubsub_jobs.worker.supervisor import watch_supervisor

    if args.processes is not None:
        return _cmd_supervisor(args)
    if os.environ.get("DJANGO_SETTINGS_MODULE"):  # a Django project: its tasks and settings
        from pubsub_jobs.adapters.django.worker import setup_worker

        setup_worker(args.modules)
    else:
        import_modules(args.modules)
    if args.middleware:  # as PUBSUB_JOBS_MIDDLEWARE would: for the worker and for enqueues
        from pubsub_jobs.settings import configure

        configure(**{**get_settings().model_dump(), "middleware": args.middleware})
    queues = [QueueSpec.parse(q, concurrency=args.concurrency, streams=args.streams)
              for q in args.queue]
    worker = Worker(
        queues,
        shutdown_timeout=args.shutdown_timeout,
        burst=args.burst,
        burst_idle=args.burst_idle,
        max_lease_duration=args.max_lease_duration,
        stuck_after=args.stuck_after,
        http_port=args.http_port,
        http_host=args.http_host,
        status_file=args.status_file,
    )
    _Signals(worker.request_stop).install()
    watch_supervisor(worker.request_stop)
    clean = worker.run()
    if worker.error is not None:
        print(f"pubsub-jobs worker: {worker.error}", file=sys.stderr)
        return 1
    if not clean:
        # Jobs outlived the shutdown timeout: leave without joining their threads.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
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
    from pubsub_jobs import demo

    code: int = demo.main(keep_emulator=args.keep_emulator)
    return code


def _cmd_terraform_vars(args: argparse.Namespace) -> int:
    from pubsub_jobs import terraform

    if args.output == "-":
        sys.stdout.write(terraform.render_terraform_vars(args.queue))
        return 0
    path = terraform.write_terraform_vars(args.output, args.queue)
    print(f"wrote {path} ({len(set(args.queue))} queue(s)) for the module in terraform/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pubsub-jobs", description="Background jobs on Google Cloud Pub/Sub."
    )
    parser.add_argument("--log-level", default=os.environ.get("PUBSUB_JOBS_LOG_LEVEL", "INFO"))
    parser.add_argument("--log-format", choices=["text", "json"],
                        default=os.environ.get("PUBSUB_JOBS_LOG_FORMAT", "text"),
                        help="json: one JSON object per line, as Cloud Logging reads them")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("emulator",
                       help="start or stop the local Pub/Sub and Cloud Tasks emulators")
    p.add_argument("action", choices=["start", "stop"])
    p.add_argument("--port", type=int, default=8085, help="Pub/Sub emulator port")
    p.add_argument("--tasks-port", type=int, default=9022, help="Cloud Tasks emulator port")
    p.add_argument("--no-cloud-tasks", action="store_true",
                   help="only the Pub/Sub emulator (no delayed jobs)")
    p.add_argument("--foreground", action="store_true", help="run until Ctrl-C")
    p.set_defaults(func=_cmd_emulator)

    p = sub.add_parser("bootstrap", help="create the queues' topics and subscriptions")
    p.add_argument("--queue", action="append", required=True, metavar="Q")
    p.add_argument("--update", action="store_true",
                   help="change subscriptions whose policies differ from the settings")
    p.set_defaults(func=_cmd_bootstrap)

    p = sub.add_parser("terraform-vars",
                       help="write the queues' settings as variables of the Terraform module")
    p.add_argument("--queue", action="append", required=True, metavar="Q")
    p.add_argument("--output", default="pubsub-jobs.auto.tfvars.json", metavar="PATH",
                   help="file to write ('-' for standard output)")
    p.set_defaults(func=_cmd_terraform_vars)

    p = sub.add_parser("worker", help="run jobs of some queues")
    p.add_argument("modules", nargs="*", metavar="MODULE", help="modules that define jobs")
    p.add_argument("--queue", action="append", required=True, metavar="Q[=N[xS]]",
                   help="queue to work on; =N sets its concurrency, xS its streams")
    p.add_argument("--concurrency", type=int, default=10, help="jobs at once per queue")
    p.add_argument("--streams", type=int, default=1, help="streaming pulls per queue")
    p.add_argument("--burst", action="store_true", help="exit once the queues are idle")
    p.add_argument("--burst-idle", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--shutdown-timeout", type=float, default=25.0, metavar="SECONDS",
                   help="how long running jobs may finish after SIGTERM")
    p.add_argument("--processes", type=int, metavar="N",
                   help="run N worker processes under a supervisor that restarts them")
    p.add_argument("--http-port", type=int, metavar="PORT",
                   help="serve /healthz, /status and /metrics on this port")
    p.add_argument("--http-host", default="127.0.0.1", metavar="HOST",
                   help="address of the HTTP port (0.0.0.0 in a container)")
    p.add_argument("--stuck-after", type=float, default=900.0, metavar="SECONDS",
                   help="report stuck when a job runs, or nothing settles, this long")
    p.add_argument("--max-lease-duration", type=float, default=3600.0, metavar="SECONDS",
                   help="how long a running job keeps its message; longer jobs are "
                        "redelivered meanwhile")
    p.add_argument("--status-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--middleware", action="append", metavar="PATH",
                   help="middleware to use, e.g. myapp.middleware:AuditLog or logging, "
                        "prometheus, opentelemetry; repeat for several (replaces "
                        "PUBSUB_JOBS_MIDDLEWARE)")
    p.set_defaults(func=_cmd_worker)

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

    from pubsub_jobs import _cli_ops

    _cli_ops.register(sub)  # dead list/show/retry/purge, queues
    return parser


#: Commands that read settings or jobs, and so take a Django project's (the worker does it
#: itself, after its command-line modules).
_DJANGO_AWARE = {"bootstrap", "enqueue", "dead", "queues", "terraform-vars"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    handler = logging.StreamHandler()
    if args.log_format == "json":
        from pubsub_jobs.middleware.logging import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        if os.environ.get("DJANGO_SETTINGS_MODULE") and args.command in _DJANGO_AWARE:
            # A Django project: the backend's OPTIONS are the settings, its tasks are jobs.
            from pubsub_jobs.adapters.django.worker import setup_worker

            setup_worker()
        get_settings()
        code: int = args.func(args)
    except (JobError, json.JSONDecodeError) as exc:
        print(f"pubsub-jobs: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
