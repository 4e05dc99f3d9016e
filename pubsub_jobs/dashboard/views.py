"""The pages: ``/`` (queues and workers), ``/queues/QUEUE/dead`` (the dead set) and its
retry and purge actions, and ``/login`` for a token-protected dashboard.

Actions are POSTs checked by :class:`~pubsub_jobs.dashboard.security.Guard` (same origin)
and here (the session's CSRF token); they act on a selection of dead jobs by id (job id,
or message id of a job without one), on one job (a row's button) or on all, then redirect
to the dead set with what happened (post/redirect/get). Purging always asks first.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from anyio import to_thread
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pubsub_jobs.dashboard.backend import MAX_LISTED, Backend
from pubsub_jobs.dashboard.config import DashboardConfig
from pubsub_jobs.dashboard.listener import HeartbeatListener
from pubsub_jobs.dashboard.security import Sessions, session_cookie
from pubsub_jobs.dashboard.templating import make_templates, queue_url
from pubsub_jobs.dashboard.workers import WorkerBoard
from pubsub_jobs.dead.operations import PurgeSummary, RetrySummary
from pubsub_jobs.errors import JobError, describe

__all__ = ["Views"]

log = logging.getLogger(__name__)

_MAX_IDS = 1000


class Views:
    """The endpoints, over one backend, worker board and session store."""

    def __init__(self, config: DashboardConfig, backend: Backend, board: WorkerBoard,
                 sessions: Sessions, listener: HeartbeatListener | None = None) -> None:
        self.config = config
        self.backend = backend
        self.board = board
        self.sessions = sessions
        self.listener = listener
        self.templates = make_templates()

    def render(self, request: Request, name: str, status_code: int = 200,
               **context: Any) -> Response:
        session = request.state.session
        context.setdefault("refresh", self.config.refresh_seconds)
        return self.templates.TemplateResponse(request, name, {
            "csrf_token": self.sessions.csrf_token(session),
            "flashes": self.sessions.flashes(session),
            "queues": self.backend.queues,
            "user": getattr(request.state, "user", None),
            "now": datetime.now(UTC).strftime("%H:%M:%S UTC"),
            **context,
        }, status_code=status_code)

    async def index(self, request: Request) -> Response:
        if self.listener is not None:
            await to_thread.run_sync(self.listener.ensure)
        error = None
        try:
            rows = await to_thread.run_sync(self.backend.queue_rows)
        except Exception as exc:
            rows, error = [], _failure("the queues could not be read", exc)
        board = self.board
        since = board.listening_since
        return self.render(
            request, "index.html", rows=rows, error=error, workers=board.workers(),
            heartbeat_error=self.listener.error if self.listener is not None else None,
            listening_for=None if since is None else time.monotonic() - since,
            noscript_refresh=True,
        )

    async def dead(self, request: Request) -> Response:
        queue = self._queue(request)
        if queue is None:
            return self._not_found(request)
        try:
            jobs = await to_thread.run_sync(self.backend.dead_jobs, queue)
            error = None
        except Exception as exc:
            jobs, error = [], _failure("the dead set could not be read", exc)
        size = self.config.page_size
        pages = max(1, -(-len(jobs) // size))
        page = min(max(1, _int(request.query_params.get("page"), 1)), pages)
        shown = jobs[(page - 1) * size : page * size]
        return self.render(
            request, "dead.html", queue=queue, jobs=shown, total=len(jobs), page=page,
            pages=pages, first=(page - 1) * size + 1, error=error,
            capped=len(jobs) >= MAX_LISTED, refresh=self.config.refresh_seconds * 3,
        )

    async def retry(self, request: Request) -> Response:
        queue, form, refused = await self._action(request)
        if refused is not None or queue is None or form is None:
            return refused or self._not_found(request)
        ids, every = _selection(form)
        if not ids and not every:
            return self._back(request, queue, "error", "Select dead jobs to retry first.")
        try:
            summary = await to_thread.run_sync(self.backend.retry, queue, ids, every)
        except Exception as exc:
            return self._back(request, queue, "error", _failure("Retry failed", exc))
        return self._back(request, queue, *_retried(summary))

    async def purge(self, request: Request) -> Response:
        queue, form, refused = await self._action(request)
        if refused is not None or queue is None or form is None:
            return refused or self._not_found(request)
        ids, every = _selection(form)
        if not ids and not every:
            return self._back(request, queue, "error", "Select dead jobs to purge first.")
        note = None
        try:
            if form.get("confirmed") == "yes":
                digest = str(form.get("digest", ""))
                summary = await to_thread.run_sync(self.backend.purge, queue, ids, every, digest)
                if not summary.cancelled:
                    return self._back(request, queue, *_purged(summary))
                note = "The dead set changed since you confirmed: check the jobs again."
            jobs, digest = await to_thread.run_sync(self.backend.purge_preview, queue, ids, every)
        except Exception as exc:
            return self._back(request, queue, "error", _failure("Purge failed", exc))
        if not jobs:
            return self._back(request, queue, "info", "None of those jobs is in the dead set.")
        return self.render(request, "confirm.html", refresh=0, queue=queue, jobs=jobs[:200],
                           count=len(jobs), ids=ids, every=every, digest=digest, note=note)

    async def login(self, request: Request) -> Response:
        if self.config.access != "token":
            return RedirectResponse("/", status_code=303)
        target = _local_path(request.query_params.get("next"))
        if request.method == "GET":
            return self.render(request, "login.html", refresh=0, target=target, failed=False)
        form = await request.form(max_files=0, max_fields=10)
        target = _local_path(str(form.get("next", "/")))
        if not self.sessions.check_csrf(request.state.session, form.get("csrf_token")):
            return self._forbidden(request)
        given = str(form.get("token", ""))
        if not self.config.token or not _same(given, self.config.token):
            log.warning("dashboard login refused from %s",
                        request.client.host if request.client else "?")
            return self.render(request, "login.html", 401, refresh=0, target=target,
                               failed=True)
        session = Sessions.new_id()  # a new session at login: a planted one is worthless
        response = RedirectResponse(target, status_code=303)
        secure = request.url.scheme == "https"
        response.headers.append("set-cookie", session_cookie(self.sessions.cookie, session,
                                                             secure=secure))
        response.headers.append("set-cookie", session_cookie(
            self.sessions.auth_cookie, self.sessions.auth_mark(session), secure=secure))
        return response

    async def _action(self, request: Request) -> tuple[str | None, FormData | None,
                                                        Response | None]:
        queue = self._queue(request)
        if queue is None:
            return None, None, None
        form = await request.form(max_files=0, max_fields=_MAX_IDS + 10)
        if not self.sessions.check_csrf(request.state.session, form.get("csrf_token")):
            return queue, form, self._forbidden(request)
        return queue, form, None

    def _queue(self, request: Request) -> str | None:
        queue = str(request.path_params["queue"])
        return queue if queue in self.backend.queues else None

    def _back(self, request: Request, queue: str, level: str, text: str) -> Response:
        self.sessions.flash(request.state.session, level, text)
        return RedirectResponse(queue_url(queue), status_code=303)

    def _not_found(self, request: Request) -> Response:
        return self.render(request, "error.html", 404, refresh=0, title="Not found",
                           message="This dashboard shows no such queue or page.")

    def _forbidden(self, request: Request) -> Response:
        return self.render(request, "error.html", 403, refresh=0, title="Refused",
                           message="The form's security token is missing or out of date "
                                   "(the dashboard restarted, or the request came from "
                                   "elsewhere). Reload the page and try again.")


def _selection(form: FormData) -> tuple[list[str], bool]:
    """(ids, every): a row's button (``one``), all (``all``), or the ticked ``ids``."""
    one = form.get("one")
    if isinstance(one, str) and one:
        return [one[:1024]], False
    if form.get("all") == "1":
        return [], True
    ids = [i[:1024] for i in form.getlist("ids") if isinstance(i, str) and i]
    return list(dict.fromkeys(ids))[:_MAX_IDS], False


