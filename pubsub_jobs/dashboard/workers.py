"""The live workers, as their heartbeats tell (see :mod:`pubsub_jobs.worker.heartbeat`).

:class:`WorkerBoard` keeps the last beat of each worker and when it arrived, by this
dashboard's own clock (the workers' clocks may differ). Its rules:

- a worker is *live* while its beats keep coming (``status`` tells ok or stuck);
- it is *lost* once no beat came for :data:`LOST_AFTER_BEATS` of its intervals (at least
  :data:`MIN_LOST_SECONDS`): SIGKILL, a crashed machine or a network cut; lost workers are
  forgotten after :data:`FORGET_LOST_SECONDS`;
- it is gone (dropped at once) when its last beat says ``"stopped"`` (a graceful stop); a
  beat that arrives late, out of order, is recognised by its ``seq`` and ignored.

A beat is input from anyone who may publish to the topic: it is validated into
:class:`Beat` (bad ones are dropped), every text is cut short, and the board holds at most
:data:`MAX_WORKERS` workers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "FORGET_LOST_SECONDS",
    "LOST_AFTER_BEATS",
    "MAX_WORKERS",
    "MIN_LOST_SECONDS",
    "Beat",
    "WorkerBoard",
    "WorkerView",
]

LOST_AFTER_BEATS = 3
MIN_LOST_SECONDS = 15.0
FORGET_LOST_SECONDS = 600.0
MAX_WORKERS = 5000
_MAX_TEXT = 300
_MAX_ITEMS = 100


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


#: A text of a beat, cut short (anything not a string is shown as its JSON).
Text = Annotated[str, BeforeValidator(_short)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BeatQueue(_Lenient):
    name: Text = "?"
    concurrency: int | None = None


class BeatJob(_Lenient):
    queue: Text = "?"
    job_name: Text = "?"
    job_id: Text = "?"
    age_seconds: float = Field(0.0, ge=0.0, le=10.0**9)


class Beat(_Lenient):
    """One heartbeat, as much of it as a dashboard shows."""

    kind: Literal["pubsub-jobs.heartbeat"]
    worker_id: str = Field(min_length=1, max_length=_MAX_TEXT)
    seq: int = 0
    state: Literal["running", "stopped"] = "running"
    host: Text = "?"
    pid: int | None = None
    version: Text = "?"
    started_at: Text = ""
    interval_seconds: float = Field(5.0, ge=1.0, le=300.0)
    status: Text = "ok"
    reasons: list[Text] = Field(default_factory=list)
    queues: list[BeatQueue] = Field(default_factory=list)
    running: list[BeatJob] = Field(default_factory=list)
    running_total: int = 0
    counts: dict[str, int] = Field(default_factory=dict)

    @field_validator("reasons", "queues", "running", mode="before")
    @classmethod
    def _few(cls, value: Any) -> Any:
        return value[:_MAX_ITEMS] if isinstance(value, list) else value

    @field_validator("counts", mode="before")
    @classmethod
    def _known_counts(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in list(value.items())[:20] if isinstance(v, int)}


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker as a page shows it: its last beat, how long ago it came, and its state
    (``ok``, ``stuck`` or ``lost``)."""

    beat: Beat
    state: str
    last_seen_seconds: float

    def running(self) -> list[tuple[BeatJob, float]]:
        """Running jobs with their age now (the age they had when the beat was sent, plus
        the time since it arrived)."""
        return [(job, job.age_seconds + self.last_seen_seconds) for job in self.beat.running]


class WorkerBoard:
    """Last beats by worker; :meth:`receive` is called from the listener's thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._beats: dict[str, tuple[Beat, float]] = {}
        self._gone: dict[str, tuple[int, float]] = {}  # stopped workers: last seq, when
        self.received = 0
        self.listening_since: float | None = None

    def receive(self, data: bytes) -> Beat | None:
        """Take one heartbeat message's data; returns it, or None when it is not a beat (or
        is older than one already seen)."""
        try:
            beat = Beat.model_validate_json(data)
        except (ValidationError, ValueError):
            return None
        now = self._clock()
        with self._lock:
            self.received += 1
            self._forget(now)
            key = beat.worker_id
            gone = self._gone.get(key)
            known = self._beats.get(key)
            if (gone is not None and beat.seq <= gone[0]) or (
                known is not None and beat.seq <= known[0].seq
            ):
                return None
            if beat.state == "stopped":
                self._beats.pop(key, None)
                self._gone[key] = (beat.seq, now)
                return beat
            if known is None and len(self._beats) >= MAX_WORKERS:
                return None
            self._beats[key] = (beat, now)
            return beat

    def workers(self) -> list[WorkerView]:
        """Every worker live or lost, by host and pid."""
        now = self._clock()
        with self._lock:
            self._forget(now)
            beats = list(self._beats.values())
        views = []
        for beat, seen in beats:
            ago = max(0.0, now - seen)
            lost = ago > _lost_after(beat)
            state = "lost" if lost else ("ok" if beat.status == "ok" else "stuck")
            views.append(WorkerView(beat=beat, state=state, last_seen_seconds=ago))
        return sorted(views, key=lambda v: (v.beat.host, v.beat.pid or 0, v.beat.worker_id))

    def _forget(self, now: float) -> None:
        """Drop lost workers past :data:`FORGET_LOST_SECONDS`; the caller holds the lock."""
        for key, (beat, seen) in list(self._beats.items()):
            if now - seen > _lost_after(beat) + FORGET_LOST_SECONDS:
                del self._beats[key]
        for key, (_, when) in list(self._gone.items()):
            if now - when > FORGET_LOST_SECONDS:
                del self._gone[key]


def _lost_after(beat: Beat) -> float:
    return max(MIN_LOST_SECONDS, LOST_AFTER_BEATS * beat.interval_seconds)
