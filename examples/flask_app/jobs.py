"""The jobs of the app: it imports them to enqueue, the worker to run them
(``pubsub-jobs worker jobs --queue mailers``)."""

import logging

from pubsub_jobs import job

log = logging.getLogger(__name__)


@job(queue="mailers")
def send_welcome_email(address: str) -> None:
    """Stands for a call to a mail service: slow and sometimes failing, so not in a request."""
    log.info("welcome email sent to %s", address)
