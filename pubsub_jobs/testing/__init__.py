"""Test helpers shipped to users: a pytest plugin (loaded automatically) and functions.

Fixtures (see :mod:`pubsub_jobs.testing.plugin`): ``pubsub_emulator``,
``pubsub_jobs_settings``, ``bootstrap_queues``, ``drain_queues``, ``dead_letters``,
``memory_adapter`` and ``immediate_adapter``.
"""

from pubsub_jobs.testing.helpers import DeadLetter, drain, publish_raw, pull_dead_letters

__all__ = ["DeadLetter", "drain", "publish_raw", "pull_dead_letters"]
