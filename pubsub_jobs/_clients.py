"""Google API clients built from settings: the emulator over an insecure channel, else ADC."""

from __future__ import annotations

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
    host = settings.pubsub_emulator_host
    if host:
        channel = grpc.insecure_channel(host, options=_GRPC_OPTIONS)
        kwargs["transport"] = PublisherGrpcTransport(channel=channel)
    return pubsub_v1.PublisherClient(**kwargs)


def subscriber_client(settings: Settings, **kwargs: Any) -> pubsub_v1.SubscriberClient:
    """A subscriber for the configured project: the emulator when one is set, else ADC."""
    host = settings.pubsub_emulator_host
    if host:
        channel = grpc.insecure_channel(host, options=_GRPC_OPTIONS)
        kwargs["transport"] = SubscriberGrpcTransport(channel=channel)
    return pubsub_v1.SubscriberClient(**kwargs)
