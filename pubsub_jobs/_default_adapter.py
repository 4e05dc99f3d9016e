"""How the core reaches the default adapter: the adapters sit above it, so the core calls a
provider that the package names (``pubsub_jobs/__init__.py``, before any of its modules runs)
and that imports the adapters only when a job is first enqueued without ``using(adapter=)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pubsub_jobs.errors import ConfigurationError

if TYPE_CHECKING:
    from pubsub_jobs.adapter import Adapter

_provider: Callable[[], Adapter] | None = None


def set_default_adapter_provider(provider: Callable[[], Adapter]) -> None:
    """Name the function that gives the default adapter."""
    global _provider
    _provider = provider


def default_adapter() -> Adapter:
    """The adapter ``enqueue`` uses when ``using(adapter=...)`` names none."""
    if _provider is None:
        raise ConfigurationError("no adapter: import pubsub_jobs (which sets up the default)")
    return _provider()
