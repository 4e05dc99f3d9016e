"""The jobs: importing this module registers them. The script that enqueues imports it, and
so does the worker, by the name given on its command line (``pubsub-jobs worker jobs``)."""

from pubsub_jobs import job


@job  # queue "default"
def greet(name: str, *, greeting: str = "Hello") -> None:
    print(f"{greeting}, {name}!")
