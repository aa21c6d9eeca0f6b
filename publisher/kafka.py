"""Kafka backend of the publisher: kafka-python, acks=all, idempotent."""
from __future__ import annotations

import logging
import queue
import threading
from functools import lru_cache

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pgtrail.errors import Fatal
from publisher.base import DeliveryCallback
from publisher.partitioner import CachedKeyPartitioner
from publisher.settings import KafkaSettings
from schemas import SCHEMA_VERSION, Event

log = logging.getLogger(__name__)


@lru_cache(maxsize=4096)
def _ce_source(system_id: str, database: str) -> bytes:
    return f"pgtrail://{system_id}/{database}".encode()


@lru_cache(maxsize=64)
def _ce_type(kind: str) -> bytes:
    return f"dev.pgtrail.{kind}.v{SCHEMA_VERSION}".encode()


def cloudevent_headers(event: Event) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers, so any client can route without parsing the body."""
    src = event.source
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event.event_id).encode()),
        ("ce_source", _ce_source(src.system_id, src.database)),
        ("ce_type", _ce_type(event.kind)),
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

    `publish` never blocks: the client's `send` can wait up to max_block_ms for metadata when the
    broker is unreachable, so sends happen on a thread of their own, fed by a queue. The caller
    bounds what is queued (the consumer counts unacknowledged events), so the queue cannot grow
    without end, and the caller's loop keeps answering PostgreSQL while Kafka is stalled.
    """

    def __init__(self, settings: KafkaSettings, client_id: str = "pgtrail-consumer"):
        self.settings = settings
        try:
            self._producer = KafkaProducer(
                **settings.client_options(),
                partitioner=CachedKeyPartitioner(),
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
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._unsent = 0  # queued, not yet handed to the client
        self._cond = threading.Condition()
        self._sender = threading.Thread(target=self._send_loop, name="pgtrail-kafka-send", daemon=True)
        self._sender.start()

    def _send_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            topic, key, value, headers, on_delivery = item
            try:
                future = self._producer.send(topic, value=value, key=key, headers=headers)
                future.add_callback(lambda _md, cb=on_delivery: cb(None))
                future.add_errback(on_delivery)
            except Exception as exc:  # noqa: BLE001 - a send that cannot even start is a failed delivery
                on_delivery(exc)
            with self._cond:
                self._unsent -= 1
                if not self._unsent:
                    self._cond.notify_all()

    def _send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
              on_delivery: DeliveryCallback) -> None:
        with self._cond:
            self._unsent += 1
        self._queue.put((topic, key, value, headers, on_delivery))

    def publish(self, event: Event, on_delivery: DeliveryCallback) -> None:
        self._send(self.settings.topic(event.kind), event.object_key().encode(),
                   event.model_dump_json().encode(), cloudevent_headers(event), on_delivery)

    def dead_letter(self, raw: bytes, reason: str, origin: str, on_delivery: DeliveryCallback) -> None:
        headers = [("pgtrail_reason", reason.encode()[:4096]), ("pgtrail_origin", origin.encode())]
        self._send(self.settings.dead_letter_topic, origin.encode(), raw, headers, on_delivery)

    def flush(self, timeout: float | None = None) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._unsent == 0, timeout)
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._sender.join(10)
        self._producer.close(timeout=10)
