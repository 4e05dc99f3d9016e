"""A FastAPI app whose ``async def`` endpoints enqueue jobs without blocking the event loop.

``aenqueue`` checks the arguments at once, then waits for Pub/Sub's confirmation in a
thread: the loop serves other requests meanwhile. Run it with ``uvicorn app:app`` and the
worker with ``pubsub-jobs worker jobs --queue mailers`` (see README.md).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pubsub_jobs
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from jobs import send_welcome_email


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The configuration: PUBSUB_JOBS_* environment variables (the project, or the emulator's
    # PUBSUB_EMULATOR_HOST) are read on the first enqueue. configure() sets settings in code,
    # once, before the app serves; what it does not name still comes from the environment.
    # Here: count this process's enqueues for /metrics.
    pubsub_jobs.configure(middleware=["prometheus"])
    yield


app = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str


class Newsletter(BaseModel):
    emails: list[str]


@app.post("/signup", status_code=202)
async def signup(body: Signup) -> dict[str, str]:
    enqueued = await send_welcome_email.aenqueue(body.email)
    return {"job_id": enqueued.job_id}


@app.post("/newsletter", status_code=202)
async def newsletter(body: Newsletter) -> dict[str, list[str]]:
    # One batch of publishes for all of them, confirmed before the answer.
    enqueued = await send_welcome_email.aenqueue_many((email,) for email in body.emails)
    return {"job_ids": [job.job_id for job in enqueued]}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of this process: ``pubsub_jobs_jobs_enqueued_total`` and
    ``pubsub_jobs_jobs_enqueue_failed_total``, by queue and job."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
