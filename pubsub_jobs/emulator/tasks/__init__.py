"""pubsub-jobs' own Cloud Tasks emulator: a gRPC server of the Cloud Tasks v2 API on the
official ``google-cloud-tasks`` types, that dispatches HTTP tasks as Cloud Tasks does.

- :mod:`~pubsub_jobs.emulator.tasks.names`: resource names and the errors for the rest;
- :mod:`~pubsub_jobs.emulator.tasks.policy`: rate limits (a token bucket), retry backoff;
- :mod:`~pubsub_jobs.emulator.tasks.validate`: what ``CreateTask`` refuses and fills in;
- :mod:`~pubsub_jobs.emulator.tasks.store`: queues, tasks, tombstones, the state machine;
- :mod:`~pubsub_jobs.emulator.tasks.dispatch`: sending due tasks' HTTP requests;
- :mod:`~pubsub_jobs.emulator.tasks.service`: the gRPC methods;
- :mod:`~pubsub_jobs.emulator.tasks.server`: all of it in one process
  (``python -m pubsub_jobs.emulator.tasks`` runs it as a program).

Starting it as a process, probing and stopping it: :mod:`pubsub_jobs.emulator.cloud_tasks`.
"""