def _retried(summary: RetrySummary) -> tuple[str, str]:
    parts = [f"Retried {_jobs(len(summary.retried))}: republished to {summary.topic}, "
             "dead copies removed."]
    if summary.duplicates:
        parts.append(f"{summary.duplicates} further dead copies of them were removed too.")
    if summary.failed:
        parts.append(f"{_jobs(len(summary.failed))} could not be republished and stay in the "
                     "dead set: " + "; ".join(f"{i}: {e}" for i, e in summary.failed[:5]))
    if summary.not_removed:
        parts.append(f"{_jobs(len(summary.not_removed))} were republished but their dead "
                     "copies could not be removed: purge them (" + _ids(summary.not_removed)
                     + "), do not retry them again.")
    if summary.not_found:
        parts.append(f"Not in the dead set (any more): {_ids(summary.not_found)}.")
    return ("success" if summary.ok else "error"), " ".join(parts)


def _purged(summary: PurgeSummary) -> tuple[str, str]:
    text = f"Purged {_jobs(len(summary.purged))} ({summary.copies} dead messages)."
    missing = summary.selected - len(summary.purged)
    if missing > 0:
        text += f" {_jobs(missing)} could not be removed; they are still in the dead set."
    if summary.not_found:
        text += f" Not in the dead set (any more): {_ids(summary.not_found)}."
    return ("success" if missing <= 0 else "error"), text


def _jobs(n: int) -> str:
    return f"{n} job" + ("" if n == 1 else "s")


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _failure(what: str, exc: BaseException) -> str:
    log.warning("%s: %s", what, describe(exc))
    return f"{what}: {exc if isinstance(exc, JobError) else describe(exc)}"


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _local_path(target: str | None) -> str:
    """Where to go after login: a path of this dashboard, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())
