"""pubsub-jobs: run gcloud-tasks-emulator bound to one address (its own CLI binds [::]).

A program of its own, not a module of pubsub-jobs: :mod:`pubsub_jobs.emulator.cloud_tasks`
runs it by path with the Python of the emulator's private virtualenv, which has
gcloud-tasks-emulator (and its old protobuf) but not pubsub-jobs. So it imports only the
standard library and what gcloud-tasks-emulator brings, and never ``pubsub_jobs``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
from concurrent import futures
from typing import Any

_NOISE = ("[TASKS] Task %s is scheduled for future", "[TASKS] Processing next task")


def _drop_own_folder() -> None:
    """Run by path, Python put this file's folder (``pubsub_jobs/emulator``) first on
    ``sys.path``; take it off, so that pubsub-jobs' modules there shadow nothing."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]


def _fixed_servicer(emulator: Any, grpc: Any) -> Any:
    """The emulator's servicer with Cloud Tasks' answers where it differs: creating a queue
    that exists is ALREADY_EXISTS (it "created" it again, so bootstrap said so every time),
    and getting one that does not is NOT_FOUND (it failed with UNKNOWN, a KeyError)."""

    class Servicer(emulator.Greeter):  # type: ignore[misc]
        def CreateQueue(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
            if request.queue.name in self._state._queues:
                context.abort(grpc.StatusCode.ALREADY_EXISTS,
                              f"Queue {request.queue.name} already exists")
            return super().CreateQueue(request, context)

        def GetQueue(self, request: Any, context: Any) -> Any:  # noqa: N802
            if request.name not in self._state._queues:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Queue {request.name} not found")
            return super().GetQueue(request, context)

    return Servicer


def main() -> int:
    _drop_own_folder()
    grpc: Any = importlib.import_module("grpc")
    tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")
    emulator: Any = importlib.import_module("gcloud_tasks_emulator.server")

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-retries", type=int, default=-1)
    parser.add_argument("--queue", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The emulator logs every pending task every 0.1 s: keep the log readable.
    logging.getLogger("gcloud-tasks-emulator").addFilter(
        lambda record: not str(record.msg).startswith(_NOISE)
    )
    state = emulator.QueueState(
        emulator.DEFAULT_TARGET_HOST, emulator.DEFAULT_TARGET_PORT, args.max_retries
    )
    for name in args.queue:
        state.create_queue(name.rsplit("/", 2)[0], tasks_v2.Queue(name=name))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    emulator.add_CloudTasksServicer_to_server(_fixed_servicer(emulator, grpc)(state), server)
    address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        print(f"pubsub-jobs: cannot bind {address}", file=sys.stderr, flush=True)
        return 3
    server.start()
    processor = emulator.Processor(state)
    processor.daemon = True  # its per-queue threads inherit it
    processor.start()
    # A program of its own: it may install the handler that turns SIGTERM into a clean exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    logging.getLogger("pubsub-jobs").info("Cloud Tasks emulator listening on %s", address)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
