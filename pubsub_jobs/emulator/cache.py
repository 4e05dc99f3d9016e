"""The folder that holds the emulators' files: ``$XDG_CACHE_HOME/pubsub-jobs``, by default
``~/.cache/pubsub-jobs``.

It holds the emulators' logs, the pid files of detached emulators and the compiled fixes of
the Pub/Sub emulator.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/pubsub-jobs`` when that variable is an absolute path, else
    ``~/.cache/pubsub-jobs``; not created here."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "pubsub-jobs"
