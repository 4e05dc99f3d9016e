"""A Flask app whose views enqueue jobs with the blocking ``enqueue``: each returns once
Pub/Sub confirmed the message, so when the view answers, the job is safe.

Run it with ``flask --app app run`` and the worker with
``pubsub-jobs worker jobs --queue mailers`` (see README.md).
"""

from collections.abc import Mapping
from typing import Any

import pubsub_jobs
from flask import Flask, request

from jobs import send_welcome_email


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()  # FLASK_* environment variables
    if config is not None:
        app.config.update(config)
    # The configuration: PUBSUB_JOBS_* environment variables are read on the first enqueue;
    # settings in the app's config (PUBSUB_JOBS = {"project_id": ...}, or the environment
    # variable FLASK_PUBSUB_JOBS='{"project_id": ...}') go to configure() and win over them.
    if "PUBSUB_JOBS" in app.config:
        pubsub_jobs.configure(**app.config["PUBSUB_JOBS"])

    @app.post("/signup")
    def signup() -> tuple[dict[str, str], int]:
        enqueued = send_welcome_email.enqueue(request.get_json()["email"])
        return {"job_id": enqueued.job_id}, 202

    @app.post("/newsletter")
    def newsletter() -> tuple[dict[str, list[str]], int]:
        emails = request.get_json()["emails"]
        enqueued = send_welcome_email.enqueue_many((email,) for email in emails)
        return {"job_ids": [job.job_id for job in enqueued]}, 202

    return app
