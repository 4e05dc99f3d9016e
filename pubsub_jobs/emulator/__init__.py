"""The local emulators, for development and tests: Google's Pub/Sub emulator (with
pubsub-jobs' fixes) and pubsub-jobs' own Cloud Tasks emulator
(:mod:`~pubsub_jobs.emulator.tasks`), both bound to 127.0.0.1. ``pubsub-jobs emulator
start|stop`` is their command line; the pytest plugin's ``pubsub_emulator`` and
``cloud_tasks_emulator`` fixtures start them for tests.

Pub/Sub emulator 0.8.20 (Cloud SDK 528) has two bugs that lose messages, which we fix in the
emulator by compiling a replacement class (shipped in ``java/``) against its jar and putting
it before the jar on the class path, each only when the jar needs it:

- It loses messages whenever a client cancels a streaming-pull stream: its grpc-core calls
  ``io.grpc.InternalStatus.asRuntimeException(Status, Metadata, boolean)``, which its bundled
  grpc-api lacks, and the NoSuchMethodError leaves the dead stream registered, so messages
  handed to it never come back. Fixed by ``io.grpc.InternalStatus`` with that method.
- On a subscription with a retry policy, it can stop redelivering for good: the periodic task
  that redelivers delayed (expired or nacked) messages nacks an ack id twice when messages
  expire together, meets a NullPointerException, and is cancelled. Fixed by
  ``MessageBacklog$ExpireOutstandingMessagesRunnable`` that skips ack ids no longer
  outstanding and never throws.

The modules: :mod:`~pubsub_jobs.emulator.installation` (finding the emulator and Java),
:mod:`~pubsub_jobs.emulator.classfile` (reading class files), :mod:`~pubsub_jobs.emulator.fixes`
(which fixes a jar needs, compiling them), :mod:`~pubsub_jobs.emulator.process` (spawning,
readiness, pid files, stopping), :mod:`~pubsub_jobs.emulator.network` (loopback addresses,
ports), :mod:`~pubsub_jobs.emulator.cache` (the cache folder), and one module per emulator:
:mod:`~pubsub_jobs.emulator.pubsub` and :mod:`~pubsub_jobs.emulator.cloud_tasks` (which starts
the server of :mod:`~pubsub_jobs.emulator.tasks` as a process).

Errors are :class:`pubsub_jobs.errors.EmulatorError` (and its subclass
:class:`~pubsub_jobs.errors.EmulatorAlreadyRunning`). Nothing here installs a signal handler.
"""

from pubsub_jobs.emulator.cloud_tasks import (
    DEFAULT_TASKS_PORT,
    TasksEmulatorProcess,
    start_tasks_emulator,
    stop_detached_tasks_emulator,
    tasks_emulator_ready,
)
from pubsub_jobs.emulator.installation import EmulatorInstallation, find_pubsub_emulator
from pubsub_jobs.emulator.network import free_port
from pubsub_jobs.emulator.process import EmulatorCommand, EmulatorProcess
from pubsub_jobs.emulator.pubsub import (
    DEFAULT_PUBSUB_PORT,
    pubsub_emulator_ready,
    start_pubsub_emulator,
    stop_detached_pubsub_emulator,
)

__all__ = [
    "DEFAULT_PUBSUB_PORT",
    "DEFAULT_TASKS_PORT",
    "EmulatorCommand",
    "EmulatorInstallation",
    "EmulatorProcess",
    "TasksEmulatorProcess",
    "find_pubsub_emulator",
    "free_port",
    "pubsub_emulator_ready",
    "start_pubsub_emulator",
    "start_tasks_emulator",
    "stop_detached_pubsub_emulator",
    "stop_detached_tasks_emulator",
    "tasks_emulator_ready",
]
