"""Kafka backend of the publisher: kafka-python, acks=all, idempotent."""
from __future__ import annotations

import logging

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pgtrail.errors import Fatal
from publisher.base import DeliveryCallback
from publisher.settings import KafkaSettings
from schemas import SCHEMA_VERSION, Event

log = logging.getLogger(__name__)


def cloudevent_headers(event: Event) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers, so any client can route without parsing the body."""
    src = event.source
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event.event_id).encode()),
        ("ce_source", f"pgtrail://{src.system_id}/{src.database}".encode()),
        ("ce_type", f"dev.pgtrail.{event.kind}.v{SCHEMA_VERSION}".encode()),
        ("content-type", b"application/json"),
    ]
    if event.time is not None:
        headers.append(("ce_time", event.time.isoformat().encode()))
    return headers


class KafkaPublisher:
    """Publishes events to `<prefix>.<kind>`, keyed by database.schema.object.

    Guarantee: `on_delivery(None)` is called only after every in-sync replica has the message
    (acks=all). The idempotent producer keeps retries from duplicating or reordering within a
    partition.
    """

    def __init__(self, settings: KafkaSettings, client_id: str = "pgtrail-consumer"):
        self.settings = settings
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap.split(","),
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                max_in_flight_requests_per_connection=5,
                linger_ms=settings.linger_ms,
                batch_size=settings.batch_size,
                max_request_size=settings.max_request_size,
                request_timeout_ms=settings.request_timeout_ms,
            )
        except KafkaError as exc:
            raise Fatal(f"Kafka producer failed to start: {exc}") from exc

    def _send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
              on_delivery: DeliveryCallback) -> None:
        future = self._producer.send(topic, value=value, key=key, headers=headers)
        future.add_callback(lambda _md: on_delivery(None))
        future.add_errback(on_delivery)

    def publish(self, event: Event, on_delivery: DeliveryCallback) -> None:
        self._send(self.settings.topic(event.kind), event.object_key().encode(),
                   event.model_dump_json().encode(), cloudevent_headers(event), on_delivery)

    def dead_letter(self, raw: bytes, reason: str, origin: str, on_delivery: DeliveryCallback) -> None:
        headers = [("pgtrail_reason", reason.encode()[:4096]), ("pgtrail_origin", origin.encode())]
        self._send(self.settings.dead_letter_topic, origin.encode(), raw, headers, on_delivery)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.close(timeout=10)
