"""A Cloud Tasks emulator in this process: the store, the dispatcher and the gRPC server
together. ``python -m pubsub_jobs.emulator.tasks`` runs one as a program of its own, which is
how ``pubsub-jobs emulator start`` and the test fixtures start it."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc

from pubsub_jobs.emulator.tasks.dispatch import Dispatcher
from pubsub_jobs.emulator.tasks.service import handlers
from pubsub_jobs.emulator.tasks.store import DEFAULT_TOMBSTONE_SECONDS, TaskStore

__all__ = ["TasksServer"]

tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")


class TasksServer:
    """Serve the Cloud Tasks API on ``host:port`` (port 0: a free one, see :attr:`port`) and
    dispatch its tasks until :meth:`stop`. ``queues`` (full names) exist from the start."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tombstone_seconds: float = DEFAULT_TOMBSTONE_SECONDS,
        queues: Sequence[str] = (),
        clock: Callable[[], float] | None = None,
        dispatch_threads: int = 64,
    ) -> None:
        self.store = TaskStore(tombstone_seconds=tombstone_seconds, clock=clock or time.time)
        for name in queues:
            self.store.create_queue(name.rsplit("/queues/", 1)[0], tasks_v2.Queue(name=name))
        self.dispatcher = Dispatcher(self.store, threads=dispatch_threads)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                   handlers=handlers(self.store))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise OSError(f"cannot bind {address}")
        self.host = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> TasksServer:
        self._server.start()
        self.dispatcher.start()
        return self

    def stop(self) -> None:
        """Stop serving and dispatching; attempts under way are abandoned."""
        self._server.stop(0)
        self.dispatcher.stop()

    def __enter__(self) -> TasksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
