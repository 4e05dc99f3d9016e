"""How the command line logs: text for a terminal, or one JSON object per line."""

from __future__ import annotations

import logging


def setup_logging(level: str, log_format: str) -> None:
    """Log to standard error at ``level``, as ``text`` or ``json`` (Cloud Logging's)."""
    from pubsub_jobs.middleware.logging import JsonFormatter, TextFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
