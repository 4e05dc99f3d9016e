"""The pages' templates (Jinja2, autoescaped) and the filters they use.

Everything a message carries is attacker-controlled: templates print it only through
autoescaping (never ``|safe``), and :func:`printable` also shows control and
bidirectional-override characters as ``\\uXXXX``, so a message can neither inject markup
nor reorder or hide the text around it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.templating import Jinja2Templates

from pubsub_jobs.dead.job import DeadJob

__all__ = [
    "ago", "data_text", "duration", "json_preview", "make_templates", "printable", "queue_url",
]

_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def printable(value: Any) -> str:
    """``value`` as text, with control and bidi characters written as ``\\uXXXX``."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", "" if value is None
                            else str(value))


def duration(seconds: float | None) -> str:
    """``4 s``, ``3 min 12 s``, ``2 h 5 min``, ``3 d 4 h``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{duration(seconds)} ago"


def json_preview(value: Any, limit: int = 300) -> str:
    """``value`` as compact JSON, cut to ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def data_text(job: DeadJob, limit: int = 20_000) -> str:
    """A dead job's data as text, cut to ``limit`` characters (or what it is, if not text)."""
    try:
        text = job.data.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(job.data)} bytes, not UTF-8 text: `pubsub-jobs dead show` shows them)"
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters in all)"


def queue_url(queue: str, action: str = "") -> str:
    """``/queues/QUEUE/dead[/ACTION]``, the queue's name quoted."""
    return f"/queues/{quote(queue, safe='')}/dead" + (f"/{action}" if action else "")


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pubsub_jobs.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(printable=printable, duration=duration, ago=ago,
                       json_preview=json_preview, data_text=data_text)
    env.globals.update(queue_url=queue_url)
    return Jinja2Templates(env=env)
