"""Shared fixture of the trigger-observer tests: an Astarte-shaped events exchange on the local RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pika
import pytest


@pytest.fixture
def exchange(rabbitmq: tuple[str, int]) -> Iterator[tuple[str, str]]:
    """A unique astarte_events_<realm>_<suffix> exchange declared as Astarte declares it; deleted after."""
    host, port = rabbitmq
    url = f"amqp://guest:guest@{host}:{port}/%2F"
    name = f"astarte_events_fleetsimtest_{uuid.uuid4().hex[:10]}"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    channel.exchange_declare(name, exchange_type="direct", durable=False)
    try:
        yield url, name
    finally:
        channel.exchange_delete(name)
        conn.close()
