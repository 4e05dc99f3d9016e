"""Importing what an operator names: modules that register jobs, or a job by its name.

Only the command line does this; a message never names a module to import.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from pubsub_jobs.registry import default_registry


def import_modules(modules: Sequence[str]) -> None:
    """Import the modules that register jobs (the current directory is importable)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        importlib.import_module(name)


def import_job(name: str) -> Any:
    """The job registered as ``name``, importing its module (the longest importable prefix)."""
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
