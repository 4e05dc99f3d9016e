"""Google API clients built from settings: the emulator over an insecure channel, else ADC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from pubsub_jobs.settings import Settings

_GRPC_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


def publisher_client(settings: Settings, **kwargs: Any) -> pubsub_v1.PublisherClient:
    """A publisher for the configured project: the emulator when one is set, else ADC."""
    return pubsub_v1.PublisherClient(**_on_emulator(settings, PublisherGrpcTransport, kwargs))


def subscriber_client(settings: Settings, **kwargs: Any) -> pubsub_v1.SubscriberClient:
    """A subscriber for the configured project: the emulator when one is set, else ADC."""
    return pubsub_v1.SubscriberClient(**_on_emulator(settings, SubscriberGrpcTransport, kwargs))


@contextmanager
def pubsub_clients(
    settings: Settings,
) -> Iterator[tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]]:
    """A publisher and a subscriber for admin calls, closed (subscriber first) on leaving."""
    publisher = publisher_client(settings)
    subscriber = subscriber_client(settings)
    try:
        yield publisher, subscriber
    finally:
        subscriber.close()
        publisher.stop()


def _on_emulator(
    settings: Settings,
    transport: type[PublisherGrpcTransport | SubscriberGrpcTransport],
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """``kwargs``, with a ``transport`` over an insecure channel when an emulator is set."""
    host = settings.pubsub_emulator_host
    if host:
        channel = grpc.insecure_channel(host, options=_GRPC_OPTIONS)
        kwargs["transport"] = transport(channel=channel)
    return kwargs
